package sandbox

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"

	"github.com/vc-cri/vc-cri/pkg/agent/protocol"
	"github.com/vc-cri/vc-cri/pkg/hypervisor"
)

// waitBound is how long past its deadline a waiter may take to give up:
// generous, as the machine may be loaded.
const waitBound = 2 * time.Second

// mustWaitFail calls fn with a context of a 100 ms deadline and wants it
// to fail promptly with an error that wraps context.DeadlineExceeded.
func mustWaitFail(t *testing.T, what string, fn func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := fn(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%s: %v, want an error wrapping context.DeadlineExceeded", what, err)
	}
	if d := time.Since(start); d > 100*time.Millisecond+waitBound {
		t.Fatalf("%s gave up after %v", what, d)
	}
}

// TestLockHonoursContext: a call on a sandbox whose lock another call of
// the process holds (a RunSandbox waiting for its guest's agent) waits
// no longer than its context; calls on other sandboxes go on meanwhile;
// and once every call is done no lock is left in the map.
func TestLockHonoursContext(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := &gatedDialer{gated: "held", dialing: make(chan struct{}), release: make(chan struct{})}
	r := testRuntime(t, WithAgentDialer(NoopAgentType, d))
	if _, err := r.RunSandbox(ctx, mockConfig("free")); err != nil {
		t.Fatal(err)
	}
	held := make(chan error, 1)
	go func() {
		_, err := r.RunSandbox(ctx, mockConfig("held"))
		held <- err
	}()
	<-d.dialing

	mustWaitFail(t, "StatusSandbox", func(ctx context.Context) error {
		_, err := r.StatusSandbox(ctx, "held")
		return err
	})
	mustWaitFail(t, "StopSandbox", func(ctx context.Context) error {
		_, err := r.StopSandbox(ctx, "held")
		return err
	})
	mustWaitFail(t, "ListSandbox", func(ctx context.Context) error {
		_, err := r.ListSandbox(ctx)
		return err
	})
	cctx, cancel := context.WithCancel(ctx)
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	if _, err := r.StatusSandbox(cctx, "held"); !errors.Is(err, context.Canceled) {
		t.Fatalf("StatusSandbox with a cancelled context: %v, want context.Canceled", err)
	}
	if n := r.locks.count(); n != 1 {
		t.Fatalf("%d locks in the map while one call holds one, want 1", n)
	}

	// Another sandbox is served meanwhile.
	octx, ocancel := context.WithTimeout(ctx, 10*time.Second)
	defer ocancel()
	if _, err := r.PauseSandbox(octx, "free"); err != nil {
		t.Fatalf("a call on another sandbox: %v", err)
	}
	if _, err := r.ResumeSandbox(octx, "free"); err != nil {
		t.Fatalf("a call on another sandbox: %v", err)
	}

	close(d.release)
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	mustState(t, r, "held", StateRunning)
	if n := r.locks.count(); n != 0 {
		t.Fatalf("%d locks left in the map once every call is done", n)
	}
}

// TestFlockHonoursContext: a call on a sandbox whose flock another
// process holds waits for it no longer than its context, and takes it
// once it is free.
func TestFlockHonoursContext(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := testRuntime(t)
	if _, err := r.RunSandbox(ctx, mockConfig("other")); err != nil {
		t.Fatal(err)
	}
	// Another open file description is, to flock, another process.
	f, err := os.OpenFile(filepath.Join(r.sandboxDir("other"), "lock"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	mustWaitFail(t, "StatusSandbox", func(ctx context.Context) error {
		_, err := r.StatusSandbox(ctx, "other")
		return err
	})
	if n := r.locks.count(); n != 0 {
		t.Fatalf("%d locks left in the map after a wait for the flock gave up", n)
	}
	done := make(chan error, 1)
	go func() {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err := r.StatusSandbox(wctx, "other")
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	if err := unix.Flock(int(f.Fd()), unix.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("StatusSandbox once the flock is free: %v", err)
	}
}

// TestSandboxLocks: the in-process lock excludes, hands itself on to
// waiters, gives up with their contexts, and leaves the map empty.
func TestSandboxLocks(t *testing.T) {
	t.Parallel()
	var l sandboxLocks
	ctx := context.Background()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex // only for the race detector's sake
		inside  int
		maxSeen int
	)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				id := []string{"a", "b"}[j%2]
				sl, err := l.lock(ctx, id)
				if err != nil {
					t.Error(err)
					return
				}
				if id == "a" {
					mu.Lock()
					inside++
					maxSeen = max(maxSeen, inside)
					mu.Unlock()
					time.Sleep(10 * time.Microsecond)
					mu.Lock()
					inside--
					mu.Unlock()
				}
				l.unlock(sl)
			}
		}()
	}
	wg.Wait()
	if maxSeen != 1 {
		t.Fatalf("%d calls held one lock at once", maxSeen)
	}
	if n := l.count(); n != 0 {
		t.Fatalf("%d locks left in the map", n)
	}

	sl, err := l.lock(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	mustWaitFail(t, "lock", func(ctx context.Context) error {
		_, err := l.lock(ctx, "a")
		return err
	})
	// A free lock is taken even by a call whose context has ended.
	done, cancel := context.WithCancel(ctx)
	cancel()
	other, err := l.lock(done, "b")
	if err != nil {
		t.Fatalf("a free lock with an ended context: %v", err)
	}
	l.unlock(other)
	l.unlock(sl)
	if n := l.count(); n != 0 {
		t.Fatalf("%d locks left in the map", n)
	}
}

