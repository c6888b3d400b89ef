package runc

import (
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
// HostSpec (which freezes c's user and groups as numbers) with what the
// host can grant of it, and the pod's cgroup and namespaces.
func containerSpec(pod *sandbox.SandboxConfig, infraPid int, c *sandbox.ContainerConfig) (*specs.Spec, error) {
	if c.RootFs == "" || !filepath.IsAbs(c.RootFs) {
		return nil, fmt.Errorf("container %q: root %q is not an absolute path: %w", c.ID, c.RootFs, sandbox.ErrInvalidConfig)
	}
	spec, err := sandbox.HostSpec(c)
	if err != nil {
		return nil, err
	}
	if err := keepHostCapabilities(spec.Process.Capabilities); err != nil {
		return nil, fmt.Errorf("container %q: %w", c.ID, err)
	}
	if r := spec.Linux.Resources; r != nil {
		res := hostResources(*r)
		spec.Linux.Resources = &res
	}
	spec.Linux.CgroupsPath = filepath.Join(podCgroup(pod), c.ID)
	spec.Linux.Namespaces = podJoin(pod, infraPid, spec.Linux.Namespaces)
	return spec, nil
}

// execSpecProcess is the process of an exec in the container c: its
// own with cmd applied, with what the host can grant of it.
func execSpecProcess(c *sandbox.ContainerConfig, cmd sandbox.Cmd) (*specs.Process, error) {
	if len(cmd.Args) == 0 {
		return nil, fmt.Errorf("exec without a command: %w", sandbox.ErrInvalidConfig)
	}
	p, err := sandbox.ExecProcess(c, cmd)
	if err != nil {
		return nil, err
	}
	if err := keepHostCapabilities(p.Capabilities); err != nil {
		return nil, err
	}
	return p, nil
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
