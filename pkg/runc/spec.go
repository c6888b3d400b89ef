package runc

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/vc-cri/vc-cri/pkg/sandbox"
)

// The namespaces a pod's containers share with its infra, unless their
// spec lists them (the rule the VM handler has too).
var podNamespaces = []specs.LinuxNamespaceType{specs.NetworkNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.PIDNamespace}

// hostShares tells whether the pod shares the host's namespace of type t.
// A pod on the host's network keeps the host's UTS namespace too, as
// CRI-O's do.
func hostShares(cfg *sandbox.SandboxConfig, t specs.LinuxNamespaceType) bool {
	if t == specs.UTSNamespace {
		t = specs.NetworkNamespace
	}
	return slices.Contains(cfg.HostNamespaces, t)
}

// podCgroup is the cgroup (cgroupfs path) the pod's containers' cgroups
// are children of.
func podCgroup(cfg *sandbox.SandboxConfig) string {
	if cfg.CgroupParent != "" {
		return cfg.CgroupParent
	}
	return ownCgroup(cfg.ID)
}

// ownCgroup is the pod's cgroup when kubelet gives none: the runtime's,
// removed with the pod.
func ownCgroup(podID string) string { return "/vc-cri/" + podID }

func checkSandboxConfig(cfg *sandbox.SandboxConfig) error {
	if err := checkID("pod", cfg.ID); err != nil {
		return fmt.Errorf("pod ID %q: %w", cfg.ID, sandbox.ErrInvalidConfig)
	}
	for _, t := range cfg.HostNamespaces {
		if t != specs.NetworkNamespace && t != specs.PIDNamespace && t != specs.IPCNamespace {
			return fmt.Errorf("pod %s: the host's %s namespace cannot be shared: %w", cfg.ID, t, sandbox.ErrInvalidConfig)
		}
	}
	if hostShares(cfg, specs.NetworkNamespace) != (cfg.NetworkConfig.NetNSPath == "") {
		return fmt.Errorf("pod %s: a network namespace path is for a pod off the host's network, and only for one: %w", cfg.ID, sandbox.ErrInvalidConfig)
	}
	if p := cfg.CgroupParent; p != "" && (!filepath.IsAbs(p) || strings.HasSuffix(p, ".slice") || strings.Contains(p, "..")) {
		return fmt.Errorf("pod %s: cgroup parent %q is not a cgroupfs path (systemd is not supported): %w", cfg.ID, p, sandbox.ErrInvalidConfig)
	}
	return nil
}

// infraSpec is the spec of the pod's infra container: vc-pause in an
// empty read-only root, making or joining the pod's namespaces.
func (r *Runtime) infraSpec(cfg *sandbox.SandboxConfig, rootfs string) *specs.Spec {
	ns := []specs.LinuxNamespace{{Type: specs.MountNamespace}}
	for _, t := range podNamespaces {
		switch {
		case hostShares(cfg, t):
		case t == specs.NetworkNamespace:
			ns = append(ns, specs.LinuxNamespace{Type: t, Path: cfg.NetworkConfig.NetNSPath})
		default:
			ns = append(ns, specs.LinuxNamespace{Type: t})
		}
	}
	hostname := ""
	if !hostShares(cfg, specs.UTSNamespace) {
		hostname = cfg.Hostname
	}
	return &specs.Spec{
		Version:  specs.Version,
		Root:     &specs.Root{Path: rootfs, Readonly: true},
		Hostname: hostname,
		Process: &specs.Process{
			Args:            []string{"/pause"},
			Cwd:             "/",
			Env:             []string{"PATH=/"},
			NoNewPrivileges: true,
			Capabilities:    &specs.LinuxCapabilities{},
		},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/pause", Type: "bind", Source: r.cfg.Pause, Options: []string{"bind", "ro", "nosuid", "nodev"}},
		},
		Annotations: map[string]string{"io.kubernetes.cri.container-type": "sandbox", "io.kubernetes.cri.sandbox-id": cfg.ID},
		Linux: &specs.Linux{
			Namespaces:  ns,
			Sysctl:      cfg.Sysctls,
			CgroupsPath: filepath.Join(podCgroup(cfg), cfg.ID),
			MaskedPaths: []string{"/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"},
			ReadonlyPaths: []string{
				"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
			},
		},
	}
}

