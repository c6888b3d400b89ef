// Package hypervisor boots and controls the virtual machines of vc-cri.
// It knows nothing of sandboxes, CRI or agents: a VM is a QEMU process,
// a QMP socket and an agent socket in a state directory.
//
// Two implementations: QEMU (real VMs, command line and QMP through govmm)
// and Mock (in memory, for the unit tests of the layers above).
package hypervisor

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
)

// Sentinel errors, for errors.Is; the errors returned wrap them with
// the details. Each wraps its kind of github.com/containerd/errdefs.
var (
	// ErrInvalidConfig: a Config field is missing, malformed or refers to
	// something the host lacks; the message names the field.
	ErrInvalidConfig = fmt.Errorf("invalid hypervisor config: %w", errdefs.ErrInvalidArgument)
	// ErrNotFound: Attach found no VM in the state directory.
	ErrNotFound = fmt.Errorf("VM %w", errdefs.ErrNotFound)
	// ErrAlreadyExists: Launch found a running VM in the state directory.
	ErrAlreadyExists = fmt.Errorf("VM %w", errdefs.ErrAlreadyExists)
	// ErrNotRunning: the operation needs a running hypervisor process.
	ErrNotRunning = fmt.Errorf("VM not running: %w", errdefs.ErrFailedPrecondition)
	// ErrInvalidState: the operation does not apply in the VM's state
	// (Mock only: QEMU itself accepts a stop of a paused VM).
	ErrInvalidState = fmt.Errorf("invalid VM state: %w", errdefs.ErrFailedPrecondition)
	// ErrNoKVM: KVM was asked for and the host has no /dev/kvm.
	ErrNoKVM = fmt.Errorf("KVM unavailable: %w", errdefs.ErrFailedPrecondition)
)

// Hypervisor starts VMs and finds those started earlier.
type Hypervisor interface {
	// Launch starts a VM and returns once QEMU runs and its QMP answers;
	// it does not wait for the guest.
	Launch(ctx context.Context, cfg Config) (VM, error)
	// Attach finds a VM started earlier, possibly by another process
	// (a daemon before its restart), from cfg.StateDir. It returns
	// ErrNotFound when the directory holds no VM. A VM whose process has
	// already exited is returned as such, so that Stop can clean up.
	Attach(ctx context.Context, cfg Config) (VM, error)
}

// VM is one running (or exited, not yet stopped) virtual machine.
type VM interface {
	// Pid is the hypervisor process's ID.
	Pid() int
	// AgentSocket is the host unix socket of the guest agent's
	// virtio-serial port; the hypervisor listens, the caller connects
	// (again after a restart if need be).
	AgentSocket() string
	// Pause stops the guest's vCPUs.
	Pause(ctx context.Context) error
	// Resume restarts the guest's vCPUs.
	Resume(ctx context.Context) error
	// Wait blocks until the hypervisor process has exited (nil) or ctx
	// ends (ctx.Err()). A caller that asked the guest to power off waits
	// here, with its own grace period, before calling Stop.
	Wait(ctx context.Context) error
	// Size reports the VM's vCPUs and memory, and its room to grow.
	Size(ctx context.Context) (Size, error)
	// PlugVCPUs hot-plugs vCPUs until the hypervisor runs n of them,
	// n at most MaxVCPUs (else ErrNoRoom). It never unplugs one (that
	// needs the guest's ACPI eject, unreliable under TCG): fewer than
	// the VM has is a no-op, and the guest offlines those it should not
	// use. A failure may leave some of the vCPUs asked plugged.
	PlugVCPUs(ctx context.Context, n uint32) error
	// SetMemory asks virtio-mem for mib MiB of memory in all (rounded
	// up to its block), from the boot memory to MaxMemoryMiB (else
	// ErrNoRoom, or a failed precondition below boot memory), and waits
	// until the guest has plugged or unplugged that much, or ctx ends.
	// It returns the memory the VM has then, asked for or not.
	SetMemory(ctx context.Context, mib uint32) (uint32, error)
	// Stop ends the VM: unless the process has already exited, it asks
	// the hypervisor to quit and waits until ctx ends (10 s at most
	// when ctx has no deadline), then kills it. Then it removes the
	// state directory and every helper process it started. Stop always
	// cleans up, even with a cancelled ctx, and a second call returns nil.
	Stop(ctx context.Context) error
}
