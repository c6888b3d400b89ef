package hypervisor

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/cgroups"
)

func TestCgroupParentValidate(t *testing.T) {
	for p, ok := range map[CgroupParent]bool{
		"":                                   true,
		"/kubepods/besteffort/pod1234":       true,
		"kubepods-besteffort-pod1234.slice":  true,
		"kubepods/pod1234":                   false, // relative
		"/kubepods/../etc":                   false,
		"/kubepods/pod1234/":                 false,
		"kubepods.slice/kubepods-pod1.slice": false,
	} {
		err := p.validate()
		if ok != (err == nil) || (err != nil && !errors.Is(err, ErrInvalidConfig)) {
			t.Errorf("CgroupParent %q: %v", p, err)
		}
	}
}

// cgroupOf is pid's cgroup path in the hierarchy of controller (v1), or
// in the v2 tree when controller is "".
func cgroupOf(t *testing.T, pid int, controller string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == controller {
				return parts[2]
			}
		}
	}
	t.Fatalf("pid %d has no %q cgroup in %s", pid, controller, b)
	return ""
}

// TestQEMUInCgroup: QEMU and virtiofsd run in the VM's own cgroup under
// the parent, which Stop removes.
func TestQEMUInCgroup(t *testing.T) {
	c := bootConfig(t, "virtiofs")
	parent := "/vc-cri-hvtest-" + strconv.Itoa(os.Getpid())
	c.CgroupParent = CgroupParent(parent)
	controller, root := "memory", "/sys/fs/cgroup/memory"
	if cgroups.IsCgroup2UnifiedMode() {
		controller, root = "", "/sys/fs/cgroup"
	}
	t.Cleanup(func() {
		dirs, _ := filepath.Glob("/sys/fs/cgroup/*" + parent)
		if cgroups.IsCgroup2UnifiedMode() {
			dirs = []string{"/sys/fs/cgroup" + parent}
		}
		for _, d := range dirs {
			os.Remove(d)
		}
	})
	vm := launch(t, c)
	virtiofsd, err := readPidFile(c.path(virtiofsdPid))
	if err != nil {
		t.Fatal(err)
	}
	want := parent + "/vc-" + c.ID
	for name, pid := range map[string]int{"QEMU": vm.Pid(), "virtiofsd": virtiofsd} {
		if got := cgroupOf(t, pid, controller); got != want {
			t.Errorf("%s runs in cgroup %q, want %q", name, got, want)
		}
	}
	if err := vm.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(root + want); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the VM's cgroup %s after Stop: %v", root+want, err)
	}
}
