package sandbox

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/vc-cri/vc-cri/pkg/hypervisor"
)

// testRuntime is a Runtime of one test's own: its state in a temporary
// directory, its own mock hypervisor. The sandboxes the test leaves are
// deleted when it ends, before the directory is removed.
func testRuntime(t testing.TB, opts ...Option) *Runtime {
	t.Helper()
	root := filepath.Join(t.TempDir(), "sandboxes")
	r := NewRuntime(append([]Option{WithStateRoot(root)}, opts...)...)
	t.Cleanup(func() {
		ctx := context.Background()
		list, err := r.ListSandbox(ctx)
		if err != nil {
			t.Error(err)
		}
		for _, st := range list {
			if _, err := r.DeleteSandbox(ctx, st.ID); err != nil {
				t.Errorf("delete sandbox %s: %v", st.ID, err)
			}
		}
	})
	return r
}

// TestRuntimesAreIsolated: two runtimes hold sandboxes of the same ID,
// each in its own state root and on its own mock hypervisor.
func TestRuntimesAreIsolated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b := testRuntime(t), testRuntime(t)
	for _, r := range []*Runtime{a, b} {
		if _, err := r.RunSandbox(ctx, mockConfig("same")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.StopSandbox(ctx, "same"); err != nil {
		t.Fatal(err)
	}
	mustState(t, a, "same", StateStopped)
	mustState(t, b, "same", StateRunning)
}

// TestFacadeUsesDefault: the package-level functions act on the Default
// runtime, which SetDefault replaces.
func TestFacadeUsesDefault(t *testing.T) {
	// Not parallel: it swaps the process's default runtime.
	old := Default()
	t.Cleanup(func() { SetDefault(old) })
	r := testRuntime(t)
	SetDefault(r)
	if Default() != r {
		t.Fatal("Default is not the runtime SetDefault gave")
	}
	if _, err := RunSandbox(mockConfig("facade")); err != nil {
		t.Fatal(err)
	}
	mustState(t, r, "facade", StateRunning)
	if _, err := StatusSandbox("facade"); err != nil {
		t.Fatal(err)
	}
	if _, err := DeleteSandbox("facade"); err != nil {
		t.Fatal(err)
	}
}

// gatedDialer dials the noop agent, but holds the dial of one sandbox
// until released.
type gatedDialer struct {
	gated   string
	dialing chan struct{} // closed when the gated dial starts
	release chan struct{}
}

func (d *gatedDialer) Dial(ctx context.Context, vm hypervisor.VM) (Agent, error) {
	if vm.(*hypervisor.MockVM).Config().ID == d.gated {
		close(d.dialing)
		select {
		case <-d.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return noopDialer{}.Dial(ctx, vm)
}

// TestSlowDialBlocksOnlyItsSandbox: while one sandbox's agent is being
// dialled (a guest still booting), the other sandboxes are served.
func TestSlowDialBlocksOnlyItsSandbox(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := &gatedDialer{gated: "slow", dialing: make(chan struct{}), release: make(chan struct{})}
	r := testRuntime(t, WithAgentDialer(NoopAgentType, d))
	slow := make(chan error, 1)
	go func() {
		_, err := r.RunSandbox(ctx, mockConfig("slow"))
		slow <- err
	}()
	<-d.dialing
	fast := make(chan error, 1)
	go func() {
		_, err := r.RunSandbox(ctx, mockConfig("fast"))
		fast <- err
	}()
	select {
	case err := <-fast:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a sandbox waited for another's agent dial")
	}
	close(d.release)
	if err := <-slow; err != nil {
		t.Fatal(err)
	}
	mustState(t, r, "slow", StateRunning)
}
