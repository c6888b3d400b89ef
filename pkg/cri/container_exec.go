package cri

import (
	"context"
	"io"
	"sync"
	"syscall"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"

	"github.com/vc-cri/vc-cri/pkg/sandbox"
)

// Exec returns the URL where the client runs the command.
func (s *Service) Exec(_ context.Context, req *runtime.ExecRequest) (*runtime.ExecResponse, error) {
	if err := s.checkRunning(req.GetContainerId()); err != nil {
		return nil, err
	}
	if len(req.Cmd) == 0 {
		return nil, invalidArgument("exec needs a command")
	}
	if !req.Stdout && !req.Stderr && !req.Stdin {
		return nil, invalidArgument("exec needs one of stdin, stdout and stderr")
	}
	return s.streaming.server.GetExec(req)
}

func (s *Service) checkRunning(id string) error {
	c, err := s.containers.Get(id)
	if err != nil {
		return err
	}
	if c.State != runtime.ContainerState_CONTAINER_RUNNING {
		return failedPrecondition("container %q is not running", id)
	}
	return nil
}

const (
	// execStartTimeout bounds the start of an exec in the guest.
	execStartTimeout = time.Minute
	// execKillTimeout bounds the kill of an exec whose caller gave up.
	execKillTimeout = 5 * time.Second
	// execDrainTimeout bounds the wait for an exec's output after it
	// exited: a child it left behind may hold its output open forever.
	execDrainTimeout = 2 * time.Second
)

// exec runs cmd in the container with the given streams and returns its
// exit code.
func (s *Service) exec(ctx context.Context, containerID string, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) (int32, error) {
	c, err := s.containers.Get(containerID)
	if err != nil {
		return 0, err
	}
	ecmd := sandbox.Cmd{Args: cmd, Interactive: in != nil}
	if tty {
		ecmd.Console = "pty"
	}
	kill := func(proc *sandbox.Process) {
		killCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), execKillTimeout)
		defer cancel()
		_ = s.runtimeOf(c.Runtime).SignalProcess(killCtx, c.PodID, c.ID, proc.Token, syscall.SIGKILL, false)
	}
	// The start is not cut short by ctx: a process the guest starts after
	// the caller gave up would run on with no one to end it. The caller
	// does not wait for it past its deadline, though: a start that comes
	// back later is ended then.
	type started struct {
		proc *sandbox.Process
		err  error
	}
	startc := make(chan started, 1)
	go func() {
		startCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), execStartTimeout)
		defer cancel()
		_, _, proc, err := s.runtimeOf(c.Runtime).EnterContainer(startCtx, c.PodID, c.ID, ecmd)
		startc <- started{proc, err}
	}()
	var proc *sandbox.Process
	select {
	case st := <-startc:
		if st.err != nil {
			return 0, st.err
		}
		proc = st.proc
	case <-ctx.Done():
		go func() {
			if st := <-startc; st.err == nil {
				kill(st.proc)
			}
		}()
		return 0, ctx.Err()
	}
	if ctx.Err() != nil {
		kill(proc)
		return 0, ctx.Err()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	attachCtx, span := tracer.Start(ctx, "output_attach")
	stdin, stdout, stderr, err := s.runtimeOf(c.Runtime).IOStream(attachCtx, c.PodID, c.ID, proc.Token)
	span.End()
	if err != nil {
		kill(proc)
		return 0, err
	}
	if resize != nil {
		go func() {
			for size := range resize {
				_ = s.runtimeOf(c.Runtime).WinsizeProcess(ctx, c.PodID, c.ID, proc.Token, uint32(size.Height), uint32(size.Width))
			}
		}()
	}
	if in != nil {
		go func() {
			_, _ = io.Copy(stdin, in)
			_ = stdin.Close()
		}()
	}
	var copies sync.WaitGroup
	copyOut := func(w io.Writer, r io.Reader) {
		defer copies.Done()
		if w == nil {
			w = io.Discard
		}
		_, _ = io.Copy(w, r)
	}
	copies.Add(2)
	go copyOut(writerOrNil(out), stdout)
	go copyOut(writerOrNil(errw), stderr)
	drained := make(chan struct{})
	go func() { copies.Wait(); close(drained) }()
	waitCtx, span := tracer.Start(ctx, "exec_wait")
	code, err := s.runtimeOf(c.Runtime).WaitProcess(waitCtx, c.PodID, c.ID, proc.Token)
	span.End()
	if err != nil {
		// The caller gave up (a timeout, a client gone): so does the process.
		kill(proc)
		return 0, err
	}
	_, span = tracer.Start(ctx, "output_drain")
	defer span.End()
	select {
	case <-drained:
	case <-time.After(execDrainTimeout):
		// Cancelling ctx ends the output streams.
		cancel()
		<-drained
	}
	return code, nil
}

// writerOrNil keeps a nil WriteCloser from becoming a non-nil Writer.
func writerOrNil(w io.WriteCloser) io.Writer {
	if w == nil {
		return nil
	}
	return w
}
