package hypervisor

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/containerd/errdefs"
	"github.com/kata-containers/govmm/qemu"
	"k8s.io/klog/v2"
)

// ErrNoRoom: a resize asks for more than the VM was started with room
// for (Config.MaxVCPUs, Config.MaxMemoryMiB).
var ErrNoRoom = fmt.Errorf("beyond the VM's room to grow: %w", errdefs.ErrResourceExhausted)

// Size is what a running VM has, and the most it may grow to.
type Size struct {
	// VCPUs are the vCPUs the hypervisor runs: those of boot and those
	// hot-plugged. Whether the guest has onlined them is the guest's to
	// say.
	VCPUs, MaxVCPUs uint32
	// MemoryMiB is boot memory plus what virtio-mem has plugged.
	MemoryMiB, MaxMemoryMiB uint32
}

// sizePollInterval is how often SetMemory reads back the plugged size
// while the guest plugs or unplugs memory.
const sizePollInterval = 20 * time.Millisecond

// hotplugMemPath is the virtio-mem device's QOM path.
const hotplugMemPath = "/machine/peripheral/" + hotplugMemID

// Size implements VM.
func (v *qemuVM) Size(ctx context.Context) (Size, error) {
	s := Size{MaxVCPUs: v.cfg.MaxVCPUs, MemoryMiB: v.cfg.MemoryMiB, MaxMemoryMiB: v.cfg.MemoryMiB + v.cfg.hotplugMemoryMiB()}
	err := v.qmp(ctx, "size of", func(q *qemu.QMP) error {
		cpus, err := q.ExecuteQueryHotpluggableCPUs(ctx)
		if err != nil {
			return fmt.Errorf("query-hotpluggable-cpus: %w", err)
		}
		for _, c := range cpus {
			if c.QOMPath != "" {
				s.VCPUs++
			}
		}
		if v.cfg.hotplugMemoryMiB() == 0 {
			return nil
		}
		plugged, err := pluggedMiB(ctx, q)
		s.MemoryMiB += plugged
		return err
	})
	return s, err
}

// PlugVCPUs implements VM.
func (v *qemuVM) PlugVCPUs(ctx context.Context, n uint32) error {
	if n > v.cfg.MaxVCPUs {
		return fmt.Errorf("%d vCPUs asked, VM %s has room for %d: %w", n, v.cfg.ID, v.cfg.MaxVCPUs, ErrNoRoom)
	}
	return v.qmp(ctx, "plug vCPUs into", func(q *qemu.QMP) error {
		cpus, err := q.ExecuteQueryHotpluggableCPUs(ctx)
		if err != nil {
			return fmt.Errorf("query-hotpluggable-cpus: %w", err)
		}
		var free []qemu.HotpluggableCPU
		var have uint32
		for _, c := range cpus {
			if c.QOMPath != "" {
				have++
			} else {
				free = append(free, c)
			}
		}
		// In topology order, so that the guest numbers them as QEMU does.
		slices.SortFunc(free, func(a, b qemu.HotpluggableCPU) int {
			pa, pb := a.Properties, b.Properties
			return cmp.Or(cmp.Compare(pa.Socket, pb.Socket), cmp.Compare(pa.Die, pb.Die), cmp.Compare(pa.Core, pb.Core), cmp.Compare(pa.Thread, pb.Thread))
		})
		for _, c := range free {
			if have >= n {
				break
			}
			p := c.Properties
			id := fmt.Sprintf("vcpu-s%d-d%d-c%d-t%d", p.Socket, p.Die, p.Core, p.Thread)
			if err := q.ExecuteCPUDeviceAdd(ctx, c.Type, id, fmt.Sprint(p.Socket), fmt.Sprint(p.Die), fmt.Sprint(p.Core), fmt.Sprint(p.Thread), ""); err != nil {
				return fmt.Errorf("device_add %s: %w", id, err)
			}
			klog.V(2).InfoS("vCPU hot-plugged", "vm", v.cfg.ID, "cpu", id)
			have++
		}
		if have < n {
			return fmt.Errorf("VM %s has %d vCPUs and no free slot for more, %d asked: %w", v.cfg.ID, have, n, ErrNoRoom)
		}
		return nil
	})
}

// SetMemory implements VM.
func (v *qemuVM) SetMemory(ctx context.Context, mib uint32) (uint32, error) {
	room := v.cfg.hotplugMemoryMiB()
	if mib < v.cfg.MemoryMiB {
		return 0, fmt.Errorf("%d MiB asked, below the %d MiB VM %s booted with, which virtio-mem cannot take away: %w", mib, v.cfg.MemoryMiB, v.cfg.ID, errdefs.ErrFailedPrecondition)
	}
	if mib > v.cfg.MemoryMiB+room {
		return 0, fmt.Errorf("%d MiB asked, VM %s has room for %d: %w", mib, v.cfg.ID, v.cfg.MemoryMiB+room, ErrNoRoom)
	}
	want := (mib - v.cfg.MemoryMiB + hotplugBlockMiB - 1) / hotplugBlockMiB * hotplugBlockMiB
	var got uint32
	err := v.qmp(ctx, "resize memory of", func(q *qemu.QMP) error {
		if err := q.ExecQomSet(ctx, hotplugMemPath, "requested-size", uint64(want)<<20); err != nil {
			return fmt.Errorf("qom-set requested-size: %w", err)
		}
		// The guest's driver plugs or unplugs blocks as it can: wait
		// until the plugged size is the one asked for.
		for {
			var err error
			if got, err = pluggedMiB(ctx, q); err != nil {
				return err
			}
			if got == want {
				return nil
			}
			if err := sleepCtx(ctx, sizePollInterval); err != nil {
				return fmt.Errorf("the guest plugged %d MiB of the %d MiB asked: %w", got, want, err)
			}
		}
	})
	return v.cfg.MemoryMiB + got, err
}

// pluggedMiB reads the memory virtio-mem has plugged.
func pluggedMiB(ctx context.Context, q *qemu.QMP) (uint32, error) {
	r, err := q.ExecQomGet(ctx, hotplugMemPath, "size")
	if err != nil {
		return 0, fmt.Errorf("qom-get size: %w", err)
	}
	size, ok := r.(float64) // a JSON number
	if !ok || size < 0 || size > 1<<52 {
		return 0, fmt.Errorf("qom-get size: unexpected %v", r)
	}
	return uint32(uint64(size) >> 20), nil
}
