package sandbox

import (
	"errors"
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestGuestHugePageSizes(t *testing.T) {
	names, err := guestHugePageSizes([]uint64{2 << 20, 1 << 30, 64 << 10})
	if err != nil || !reflect.DeepEqual(names, []string{"2MB", "1GB", "64KB"}) {
		t.Fatalf("sizes: %v, %v", names, err)
	}
	if names, err := guestHugePageSizes(nil); err != nil || names == nil || len(names) != 0 {
		t.Fatalf("no sizes: %#v, %v; want an empty, non-nil list", names, err)
	}
	for _, bad := range [][]uint64{{3 << 20}, {0}, {4 << 10}, {32 << 30}, make([]uint64, 9)} {
		if _, err := guestHugePageSizes(bad); err == nil {
			t.Errorf("sizes %v accepted", bad)
		}
	}
}

// TestGuestResources covers every setting kubelet v1.37 sends in a
// container's LinuxContainerResources, as the OCI resources pkg/cri
// makes of them.
func TestGuestResources(t *testing.T) {
	shares, period := uint64(2), uint64(100000)
	quota, limit, swap := int64(50000), int64(64<<20), int64(64<<20)
	guest := []string{"2MB"}
	kubelet := specs.LinuxResources{
		CPU:    &specs.LinuxCPU{Shares: &shares, Quota: &quota, Period: &period, Cpus: "0-1", Mems: "0"},
		Memory: &specs.LinuxMemory{Limit: &limit, Swap: &swap},
		HugepageLimits: []specs.LinuxHugepageLimit{
			{Pagesize: "2MB", Limit: 0},
			{Pagesize: "1GB", Limit: 0},
		},
		Unified: map[string]string{
			"memory.oom.group": "1", "memory.high": "max", "cpu.weight": "10",
			"io.max": "8:0 rbps=1024", "cpuset.cpus": "0", "rdma.max": "x", "misc.max": "y",
			"hugetlb.1GB.max": "0", "hugetlb.1GB.rsvd.max": "max", "hugetlb.2MB.max": "0",
		},
	}
	got, err := guestResources(kubelet, guest)
	if err != nil {
		t.Fatal(err)
	}
	want := specs.LinuxResources{
		CPU:            &specs.LinuxCPU{Shares: &shares, Quota: &quota, Period: &period},
		Memory:         &specs.LinuxMemory{Limit: &limit, Swap: &swap},
		HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 0}},
		Unified:        map[string]string{"memory.oom.group": "1", "memory.high": "max", "cpu.weight": "10", "hugetlb.2MB.max": "0"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rewritten:\n got %+v\nwant %+v", got, want)
	}
	if kubelet.CPU.Cpus != "0-1" || len(kubelet.HugepageLimits) != 2 || len(kubelet.Unified) != 10 {
		t.Errorf("the caller's resources were changed: %+v", kubelet)
	}

	// Pages of a size the guest has are honoured, whatever the limit.
	two := specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4 << 20}}}
	if got, err := guestResources(two, guest); err != nil || !reflect.DeepEqual(got, two) {
		t.Errorf("2 MiB pages: %+v, %v", got, err)
	}
	// A sandbox of an older daemon recorded no sizes: 2 MiB is assumed.
	if _, err := guestResources(two, nil); err != nil {
		t.Errorf("2 MiB pages, sizes unknown: %v", err)
	}
	// A pod that really asks for pages the guest lacks is refused.
	for _, r := range []specs.LinuxResources{
		{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "1GB", Limit: 1 << 30}}},
		{Unified: map[string]string{"hugetlb.1GB.max": "1073741824"}},
		{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 2 << 20}}}, // a guest with none
	} {
		sizes := guest
		if r.HugepageLimits != nil && r.HugepageLimits[0].Pagesize == "2MB" {
			sizes = []string{}
		}
		if _, err := guestResources(r, sizes); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%+v in a guest with %v: %v, want ErrInvalidConfig", r, sizes, err)
		}
	}
}
