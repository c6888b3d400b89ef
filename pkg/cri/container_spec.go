package cri

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/sys/capability"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-tools/generate"
	"github.com/opencontainers/runtime-tools/generate/seccomp"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/vc-cri/vc-cri/pkg/sandbox"
)

// defaultCapabilities are the capabilities of an unprivileged container,
// as containerd and Docker grant them.
var defaultCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// containerConfig turns a CRI container config into the sandbox's. This
// package is the one builder of the container's OCI spec, its
// CustomSpec: the process from the config over the image's defaults, the
// security context, and the mounts, with host paths as their sources.
// The user and groups are resolved here, against the rootfs, by the
// sandbox layer's rules and the SupplementalGroupsPolicy, and handed on
// in numbers: ContainerStatus reports them. The sandbox layer only maps
// the root and the mount sources into the guest and applies Resources
// as the guest can.
func (s *Service) containerConfig(id, rootfs string, pod podRecord, config *runtime.ContainerConfig, img *imgspecv1.ImageConfig) (sandbox.ContainerConfig, error) {
	spec, err := sandbox.DefaultSpec()
	if err != nil {
		return sandbox.ContainerConfig{}, err
	}
	sc := config.GetLinux().GetSecurityContext()
	if sc.GetRunAsGroup() != nil && sc.GetRunAsUser() == nil && sc.GetRunAsUsername() == "" {
		return sandbox.ContainerConfig{}, invalidArgument("container %q: RunAsGroup needs RunAsUser or RunAsUsername", config.Metadata.Name)
	}
	if err := setPIDNamespace(spec, sc.GetNamespaceOptions().GetPid(), pod); err != nil {
		return sandbox.ContainerConfig{}, err
	}
	ids, err := podUserns(pod.Config)
	if err != nil {
		return sandbox.ContainerConfig{}, err
	}
	if err := setUserNamespace(spec, ids, sc.GetNamespaceOptions().GetUsernsOptions()); err != nil {
		return sandbox.ContainerConfig{}, fmt.Errorf("container %q: %w", config.Metadata.Name, err)
	}
	if err := setProcess(spec, config, img); err != nil {
		return sandbox.ContainerConfig{}, err
	}
	spec.Process.Capabilities = capabilities(sc)
	spec.Process.NoNewPrivileges = sc.GetNoNewPrivs()
	cmd := sandbox.Cmd{Interactive: config.Stdin}
	if err := setUser(&cmd, rootfs, sc, img); err != nil {
		return sandbox.ContainerConfig{}, fmt.Errorf("container %q: %w", config.Metadata.Name, err)
	}

	if sc.GetPrivileged() {
		spec.Linux.MaskedPaths, spec.Linux.ReadonlyPaths = nil, nil
		for i, m := range spec.Mounts {
			if m.Destination == "/sys" {
				spec.Mounts[i].Options = removeOption(m.Options, "ro")
			}
		}
	} else {
		if p := sc.GetMaskedPaths(); len(p) > 0 {
			spec.Linux.MaskedPaths = p
		}
		if p := sc.GetReadonlyPaths(); len(p) > 0 {
			spec.Linux.ReadonlyPaths = p
		}
	}
	// The seccomp filter depends on the capabilities, set above.
	if spec.Linux.Seccomp, err = seccompProfile(spec, sc); err != nil {
		return sandbox.ContainerConfig{}, err
	}
	if adj := config.GetLinux().GetResources().GetOomScoreAdj(); adj != 0 {
		v := int(adj)
		spec.Process.OOMScoreAdj = &v
	}
	spec.Annotations = map[string]string{
		"io.kubernetes.cri.container-type": "container",
		"io.kubernetes.cri.container-name": config.Metadata.Name,
		"io.kubernetes.cri.sandbox-id":     pod.ID,
	}
	maps.Copy(spec.Annotations, config.Annotations)

	mounts, err := s.containerMounts(pod, config)
	if err != nil {
		return sandbox.ContainerConfig{}, err
	}
	for _, m := range mounts {
		removeMount(spec, m.Destination)
		spec.Mounts = append(spec.Mounts, m)
	}
	return sandbox.ContainerConfig{
		ID:             id,
		RootFs:         rootfs,
		ReadonlyRootfs: sc.GetReadonlyRootfs(),
		Cmd:            cmd,
		Annotations:    config.Annotations,
		Resources:      resources(config.GetLinux().GetResources()),
		CustomSpec:     spec,
	}, nil
}

