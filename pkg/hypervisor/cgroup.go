package hypervisor

import (
	"fmt"
	"path"
	"strings"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/manager"
)

// CgroupParent is the host cgroup a VM's processes (QEMU, virtiofsd) run
// under, so that the host's accounting and limits of that cgroup (for
// kubelet, the pod's) see the whole VM. Each VM gets a cgroup of its own
// below it, vc-<ID>, removed by Stop.
//
// The driver follows from the form of the name, as kubelet writes it: a
// systemd slice ("kubepods-besteffort-pod<uid>.slice") makes the VM a
// transient systemd scope in that slice; a path ("/kubepods/besteffort/
// pod<uid>") is a cgroupfs path, the same in every cgroup v1 hierarchy,
// or in the cgroup v2 tree.
type CgroupParent string

// systemd reports whether the parent names a systemd slice.
func (p CgroupParent) systemd() bool { return strings.HasSuffix(string(p), ".slice") }

func (p CgroupParent) validate() error {
	s := string(p)
	switch {
	case s == "":
		return nil
	case p.systemd():
		if strings.ContainsAny(s, "/ ") {
			return invalid("CgroupParent", "systemd slice %q contains a slash or a space", s)
		}
	case !path.IsAbs(s) || path.Clean(s) != s:
		return invalid("CgroupParent", "%q is neither a clean absolute cgroup path nor a systemd slice", s)
	}
	return nil
}

// cgroupManager is the manager of c's own cgroup, or nil when c has no
// CgroupParent. It touches nothing until used.
func cgroupManager(c Config) (cgroups.Manager, error) {
	if c.CgroupParent == "" {
		return nil, nil
	}
	// No limits of its own: the VM is bounded by its parent's.
	cg := &cgroups.Cgroup{Resources: &cgroups.Resources{SkipDevices: true}}
	if c.CgroupParent.systemd() {
		cg.Systemd, cg.Parent, cg.ScopePrefix, cg.Name = true, string(c.CgroupParent), "vc", c.ID
	} else {
		cg.Path = path.Join(string(c.CgroupParent), "vc-"+c.ID)
	}
	m, err := manager.New(cg)
	if err != nil {
		return nil, fmt.Errorf("cgroup of VM %s under %s: %w", c.ID, c.CgroupParent, err)
	}
	return m, nil
}

// joinCgroup moves the process pid, with all its threads, into the VM's
// cgroup, creating it.
func joinCgroup(m cgroups.Manager, pid int) error {
	if m == nil {
		return nil
	}
	if err := m.Apply(pid); err != nil {
		return fmt.Errorf("move pid %d into its cgroup: %w", pid, err)
	}
	return nil
}

// removeCgroup removes the VM's cgroup once its processes are gone.
func removeCgroup(m cgroups.Manager) error {
	if m == nil {
		return nil
	}
	return m.Destroy()
}
