package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/vc-cri/vc-cri/pkg/agent/protocol"
)

// The virtcontainers 1.0 functions as methods of a Runtime, each taking
// a context.Context first. Every call holds the sandbox's lock for its
// duration, so calls on one sandbox are serialised across goroutines and
// processes; a call whose ctx ends while it waits for the lock fails
// with an error that wraps ctx.Err().

// withSandbox runs fn on the sandbox's state under its lock, waiting for
// the lock until ctx ends.
func (r *Runtime) withSandbox(ctx context.Context, sandboxID string, fn func(*lockedSandbox) error) error {
	ls, err := r.loadSandbox(ctx, sandboxID)
	if err != nil {
		return err
	}
	defer ls.unlock()
	return fn(ls)
}

// withContainer runs fn on a container's state under its sandbox's lock.
func (r *Runtime) withContainer(ctx context.Context, sandboxID, containerID string, fn func(*lockedSandbox, *containerState) error) error {
	return r.withSandbox(ctx, sandboxID, func(ls *lockedSandbox) error {
		c, err := ls.container(containerID)
		if err != nil {
			return err
		}
		return fn(ls, c)
	})
}

// CreateSandbox creates a sandbox and its containers. It does not start
// them. A config without an ID gets a generated one.
func (r *Runtime) CreateSandbox(ctx context.Context, sandboxConfig SandboxConfig) (VCSandbox, error) {
	return sandboxOrNil(r.createSandbox(ctx, sandboxConfig))
}

// DeleteSandbox stops the sandbox if it still runs, then deletes it.
func (r *Runtime) DeleteSandbox(ctx context.Context, sandboxID string) (VCSandbox, error) {
	var s *Sandbox
	err := r.withSandbox(ctx, sandboxID, func(ls *lockedSandbox) error {
		s = ls.snapshot()
		return deleteSandbox(ctx, ls)
	})
	return sandboxOrNil(s, err)
}

// StartSandbox starts a created sandbox and its containers.
func (r *Runtime) StartSandbox(ctx context.Context, sandboxID string) (VCSandbox, error) {
	return r.lifecycle(ctx, sandboxID, startSandbox)
}

// StopSandbox stops the sandbox's containers and its VM.
func (r *Runtime) StopSandbox(ctx context.Context, sandboxID string) (VCSandbox, error) {
	return r.lifecycle(ctx, sandboxID, stopSandbox)
}

// RunSandbox creates a sandbox and its containers and then starts them.
// If starting fails, the created sandbox is deleted again.
func (r *Runtime) RunSandbox(ctx context.Context, sandboxConfig SandboxConfig) (VCSandbox, error) {
	s, err := r.createSandbox(ctx, sandboxConfig)
	if err != nil {
		return nil, err
	}
	started, err := r.StartSandbox(ctx, s.ID())
	if err != nil {
		if _, derr := r.DeleteSandbox(context.WithoutCancel(ctx), s.ID()); derr != nil {
			return nil, fmt.Errorf("%w (and deleting the sandbox failed: %v)", err, derr)
		}
		return nil, err
	}
	return started, nil
}

// ListSandbox reports every sandbox of the runtime's state root, taking
// their locks in turn. Sandboxes deleted while it runs, or whose state
// cannot be read, are left out; if ctx ends while it waits for a lock,
// it fails with an error that wraps ctx.Err().
// The statuses are as recorded: StatusSandbox asks the guest whether
// running containers have exited.
func (r *Runtime) ListSandbox(ctx context.Context) ([]SandboxStatus, error) {
	ids, err := r.sandboxIDs()
	if err != nil {
		return nil, err
	}
	var list []SandboxStatus
	for _, id := range ids {
		// As recorded: a list asks no guest, so that one that does not
		// answer holds up nobody (the CRI service lists its sandboxes
		// before it serves).
		var st SandboxStatus
		err := r.withSandbox(ctx, id, func(ls *lockedSandbox) error {
			st = sandboxStatus(ls)
			return nil
		})
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			return nil, err
		}
		if err != nil {
			continue
		}
		list = append(list, st)
	}
	return list, nil
}

