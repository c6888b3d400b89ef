package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	_ "github.com/opencontainers/cgroups/devices" // device rules for the cgroup manager
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/configs"
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"

	"github.com/vc-cri/vc-cri/pkg/agent/protocol"
)

// container is one OCI container of the guest.
type container struct {
	id   string
	spec *specs.Spec
	lc   *libcontainer.Container

	// mu guards init and execs. An exec's entry is nil while it starts.
	mu    sync.Mutex
	init  *process
	execs map[string]*process
}

// process returns the init process (execID "") or an exec process.
func (c *container) process(execID string) (*process, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if execID == "" {
		return c.init, nil
	}
	p := c.execs[execID]
	if p == nil {
		return nil, status.Errorf(codes.NotFound, "process %q not found in container %q", execID, c.id)
	}
	return p, nil
}

// destroy kills the container's processes and removes its cgroup and state.
func (c *container) destroy() {
	_ = c.lc.Signal(unix.SIGKILL)
	select {
	case <-c.init.exited:
	case <-time.After(5 * time.Second):
		klog.InfoS("Container init did not exit after SIGKILL", "container", c.id)
	}
	if err := c.lc.Destroy(); err != nil {
		klog.ErrorS(err, "Cannot destroy container", "container", c.id)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.init.closeIO()
	for _, p := range c.execs {
		if p != nil {
			p.closeIO()
		}
	}
}

func (a *agent) CreateContainer(_ context.Context, req *protocol.CreateContainerRequest) (*protocol.Empty, error) {
	if !validID(req.ContainerId) {
		return nil, status.Errorf(codes.InvalidArgument, "invalid container id %q", req.ContainerId)
	}
	var spec specs.Spec
	if err := json.Unmarshal(req.OciSpec, &spec); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "invalid OCI spec: %v", err)
	}
	if spec.Process == nil || len(spec.Process.Args) == 0 || spec.Root == nil || spec.Root.Path == "" {
		return nil, status.Error(codes.InvalidArgument, "invalid OCI spec: it needs a process with args and a root path")
	}
	if err := a.reserveContainer(req.ContainerId, &spec); err != nil {
		return nil, err
	}
	c, err := createContainer(a.stateDir, req.ContainerId, &spec, req.Terminal, req.Stdin)
	a.mu.Lock()
	defer a.mu.Unlock()
	_, reserved := a.containers[req.ContainerId]
	switch {
	case err != nil:
		delete(a.containers, req.ContainerId)
		return nil, status.Errorf(codes.FailedPrecondition, "create container %q: %v", req.ContainerId, err)
	case !reserved: // the sandbox was destroyed meanwhile
		c.destroy()
		return nil, status.Errorf(codes.FailedPrecondition, "create container %q: the sandbox is being destroyed", req.ContainerId)
	}
	a.containers[req.ContainerId] = c
	klog.InfoS("Container created", "container", c.id)
	return &protocol.Empty{}, nil
}

// reserveContainer takes the container's ID, and joins the pod's user
// namespace if the spec asks for one. The ID's entry stays nil while the
// container is created, without holding a.mu: a create starts a runc init
// in the guest, and the pod's other containers must not wait for it.
func (a *agent) reserveContainer(id string, spec *specs.Spec) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.containers[id]; ok {
		return status.Errorf(codes.AlreadyExists, "container %q already exists", id)
	}
	if spec.Linux != nil {
		if err := a.userSpec(spec); err != nil {
			return status.Errorf(codes.FailedPrecondition, "container %q: %v", id, err)
		}
	}
	a.containers[id] = nil
	return nil
}

func createContainer(stateDir, id string, spec *specs.Spec, terminal, stdin bool) (_ *container, retErr error) {
	if spec.Linux == nil {
		spec.Linux = &specs.Linux{}
	}
	// The guest's cgroup tree is the agent's: host paths mean nothing here.
	spec.Linux.CgroupsPath = filepath.Join("/containers", id)
	config, err := libcontainerConfig(id, spec)
	if err != nil {
		return nil, fmt.Errorf("convert spec: %w", err)
	}
	lc, err := libcontainer.Create(stateDir, id, config)
	if err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			_ = lc.Destroy()
		}
	}()
	p, err := newProcess(spec.Process, terminal, stdin)
	if err != nil {
		return nil, err
	}
	p.lp.Init = true
	p.cgroupDir = filepath.Join("/sys/fs/cgroup", spec.Linux.CgroupsPath)
	// Start runs the container's init up to the point where it waits for
	// Exec, as "runc create" does.
	if err := p.start(byLibcontainer(lc.Start)); err != nil {
		return nil, err
	}
	return &container{id: id, spec: spec, lc: lc, init: p, execs: map[string]*process{}}, nil
}

// libcontainerConfig converts a container's OCI spec as runc does. Its
// mount options are runc's too: "rro" (a recursive read-only mount) is a
// mount_setattr of MOUNT_ATTR_RDONLY with AT_RECURSIVE after the bind,
// which the guest's kernel (6.1) has.
func libcontainerConfig(id string, spec *specs.Spec) (*configs.Config, error) {
	return specconv.CreateLibcontainerConfig(&specconv.CreateOpts{CgroupName: id, NoNewKeyring: true, Spec: spec})
}

