package sandbox

import (
	"fmt"
	"math/bits"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"k8s.io/klog/v2"
)

// What a container's resources mean inside a VM. kubelet writes them for
// the host: it sends a hugetlb limit for every page size the host has,
// CPU and memory node numbers of the host, and cgroup v2 keys of host
// devices. The guest has its own kernel, CPUs and devices, so each
// setting is either honoured there, dropped when it asks for nothing the
// guest could give, or refused:
//
//   - CPU shares, quota and period, memory and swap limits, pids and the
//     process's oom_score_adj apply in the guest as they would on a host.
//   - Hugetlb limits of a page size the guest lacks are dropped when
//     their limit is 0 (kubelet's "none of these pages") and refused
//     otherwise: the guest could not give the pod those pages.
//   - cpuset CPUs and memory nodes name host CPUs and NUMA nodes, which
//     the guest does not have: dropped. The VM's processes run in the
//     pod's host cgroup, where the host's cpuset applies to them all.
//   - Unified (cgroup v2) keys of controllers that name host devices or
//     host CPUs (io, cpuset, rdma, misc) are dropped, hugetlb keys follow
//     the hugetlb rule, and the rest are passed to the guest's cgroup v2.

// maxGuestHugePageSizes bounds the list a guest reports: x86 has two or
// three sizes, and an answer from the guest is never trusted to be small.
const maxGuestHugePageSizes = 8

// guestHugePageSizes validates the guest's report of its huge page
// sizes (in bytes) and names them as cgroups do ("2MB", "1GB").
func guestHugePageSizes(sizes []uint64) ([]string, error) {
	if len(sizes) > maxGuestHugePageSizes {
		return nil, fmt.Errorf("guest reports %d huge page sizes, at most %d are valid", len(sizes), maxGuestHugePageSizes)
	}
	names := []string{} // not nil: a guest with no huge pages is known
	for _, s := range sizes {
		if s < 64<<10 || s > 16<<30 || bits.OnesCount64(s) != 1 {
			return nil, fmt.Errorf("guest reports an impossible huge page size of %d bytes", s)
		}
		names = append(names, hugePageSizeName(s))
	}
	return names, nil
}

// hugePageSizeName names a page size as the cgroup files and CRI do.
func hugePageSizeName(size uint64) string {
	switch {
	case size%(1<<30) == 0:
		return fmt.Sprintf("%dGB", size>>30)
	case size%(1<<20) == 0:
		return fmt.Sprintf("%dMB", size>>20)
	default:
		return fmt.Sprintf("%dKB", size>>10)
	}
}

// defaultGuestHugePageSizes stands for a guest whose sizes were never
// recorded (a sandbox created by an older daemon): every x86-64 CPU model
// QEMU emulates has 2 MiB pages.
var defaultGuestHugePageSizes = []string{"2MB"}

// guestResources rewrites a container's resources into what the guest
// can honour (see the rules above). It returns ErrInvalidConfig for
// what the guest cannot give.
func guestResources(r specs.LinuxResources, hugePageSizes []string) (specs.LinuxResources, error) {
	if hugePageSizes == nil {
		hugePageSizes = defaultGuestHugePageSizes
	}
	has := func(size string) bool {
		for _, s := range hugePageSizes {
			if strings.EqualFold(s, size) {
				return true
			}
		}
		return false
	}
	out := r
	out.HugepageLimits = nil
	for _, h := range r.HugepageLimits {
		switch {
		case has(h.Pagesize):
			out.HugepageLimits = append(out.HugepageLimits, h)
		case h.Limit != 0:
			return specs.LinuxResources{}, fmt.Errorf("huge pages of %s: the pod VM has only %s pages: %w", h.Pagesize, strings.Join(hugePageSizes, ", "), ErrInvalidConfig)
		}
	}
	if r.CPU != nil {
		cpu := *r.CPU
		cpu.Cpus, cpu.Mems = "", ""
		out.CPU = &cpu
	}
	if len(r.Unified) > 0 {
		out.Unified = map[string]string{}
		for k, v := range r.Unified {
			controller, rest, _ := strings.Cut(k, ".")
			switch controller {
			case "io", "cpuset", "rdma", "misc":
				continue
			case "hugetlb":
				size, _, _ := strings.Cut(rest, ".")
				if !has(size) {
					if v != "0" && v != "max" {
						return specs.LinuxResources{}, fmt.Errorf("cgroup setting %s: the pod VM has only %s huge pages: %w", k, strings.Join(hugePageSizes, ", "), ErrInvalidConfig)
					}
					continue
				}
			}
			out.Unified[k] = v
		}
	}
	if len(out.HugepageLimits) != len(r.HugepageLimits) || len(out.Unified) != len(r.Unified) || cpusetDropped(r.CPU) {
		klog.V(4).InfoS("Container resources rewritten for the guest", "from", r, "to", out)
	}
	return out, nil
}

func cpusetDropped(cpu *specs.LinuxCPU) bool {
	return cpu != nil && (cpu.Cpus != "" || cpu.Mems != "")
}
