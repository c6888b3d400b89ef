package runc

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// kubelet's hugepage limits reach runc only where the host has the
// hugetlb controller (this one has not: its containers failed to start).
func TestHostResources(t *testing.T) {
	limit := int64(1 << 30)
	res := specs.LinuxResources{
		Memory:         &specs.LinuxMemory{Limit: &limit},
		HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 0}, {Pagesize: "1GB", Limit: 0}},
	}
	got := hostResources(res)
	if got.Memory == nil || *got.Memory.Limit != limit {
		t.Errorf("the memory limit was lost: %+v", got.Memory)
	}
	if want := 0; hasHugetlb() {
		if len(got.HugepageLimits) != 2 {
			t.Errorf("a host with hugetlb lost the hugepage limits: %v", got.HugepageLimits)
		}
	} else if len(got.HugepageLimits) != want {
		t.Errorf("hugepage limits %v kept on a host without hugetlb", got.HugepageLimits)
	}
	if len(res.HugepageLimits) != 2 {
		t.Errorf("the caller's resources were changed")
	}
}