// containerSpec is the OCI spec runc creates the container from: its
// CustomSpec (or sandbox.DefaultSpec with Cmd) with the host's root,
// resources, devices, the pod's cgroup and namespaces applied.
func containerSpec(pod *sandbox.SandboxConfig, infraPid int, c *sandbox.ContainerConfig) (*specs.Spec, error) {
	var spec *specs.Spec
	if c.CustomSpec != nil {
		if len(c.Mounts) > 0 || len(c.Cmd.Args) > 0 {
			return nil, fmt.Errorf("container %q: the CustomSpec has the process and mounts: %w", c.ID, sandbox.ErrInvalidConfig)
		}
		b, err := json.Marshal(c.CustomSpec)
		if err != nil {
			return nil, err
		}
		spec = &specs.Spec{}
		if err := json.Unmarshal(b, spec); err != nil {
			return nil, err
		}
	} else {
		var err error
		if spec, err = sandbox.DefaultSpec(); err != nil {
			return nil, err
		}
		if len(c.Mounts) > 0 {
			return nil, fmt.Errorf("container %q: Mounts without a CustomSpec are not supported: %w", c.ID, sandbox.ErrInvalidConfig)
		}
		if err := applyCmd(spec.Process, c.RootFs, c.Cmd); err != nil {
			return nil, fmt.Errorf("container %q: %w", c.ID, err)
		}
	}
	if spec.Process == nil || len(spec.Process.Args) == 0 {
		return nil, fmt.Errorf("container %q: no command: %w", c.ID, sandbox.ErrInvalidConfig)
	}
	if err := setUser(spec.Process, c.RootFs, c.Cmd); err != nil {
		return nil, fmt.Errorf("container %q: %w", c.ID, err)
	}
	if err := keepHostCapabilities(spec.Process.Capabilities); err != nil {
		return nil, fmt.Errorf("container %q: %w", c.ID, err)
	}
	if c.RootFs == "" || !filepath.IsAbs(c.RootFs) {
		return nil, fmt.Errorf("container %q: root %q is not an absolute path: %w", c.ID, c.RootFs, sandbox.ErrInvalidConfig)
	}
	spec.Root = &specs.Root{Path: c.RootFs, Readonly: c.ReadonlyRootfs}
	if spec.Linux == nil {
		spec.Linux = &specs.Linux{}
	}
	res := hostResources(c.Resources)
	spec.Linux.Resources = &res
	for _, d := range c.DeviceInfos {
		addDevice(spec, d)
	}
	spec.Linux.CgroupsPath = filepath.Join(podCgroup(pod), c.ID)
	spec.Linux.Namespaces = podJoin(pod, infraPid, spec.Linux.Namespaces)
	return spec, nil
}

// podJoin applies the namespace rule: a pod namespace the spec does not
// list is the pod's, the infra's or the host's; one it lists is as it
// says; the mount namespace is always the container's own.
func podJoin(pod *sandbox.SandboxConfig, infraPid int, listed []specs.LinuxNamespace) []specs.LinuxNamespace {
	ns := slices.DeleteFunc(slices.Clone(listed), func(n specs.LinuxNamespace) bool { return n.Type == specs.MountNamespace })
	ns = append(ns, specs.LinuxNamespace{Type: specs.MountNamespace})
	for _, t := range podNamespaces {
		if slices.ContainsFunc(listed, func(n specs.LinuxNamespace) bool { return n.Type == t }) || hostShares(pod, t) {
			continue
		}
		ns = append(ns, specs.LinuxNamespace{Type: t, Path: fmt.Sprintf("/proc/%d/ns/%s", infraPid, nsFile(t))})
	}
	return ns
}

