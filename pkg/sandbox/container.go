package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/vc-cri/vc-cri/internal/exitcode"
	"github.com/vc-cri/vc-cri/pkg/agent/protocol"
)

// VCContainer is the Container interface
// (required since virtcontainers.Container only contains private fields)
type VCContainer interface {
	GetAnnotations() map[string]string
	GetPid() int
	GetToken() string
	ID() string
	Sandbox() VCSandbox
	Process() Process
}

// Container is a snapshot of a container as of the call that returned it.
type Container struct {
	sandbox *Sandbox
	state   containerState
}

var _ VCContainer = (*Container)(nil)

func newContainer(s *Sandbox, c *containerState) *Container {
	return &Container{sandbox: s, state: *c}
}

// ID returns the container's ID.
func (c *Container) ID() string { return c.state.Config.ID }

// GetAnnotations returns a copy of the container's annotations.
func (c *Container) GetAnnotations() map[string]string {
	return maps.Clone(c.state.Config.Annotations)
}

// GetPid returns the PID the host sees for the container: its VM's.
func (c *Container) GetPid() int { return c.sandbox.state.VMPid }

// GetToken returns the token of the container's init process: the
// container ID (exec processes get tokens of their own).
func (c *Container) GetToken() string { return c.ID() }

// Sandbox returns the container's sandbox.
func (c *Container) Sandbox() VCSandbox { return c.sandbox }

// Process returns the container's init process.
func (c *Container) Process() Process {
	return Process{Token: c.GetToken(), Pid: c.GetPid(), StartTime: c.state.StartTime}
}

// createContainer shares the container's files with the guest and has
// the agent create it; the sandbox must be ready or running.
func createContainer(ctx context.Context, ls *lockedSandbox, cfg ContainerConfig) (_ *Container, retErr error) {
	sid := ls.Config.ID
	if err := checkID("container", cfg.ID); err != nil {
		return nil, err
	}
	if s := ls.State.State; s != StateReady && s != StateRunning {
		return nil, fmt.Errorf("sandbox %s is %s: containers are created in a ready or running sandbox: %w", sid, s, ErrInvalidState)
	}
	if _, err := ls.container(cfg.ID); err == nil {
		return nil, fmt.Errorf("container %q in sandbox %q: %w", cfg.ID, sid, ErrAlreadyExists)
	}
	res, err := guestResources(cfg.Resources, ls.GuestHugePageSizes)
	if err != nil {
		return nil, fmt.Errorf("container %q in sandbox %q: %w", cfg.ID, sid, err)
	}
	cfg.Resources = res
	share := &containerShare{sandboxDir: ls.dir(), containerID: cfg.ID}
	defer func() {
		if retErr != nil {
			if err := unshare(ls.dir(), cfg.ID, share.mounts); err != nil {
				klog.ErrorS(err, "Cannot undo container mounts", "sandbox", sid, "container", cfg.ID)
			}
		}
	}()
	// The spec maps the root and the bind mounts into the shared
	// directory: binding them there is the share.
	_, span := startPhase(ctx, "rootfs_share")
	spec, err := containerSpec(&cfg, share)
	endPhase(span, err)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	ag, err := ls.agent(ctx)
	if err != nil {
		return nil, err
	}
	guestCtx, span := startPhase(ctx, "guest_create")
	_, err = ag.CreateContainer(guestCtx, &protocol.CreateContainerRequest{
		ContainerId: cfg.ID, OciSpec: b, Terminal: spec.Process.Terminal, Stdin: cfg.Cmd.Interactive,
	})
	endPhase(span, err)
	if err != nil {
		return nil, fmt.Errorf("create container %q in sandbox %q: %w", cfg.ID, sid, err)
	}
	c := &containerState{Config: cfg, State: State{StateReady}, CreatedAt: time.Now(), Mounts: share.mounts}
	ls.Containers = append(ls.Containers, c)
	if err := ls.save(ctx); err != nil {
		return nil, err
	}
	klog.InfoS("Container created", "sandbox", sid, "container", cfg.ID)
	return newContainer(ls.snapshot(), c), nil
}

func startContainer(ctx context.Context, ls *lockedSandbox, c *containerState) error {
	if ls.State.State != StateRunning {
		return fmt.Errorf("sandbox %s is %s: containers start in a running sandbox: %w", ls.Config.ID, ls.State.State, ErrInvalidState)
	}
	if err := checkTransition(containerTransitions, "container", c.Config.ID, c.State.State, StateRunning); err != nil {
		return err
	}
	ag, err := ls.agent(ctx)
	if err != nil {
		return err
	}
	guestCtx, span := startPhase(ctx, "guest_start")
	_, err = ag.StartContainer(guestCtx, &protocol.ContainerRequest{ContainerId: c.Config.ID})
	endPhase(span, err)
	if err != nil {
		return fmt.Errorf("start container %q: %w", c.Config.ID, err)
	}
	c.State, c.StartTime = State{StateRunning}, time.Now()
	klog.InfoS("Container started", "sandbox", ls.Config.ID, "container", c.Config.ID)
	return ls.save(ctx)
}

// stopContainerTimeout bounds the wait for a killed container to exit.
const stopContainerTimeout = 10 * time.Second

// stopContainerProcesses kills every process of the container and records
// how its init ended, under the sandbox's lock: for a container that is
// deleted, or a sandbox that stops.
func stopContainerProcesses(ctx context.Context, ag Agent, ls *lockedSandbox, c *containerState) {
	recordExit(c, killContainer(ctx, ag, ls.Config.ID, c.Config.ID))
}

