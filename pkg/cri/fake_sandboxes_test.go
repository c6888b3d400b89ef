package cri

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/grpc/codes"

	"github.com/vc-cri/vc-cri/pkg/sandbox"
)

// fakeSandboxes is a stateful, in-memory sandboxes: pods and containers
// go through the states of pkg/sandbox (ready, running, stopped), a
// container's own process runs until it is signalled, stopped or told to
// exit, an exec runs as its script says. Faults make one call fail or
// hang until its context ends, for the error paths and deadlines the
// mock hypervisor cannot reach.
type fakeSandboxes struct {
	// mu guards every field below.
	mu     sync.Mutex
	pods   map[string]*fakePod
	faults map[string]fault // by method, or method and pod or container ID
	// script gives an exec its output and exit; nil exits 0 at once.
	script func(cmd sandbox.Cmd) fakeRun
	// stats are what StatsContainer answers for a running container.
	stats sandbox.ContainerStats
	// forwarded records the ports PortForward was asked for.
	forwarded []uint32
}

var _ sandboxes = (*fakeSandboxes)(nil)

type fakePod struct {
	cfg        sandbox.SandboxConfig
	state      sandbox.StateString
	containers map[string]*fakeContainer
	// vmEnded is closed when the VM ends, by itself (vmEnd) or stopped,
	// for the reason endReason; its processes are out of reach then.
	vmEnded   chan struct{}
	endReason string
	// size is the VM's size after the last ResizeSandbox.
	size sandbox.Resources
}

type fakeContainer struct {
	cfg       sandbox.ContainerConfig
	state     sandbox.StateString
	resources specs.LinuxResources
	procs     map[string]*fakeProc // by token; the container's own is its ID
	oom       bool
	exit      int32
	finished  time.Time
}

// fakeRun is how an exec runs: what it writes and how it ends. Hang runs
// it until it is signalled.
type fakeRun struct {
	Stdout, Stderr string
	Code           int32
	Hang           bool
}

// fakeProc is a process: its output, once written, is read through
// IOStream; it exits once.
type fakeProc struct {
	cmd        sandbox.Cmd
	out        [2]chan []byte // stdout, stderr
	exited     chan struct{}
	code       int32
	ignoreTERM bool
	stdin      bytes.Buffer
	winsize    [2]uint32
	readers    []*fakeOutput // the output streams open on it
}

// fault is what an injected fault does: fail with err, or hang until the
// call's context ends.
type fault struct {
	err  error
	hang bool
}

func newFakeSandboxes() *fakeSandboxes {
	return &fakeSandboxes{pods: map[string]*fakePod{}, faults: map[string]fault{}}
}

// newFakeService is a test service on a fake of its own.
func newFakeService(t *testing.T) (*Service, *fakeSandboxes) {
	t.Helper()
	f := newFakeSandboxes()
	s, _ := newTestServiceOn(t, t.TempDir(), f)
	// Before the service's cleanup removes the pods left.
	t.Cleanup(f.clearFaults)
	return s, f
}

// fail makes method fail with err; with an id, only for that pod or
// container.
func (f *fakeSandboxes) fail(method, id string, err error) { f.inject(method, id, fault{err: err}) }

// hang makes method block until its context ends, then fail with the
// context's error; with an id, only for that pod or container.
func (f *fakeSandboxes) hang(method, id string) { f.inject(method, id, fault{hang: true}) }

func (f *fakeSandboxes) inject(method, id string, ft fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults[method+"/"+id] = ft
}

func (f *fakeSandboxes) clearFaults() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = map[string]fault{}
}

// fault runs the fault injected for method on one of ids, if any.
func (f *fakeSandboxes) fault(ctx context.Context, method string, ids ...string) error {
	f.mu.Lock()
	ft, ok := f.faults[method+"/"]
	for _, id := range ids {
		if x, found := f.faults[method+"/"+id]; found {
			ft, ok = x, true
		}
	}
	f.mu.Unlock()
	if !ok {
		return nil
	}
	if ft.hang {
		<-ctx.Done()
		return ctx.Err()
	}
	return ft.err
}