// StatusSandbox reports the sandbox and its containers.
func (r *Runtime) StatusSandbox(ctx context.Context, sandboxID string) (SandboxStatus, error) {
	var st SandboxStatus
	if checkID("sandbox", sandboxID) == nil {
		r.refreshExits(ctx, sandboxID)
	}
	err := r.withSandbox(ctx, sandboxID, func(ls *lockedSandbox) error {
		st = sandboxStatus(ls)
		return nil
	})
	return st, err
}

// PauseSandbox pauses a running sandbox: its whole VM.
func (r *Runtime) PauseSandbox(ctx context.Context, sandboxID string) (VCSandbox, error) {
	return r.lifecycle(ctx, sandboxID, pauseSandbox)
}

// ResumeSandbox resumes a paused sandbox.
func (r *Runtime) ResumeSandbox(ctx context.Context, sandboxID string) (VCSandbox, error) {
	return r.lifecycle(ctx, sandboxID, resumeSandbox)
}

func (r *Runtime) lifecycle(ctx context.Context, sandboxID string, op func(context.Context, *lockedSandbox) error) (VCSandbox, error) {
	var s *Sandbox
	err := r.withSandbox(ctx, sandboxID, func(ls *lockedSandbox) error {
		err := op(ctx, ls)
		s = ls.snapshot()
		return err
	})
	return sandboxOrNil(s, err)
}

// sandboxOrNil keeps a nil *Sandbox from becoming a non-nil VCSandbox.
func sandboxOrNil(s *Sandbox, err error) (VCSandbox, error) {
	if err != nil || s == nil {
		return nil, err
	}
	return s, nil
}

