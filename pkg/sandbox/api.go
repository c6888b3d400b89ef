package sandbox

import (
	"context"
	"fmt"
	"syscall"

	"github.com/vc-cri/vc-cri/pkg/agent/protocol"
)

// The virtcontainers 1.0 functions, with the specification's signatures,
// and beside each one that blocks a variant taking a context.Context.
// Every call locks the sandbox's state on disk for its duration, so calls
// on one sandbox are serialised across goroutines and processes.

// withSandbox runs fn on the sandbox's state under its lock.
func withSandbox(sandboxID string, fn func(*lockedSandbox) error) error {
	ls, err := loadSandbox(sandboxID)
	if err != nil {
		return err
	}
	defer ls.unlock()
	return fn(ls)
}

// withContainer runs fn on a container's state under its sandbox's lock.
func withContainer(sandboxID, containerID string, fn func(*lockedSandbox, *containerState) error) error {
	return withSandbox(sandboxID, func(ls *lockedSandbox) error {
		c, err := ls.container(containerID)
		if err != nil {
			return err
		}
		return fn(ls, c)
	})
}

// CreateSandbox is the virtcontainers sandbox creation entry point.
// CreateSandbox creates a sandbox and its containers. It does not start them.
func CreateSandbox(sandboxConfig SandboxConfig) (VCSandbox, error) {
	return CreateSandboxContext(context.Background(), sandboxConfig)
}

// CreateSandboxContext is CreateSandbox bounded by ctx. A config without
// an ID gets a generated one.
func CreateSandboxContext(ctx context.Context, sandboxConfig SandboxConfig) (VCSandbox, error) {
	return createSandbox(ctx, sandboxConfig)
}

// DeleteSandbox is the virtcontainers sandbox deletion entry point.
// DeleteSandbox will stop an already running container and then delete it.
func DeleteSandbox(sandboxID string) (VCSandbox, error) {
	return DeleteSandboxContext(context.Background(), sandboxID)
}

// DeleteSandboxContext is DeleteSandbox bounded by ctx.
func DeleteSandboxContext(ctx context.Context, sandboxID string) (VCSandbox, error) {
	var s *Sandbox
	err := withSandbox(sandboxID, func(ls *lockedSandbox) error {
		s = newSandbox(ls.sandboxState)
		return deleteSandbox(ctx, ls)
	})
	return sandboxOrNil(s, err)
}

// StartSandbox is the virtcontainers sandbox starting entry point.
// StartSandbox will talk to the given hypervisor to start an existing
// sandbox and all its containers.
func StartSandbox(sandboxID string) (VCSandbox, error) {
	return StartSandboxContext(context.Background(), sandboxID)
}

// StartSandboxContext is StartSandbox bounded by ctx.
func StartSandboxContext(ctx context.Context, sandboxID string) (VCSandbox, error) {
	return lifecycle(ctx, sandboxID, startSandbox)
}

// StopSandbox is the virtcontainers sandbox stopping entry point.
// StopSandbox will talk to the given agent to stop an existing sandbox
// and destroy all containers within that sandbox.
func StopSandbox(sandboxID string) (VCSandbox, error) {
	return StopSandboxContext(context.Background(), sandboxID)
}

// StopSandboxContext is StopSandbox bounded by ctx.
func StopSandboxContext(ctx context.Context, sandboxID string) (VCSandbox, error) {
	return lifecycle(ctx, sandboxID, stopSandbox)
}

// RunSandbox is the virtcontainers sandbox running entry point.
// RunSandbox creates a sandbox and its containers and then it starts them.
func RunSandbox(sandboxConfig SandboxConfig) (VCSandbox, error) {
	return RunSandboxContext(context.Background(), sandboxConfig)
}

// RunSandboxContext is RunSandbox bounded by ctx. If starting fails, the
// created sandbox is deleted again.
func RunSandboxContext(ctx context.Context, sandboxConfig SandboxConfig) (VCSandbox, error) {
	s, err := createSandbox(ctx, sandboxConfig)
	if err != nil {
		return nil, err
	}
	started, err := StartSandboxContext(ctx, s.ID())
	if err != nil {
		if _, derr := DeleteSandboxContext(context.WithoutCancel(ctx), s.ID()); derr != nil {
			return nil, fmt.Errorf("%w (and deleting the sandbox failed: %v)", err, derr)
		}
		return nil, err
	}
	return started, nil
}

// ListSandbox is the virtcontainers sandbox listing entry point.
func ListSandbox() ([]SandboxStatus, error) {
	return ListSandboxContext(context.Background())
}

