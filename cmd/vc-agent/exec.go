package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"

	"github.com/opencontainers/runc/libcontainer"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"

	"github.com/vc-cri/vc-cri/pkg/agent/protocol"
)

func (a *agent) ExecProcess(_ context.Context, req *protocol.ExecProcessRequest) (*protocol.Empty, error) {
	c, err := a.container(req.ContainerId)
	if err != nil {
		return nil, err
	}
	if !validID(req.ExecId) {
		return nil, status.Errorf(codes.InvalidArgument, "invalid exec id %q", req.ExecId)
	}
	var sp specs.Process
	if err := json.Unmarshal(req.OciProcess, &sp); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "invalid OCI process: %v", err)
	}
	if len(sp.Args) == 0 {
		return nil, status.Error(codes.InvalidArgument, "invalid OCI process: no args")
	}
	// The ID is reserved while the process starts, without holding c.mu:
	// a start takes a while (a runc init in the guest), and the other
	// execs of the container, their output and their exits, must not wait
	// for it.
	c.mu.Lock()
	if _, ok := c.execs[req.ExecId]; ok {
		c.mu.Unlock()
		return nil, status.Errorf(codes.AlreadyExists, "exec %q already exists in container %q", req.ExecId, c.id)
	}
	c.execs[req.ExecId] = nil
	c.mu.Unlock()
	p, err := startExec(a.stateDir, c, &sp, req.Stdin)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		delete(c.execs, req.ExecId)
		return nil, err
	}
	c.execs[req.ExecId] = p
	klog.V(2).InfoS("Exec started", "container", c.id, "exec", req.ExecId)
	return &protocol.Empty{}, nil
}

// startExec starts an exec process through a handle of the container's
// own: libcontainer holds a handle's lock across a start, and with one
// handle each exec would wait for the one before it, and so would the
// container's signals and stats.
func startExec(stateDir string, c *container, sp *specs.Process, withStdin bool) (*process, error) {
	lc, err := libcontainer.Load(stateDir, c.id)
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "exec in container %q: %v", c.id, err)
	}
	// A process started in a frozen cgroup would hang its start until the
	// container is resumed; runc refuses it too.
	switch st, err := lc.Status(); {
	case err != nil:
		return nil, status.Errorf(codes.Internal, "exec in container %q: %v", c.id, err)
	case st == libcontainer.Paused:
		return nil, status.Errorf(codes.FailedPrecondition, "exec in container %q: it is paused", c.id)
	case st != libcontainer.Running:
		return nil, status.Errorf(codes.FailedPrecondition, "exec in container %q: it is %s", c.id, st)
	}
	start := byLibcontainer(lc.Run)
	if cfg := lc.Config(); canExecDirect(&cfg, sp) {
		st, err := lc.State()
		if err != nil {
			return nil, status.Errorf(codes.Internal, "exec in container %q: %v", c.id, err)
		}
		start = func(lp *libcontainer.Process) (runningProcess, error) { return execDirect(&cfg, st, sp, lp) }
	}
	p, err := newProcess(sp, sp.Terminal, withStdin)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "exec in container %q: %v", c.id, err)
	}
	if err := p.start(start); err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "exec in container %q: %v", c.id, err)
	}
	return p, nil
}

func (a *agent) process(containerID, execID string) (*container, *process, error) {
	c, err := a.container(containerID)
	if err != nil {
		return nil, nil, err
	}
	p, err := c.process(execID)
	return c, p, err
}

func (a *agent) SignalProcess(_ context.Context, req *protocol.SignalProcessRequest) (*protocol.Empty, error) {
	c, p, err := a.process(req.ContainerId, req.ExecId)
	if err != nil {
		return nil, err
	}
	sig := unix.Signal(req.Signal)
	if req.All {
		pids, err := c.lc.Processes()
		if err != nil {
			return nil, status.Errorf(codes.Internal, "list processes of %q: %v", c.id, err)
		}
		for _, pid := range pids {
			_ = unix.Kill(pid, sig)
		}
		return &protocol.Empty{}, nil
	}
	select {
	case <-p.exited:
		return nil, status.Errorf(codes.FailedPrecondition, "process %q of container %q has exited", req.ExecId, c.id)
	default:
	}
	if err := p.running.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return nil, status.Errorf(codes.Internal, "signal %v: %v", sig, err)
	}
	return &protocol.Empty{}, nil
}

