package main

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

// A pod of hostUsers: false (KEP-127) has one user namespace, with
// kubelet's mappings, shared by its containers, as a Kubernetes pod's
// containers share the pause container's. Its containers share the
// guest's network, IPC and UTS namespaces, which the guest's initial user
// namespace owns; but the pod's PID namespace must be owned by the pod's
// user namespace, or no container could mount its /proc. So the agent
// starts, at the first container of such a pod, a holder: itself again
// ("userns"), PID 1 of a new PID namespace inside a new user namespace,
// reaping the orphans of the pod's processes. Every container joins the
// holder's user namespace, and its PID namespace unless it asks for a
// PID namespace of its own (which it then gets inside the pod's user
// namespace). A container that shares a namespace it does not own cannot
// mount that namespace's filesystems: its /sys is the guest's, bound
// read-only, its /dev/mqueue the guest's, and it gets a cgroup namespace
// of its own for its /sys/fs/cgroup.

// usernsHolderArg is the argument that makes vc-agent the holder.
const usernsHolderArg = "userns"

// podUserns is the pod's user namespace: its holder and mappings.
type podUserns struct {
	cmd        *exec.Cmd
	uids, gids []specs.LinuxIDMapping
}

// usernsPath is the path of the holder's namespace of type ns.
func (u *podUserns) path(ns string) string {
	return "/proc/" + strconv.Itoa(u.cmd.Process.Pid) + "/ns/" + ns
}

// startUserns starts the holder of a user namespace of the mappings.
func startUserns(uids, gids []specs.LinuxIDMapping) (*podUserns, error) {
	// The agent may run from a copy of itself (runc's memfd clone),
	// which only /proc/self/exe names.
	cmd := exec.Command("/proc/self/exe", usernsHolderArg)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  unix.CLONE_NEWUSER | unix.CLONE_NEWPID,
		UidMappings: sysIDMap(uids),
		GidMappings: sysIDMap(gids),
		// Containers set their groups: setgroups must stay allowed.
		// No Pdeathsig: it would fire when the forking thread, not the
		// agent, ends. The holder lives as long as the guest.
		GidMappingsEnableSetgroups: true,
	}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the pod's user namespace: %w", err)
	}
	go func() {
		err := cmd.Wait()
		klog.InfoS("The pod's user namespace holder exited", "pid", cmd.Process.Pid, "err", err)
	}()
	klog.InfoS("Pod user namespace started", "pid", cmd.Process.Pid, "uids", uids, "gids", gids)
	return &podUserns{cmd: cmd, uids: uids, gids: gids}, nil
}

func sysIDMap(ms []specs.LinuxIDMapping) []syscall.SysProcIDMap {
	out := make([]syscall.SysProcIDMap, len(ms))
	for i, m := range ms {
		out[i] = syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)}
	}
	return out
}

// holdUserns is the holder's life: PID 1 of the pod's PID namespace, it
// reaps every orphan until the agent kills it.
func holdUserns() {
	// PID 1 of a namespace gets no signal it has no handler for, but
	// SIGKILL from outside.
	for {
		if _, err := unix.Wait4(-1, nil, 0, nil); err == unix.ECHILD {
			// No child yet: wait for one without spinning.
			_ = unix.Pause()
		}
	}
}

// userSpec puts the container of spec, which asks for a user namespace
// of its own with mappings, in the pod's one (a.userns, started with the
// first such container; the caller holds a.mu), as told above.
func (a *agent) userSpec(spec *specs.Spec) error {
	i := slices.IndexFunc(spec.Linux.Namespaces, isUserNamespace)
	if i < 0 {
		return nil
	}
	l := spec.Linux
	if l.Namespaces[i].Path != "" || len(l.UIDMappings) == 0 || len(l.GIDMappings) == 0 {
		return fmt.Errorf("a user namespace needs its mappings, and no path")
	}
	if a.userns == nil {
		u, err := startUserns(l.UIDMappings, l.GIDMappings)
		if err != nil {
			return err
		}
		a.userns = u
	} else if !slices.Equal(a.userns.uids, l.UIDMappings) || !slices.Equal(a.userns.gids, l.GIDMappings) {
		return fmt.Errorf("the user namespace's mappings %v/%v are not the pod's, %v/%v", l.UIDMappings, l.GIDMappings, a.userns.uids, a.userns.gids)
	}
	if err := ensureMqueue(); err != nil {
		return err
	}
	joinUserns(spec, a.userns)
	return nil
}

// joinUserns makes the container of spec join u's user namespace, and
// its PID namespace unless it has one of its own, and mount what it may
// not mount there as the guest's (see above).
func joinUserns(spec *specs.Spec, u *podUserns) {
	l := spec.Linux
	// runc reads the mappings from the namespace it joins.
	l.Namespaces[slices.IndexFunc(l.Namespaces, isUserNamespace)].Path = u.path("user")
	l.UIDMappings, l.GIDMappings = nil, nil
	if !slices.ContainsFunc(l.Namespaces, func(ns specs.LinuxNamespace) bool { return ns.Type == specs.PIDNamespace }) {
		l.Namespaces = append(l.Namespaces, specs.LinuxNamespace{Type: specs.PIDNamespace, Path: u.path("pid")})
	}
	if !slices.ContainsFunc(l.Namespaces, func(ns specs.LinuxNamespace) bool { return ns.Type == specs.CgroupNamespace }) {
		l.Namespaces = append(l.Namespaces, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	}
	cgroup := true
	for j, m := range spec.Mounts {
		switch {
		case m.Type == "sysfs":
			spec.Mounts[j] = specs.Mount{Destination: m.Destination, Type: "bind", Source: "/sys", Options: []string{"rbind", "rro", "nosuid", "nodev", "noexec"}}
		case m.Type == "mqueue":
			spec.Mounts[j] = specs.Mount{Destination: m.Destination, Type: "bind", Source: guestMqueue, Options: []string{"rbind", "nosuid", "nodev", "noexec"}}
		case m.Type == "cgroup" || m.Type == "cgroup2":
			cgroup = false
		}
	}
	if cgroup {
		spec.Mounts = append(spec.Mounts, specs.Mount{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}})
	}
}

func isUserNamespace(ns specs.LinuxNamespace) bool { return ns.Type == specs.UserNamespace }

// guestMqueue is the guest's mqueue filesystem, of its IPC namespace,
// which a container in the pod's user namespace binds.
const guestMqueue = "/dev/mqueue"

// mqueueMagic is the mqueue filesystem's type (linux/magic.h).
const mqueueMagic = 0x19800202

// ensureMqueue mounts the guest's mqueue filesystem, once.
func ensureMqueue() error {
	var st unix.Statfs_t
	if err := unix.Statfs(guestMqueue, &st); err == nil && st.Type == mqueueMagic {
		return nil
	}
	if err := os.MkdirAll(guestMqueue, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("mqueue", guestMqueue, "mqueue", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount %s: %w", guestMqueue, err)
	}
	return nil
}