// pod and container return what they name, under f.mu.
func (f *fakeSandboxes) pod(id string) (*fakePod, error) {
	p, ok := f.pods[id]
	if !ok {
		return nil, fmt.Errorf("sandbox %s: %w", id, sandbox.ErrNotFound)
	}
	return p, nil
}

func (f *fakeSandboxes) container(podID, id string) (*fakeContainer, error) {
	p, err := f.pod(podID)
	if err != nil {
		return nil, err
	}
	c, ok := p.containers[id]
	if !ok {
		return nil, fmt.Errorf("container %s: %w", id, sandbox.ErrNotFound)
	}
	return c, nil
}

func (f *fakeSandboxes) proc(podID, ctrID, token string) (p *fakeProc, err error) {
	err = f.callProc(context.Background(), "", podID, ctrID, token, func(_ *fakeContainer, found *fakeProc) error {
		p = found
		return nil
	})
	return p, err
}

func newFakeProc(cmd sandbox.Cmd) *fakeProc {
	return &fakeProc{cmd: cmd, out: [2]chan []byte{make(chan []byte, 64), make(chan []byte, 64)}, exited: make(chan struct{})}
}

// end makes p exit with code, once; it tells whether it did.
func (p *fakeProc) end(code int32) bool {
	select {
	case <-p.exited:
		return false
	default:
		p.code = code
		close(p.exited)
		return true
	}
}

// end ends c's own process with code, under f.mu.
func (c *fakeContainer) end(code int32) {
	if p := c.procs[c.cfg.ID]; p != nil && !p.end(code) {
		return
	}
	if c.state == sandbox.StateRunning {
		c.state, c.exit, c.finished = sandbox.StateStopped, code, time.Now()
	}
}

// exit makes the container's own process exit with code; oom says the
// OOM killer ended it.
func (f *fakeSandboxes) exit(podID, ctrID string, code int32, oom bool) {
	f.inspect(podID, ctrID, func(c *fakeContainer) {
		c.oom = oom
		c.end(code)
	})
}

// write has the container's own process write data on stdout (stream
// 0) or stderr (1).
func (f *fakeSandboxes) write(podID, ctrID string, stream int, data string) {
	p, err := f.proc(podID, ctrID, ctrID)
	if err != nil {
		panic(err)
	}
	p.out[stream] <- []byte(data)
}

// ignoreTERM makes the container's own process outlive SIGTERM.
func (f *fakeSandboxes) ignoreTERM(podID, ctrID string) {
	f.inspect(podID, ctrID, func(c *fakeContainer) { c.procs[ctrID].ignoreTERM = true })
}

// podState and containerState tell the state of what they name, "" for
// none.
func (f *fakeSandboxes) podState(id string) sandbox.StateString {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p, err := f.pod(id); err == nil {
		return p.state
	}
	return ""
}

func (f *fakeSandboxes) containerState(podID, id string) (st sandbox.StateString) {
	f.inspect(podID, id, func(c *fakeContainer) { st = c.state })
	return st
}

// inspect runs fn on a container, if there is one, under f.mu.
func (f *fakeSandboxes) inspect(podID, id string, fn func(*fakeContainer)) {
	_ = f.call(context.Background(), "", podID, id, func(c *fakeContainer) error {
		fn(c)
		return nil
	})
}

func (f *fakeSandboxes) RunSandbox(ctx context.Context, cfg sandbox.SandboxConfig) (sandbox.VCSandbox, error) {
	if err := f.fault(ctx, "RunSandbox", cfg.ID); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.pods[cfg.ID]; ok {
		return nil, fmt.Errorf("sandbox %s: %w", cfg.ID, sandbox.ErrAlreadyExists)
	}
	f.pods[cfg.ID] = &fakePod{cfg: cfg, state: sandbox.StateRunning, containers: map[string]*fakeContainer{}, vmEnded: make(chan struct{})}
	return nil, nil
}

// endVM ends the pod's VM by itself, as QEMU killed or a guest panic
// does: the processes in it are not reported as exited, only lost.
func (f *fakeSandboxes) endVM(id, reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p, ok := f.pods[id]; ok {
		p.end(reason)
	}
}