// CreateContainer creates a container in a ready or running sandbox.
func (r *Runtime) CreateContainer(ctx context.Context, sandboxID string, containerConfig ContainerConfig) (VCSandbox, VCContainer, error) {
	var c *Container
	err := r.withSandbox(ctx, sandboxID, func(ls *lockedSandbox) error {
		var err error
		c, err = createContainer(ctx, ls, containerConfig)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return c.sandbox, c, nil
}

// DeleteContainer deletes a container that is not running.
func (r *Runtime) DeleteContainer(ctx context.Context, sandboxID, containerID string) (VCContainer, error) {
	return r.containerOp(ctx, sandboxID, containerID, deleteContainer)
}

// StartContainer starts a created container.
func (r *Runtime) StartContainer(ctx context.Context, sandboxID, containerID string) (VCContainer, error) {
	return r.containerOp(ctx, sandboxID, containerID, startContainer)
}

// StopContainer kills every process of the container and records how
// its init ended. The kill and the wait for its report (up to
// stopContainerTimeout) are made without the sandbox's lock: the pod's
// other containers are not held up meanwhile.
func (r *Runtime) StopContainer(ctx context.Context, sandboxID, containerID string) (VCContainer, error) {
	ag, err := r.containerAgent(ctx, sandboxID, containerID, func(_ *lockedSandbox, cs *containerState) error {
		return checkTransition(containerTransitions, "container", containerID, cs.State.State, StateStopped)
	})
	if err != nil {
		return nil, err
	}
	exit := killContainer(ctx, ag, sandboxID, containerID)
	var c *Container
	err = r.withContainer(ctx, sandboxID, containerID, func(ls *lockedSandbox, cs *containerState) error {
		// Recorded meanwhile (a WaitProcess, a status): that stands.
		if cs.State.State != StateStopped {
			recordExit(cs, exit)
		}
		c = newContainer(ls.snapshot(), cs)
		return ls.save(ctx)
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// containerAgent runs check on the container under its sandbox's lock
// and returns the sandbox's agent, for a call made once the lock is
// released: the lock is not held across a round trip to the guest that
// may last.
func (r *Runtime) containerAgent(ctx context.Context, sandboxID, containerID string, check func(*lockedSandbox, *containerState) error) (Agent, error) {
	var ag Agent
	err := r.withContainer(ctx, sandboxID, containerID, func(ls *lockedSandbox, cs *containerState) error {
		if err := check(ls, cs); err != nil {
			return err
		}
		var err error
		ag, err = ls.agent(ctx)
		return err
	})
	return ag, err
}

func (r *Runtime) containerOp(ctx context.Context, sandboxID, containerID string, op func(context.Context, *lockedSandbox, *containerState) error) (VCContainer, error) {
	var c *Container
	err := r.withContainer(ctx, sandboxID, containerID, func(ls *lockedSandbox, cs *containerState) error {
		snapshot := *cs
		err := op(ctx, ls, cs)
		if cur, cerr := ls.container(containerID); cerr == nil {
			snapshot = *cur
		}
		c = newContainer(ls.snapshot(), &snapshot)
		return err
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// EnterContainer runs cmd in a running container. The process's Token
// names it to IOStream, WaitProcess, SignalProcess and WinsizeProcess.
func (r *Runtime) EnterContainer(ctx context.Context, sandboxID, containerID string, cmd Cmd) (VCSandbox, VCContainer, *Process, error) {
	var (
		c *Container
		p *Process
	)
	var (
		oci   []byte
		vmPid int
	)
	ag, err := r.containerAgent(ctx, sandboxID, containerID, func(ls *lockedSandbox, cs *containerState) error {
		if cs.State.State != StateRunning {
			return fmt.Errorf("container %s is %s, not running: %w", containerID, cs.State.State, ErrInvalidState)
		}
		proc, err := ExecProcess(&cs.Config, cmd)
		if err != nil {
			return fmt.Errorf("exec in container %q: %w", containerID, err)
		}
		if oci, err = json.Marshal(proc); err != nil {
			return err
		}
		c, vmPid = newContainer(ls.snapshot(), cs), ls.VMPid
		return nil
	})
	if err != nil {
		return nil, nil, nil, err
	}
	// Without the sandbox's lock: execs in one pod start side by side.
	token := newID()[:32]
	guestCtx, span := startPhase(ctx, "exec_start")
	_, err = ag.ExecProcess(guestCtx, &protocol.ExecProcessRequest{
		ContainerId: containerID, ExecId: token, OciProcess: oci, Stdin: cmd.Interactive,
	})
	endPhase(span, err)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("exec in container %q: %w", containerID, err)
	}
	p = &Process{Token: token, Pid: vmPid, StartTime: time.Now()}
	return c.sandbox, c, p, nil
}

// StatusContainer reports the container, after asking the agent whether
// it has exited.
func (r *Runtime) StatusContainer(ctx context.Context, sandboxID, containerID string) (ContainerStatus, error) {
	var st ContainerStatus
	r.refreshExits(ctx, sandboxID)
	err := r.withContainer(ctx, sandboxID, containerID, func(ls *lockedSandbox, cs *containerState) error {
		st = containerStatus(ls.sandboxState, cs)
		return nil
	})
	return st, err
}

// KillContainer sends a signal to the container's init, or with all to
// every process of the container.
func (r *Runtime) KillContainer(ctx context.Context, sandboxID, containerID string, signal syscall.Signal, all bool) error {
	ag, err := r.containerAgent(ctx, sandboxID, containerID, func(_ *lockedSandbox, cs *containerState) error {
		if s := cs.State.State; s != StateRunning && s != StateReady {
			return fmt.Errorf("container %s is %s: %w", containerID, s, ErrInvalidState)
		}
		return nil
	})
	if err != nil {
		return err
	}
	_, err = ag.SignalProcess(ctx, &protocol.SignalProcessRequest{ContainerId: containerID, Signal: uint32(signal), All: all})
	return err
}

// ProcessListContainer lists the processes of a running container.
func (r *Runtime) ProcessListContainer(ctx context.Context, sandboxID, containerID string, options ProcessListOptions) (ProcessList, error) {
	ag, err := r.containerAgent(ctx, sandboxID, containerID, func(_ *lockedSandbox, cs *containerState) error {
		if cs.State.State != StateRunning {
			return fmt.Errorf("container %s is %s, not running: %w", containerID, cs.State.State, ErrInvalidState)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	resp, err := ag.ListProcesses(ctx, &protocol.ListProcessesRequest{ContainerId: containerID, Format: options.Format})
	if err != nil {
		return nil, err
	}
	return guestProcessList(options.Format, resp.GetProcessList())
}