// nsFile is the name of a namespace type under /proc/PID/ns.
func nsFile(t specs.LinuxNamespaceType) string {
	switch t {
	case specs.NetworkNamespace:
		return "net"
	case specs.MountNamespace:
		return "mnt"
	}
	return string(t)
}

// applyCmd applies what cmd sets of a process (not the user: setUser).
func applyCmd(p *specs.Process, rootfs string, cmd sandbox.Cmd) error {
	if len(cmd.Args) > 0 {
		p.Args = slices.Clone(cmd.Args)
	}
	for _, e := range cmd.Envs {
		p.Env = setEnv(p.Env, e.Var, e.Value)
	}
	if cmd.WorkDir != "" {
		p.Cwd = cmd.WorkDir
	}
	p.NoNewPrivileges = p.NoNewPrivileges || cmd.NoNewPrivileges
	if caps := cmd.Capabilities; len(caps.Bounding)+len(caps.Effective)+len(caps.Permitted)+len(caps.Inheritable)+len(caps.Ambient) > 0 {
		p.Capabilities = &specs.LinuxCapabilities{
			Bounding: caps.Bounding, Effective: caps.Effective, Permitted: caps.Permitted,
			Inheritable: caps.Inheritable, Ambient: caps.Ambient,
		}
	}
	return nil
}

func setEnv(env []string, k, v string) []string {
	env = slices.DeleteFunc(slices.Clone(env), func(e string) bool { return strings.HasPrefix(e, k+"=") })
	return append(env, k+"="+v)
}

// setUser makes the process run as cmd's user and groups: numbers that
// pkg/cri resolved (sandbox.User.Set), which sandbox.ResolveUser takes
// without reading a file; names are resolved against the rootfs.
func setUser(p *specs.Process, rootfs string, cmd sandbox.Cmd) error {
	if cmd.User == "" && cmd.PrimaryGroup == "" && len(cmd.SupplementaryGroups) == 0 {
		return nil
	}
	u, err := sandbox.ResolveUser(rootfs, cmd)
	if err != nil {
		return err
	}
	p.User.UID, p.User.GID = u.UID, u.GID
	p.User.AdditionalGids = slices.Clone(u.Groups)
	return nil
}

// addDevice gives the container a device node of the host.
func addDevice(spec *specs.Spec, d sandbox.DeviceInfo) {
	mode := d.FileMode.Perm()
	uid, gid := d.UID, d.GID
	major, minor := d.Major, d.Minor
	spec.Linux.Devices = append(spec.Linux.Devices, specs.LinuxDevice{
		Path: d.ContainerPath, Type: d.DevType, Major: major, Minor: minor, FileMode: &mode, UID: &uid, GID: &gid,
	})
	spec.Linux.Resources.Devices = append(spec.Linux.Resources.Devices, specs.LinuxDeviceCgroup{
		Allow: true, Type: d.DevType, Major: &major, Minor: &minor, Access: "rwm",
	})
}

// execSpecProcess is the process of an exec: the container's own with
// cmd applied, a terminal when cmd has a console.
func execSpecProcess(spec *specs.Spec, rootfs string, cmd sandbox.Cmd) (*specs.Process, error) {
	b, err := json.Marshal(spec.Process)
	if err != nil {
		return nil, err
	}
	p := &specs.Process{}
	if err := json.Unmarshal(b, p); err != nil {
		return nil, err
	}
	if len(cmd.Args) == 0 {
		return nil, fmt.Errorf("exec without a command: %w", sandbox.ErrInvalidConfig)
	}
	if err := applyCmd(p, rootfs, cmd); err != nil {
		return nil, err
	}
	if err := setUser(p, rootfs, cmd); err != nil {
		return nil, err
	}
	p.Terminal = cmd.Console != ""
	p.ConsoleSize = nil
	return p, nil
}