func (a *agent) WaitProcess(ctx context.Context, req *protocol.ProcessRequest) (*protocol.WaitProcessResponse, error) {
	c, p, err := a.process(req.ContainerId, req.ExecId)
	if err != nil {
		return nil, err
	}
	select {
	case <-p.exited:
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	if req.ExecId != "" {
		// The host has what it needs of an exec once it waited for it;
		// its output readers close their pipes at EOF.
		c.mu.Lock()
		delete(c.execs, req.ExecId)
		c.mu.Unlock()
		p.closeStdin()
	}
	return p.exitStatus(), nil
}

func (a *agent) ProcessStatus(_ context.Context, req *protocol.ProcessRequest) (*protocol.ProcessStatusResponse, error) {
	_, p, err := a.process(req.ContainerId, req.ExecId)
	if err != nil {
		return nil, err
	}
	select {
	case <-p.exited:
		return &protocol.ProcessStatusResponse{Exited: true, Exit: p.exitStatus()}, nil
	default:
		return &protocol.ProcessStatusResponse{}, nil
	}
}

func (a *agent) ReadOutput(req *protocol.ReadOutputRequest, stream protocol.Agent_ReadOutputServer) error {
	_, p, err := a.process(req.ContainerId, req.ExecId)
	if err != nil {
		return err
	}
	r := p.stdout
	if req.Stream == protocol.OutputStream_STDERR {
		r = p.stderr
	}
	// The headers tell the host that the stream is attached: an exec may
	// be waited for, and forgotten, as soon as it exits, and the host must
	// not ask for that before its output is held here.
	if err := stream.SendHeader(metadata.MD{}); err != nil {
		return err
	}
	if r == nil {
		return nil // stderr of a terminal: merged into stdout
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if err := stream.Send(&protocol.Data{Data: buf[:n]}); err != nil {
				return err
			}
		}
		// A terminal's master reads EIO once the last slave closed.
		if errors.Is(err, io.EOF) || errors.Is(err, unix.EIO) || errors.Is(err, os.ErrClosed) {
			if req.ExecId != "" {
				_ = r.Close()
			}
			return nil
		}
		if err != nil {
			return status.Errorf(codes.Internal, "read output: %v", err)
		}
	}
}

func (a *agent) WriteStdin(stream protocol.Agent_WriteStdinServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	_, p, err := a.process(first.ContainerId, first.ExecId)
	if err != nil {
		return err
	}
	if p.stdin == nil {
		return status.Errorf(codes.FailedPrecondition, "process %q of container %q has no stdin", first.ExecId, first.ContainerId)
	}
	for msg := first; ; {
		if len(msg.Data) > 0 {
			if _, err := p.stdin.Write(msg.Data); err != nil {
				return status.Errorf(codes.FailedPrecondition, "write stdin: %v", err)
			}
		}
		if msg, err = stream.Recv(); err == io.EOF {
			return stream.SendAndClose(&protocol.Empty{})
		} else if err != nil {
			return err
		}
	}
}

func (a *agent) CloseStdin(_ context.Context, req *protocol.ProcessRequest) (*protocol.Empty, error) {
	_, p, err := a.process(req.ContainerId, req.ExecId)
	if err != nil {
		return nil, err
	}
	p.closeStdin()
	return &protocol.Empty{}, nil
}

func (a *agent) ResizeTTY(_ context.Context, req *protocol.ResizeTTYRequest) (*protocol.Empty, error) {
	_, p, err := a.process(req.ContainerId, req.ExecId)
	if err != nil {
		return nil, err
	}
	if p.tty == nil {
		return nil, status.Errorf(codes.FailedPrecondition, "process %q of container %q has no terminal", req.ExecId, req.ContainerId)
	}
	ws := &unix.Winsize{Row: uint16(req.Height), Col: uint16(req.Width)}
	if err := unix.IoctlSetWinsize(int(p.tty.Fd()), unix.TIOCSWINSZ, ws); err != nil {
		return nil, status.Errorf(codes.Internal, "resize terminal: %v", err)
	}
	return &protocol.Empty{}, nil
}
