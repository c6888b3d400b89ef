package cri

import (
	"context"
	"io"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/vc-cri/vc-cri/pkg/runc"
	"github.com/vc-cri/vc-cri/pkg/sandbox"
)

// What the runtime service needs of a runtime handler, by concern. Two
// implement it: *sandbox.Runtime runs each pod as a VM, *runc.Runtime as
// OS containers on the host. The unit tests give each test a
// *sandbox.Runtime of its own, on the mock hypervisor and the noop agent.

// podSandboxes runs the pods' sandboxes: their VMs, or their infra
// containers.
type podSandboxes interface {
	RunSandbox(ctx context.Context, cfg sandbox.SandboxConfig) (sandbox.VCSandbox, error)
	StopSandbox(ctx context.Context, sandboxID string) (sandbox.VCSandbox, error)
	DeleteSandbox(ctx context.Context, sandboxID string) (sandbox.VCSandbox, error)
	StatusSandbox(ctx context.Context, sandboxID string) (sandbox.SandboxStatus, error)
	ListSandbox(ctx context.Context) ([]sandbox.SandboxStatus, error)
	PortForward(ctx context.Context, sandboxID string, port uint32, stream io.ReadWriter) error
	// WatchSandbox returns when the sandbox ends by itself (its VM or
	// infra process), or ctx ends.
	WatchSandbox(ctx context.Context, sandboxID string) (sandbox.SandboxEnd, error)
	// ResizeSandbox grows or shrinks the pod's sandbox to size (zero
	// fields: as they are) and returns the size in force.
	ResizeSandbox(ctx context.Context, sandboxID string, size sandbox.Resources) (sandbox.Resources, error)
}

// podContainers runs the pods' containers.
type podContainers interface {
	CreateContainer(ctx context.Context, sandboxID string, cfg sandbox.ContainerConfig) (sandbox.VCSandbox, sandbox.VCContainer, error)
	StartContainer(ctx context.Context, sandboxID, containerID string) (sandbox.VCContainer, error)
	StopContainer(ctx context.Context, sandboxID, containerID string) (sandbox.VCContainer, error)
	DeleteContainer(ctx context.Context, sandboxID, containerID string) (sandbox.VCContainer, error)
	StatusContainer(ctx context.Context, sandboxID, containerID string) (sandbox.ContainerStatus, error)
	StatsContainer(ctx context.Context, sandboxID, containerID string) (sandbox.ContainerStats, error)
	UpdateContainer(ctx context.Context, sandboxID, containerID string, resources specs.LinuxResources) error
}

// podProcesses carries the containers' processes, their own and execs:
// named by token, with their IO, exit, signals and terminal size.
type podProcesses interface {
	EnterContainer(ctx context.Context, sandboxID, containerID string, cmd sandbox.Cmd) (sandbox.VCSandbox, sandbox.VCContainer, *sandbox.Process, error)
	IOStream(ctx context.Context, sandboxID, containerID, token string) (io.WriteCloser, io.ReadCloser, io.ReadCloser, error)
	WaitProcess(ctx context.Context, sandboxID, containerID, token string) (int32, error)
	SignalProcess(ctx context.Context, sandboxID, containerID, token string, signal syscall.Signal, all bool) error
	WinsizeProcess(ctx context.Context, sandboxID, containerID, token string, height, width uint32) error
}

// sandboxes is all the runtime service needs of a runtime handler.
type sandboxes interface {
	podSandboxes
	podContainers
	podProcesses
}

// logKeeper is a runtime whose container monitors write the containers'
// CRI logs themselves (ContainerConfig.LogPath), so that output is kept
// while this service is down: conmon, for OS containers. The service
// then copies output only to attached clients, and hands log reopening
// on. A runtime that is no logKeeper leaves the log to the service.
type logKeeper interface {
	ReopenContainerLog(ctx context.Context, sandboxID, containerID string) error
}

// Handler is one runtime handler, as RunPodSandbox names it.
type Handler struct {
	// Runtime runs the handler's pods. Handlers may share one.
	Runtime sandboxes
	// Sandbox is the configuration every pod's sandbox starts from: for
	// VM pods the hypervisor, guest image, agent, VM size and network
	// model. The pod's own settings are applied over it.
	Sandbox sandbox.SandboxConfig
	// HostNamespaces: the handler's pods can share the host's network,
	// PID and IPC namespaces (OS containers can, VMs cannot).
	HostNamespaces bool
	// Features are what the handler supports beyond the CRI's baseline.
	Features *runtime.RuntimeHandlerFeatures
}

var (
	_ sandboxes = (*sandbox.Runtime)(nil)
	_ sandboxes = (*runc.Runtime)(nil)
	_ logKeeper = (*runc.Runtime)(nil)
)