func (p *fakePod) end(reason string) {
	select {
	case <-p.vmEnded:
	default:
		p.endReason = reason
		close(p.vmEnded)
	}
}

func (f *fakeSandboxes) WatchSandbox(ctx context.Context, id string) (sandbox.SandboxEnd, error) {
	var ended <-chan struct{}
	if err := f.callPod(ctx, "WatchSandbox", id, func(p *fakePod) error {
		if p.state != sandbox.StateRunning {
			return fmt.Errorf("sandbox %s is %s: %w", id, p.state, sandbox.ErrInvalidState)
		}
		ended = p.vmEnded
		return nil
	}); err != nil {
		return sandbox.SandboxEnd{}, err
	}
	select {
	case <-ended:
		f.mu.Lock()
		defer f.mu.Unlock()
		reason := sandbox.EndVMExited
		if p, ok := f.pods[id]; ok {
			reason = p.endReason
		}
		return sandbox.SandboxEnd{Reason: reason, At: time.Now()}, nil
	case <-ctx.Done():
		return sandbox.SandboxEnd{}, ctx.Err()
	}
}

// callPod runs a call on a pod: its fault first, then fn under f.mu.
func (f *fakeSandboxes) callPod(ctx context.Context, method, id string, fn func(*fakePod) error) error {
	if err := f.fault(ctx, method, id); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	p, err := f.pod(id)
	if err != nil {
		return err
	}
	return fn(p)
}

// powerOff ends every process of the pod, as the guest's end does.
func (p *fakePod) powerOff() {
	for _, c := range p.containers {
		for _, proc := range c.procs {
			proc.end(137)
		}
		c.end(137)
		c.state = sandbox.StateStopped
	}
	p.state = sandbox.StateStopped
	p.end(sandbox.EndVMExited)
}

func (f *fakeSandboxes) StopSandbox(ctx context.Context, id string) (sandbox.VCSandbox, error) {
	return nil, f.callPod(ctx, "StopSandbox", id, func(p *fakePod) error {
		if p.state == sandbox.StateStopped {
			return fmt.Errorf("sandbox %s is stopped: %w", id, sandbox.ErrInvalidState)
		}
		p.powerOff()
		return nil
	})
}

func (f *fakeSandboxes) DeleteSandbox(ctx context.Context, id string) (sandbox.VCSandbox, error) {
	return nil, f.callPod(ctx, "DeleteSandbox", id, func(p *fakePod) error {
		p.powerOff()
		delete(f.pods, id)
		return nil
	})
}