// ListSandboxContext is ListSandbox bounded by ctx. Sandboxes deleted
// while it runs are left out.
func ListSandboxContext(ctx context.Context) ([]SandboxStatus, error) {
	ids, err := sandboxIDs()
	if err != nil {
		return nil, err
	}
	var list []SandboxStatus
	for _, id := range ids {
		st, err := StatusSandboxContext(ctx, id)
		if err != nil {
			continue
		}
		list = append(list, st)
	}
	return list, nil
}

// StatusSandbox is the virtcontainers sandbox status entry point.
func StatusSandbox(sandboxID string) (SandboxStatus, error) {
	return StatusSandboxContext(context.Background(), sandboxID)
}

// StatusSandboxContext is StatusSandbox bounded by ctx.
func StatusSandboxContext(ctx context.Context, sandboxID string) (SandboxStatus, error) {
	var st SandboxStatus
	err := withSandbox(sandboxID, func(ls *lockedSandbox) error {
		st = sandboxStatus(ctx, ls)
		return nil
	})
	return st, err
}

// PauseSandbox is the virtcontainers pausing entry point which pauses an
// already running sandbox.
func PauseSandbox(sandboxID string) (VCSandbox, error) {
	return PauseSandboxContext(context.Background(), sandboxID)
}

// PauseSandboxContext is PauseSandbox bounded by ctx.
func PauseSandboxContext(ctx context.Context, sandboxID string) (VCSandbox, error) {
	return lifecycle(ctx, sandboxID, pauseSandbox)
}

// ResumeSandbox is the virtcontainers resuming entry point which resumes
// (or unpauses) and already paused sandbox.
func ResumeSandbox(sandboxID string) (VCSandbox, error) {
	return ResumeSandboxContext(context.Background(), sandboxID)
}

// ResumeSandboxContext is ResumeSandbox bounded by ctx.
func ResumeSandboxContext(ctx context.Context, sandboxID string) (VCSandbox, error) {
	return lifecycle(ctx, sandboxID, resumeSandbox)
}