func (a *agent) StartContainer(_ context.Context, req *protocol.ContainerRequest) (*protocol.Empty, error) {
	c, err := a.container(req.ContainerId)
	if err != nil {
		return nil, err
	}
	st, err := c.lc.Status()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "container %q status: %v", c.id, err)
	}
	if st != libcontainer.Created {
		return nil, status.Errorf(codes.FailedPrecondition, "container %q is %s, not created", c.id, st)
	}
	if err := c.lc.Exec(); err != nil {
		return nil, status.Errorf(codes.Internal, "start container %q: %v", c.id, err)
	}
	klog.InfoS("Container started", "container", c.id)
	return &protocol.Empty{}, nil
}

func (a *agent) RemoveContainer(_ context.Context, req *protocol.ContainerRequest) (*protocol.Empty, error) {
	c, err := a.container(req.ContainerId)
	if err != nil {
		return nil, err
	}
	st, err := c.lc.Status()
	if err == nil && (st == libcontainer.Running || st == libcontainer.Paused) {
		return nil, status.Errorf(codes.FailedPrecondition, "container %q is %s: stop it first", c.id, st)
	}
	c.destroy()
	a.mu.Lock()
	delete(a.containers, c.id)
	a.mu.Unlock()
	klog.InfoS("Container removed", "container", c.id)
	return &protocol.Empty{}, nil
}

func (a *agent) PauseContainer(_ context.Context, req *protocol.ContainerRequest) (*protocol.Empty, error) {
	c, err := a.container(req.ContainerId)
	if err != nil {
		return nil, err
	}
	if err := c.lc.Pause(); err != nil {
		return nil, stateError("pause", c.id, err)
	}
	return &protocol.Empty{}, nil
}

func (a *agent) ResumeContainer(_ context.Context, req *protocol.ContainerRequest) (*protocol.Empty, error) {
	c, err := a.container(req.ContainerId)
	if err != nil {
		return nil, err
	}
	if err := c.lc.Resume(); err != nil {
		return nil, stateError("resume", c.id, err)
	}
	return &protocol.Empty{}, nil
}

// stateError maps libcontainer's state errors to FailedPrecondition.
func stateError(op, id string, err error) error {
	if errors.Is(err, libcontainer.ErrNotRunning) || errors.Is(err, libcontainer.ErrNotPaused) || errors.Is(err, libcontainer.ErrPaused) {
		return status.Errorf(codes.FailedPrecondition, "%s container %q: %v", op, id, err)
	}
	return status.Errorf(codes.Internal, "%s container %q: %v", op, id, err)
}

func (a *agent) UpdateContainer(_ context.Context, req *protocol.UpdateContainerRequest) (*protocol.Empty, error) {
	c, err := a.container(req.ContainerId)
	if err != nil {
		return nil, err
	}
	var resources specs.LinuxResources
	if err := json.Unmarshal(req.Resources, &resources); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "invalid resources: %v", err)
	}
	spec := *c.spec
	linux := *spec.Linux
	linux.Resources = &resources
	spec.Linux = &linux
	updated, err := libcontainerConfig(c.id, &spec)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "convert resources: %v", err)
	}
	config := c.lc.Config()
	config.Cgroups.Resources = updated.Cgroups.Resources
	if err := c.lc.Set(config); err != nil {
		return nil, status.Errorf(codes.Internal, "update container %q: %v", c.id, err)
	}
	return &protocol.Empty{}, nil
}

func (a *agent) StatsContainer(_ context.Context, req *protocol.ContainerRequest) (*protocol.StatsContainerResponse, error) {
	c, err := a.container(req.ContainerId)
	if err != nil {
		return nil, err
	}
	st, err := c.lc.Stats()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "stats of container %q: %v", c.id, err)
	}
	resp := &protocol.StatsContainerResponse{TimestampUnixNano: time.Now().UnixNano(), Interfaces: interfaceStats()}
	if cg := st.CgroupStats; cg != nil {
		cpu, mem := cg.CpuStats, cg.MemoryStats
		resp.CpuUsageNanos = cpu.CpuUsage.TotalUsage
		resp.CpuUserNanos = cpu.CpuUsage.UsageInUsermode
		resp.CpuSystemNanos = cpu.CpuUsage.UsageInKernelmode
		resp.CpuPeriods = cpu.ThrottlingData.Periods
		resp.CpuThrottledPeriods = cpu.ThrottlingData.ThrottledPeriods
		resp.CpuThrottledNanos = cpu.ThrottlingData.ThrottledTime
		resp.MemoryUsageBytes = mem.Usage.Usage
		resp.MemoryMaxUsageBytes = mem.Usage.MaxUsage
		resp.MemoryFailcnt = mem.Usage.Failcnt
		resp.MemoryLimitBytes = mem.Usage.Limit
		resp.MemoryRssBytes = mem.Stats["anon"]
		resp.MemoryCacheBytes = mem.Stats["file"]
		resp.MemoryMappedFileBytes = mem.Stats["file_mapped"]
		resp.MemoryKernelBytes = mem.Stats["kernel"]
		resp.MemorySwapBytes = mem.SwapOnlyUsage.Usage
		// The working set as kubelet computes it: usage less inactive file pages.
		resp.MemoryWorkingSetBytes = mem.Usage.Usage - min(mem.Usage.Usage, mem.Stats["inactive_file"])
		resp.PageFaults = mem.Stats["pgfault"]
		resp.MajorPageFaults = mem.Stats["pgmajfault"]
		resp.Pids = cg.PidsStats.Current
		resp.ThreadsMax = cg.PidsStats.Limit
	}
	resp.OomEvents = uint64(oomKills(c.init.cgroupDir))
	if pids, err := c.lc.Processes(); err == nil {
		countProcesses(pids, resp)
	}
	return resp, nil
}
