package sandbox

import (
	"context"
	"fmt"
	"time"

	"github.com/containerd/errdefs"
	"k8s.io/klog/v2"

	"github.com/vc-cri/vc-cri/internal/rollback"
	"github.com/vc-cri/vc-cri/pkg/agent/protocol"
	"github.com/vc-cri/vc-cri/pkg/hypervisor"
)

// A running VM is resized in place (ResizeSandbox):
//
//   - vCPUs grow by hot-plug, up to HypervisorConfig.DefaultMaxVCPUs,
//     and the guest onlines them. They shrink in the guest only: it
//     takes the extra vCPUs offline, and QEMU keeps their idle threads
//     (an unplug needs the guest's ACPI eject, which QEMU 7.2's q35 does
//     not do reliably), so a later grow onlines them again first.
//   - Memory grows and shrinks through virtio-mem, up to
//     HypervisorConfig.DefaultMaxMemorySize, never below the memory the
//     VM booted with: a smaller size is kept at that floor.
//
// A resize is refused, with nothing changed, when it asks for more than
// the VM has room for (hypervisor.ErrNoRoom, resource exhausted) or would
// take away memory the guest uses (a failed precondition). Once applying
// has begun, a failing step undoes the steps before it.

// resizeTimeout bounds a resize whose ctx has no deadline: the guest
// plugs memory and brings CPUs up at its pace, slowly under TCG.
const resizeTimeout = time.Minute

// guestMemoryReserveMiB is the memory a shrink leaves available in the
// guest beyond what it uses: the guest's kernel and agent need room, and
// usage moves while the resize runs.
const guestMemoryReserveMiB = 64

// ErrGuestInUse: a shrink would take away what the guest uses.
var ErrGuestInUse = fmt.Errorf("the guest uses it: %w", errdefs.ErrFailedPrecondition)

// ResizeSandbox grows or shrinks a sandbox's running VM to size: its
// vCPUs and its memory in MiB, a zero field leaving that resource as it
// is. It returns the size in force, also when the memory asked for is
// below what the VM booted with (see above). The size is kept in the
// sandbox's state: StatusSandbox reports it.
func (r *Runtime) ResizeSandbox(ctx context.Context, sandboxID string, size Resources) (Resources, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, resizeTimeout)
		defer cancel()
	}
	var got Resources
	err := r.withSandbox(ctx, sandboxID, func(ls *lockedSandbox) (err error) {
		ctx, span := startPhase(ctx, "sandbox_resize")
		defer func() { endPhase(span, err) }()
		got, err = ls.resize(ctx, size)
		return err
	})
	return got, err
}

