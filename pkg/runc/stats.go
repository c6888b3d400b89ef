package runc

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/prometheus/procfs"

	"github.com/vc-cri/vc-cri/pkg/sandbox"
)

// runcStats is the part of `runc events --stats` read here (runc's
// types/events.go), cgroup v1 or v2.
type runcStats struct {
	Type string `json:"type"`
	Data struct {
		CPU struct {
			Usage struct {
				Total  uint64 `json:"total"`
				Kernel uint64 `json:"kernel"`
				User   uint64 `json:"user"`
			} `json:"usage"`
			Throttling struct {
				Periods          uint64 `json:"periods"`
				ThrottledPeriods uint64 `json:"throttledPeriods"`
				ThrottledTime    uint64 `json:"throttledTime"`
			} `json:"throttling"`
		} `json:"cpu"`
		Memory struct {
			Usage  memoryEntry       `json:"usage"`
			Swap   memoryEntry       `json:"swap"`
			Kernel memoryEntry       `json:"kernel"`
			Raw    map[string]uint64 `json:"raw"`
		} `json:"memory"`
		Pids struct {
			Current uint64 `json:"current"`
			Limit   uint64 `json:"limit"`
		} `json:"pids"`
	} `json:"data"`
}

type memoryEntry struct {
	Limit   uint64 `json:"limit"`
	Usage   uint64 `json:"usage"`
	Max     uint64 `json:"max"`
	Failcnt uint64 `json:"failcnt"`
}

// raw is a key of memory.stat, by its cgroup v1 name or its v2 one.
func raw(m map[string]uint64, v1, v2 string) uint64 {
	if v, ok := m[v1]; ok {
		return v
	}
	return m[v2]
}

// StatsContainer reports the container's cgroup usage, as runc reads it.
func (r *Runtime) StatsContainer(ctx context.Context, podID, id string) (sandbox.ContainerStats, error) {
	_, st, err := r.containerState(podID, id)
	if err != nil {
		return sandbox.ContainerStats{}, err
	}
	if st.State.State == sandbox.StateStopped {
		return sandbox.ContainerStats{}, fmt.Errorf("container %s is stopped: %w", id, sandbox.ErrInvalidState)
	}
	out, err := r.runc(ctx, nil, "events", "--stats", id)
	if err != nil {
		return sandbox.ContainerStats{}, fmt.Errorf("stats of container %s: %w", id, err)
	}
	var s runcStats
	if err := json.Unmarshal(out, &s); err != nil {
		return sandbox.ContainerStats{}, fmt.Errorf("stats of container %s: %w", id, err)
	}
	d := &s.Data
	m := d.Memory.Raw
	inactive := raw(m, "total_inactive_file", "inactive_file")
	ws := d.Memory.Usage.Usage
	if inactive < ws {
		ws -= inactive
	} else {
		ws = 0
	}
	limit := d.Memory.Usage.Limit
	if limit >= 1<<62 { // "no limit", as v1 reports it
		limit = 0
	}
	ifaces, err := interfaces(st.PID)
	if err != nil {
		return sandbox.ContainerStats{}, fmt.Errorf("network stats of container %s: %w", id, err)
	}
	return sandbox.ContainerStats{
		Timestamp:             time.Now(),
		Interfaces:            ifaces,
		CPUUsageNanos:         d.CPU.Usage.Total,
		CPUUserNanos:          d.CPU.Usage.User,
		CPUSystemNanos:        d.CPU.Usage.Kernel,
		CPUPeriods:            d.CPU.Throttling.Periods,
		CPUThrottledPeriods:   d.CPU.Throttling.ThrottledPeriods,
		CPUThrottledNanos:     d.CPU.Throttling.ThrottledTime,
		MemoryUsageBytes:      d.Memory.Usage.Usage,
		MemoryMaxUsageBytes:   d.Memory.Usage.Max,
		MemoryWorkingSetBytes: ws,
		MemoryRSSBytes:        raw(m, "total_rss", "anon"),
		MemoryCacheBytes:      raw(m, "total_cache", "file"),
		MemoryMappedFileBytes: raw(m, "total_mapped_file", "file_mapped"),
		MemoryKernelBytes:     d.Memory.Kernel.Usage,
		MemorySwapBytes:       d.Memory.Swap.Usage,
		MemoryLimitBytes:      limit,
		MemoryFailcnt:         d.Memory.Usage.Failcnt,
		PageFaults:            raw(m, "total_pgfault", "pgfault"),
		MajorPageFaults:       raw(m, "total_pgmajfault", "pgmajfault"),
		Pids:                  d.Pids.Current,
	}, nil
}

// interfaces are the counters of the network interfaces the process pid
// sees, its pod's (the host's, for a pod on the host's network), but the
// loopback, in the order of their names.
func interfaces(pid int) ([]sandbox.InterfaceStats, error) {
	fs, err := procfs.NewFS("/proc")
	if err != nil {
		return nil, err
	}
	p, err := fs.Proc(pid)
	if err != nil {
		return nil, err
	}
	dev, err := p.NetDev()
	if err != nil {
		return nil, err
	}
	var out []sandbox.InterfaceStats
	for _, name := range slices.Sorted(maps.Keys(dev)) {
		if name == "lo" {
			continue
		}
		l := dev[name]
		out = append(out, sandbox.InterfaceStats{
			Name:    name,
			RxBytes: l.RxBytes, RxPackets: l.RxPackets, RxErrors: l.RxErrors, RxDropped: l.RxDropped,
			TxBytes: l.TxBytes, TxPackets: l.TxPackets, TxErrors: l.TxErrors, TxDropped: l.TxDropped,
		})
	}
	return out, nil
}

// UpdateContainer applies new cgroup limits to a created or running
// container and keeps them in its record.
func (r *Runtime) UpdateContainer(ctx context.Context, podID, id string, resources specs.LinuxResources) error {
	return r.withContainer(ctx, podID, id, func(_ *podRecord, c *containerRecord) error {
		if s := r.containerStatus(podID, c).State.State; s == sandbox.StateStopped {
			return fmt.Errorf("container %s is stopped: %w", id, sandbox.ErrInvalidState)
		}
		b, err := json.Marshal(hostResources(resources))
		if err != nil {
			return err
		}
		if _, err := r.runc(ctx, b, "update", "--resources", "-", id); err != nil {
			return fmt.Errorf("update container %s: %w", id, err)
		}
		c.Config.Resources = resources
		return r.saveContainer(podID, c)
	})
}
