package runc

import (
	"os"
	"slices"
	"strings"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// kubelet sets hugepage limits (of 0 when the pod asks for none) on every
// container; runc fails a container whose limits name a controller the
// host lacks, and hosts without huge pages often have no hugetlb
// controller, as these lack it. Limits of a missing controller are
// dropped, as containerd and CRI-O drop them: there is nothing they could
// limit.

// hasHugetlb tells whether the host has the hugetlb controller, on
// cgroup v1 or v2.
var hasHugetlb = sync.OnceValue(func() bool {
	if _, err := os.Stat("/sys/fs/cgroup/hugetlb"); err == nil {
		return true
	}
	b, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
	return err == nil && slices.Contains(strings.Fields(string(b)), "hugetlb")
})

// hostResources is res without what the host cannot apply.
func hostResources(res specs.LinuxResources) specs.LinuxResources {
	if !hasHugetlb() {
		res.HugepageLimits = nil
	}
	return res
}