// removeMount drops the spec's mount on dest, which a mount of the
// config replaces.
func removeMount(spec *specs.Spec, dest string) {
	spec.Mounts = slices.DeleteFunc(spec.Mounts, func(m specs.Mount) bool { return m.Destination == dest })
}

// setPIDNamespace gives the container its own PID namespace, or the
// pod's, by listing none (a namespace the spec does not list is the
// pod's): in a VM the guest's, whose PID 1 is the agent, as a pod's is its
// pause process elsewhere; for OS containers the infra container's, or
// the host's for a pod that shares it.
func setPIDNamespace(spec *specs.Spec, mode runtime.NamespaceMode, pod podRecord) error {
	podMode := pod.Config.GetLinux().GetSecurityContext().GetNamespaceOptions().GetPid()
	switch {
	case mode == runtime.NamespaceMode_CONTAINER:
		return nil
	case mode == runtime.NamespaceMode_POD, mode == runtime.NamespaceMode_NODE && podMode == runtime.NamespaceMode_NODE:
		var kept []specs.LinuxNamespace
		for _, ns := range spec.Linux.Namespaces {
			if ns.Type != specs.PIDNamespace {
				kept = append(kept, ns)
			}
		}
		spec.Linux.Namespaces = kept
		return nil
	}
	return invalidArgument("PID namespace mode %s is not supported: the pod does not share the host's", mode)
}

// seccompProfile is the container's seccomp filter: none for unconfined
// and privileged containers, runtime-tools' port of Docker's default for
// RuntimeDefault, or a profile file of the host for Localhost.
func seccompProfile(spec *specs.Spec, sc *runtime.LinuxContainerSecurityContext) (*specs.LinuxSeccomp, error) {
	if sc.GetPrivileged() {
		return nil, nil
	}
	profile := sc.GetSeccomp()
	switch profile.GetProfileType() {
	case runtime.SecurityProfile_RuntimeDefault:
		if profile == nil {
			return nil, nil // no profile at all: unconfined, as kubelet means it
		}
		return seccomp.DefaultProfile(spec), nil
	case runtime.SecurityProfile_Unconfined:
		return nil, nil
	case runtime.SecurityProfile_Localhost:
		b, err := os.ReadFile(profile.GetLocalhostRef())
		if err != nil {
			return nil, invalidArgument("seccomp profile %q: %v", profile.GetLocalhostRef(), err)
		}
		var filter specs.LinuxSeccomp
		if err := json.Unmarshal(b, &filter); err != nil {
			return nil, invalidArgument("seccomp profile %q: %v", profile.GetLocalhostRef(), err)
		}
		return &filter, nil
	}
	return nil, invalidArgument("unknown seccomp profile type %s", profile.GetProfileType())
}

// setProcess sets the spec's process from the config over the image's
// defaults, as Docker and containerd merge them: the config's command
// replaces the entrypoint, and args replace the image's cmd; without a
// command, the image's cmd applies only when args are empty too.
func setProcess(spec *specs.Spec, config *runtime.ContainerConfig, img *imgspecv1.ImageConfig) error {
	command, args := config.Command, config.Args
	if len(command) == 0 {
		if len(args) == 0 {
			args = img.Cmd
		}
		if !(len(img.Entrypoint) == 1 && img.Entrypoint[0] == "") {
			command = img.Entrypoint
		}
	}
	argv := append(append([]string{}, command...), args...)
	if len(argv) == 0 {
		return invalidArgument("container %q has no command and its image none either", config.Metadata.Name)
	}
	g := generate.NewFromSpec(spec)
	g.SetProcessArgs(argv)
	cwd := config.WorkingDir
	if cwd == "" {
		cwd = img.WorkingDir
	}
	if cwd == "" {
		cwd = "/"
	}
	g.SetProcessCwd(cwd)
	g.SetProcessTerminal(config.Tty)
	// The default spec's environment, the image's over it, then the
	// config's.
	for _, e := range img.Env {
		k, v, _ := strings.Cut(e, "=")
		g.AddProcessEnv(k, v)
	}
	for _, kv := range config.Envs {
		g.AddProcessEnv(kv.Key, string(kv.Value))
	}
	return nil
}