func (ls *lockedSandbox) resize(ctx context.Context, want Resources) (Resources, error) {
	id := ls.Config.ID
	if s := ls.State.State; s != StateReady && s != StateRunning {
		return Resources{}, fmt.Errorf("sandbox %s is %s: %w", id, s, ErrInvalidState)
	}
	vm, err := ls.vm(ctx)
	if err != nil {
		return Resources{}, err
	}
	ag, err := ls.agent(ctx)
	if err != nil {
		return Resources{}, err
	}
	hv, err := vm.Size(ctx)
	if err != nil {
		return Resources{}, err
	}
	guest, err := guestSize(ctx, ag, 0, hv)
	if err != nil {
		return Resources{}, err
	}
	_, bootMiB := bootSize(&ls.Config)
	cur := Resources{VCPUs: uint(guest.OnlineCpus), Memory: uint(hv.MemoryMiB)}
	target := cur
	if want.VCPUs > 0 {
		target.VCPUs = want.VCPUs
	}
	if want.Memory > 0 {
		target.Memory = max(want.Memory, uint(bootMiB))
	}
	if target.VCPUs > uint(hv.MaxVCPUs) {
		return cur, fmt.Errorf("sandbox %s: %d vCPUs asked, its VM has room for %d: %w", id, target.VCPUs, hv.MaxVCPUs, hypervisor.ErrNoRoom)
	}
	if target.Memory > uint(hv.MaxMemoryMiB) {
		return cur, fmt.Errorf("sandbox %s: %d MiB asked, its VM has room for %d: %w", id, target.Memory, hv.MaxMemoryMiB, hypervisor.ErrNoRoom)
	}
	if target.Memory < cur.Memory {
		avail := guest.MemoryAvailableBytes >> 20
		used := guest.MemoryTotalBytes>>20 - avail
		if uint64(cur.Memory-target.Memory)+guestMemoryReserveMiB > avail {
			return cur, fmt.Errorf("sandbox %s: shrinking from %d to %d MiB would leave less than %d MiB of the guest's memory free, as it uses %d MiB: %w",
				id, cur.Memory, target.Memory, guestMemoryReserveMiB, used, ErrGuestInUse)
		}
	}
	if target == cur {
		return cur, nil
	}

	var undo rollback.Stack
	fail := func(err error) (Resources, error) {
		undo.Run("sandbox", id)
		return cur, fmt.Errorf("resize sandbox %s from %+v to %+v: %w", id, cur, target, err)
	}
	if target.VCPUs != cur.VCPUs {
		if target.VCPUs > uint(hv.VCPUs) {
			// Plugged vCPUs stay (see above): the undo takes them offline.
			if err := vm.PlugVCPUs(ctx, uint32(target.VCPUs)); err != nil {
				return fail(err)
			}
		}
		undo.Add("vCPUs back online", func(ctx context.Context) error {
			_, err := guestSize(ctx, ag, uint32(cur.VCPUs), hv)
			return err
		})
		if _, err := guestSize(ctx, ag, uint32(target.VCPUs), hv); err != nil {
			return fail(err)
		}
	}
	got := target
	if target.Memory != cur.Memory {
		undo.Add("memory back", func(ctx context.Context) error {
			_, err := vm.SetMemory(ctx, uint32(cur.Memory))
			return err
		})
		mib, err := vm.SetMemory(ctx, uint32(target.Memory))
		if err != nil {
			return fail(err)
		}
		got.Memory = uint(mib)
	}
	prev := ls.Resized
	ls.Resized = &got
	if err := ls.save(ctx); err != nil {
		ls.Resized = prev
		return fail(err)
	}
	klog.InfoS("Sandbox resized", "sandbox", id, "vcpus", got.VCPUs, "memoryMiB", got.Memory, "fromVCPUs", cur.VCPUs, "fromMemoryMiB", cur.Memory)
	return got, nil
}

// guestSize asks the guest to have cpus CPUs online (0: as they are) and
// checks its answer against the VM's room (hv's maxima): the guest is
// untrusted, and a guest that onlined other than asked failed.
func guestSize(ctx context.Context, ag Agent, cpus uint32, hv hypervisor.Size) (*protocol.GuestResources, error) {
	g, err := ag.ResizeGuest(ctx, &protocol.ResizeGuestRequest{Cpus: cpus})
	if err != nil {
		return nil, fmt.Errorf("guest resize to %d CPUs: %w", cpus, err)
	}
	switch {
	case g.OnlineCpus == 0 || g.OnlineCpus > g.PresentCpus || g.PresentCpus > hv.MaxVCPUs:
		return nil, fmt.Errorf("guest reports %d CPUs online of %d present, the VM has room for %d", g.OnlineCpus, g.PresentCpus, hv.MaxVCPUs)
	case g.MemoryTotalBytes == 0 || g.MemoryTotalBytes > uint64(hv.MaxMemoryMiB)<<20 || g.MemoryAvailableBytes > g.MemoryTotalBytes:
		return nil, fmt.Errorf("guest reports %d bytes of memory, %d available, the VM has room for %d MiB", g.MemoryTotalBytes, g.MemoryAvailableBytes, hv.MaxMemoryMiB)
	case cpus > 0 && g.OnlineCpus != cpus:
		return nil, fmt.Errorf("guest has %d CPUs online, %d asked", g.OnlineCpus, cpus)
	}
	return g, nil
}