func (f *fakeSandboxes) ListSandbox(ctx context.Context) ([]sandbox.SandboxStatus, error) {
	if err := f.fault(ctx, "ListSandbox"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var list []sandbox.SandboxStatus
	for id, p := range f.pods {
		list = append(list, sandbox.SandboxStatus{ID: id, State: sandbox.State{State: p.state}})
	}
	return list, nil
}

func (f *fakeSandboxes) StatusSandbox(ctx context.Context, id string) (st sandbox.SandboxStatus, err error) {
	err = f.callPod(ctx, "StatusSandbox", id, func(p *fakePod) error {
		st = sandbox.SandboxStatus{ID: id, State: sandbox.State{State: p.state}, Annotations: p.cfg.Annotations}
		for _, c := range p.containers {
			st.ContainersStatus = append(st.ContainersStatus, c.status())
		}
		return nil
	})
	return st, err
}

func (c *fakeContainer) status() sandbox.ContainerStatus {
	return sandbox.ContainerStatus{
		ID: c.cfg.ID, State: sandbox.State{State: c.state}, RootFs: c.cfg.RootFs,
		ExitCode: c.exit, FinishedAt: c.finished, OOMKilled: c.oom,
	}
}

func (f *fakeSandboxes) PortForward(ctx context.Context, id string, port uint32, stream io.ReadWriter) error {
	if err := f.fault(ctx, "PortForward", id); err != nil {
		return err
	}
	f.mu.Lock()
	_, err := f.pod(id)
	if err == nil {
		f.forwarded = append(f.forwarded, port)
	}
	f.mu.Unlock()
	if err != nil {
		return err
	}
	// An echo server on every port.
	_, err = io.Copy(stream, stream)
	return err
}

func (f *fakeSandboxes) CreateContainer(ctx context.Context, podID string, cfg sandbox.ContainerConfig) (sandbox.VCSandbox, sandbox.VCContainer, error) {
	if err := f.fault(ctx, "CreateContainer", podID, cfg.ID); err != nil {
		return nil, nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	p, err := f.pod(podID)
	if err != nil {
		return nil, nil, err
	}
	if p.state != sandbox.StateRunning {
		return nil, nil, fmt.Errorf("sandbox %s is %s: %w", podID, p.state, sandbox.ErrInvalidState)
	}
	if _, ok := p.containers[cfg.ID]; ok {
		return nil, nil, fmt.Errorf("container %s: %w", cfg.ID, sandbox.ErrAlreadyExists)
	}
	p.containers[cfg.ID] = &fakeContainer{
		cfg: cfg, state: sandbox.StateReady, resources: cfg.Resources,
		procs: map[string]*fakeProc{cfg.ID: newFakeProc(cfg.Cmd)},
	}
	return nil, nil, nil
}

// call runs a call on a container: its fault first, then fn under f.mu.
func (f *fakeSandboxes) call(ctx context.Context, method, podID, id string, fn func(*fakeContainer) error) error {
	if err := f.fault(ctx, method, podID, id); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.container(podID, id)
	if err != nil {
		return err
	}
	return fn(c)
}

// callProc runs a call on a process, as call.
func (f *fakeSandboxes) callProc(ctx context.Context, method, podID, id, token string, fn func(*fakeContainer, *fakeProc) error) error {
	return f.call(ctx, method, podID, id, func(c *fakeContainer) error {
		p, ok := c.procs[token]
		if !ok {
			return fmt.Errorf("process %s: %w", token, sandbox.ErrNotFound)
		}
		return fn(c, p)
	})
}

// in fails unless c is in one of states.
func (c *fakeContainer) in(op string, states ...sandbox.StateString) error {
	for _, s := range states {
		if c.state == s {
			return nil
		}
	}
	return fmt.Errorf("container %s is %s, cannot %s: %w", c.cfg.ID, c.state, op, sandbox.ErrInvalidState)
}

func (f *fakeSandboxes) StartContainer(ctx context.Context, podID, id string) (sandbox.VCContainer, error) {
	return nil, f.call(ctx, "StartContainer", podID, id, func(c *fakeContainer) error {
		if err := c.in("start", sandbox.StateReady); err != nil {
			return err
		}
		c.state = sandbox.StateRunning
		return nil
	})
}

func (f *fakeSandboxes) StopContainer(ctx context.Context, podID, id string) (sandbox.VCContainer, error) {
	return nil, f.call(ctx, "StopContainer", podID, id, func(c *fakeContainer) error {
		if err := c.in("stop", sandbox.StateReady, sandbox.StateRunning); err != nil {
			return err
		}
		c.end(137)
		c.state = sandbox.StateStopped
		return nil
	})
}

func (f *fakeSandboxes) DeleteContainer(ctx context.Context, podID, id string) (sandbox.VCContainer, error) {
	return nil, f.call(ctx, "DeleteContainer", podID, id, func(c *fakeContainer) error {
		if err := c.in("delete", sandbox.StateReady, sandbox.StateStopped); err != nil {
			return err
		}
		delete(f.pods[podID].containers, id)
		return nil
	})
}

func (f *fakeSandboxes) StatusContainer(ctx context.Context, podID, id string) (st sandbox.ContainerStatus, err error) {
	err = f.call(ctx, "StatusContainer", podID, id, func(c *fakeContainer) error {
		st = c.status()
		return nil
	})
	return st, err
}

func (f *fakeSandboxes) StatsContainer(ctx context.Context, podID, id string) (st sandbox.ContainerStats, err error) {
	err = f.call(ctx, "StatsContainer", podID, id, func(c *fakeContainer) error {
		if err := c.in("report stats", sandbox.StateRunning); err != nil {
			return err
		}
		st = f.stats
		st.Timestamp = time.Now()
		return nil
	})
	return st, err
}

func (f *fakeSandboxes) UpdateContainer(ctx context.Context, podID, id string, resources specs.LinuxResources) error {
	return f.call(ctx, "UpdateContainer", podID, id, func(c *fakeContainer) error {
		if err := c.in("update", sandbox.StateReady, sandbox.StateRunning); err != nil {
			return err
		}
		c.resources = resources
		return nil
	})
}

func (f *fakeSandboxes) ResizeSandbox(ctx context.Context, id string, size sandbox.Resources) (sandbox.Resources, error) {
	var got sandbox.Resources
	err := f.callPod(ctx, "ResizeSandbox", id, func(p *fakePod) error {
		if p.state != sandbox.StateRunning {
			return fmt.Errorf("sandbox %s is %s: %w", id, p.state, sandbox.ErrInvalidState)
		}
		if size.VCPUs > 0 {
			p.size.VCPUs = size.VCPUs
		}
		if size.Memory > 0 {
			p.size.Memory = size.Memory
		}
		got = p.size
		return nil
	})
	return got, err
}

// sizeOf returns the pod VM's size after the last resize.
func (f *fakeSandboxes) sizeOf(id string) sandbox.Resources {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p, ok := f.pods[id]; ok {
		return p.size
	}
	return sandbox.Resources{}
}

// resourcesOf returns the resources the container was last given.
func (f *fakeSandboxes) resourcesOf(podID, id string) (r specs.LinuxResources) {
	f.inspect(podID, id, func(c *fakeContainer) { r = c.resources })
	return r
}

func (f *fakeSandboxes) EnterContainer(ctx context.Context, podID, id string, cmd sandbox.Cmd) (sandbox.VCSandbox, sandbox.VCContainer, *sandbox.Process, error) {
	var proc *sandbox.Process
	err := f.call(ctx, "EnterContainer", podID, id, func(c *fakeContainer) error {
		if err := c.in("exec", sandbox.StateRunning); err != nil {
			return err
		}
		run := fakeRun{}
		if f.script != nil {
			run = f.script(cmd)
		}
		p := newFakeProc(cmd)
		proc = &sandbox.Process{Token: fmt.Sprintf("exec-%d", len(c.procs)), StartTime: time.Now()}
		c.procs[proc.Token] = p
		p.out[0] <- []byte(run.Stdout)
		p.out[1] <- []byte(run.Stderr)
		if !run.Hang {
			p.end(run.Code)
		}
		return nil
	})
	return nil, nil, proc, err
}

func (f *fakeSandboxes) IOStream(ctx context.Context, podID, id, token string) (io.WriteCloser, io.ReadCloser, io.ReadCloser, error) {
	if err := f.fault(ctx, "IOStream", podID, id); err != nil {
		return nil, nil, nil, err
	}
	p, err := f.proc(podID, id, token)
	if err != nil {
		return nil, nil, nil, err
	}
	out := func(i int) *fakeOutput {
		return &fakeOutput{ctx: ctx, data: p.out[i], exited: p.exited, closed: make(chan struct{})}
	}
	stdout, stderr := out(0), out(1)
	f.mu.Lock()
	p.readers = append(p.readers, stdout, stderr)
	f.mu.Unlock()
	return fakeStdin{f, p}, stdout, stderr, nil
}

// dropStreams ends the streams open on a container's process with an
// error, as a session the guest drops does.
func (f *fakeSandboxes) dropStreams(podID, ctrID string) {
	p, err := f.proc(podID, ctrID, ctrID)
	if err != nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range p.readers {
		r.Close()
	}
	p.readers = nil
}

// fakeOutput reads what a process writes until it exited, the IOStream
// context ended or the reader was closed.
type fakeOutput struct {
	ctx    context.Context
	data   <-chan []byte
	exited <-chan struct{}
	closed chan struct{}
	once   sync.Once
	buf    []byte
}

func (r *fakeOutput) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		select {
		case r.buf = <-r.data:
			continue
		default:
		}
		select {
		case r.buf = <-r.data:
		case <-r.exited:
			select {
			case r.buf = <-r.data:
			default:
				return 0, io.EOF
			}
		case <-r.ctx.Done():
			return 0, r.ctx.Err()
		case <-r.closed:
			return 0, io.ErrClosedPipe
		}
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func (r *fakeOutput) Close() error {
	r.once.Do(func() { close(r.closed) })
	return nil
}

// fakeStdin keeps what is written to a process's stdin.
type fakeStdin struct {
	f *fakeSandboxes
	p *fakeProc
}

func (w fakeStdin) Write(b []byte) (int, error) {
	w.f.mu.Lock()
	defer w.f.mu.Unlock()
	return w.p.stdin.Write(b)
}

func (w fakeStdin) Close() error { return nil }

// stdinOf returns what was written to a process's stdin.
func (f *fakeSandboxes) stdinOf(podID, id, token string) (in string) {
	_ = f.callProc(context.Background(), "", podID, id, token, func(_ *fakeContainer, p *fakeProc) error {
		in = p.stdin.String()
		return nil
	})
	return in
}

func (f *fakeSandboxes) WaitProcess(ctx context.Context, podID, id, token string) (int32, error) {
	if err := f.fault(ctx, "WaitProcess", podID, id); err != nil {
		return 0, err
	}
	p, err := f.proc(podID, id, token)
	if err != nil {
		return 0, err
	}
	f.mu.Lock()
	var vmEnded <-chan struct{}
	if pod, ok := f.pods[podID]; ok {
		vmEnded = pod.vmEnded
	}
	f.mu.Unlock()
	select {
	case <-p.exited:
		return p.code, nil
	case <-vmEnded:
		// A process that exited as its VM was stopped is still reported.
		select {
		case <-p.exited:
			return p.code, nil
		default:
			return 0, errors.New("agent link lost")
		}
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func (f *fakeSandboxes) SignalProcess(ctx context.Context, podID, id, token string, signal syscall.Signal, _ bool) error {
	return f.callProc(ctx, "SignalProcess", podID, id, token, func(c *fakeContainer, p *fakeProc) error {
		switch {
		case signal == syscall.SIGTERM && p.ignoreTERM:
		case token == id:
			c.end(128 + int32(signal))
		default:
			p.end(128 + int32(signal))
		}
		return nil
	})
}

func (f *fakeSandboxes) WinsizeProcess(ctx context.Context, podID, id, token string, height, width uint32) error {
	return f.callProc(ctx, "WinsizeProcess", podID, id, token, func(_ *fakeContainer, p *fakeProc) error {
		p.winsize = [2]uint32{height, width}
		return nil
	})
}

// winsizeOf returns the terminal size a process was last given.
func (f *fakeSandboxes) winsizeOf(podID, id, token string) (size [2]uint32) {
	_ = f.callProc(context.Background(), "", podID, id, token, func(_ *fakeContainer, p *fakeProc) error {
		size = p.winsize
		return nil
	})
	return size
}

// guestFaults checks a call's answer to a guest that fails: each of
// tolerated (sentinels the call takes as done) gives OK and acts, any
// other error gives Unknown and leaves things as they were. call runs
// with method failing on a service of its own, and tells whether the
// call acted.
func guestFaults(t *testing.T, method string, tolerated []error, call func(t *testing.T, s *Service, fail func(id string)) (err error, acted bool)) {
	t.Helper()
	type guestFault struct {
		err  error
		want codes.Code
	}
	var cases []guestFault
	for _, e := range tolerated {
		cases = append(cases, guestFault{fmt.Errorf("%s: %w", method, e), codes.OK})
	}
	cases = append(cases, guestFault{errors.New("agent unreachable"), codes.Unknown})
	for _, tc := range cases {
		t.Run(tc.err.Error(), func(t *testing.T) {
			t.Parallel()
			s, f := newFakeService(t)
			err, acted := call(t, s, func(id string) { f.fail(method, id, tc.err) })
			wantCode(t, method+" failing", err, tc.want)
			if acted != (tc.want == codes.OK) {
				t.Fatalf("acted %v, answering %v", acted, err)
			}
		})
	}
}

// containersOf lists the IDs of the pod's containers.
func (f *fakeSandboxes) containersOf(podID string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []string
	if p, ok := f.pods[podID]; ok {
		for id := range p.containers {
			ids = append(ids, id)
		}
	}
	return ids
}