// setUser takes the user and groups from the security context, or the
// image's USER, and resolves them against the container's /etc/passwd
// and /etc/group: the groups /etc/group lists the user in are added to
// the supplemental groups asked for, unless the SupplementalGroupsPolicy
// is Strict. cmd then holds the numbers, the whole list of groups.
func setUser(cmd *sandbox.Cmd, rootfs string, sc *runtime.LinuxContainerSecurityContext, img *imgspecv1.ImageConfig) error {
	user, group, _ := strings.Cut(img.User, ":")
	switch {
	case sc.GetRunAsUser() != nil:
		user, group = strconv.FormatInt(sc.GetRunAsUser().GetValue(), 10), ""
	case sc.GetRunAsUsername() != "":
		user, group = sc.GetRunAsUsername(), ""
	}
	if sc.GetRunAsGroup() != nil {
		group = strconv.FormatInt(sc.GetRunAsGroup().GetValue(), 10)
	}
	cmd.User, cmd.PrimaryGroup = user, group
	for _, g := range sc.GetSupplementalGroups() {
		cmd.SupplementaryGroups = append(cmd.SupplementaryGroups, strconv.FormatInt(g, 10))
	}
	switch p := sc.GetSupplementalGroupsPolicy(); p {
	case runtime.SupplementalGroupsPolicy_Merge:
	case runtime.SupplementalGroupsPolicy_Strict:
		cmd.StrictGroups = true
	default:
		return invalidArgument("unknown supplemental groups policy %s", p)
	}
	u, err := sandbox.ResolveUser(rootfs, *cmd)
	if err != nil {
		return err
	}
	u.Set(cmd)
	return nil
}

// capabilities applies the security context's additions and drops to the
// default set; a privileged container gets every capability.
func capabilities(sc *runtime.LinuxContainerSecurityContext) *specs.LinuxCapabilities {
	var caps []string
	if sc.GetPrivileged() {
		caps = allCapabilities()
	} else {
		// As containerd: ALL first (add, then drop), so that single
		// capabilities still apply over it: drop ALL and add NET_ADMIN is
		// NET_ADMIN alone; add ALL and drop CHOWN all but CHOWN.
		set := map[string]bool{}
		for _, c := range defaultCapabilities {
			set[c] = true
		}
		add, drop := sc.GetCapabilities().GetAddCapabilities(), sc.GetCapabilities().GetDropCapabilities()
		if slices.ContainsFunc(add, isAll) {
			for _, a := range allCapabilities() {
				set[a] = true
			}
		}
		if slices.ContainsFunc(drop, isAll) {
			clear(set)
		}
		for _, c := range add {
			if !isAll(c) {
				set[capName(c)] = true
			}
		}
		for _, c := range drop {
			if !isAll(c) {
				delete(set, capName(c))
			}
		}
		for _, c := range allCapabilities() {
			if set[c] {
				caps = append(caps, c)
			}
		}
	}
	return &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps}
}

func isAll(c string) bool { return strings.EqualFold(c, "ALL") }

func capName(c string) string {
	c = strings.ToUpper(c)
	if !strings.HasPrefix(c, "CAP_") {
		c = "CAP_" + c
	}
	return c
}

func allCapabilities() []string {
	var caps []string
	for _, c := range capability.ListKnown() {
		caps = append(caps, "CAP_"+strings.ToUpper(c.String()))
	}
	return caps
}

func removeOption(opts []string, drop string) []string {
	var out []string
	for _, o := range opts {
		if o != drop {
			out = append(out, o)
		}
	}
	return out
}