// killContainer kills every process of the container and waits, for
// stopContainerTimeout at most, for the guest's report of how its init
// ended; without one, it was killed.
func killContainer(ctx context.Context, ag Agent, sandboxID, id string) *protocol.WaitProcessResponse {
	if _, err := ag.SignalProcess(ctx, &protocol.SignalProcessRequest{ContainerId: id, Signal: uint32(unix.SIGKILL), All: true}); err != nil {
		klog.V(2).InfoS("Cannot kill container processes", "sandbox", sandboxID, "container", id, "err", err)
	}
	// A created, never started init is not in the container's cgroup yet.
	if _, err := ag.SignalProcess(ctx, &protocol.SignalProcessRequest{ContainerId: id, Signal: uint32(unix.SIGKILL)}); err != nil {
		klog.V(2).InfoS("Cannot kill container init", "sandbox", sandboxID, "container", id, "err", err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, stopContainerTimeout)
	defer cancel()
	exit, err := ag.WaitProcess(waitCtx, &protocol.ProcessRequest{ContainerId: id})
	if err != nil {
		klog.ErrorS(err, "Container did not report its exit", "sandbox", sandboxID, "container", id)
		exit = &protocol.WaitProcessResponse{ExitCode: exitcode.Killed, ExitedAtUnixNano: time.Now().UnixNano()}
	}
	return exit
}

// recordExit records the guest's report of a container's end. The report
// is the guest's word: a missing one is an unknown exit (exitcode.Unknown), and
// its time is kept between the container's start and now, the host's
// clock.
func recordExit(c *containerState, exit *protocol.WaitProcessResponse) {
	c.State = State{StateStopped}
	c.ExitCode = guestExitCode(exit.GetExitCode())
	if exit == nil {
		c.ExitCode = exitcode.Unknown
	}
	c.OOMKilled = exit.GetOomKilled()
	now := time.Now()
	c.FinishedAt = time.Unix(0, exit.GetExitedAtUnixNano())
	if exit.GetExitedAtUnixNano() == 0 || c.FinishedAt.After(now) {
		c.FinishedAt = now
	}
	if c.FinishedAt.Before(c.StartTime) {
		c.FinishedAt = c.StartTime
	}
}

func deleteContainer(ctx context.Context, ls *lockedSandbox, c *containerState) error {
	if c.State.State == StateRunning {
		return fmt.Errorf("container %s is running, stop it first: %w", c.Config.ID, ErrInvalidState)
	}
	if ls.State.State != StateStopped {
		ag, err := ls.agent(ctx)
		if err != nil {
			return err
		}
		if c.State.State == StateReady {
			stopContainerProcesses(ctx, ag, ls, c)
		}
		if _, err := ag.RemoveContainer(ctx, &protocol.ContainerRequest{ContainerId: c.Config.ID}); err != nil {
			return fmt.Errorf("remove container %q: %w", c.Config.ID, err)
		}
	}
	if err := unshare(ls.dir(), c.Config.ID, c.Mounts); err != nil {
		return err
	}
	ls.removeContainer(c.Config.ID)
	klog.InfoS("Container deleted", "sandbox", ls.Config.ID, "container", c.Config.ID)
	return ls.save(ctx)
}

// refreshExits asks the agent, without waiting, whether the sandbox's
// running containers have exited, and records those that have. The
// sandbox's lock is held only to find what to ask and to record the
// answers, never across the questions.
func (r *Runtime) refreshExits(ctx context.Context, sandboxID string) {
	var (
		ag      Agent
		running []string
	)
	err := r.withSandbox(ctx, sandboxID, func(ls *lockedSandbox) error {
		if ls.State.State != StateRunning {
			return nil
		}
		for _, c := range ls.Containers {
			if c.State.State == StateRunning {
				running = append(running, c.Config.ID)
			}
		}
		if len(running) == 0 {
			return nil
		}
		var err error
		ag, err = ls.agent(ctx)
		return err
	})
	if err != nil {
		klog.ErrorS(err, "Cannot reach agent for container states", "sandbox", sandboxID)
		return
	}
	exits := map[string]*protocol.WaitProcessResponse{}
	for _, id := range running {
		st, err := ag.ProcessStatus(ctx, &protocol.ProcessRequest{ContainerId: id})
		if err == nil && st.GetExited() {
			exits[id] = st.Exit
		}
	}
	if len(exits) == 0 {
		return
	}
	if err := r.withSandbox(ctx, sandboxID, func(ls *lockedSandbox) error {
		for id, exit := range exits {
			if c, err := ls.container(id); err == nil && c.State.State == StateRunning {
				recordExit(c, exit)
			}
		}
		return ls.save(ctx)
	}); err != nil {
		klog.ErrorS(err, "Cannot save container states", "sandbox", sandboxID)
	}
}

func containerStatus(s *sandboxState, c *containerState) ContainerStatus {
	return ContainerStatus{
		ID:          c.Config.ID,
		State:       c.State,
		PID:         s.VMPid,
		StartTime:   c.StartTime,
		RootFs:      c.Config.RootFs,
		Annotations: maps.Clone(c.Config.Annotations),
		ExitCode:    c.ExitCode,
		FinishedAt:  c.FinishedAt,
		OOMKilled:   c.OOMKilled,
	}
}
