package cri

import (
	"context"
	"io"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/vc-cri/vc-cri/pkg/sandbox"
)

// What the runtime service needs of the sandbox layer, by concern.
// *sandbox.Runtime is the implementation; the unit tests give each test
// one of its own, on the mock hypervisor and the noop agent.

// podVMs runs the pods' sandboxes: their VMs.
type podVMs interface {
	RunSandbox(ctx context.Context, cfg sandbox.SandboxConfig) (sandbox.VCSandbox, error)
	StopSandbox(ctx context.Context, sandboxID string) (sandbox.VCSandbox, error)
	DeleteSandbox(ctx context.Context, sandboxID string) (sandbox.VCSandbox, error)
	StatusSandbox(ctx context.Context, sandboxID string) (sandbox.SandboxStatus, error)
	ListSandbox(ctx context.Context) ([]sandbox.SandboxStatus, error)
	PortForward(ctx context.Context, sandboxID string, port uint32, stream io.ReadWriter) error
	// WatchSandbox returns when the VM stops serving the sandbox by
	// itself, or ctx ends.
	WatchSandbox(ctx context.Context, sandboxID string) (sandbox.SandboxEnd, error)
}

// guestContainers runs the pods' containers in their guests.
type guestContainers interface {
	CreateContainer(ctx context.Context, sandboxID string, cfg sandbox.ContainerConfig) (sandbox.VCSandbox, sandbox.VCContainer, error)
	StartContainer(ctx context.Context, sandboxID, containerID string) (sandbox.VCContainer, error)
	StopContainer(ctx context.Context, sandboxID, containerID string) (sandbox.VCContainer, error)
	DeleteContainer(ctx context.Context, sandboxID, containerID string) (sandbox.VCContainer, error)
	StatusContainer(ctx context.Context, sandboxID, containerID string) (sandbox.ContainerStatus, error)
	StatsContainer(ctx context.Context, sandboxID, containerID string) (sandbox.ContainerStats, error)
	UpdateContainer(ctx context.Context, sandboxID, containerID string, resources specs.LinuxResources) error
}

// guestProcesses carries the containers' processes, their own and
// execs: named by token, with their IO, exit, signals and terminal size.
type guestProcesses interface {
	EnterContainer(ctx context.Context, sandboxID, containerID string, cmd sandbox.Cmd) (sandbox.VCSandbox, sandbox.VCContainer, *sandbox.Process, error)
	IOStream(ctx context.Context, sandboxID, containerID, token string) (io.WriteCloser, io.ReadCloser, io.ReadCloser, error)
	WaitProcess(ctx context.Context, sandboxID, containerID, token string) (int32, error)
	SignalProcess(ctx context.Context, sandboxID, containerID, token string, signal syscall.Signal, all bool) error
	WinsizeProcess(ctx context.Context, sandboxID, containerID, token string, height, width uint32) error
}

// sandboxes is all the runtime service needs of the sandbox layer.
type sandboxes interface {
	podVMs
	guestContainers
	guestProcesses
}

var _ sandboxes = (*sandbox.Runtime)(nil)