// TestLeftoverTempState: the temporary file of a save a crash cut short
// is not read, and does not keep the sandbox from being deleted.
func TestLeftoverTempState(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := testRuntime(t)
	if _, err := r.RunSandbox(ctx, mockConfig("crashed")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"sandbox.json.tmp", ".sandbox.json.tmp-123"} {
		if err := os.WriteFile(filepath.Join(r.sandboxDir("crashed"), name), []byte(`{"Config": `), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mustState(t, r, "crashed", StateRunning)
	if _, err := r.StopSandbox(ctx, "crashed"); err != nil {
		t.Fatal(err)
	}
	mustState(t, r, "crashed", StateStopped)
	if _, err := r.DeleteSandbox(ctx, "crashed"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(r.sandboxDir("crashed")); !os.IsNotExist(err) {
		t.Fatalf("the sandbox's directory is still there: %v", err)
	}
}

// slowKillAgent is the noop agent, whose guest takes until release to
// report a killed container's exit.
type slowKillAgent struct {
	*noopAgent
	waiting chan struct{} // closed when a WaitProcess of a container's init starts
	release chan struct{}
	once    sync.Once
}

func (a *slowKillAgent) WaitProcess(ctx context.Context, req *protocol.ProcessRequest, opts ...grpc.CallOption) (*protocol.WaitProcessResponse, error) {
	if req.ExecId == "" {
		a.once.Do(func() { close(a.waiting) })
		select {
		case <-a.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return a.noopAgent.WaitProcess(ctx, req, opts...)
}

type slowKillDialer struct{ agent *slowKillAgent }

func (d slowKillDialer) Dial(context.Context, hypervisor.VM) (Agent, error) { return d.agent, nil }

// TestStopDoesNotHoldTheSandbox: while a container's stop waits for its
// guest to report the exit, the pod's other calls (an exec in another
// container, a status) go on: the sandbox's lock is not held across the
// wait.
func TestStopDoesNotHoldTheSandbox(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ag := &slowKillAgent{noopAgent: newNoopAgent(), waiting: make(chan struct{}), release: make(chan struct{})}
	r := testRuntime(t, WithAgentDialer(NoopAgentType, slowKillDialer{ag}))
	if _, err := r.RunSandbox(ctx, mockConfig("pod", testContainer(t, "stopping"), testContainer(t, "busy"))); err != nil {
		t.Fatal(err)
	}
	stopped := make(chan error, 1)
	go func() {
		_, err := r.StopContainer(ctx, "pod", "stopping")
		stopped <- err
	}()
	<-ag.waiting
	callCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, _, _, err := r.EnterContainer(callCtx, "pod", "busy", Cmd{Args: []string{"true"}}); err != nil {
		t.Fatalf("exec in another container while one stops: %v", err)
	}
	if _, err := r.StatusSandbox(callCtx, "pod"); err != nil {
		t.Fatalf("status while a container stops: %v", err)
	}
	close(ag.release)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if st, err := r.StatusContainer(ctx, "pod", "stopping"); err != nil || st.State.State != StateStopped {
		t.Fatalf("the stopped container: %v, %v", st.State, err)
	}
}

// silentAgent is the noop agent, whose guest never answers a status.
type silentAgent struct{ *noopAgent }

func (silentAgent) ProcessStatus(ctx context.Context, _ *protocol.ProcessRequest, _ ...grpc.CallOption) (*protocol.ProcessStatusResponse, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

type silentDialer struct{}

func (silentDialer) Dial(context.Context, hypervisor.VM) (Agent, error) {
	return silentAgent{newNoopAgent()}, nil
}

// TestListAsksNoGuest: ListSandbox reports what is recorded, and a guest
// that does not answer holds it up not at all (the CRI service lists the
// sandboxes before it serves).
func TestListAsksNoGuest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := testRuntime(t, WithAgentDialer(NoopAgentType, silentDialer{}))
	if _, err := r.RunSandbox(ctx, mockConfig("silent", testContainer(t, "c"))); err != nil {
		t.Fatal(err)
	}
	listCtx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	list, err := r.ListSandbox(listCtx)
	if err != nil || len(list) != 1 || len(list[0].ContainersStatus) != 1 {
		t.Fatalf("ListSandbox with a silent guest: %v, %v", list, err)
	}
}