func lifecycle(ctx context.Context, sandboxID string, op func(context.Context, *lockedSandbox) error) (VCSandbox, error) {
	var s *Sandbox
	err := withSandbox(sandboxID, func(ls *lockedSandbox) error {
		err := op(ctx, ls)
		s = newSandbox(ls.sandboxState)
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

// CreateContainer is the virtcontainers container creation entry point.
// CreateContainer creates a container on a given sandbox.
func CreateContainer(sandboxID string, containerConfig ContainerConfig) (VCSandbox, VCContainer, error) {
	return CreateContainerContext(context.Background(), sandboxID, containerConfig)
}

// CreateContainerContext is CreateContainer bounded by ctx.
func CreateContainerContext(ctx context.Context, sandboxID string, containerConfig ContainerConfig) (VCSandbox, VCContainer, error) {
	var c *Container
	err := withSandbox(sandboxID, func(ls *lockedSandbox) error {
		var err error
		c, err = createContainer(ctx, ls, containerConfig)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return c.sandbox, c, nil
}

// DeleteContainer is the virtcontainers container deletion entry point.
// DeleteContainer deletes a Container from a Sandbox. If the container is running,
// it needs to be stopped first.
func DeleteContainer(sandboxID, containerID string) (VCContainer, error) {
	return DeleteContainerContext(context.Background(), sandboxID, containerID)
}

// DeleteContainerContext is DeleteContainer bounded by ctx.
func DeleteContainerContext(ctx context.Context, sandboxID, containerID string) (VCContainer, error) {
	return containerOp(ctx, sandboxID, containerID, deleteContainer)
}

// StartContainer is the virtcontainers container starting entry point.
// StartContainer starts an already created container.
func StartContainer(sandboxID, containerID string) (VCContainer, error) {
	return StartContainerContext(context.Background(), sandboxID, containerID)
}

// StartContainerContext is StartContainer bounded by ctx.
func StartContainerContext(ctx context.Context, sandboxID, containerID string) (VCContainer, error) {
	return containerOp(ctx, sandboxID, containerID, startContainer)
}

// StopContainer is the virtcontainers container stopping entry point.
// StopContainer stops an already running container.
func StopContainer(sandboxID, containerID string) (VCContainer, error) {
	return StopContainerContext(context.Background(), sandboxID, containerID)
}

// StopContainerContext is StopContainer bounded by ctx: it kills every
// process of the container and records how its init ended.
func StopContainerContext(ctx context.Context, sandboxID, containerID string) (VCContainer, error) {
	return containerOp(ctx, sandboxID, containerID, stopContainer)
}

func containerOp(ctx context.Context, sandboxID, containerID string, op func(context.Context, *lockedSandbox, *containerState) error) (VCContainer, error) {
	var c *Container
	err := withContainer(sandboxID, containerID, func(ls *lockedSandbox, cs *containerState) error {
		snapshot := *cs
		err := op(ctx, ls, cs)
		if cur, cerr := ls.container(containerID); cerr == nil {
			snapshot = *cur
		}
		c = newContainer(newSandbox(ls.sandboxState), &snapshot)
		return err
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// EnterContainer is the virtcontainers container command execution entry point.
// EnterContainer enters an already running container and runs a given command.
func EnterContainer(sandboxID, containerID string, cmd Cmd) (VCSandbox, VCContainer, *Process, error) {
	return EnterContainerContext(context.Background(), sandboxID, containerID, cmd)
}

// EnterContainerContext is EnterContainer bounded by ctx. The process's
// Token names it to IOStream, WaitProcess, SignalProcess and
// WinsizeProcess.
func EnterContainerContext(ctx context.Context, sandboxID, containerID string, cmd Cmd) (VCSandbox, VCContainer, *Process, error) {
	var (
		c *Container
		p *Process
	)
	err := withContainer(sandboxID, containerID, func(ls *lockedSandbox, cs *containerState) error {
		var err error
		p, err = enterContainer(ctx, ls, cs, cmd)
		c = newContainer(newSandbox(ls.sandboxState), cs)
		return err
	})
	if err != nil {
		return nil, nil, nil, err
	}
	return c.sandbox, c, p, nil
}

// StatusContainer is the virtcontainers container status entry point.
// StatusContainer returns a detailed container status.
func StatusContainer(sandboxID, containerID string) (ContainerStatus, error) {
	return StatusContainerContext(context.Background(), sandboxID, containerID)
}

// StatusContainerContext is StatusContainer bounded by ctx.
func StatusContainerContext(ctx context.Context, sandboxID, containerID string) (ContainerStatus, error) {
	var st ContainerStatus
	err := withContainer(sandboxID, containerID, func(ls *lockedSandbox, cs *containerState) error {
		refreshContainers(ctx, ls)
		st = containerStatus(ls.sandboxState, cs)
		return nil
	})
	return st, err
}

// KillContainer is the virtcontainers entry point to send a signal
// to a container running inside a sandbox. If all is true, all processes in
// the container will be sent the signal.
func KillContainer(sandboxID, containerID string, signal syscall.Signal, all bool) error {
	return KillContainerContext(context.Background(), sandboxID, containerID, signal, all)
}

// KillContainerContext is KillContainer bounded by ctx.
func KillContainerContext(ctx context.Context, sandboxID, containerID string, signal syscall.Signal, all bool) error {
	return withContainer(sandboxID, containerID, func(ls *lockedSandbox, cs *containerState) error {
		if s := cs.State.State; s != StateRunning && s != StateReady {
			return fmt.Errorf("container %s is %s: %w", containerID, s, ErrInvalidState)
		}
		ag, err := agentOf(ctx, ls.sandboxState)
		if err != nil {
			return err
		}
		_, err = ag.SignalProcess(ctx, &protocol.SignalProcessRequest{ContainerId: containerID, Signal: uint32(signal), All: all})
		return err
	})
}

// ProcessListContainer is the virtcontainers entry point to list
// processes running inside a container
func ProcessListContainer(sandboxID, containerID string, options ProcessListOptions) (ProcessList, error) {
	return ProcessListContainerContext(context.Background(), sandboxID, containerID, options)
}

// ProcessListContainerContext is ProcessListContainer bounded by ctx.
func ProcessListContainerContext(ctx context.Context, sandboxID, containerID string, options ProcessListOptions) (ProcessList, error) {
	var list ProcessList
	err := withContainer(sandboxID, containerID, func(ls *lockedSandbox, cs *containerState) error {
		if cs.State.State != StateRunning {
			return fmt.Errorf("container %s is %s, not running: %w", containerID, cs.State.State, ErrInvalidState)
		}
		ag, err := agentOf(ctx, ls.sandboxState)
		if err != nil {
			return err
		}
		resp, err := ag.ListProcesses(ctx, &protocol.ListProcessesRequest{ContainerId: containerID, Format: options.Format})
		if err != nil {
			return err
		}
		list = resp.ProcessList
		return nil
	})
	return list, err
}