// resources converts CRI's container resources to OCI's.
func resources(r *runtime.LinuxContainerResources) specs.LinuxResources {
	var out specs.LinuxResources
	if r == nil {
		return out
	}
	cpu := &specs.LinuxCPU{Cpus: r.CpusetCpus, Mems: r.CpusetMems}
	if r.CpuShares > 0 {
		shares := uint64(r.CpuShares)
		cpu.Shares = &shares
	}
	if r.CpuQuota > 0 {
		cpu.Quota = &r.CpuQuota
	}
	if r.CpuPeriod > 0 {
		period := uint64(r.CpuPeriod)
		cpu.Period = &period
	}
	out.CPU = cpu
	if r.MemoryLimitInBytes > 0 {
		limit := r.MemoryLimitInBytes
		out.Memory = &specs.LinuxMemory{Limit: &limit}
		if r.MemorySwapLimitInBytes > 0 {
			swap := r.MemorySwapLimitInBytes
			out.Memory.Swap = &swap
		}
	}
	for _, h := range r.HugepageLimits {
		out.HugepageLimits = append(out.HugepageLimits, specs.LinuxHugepageLimit{Pagesize: h.PageSize, Limit: h.Limit})
	}
	if len(r.Unified) > 0 {
		out.Unified = r.Unified
	}
	return out
}

// containerMounts are the config's host-path mounts plus the pod's
// hostname, hosts and resolv.conf where the config brings none: bind
// mounts with their host paths as sources.
func (s *Service) containerMounts(pod podRecord, config *runtime.ContainerConfig) ([]specs.Mount, error) {
	var mounts []specs.Mount
	taken := map[string]bool{}
	for _, m := range config.Mounts {
		image := m.GetImage().GetImage() != ""
		if image && m.HostPath == "" {
			return nil, fmt.Errorf("image volume %q is not mounted", m.ContainerPath)
		}
		if m.ContainerPath == "" || m.HostPath == "" {
			return nil, invalidArgument("mount %q to %q: both paths are needed", m.HostPath, m.ContainerPath)
		}
		// As containerd: a recursive read-only mount is read-only, and
		// private, as a mount propagated later into it could not be
		// made read-only.
		if m.RecursiveReadOnly {
			if !m.Readonly {
				return nil, invalidArgument("mount %q: recursive read-only needs read-only", m.ContainerPath)
			}
			if p := m.Propagation; p != runtime.MountPropagation_PROPAGATION_PRIVATE {
				return nil, invalidArgument("mount %q: recursive read-only needs private propagation, not %s", m.ContainerPath, p)
			}
		}
		// A missing host path becomes a directory, as containerd does.
		if _, err := os.Stat(m.HostPath); !image && os.IsNotExist(err) {
			if err := os.MkdirAll(m.HostPath, 0o755); err != nil {
				return nil, fmt.Errorf("create host path %q: %w", m.HostPath, err)
			}
		}
		mounts = append(mounts, bindMount(m.HostPath, m.ContainerPath, m.Readonly, m.RecursiveReadOnly))
		taken[filepath.Clean(m.ContainerPath)] = true
	}
	for _, name := range []string{"hostname", "hosts", "resolv.conf"} {
		dest := "/etc/" + name
		if taken[dest] {
			continue
		}
		mounts = append(mounts, bindMount(filepath.Join(s.podDir(pod.ID), name), dest, config.GetLinux().GetSecurityContext().GetReadonlyRootfs(), false))
	}
	return mounts, nil
}

// bindMount is a bind of source on dest: read-only ("ro"), or read-only
// with its submounts too ("rro", runc's mount_setattr with AT_RECURSIVE).
func bindMount(source, dest string, readOnly, recursive bool) specs.Mount {
	opts := []string{"rbind"}
	switch {
	case readOnly && recursive:
		opts = append(opts, "rro")
	case readOnly:
		opts = append(opts, "ro")
	}
	return specs.Mount{Destination: dest, Type: "bind", Source: source, Options: opts}
}
