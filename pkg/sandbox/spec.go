package sandbox

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/moby/sys/user"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-tools/generate"
)

// containerSpec builds the OCI spec the agent runs: the CustomSpec, or
// runtime-tools' defaults, with the container's configuration applied
// and its paths turned into guest paths.
func containerSpec(c *ContainerConfig, share *containerShare) (*specs.Spec, error) {
	g, err := baseSpec(c)
	if err != nil {
		return nil, err
	}
	root, err := share.shareRootfs(c.RootFs)
	if err != nil {
		return nil, err
	}
	g.SetRootPath(root)
	g.SetRootReadonly(c.ReadonlyRootfs)
	if err := applyCmd(&g, c.RootFs, c.Cmd); err != nil {
		return nil, fmt.Errorf("container %q: %w", c.ID, err)
	}
	for i, m := range c.Mounts {
		if !isBind(m) {
			g.AddMount(specs.Mount{Destination: m.Destination, Type: m.Type, Source: m.Source, Options: m.Options})
			continue
		}
		sm, err := share.shareMount(i, m)
		if err != nil {
			return nil, err
		}
		g.RemoveMount(m.Destination)
		g.AddMount(sm)
	}
	for _, d := range c.DeviceInfos {
		addDevice(&g, d)
	}
	if c.CustomSpec == nil || !isZeroResources(c.Resources) {
		res := c.Resources
		g.Config.Linux.Resources = &res
	}
	for k, v := range c.Annotations {
		g.AddAnnotation(k, v)
	}
	return g.Config, nil
}

// execProcess builds the OCI process of an exec: the container's own
// process with the exec's command applied over it.
func execProcess(c *ContainerConfig, cmd Cmd) (*specs.Process, error) {
	g, err := baseSpec(c)
	if err != nil {
		return nil, err
	}
	if err := applyCmd(&g, c.RootFs, c.Cmd); err != nil {
		return nil, err
	}
	if err := applyCmd(&g, c.RootFs, cmd); err != nil {
		return nil, err
	}
	g.SetProcessTerminal(cmd.Console != "")
	return g.Config.Process, nil
}

// baseSpec starts from the CustomSpec, or from runtime-tools' defaults
// made fit for a container of a pod VM.
func baseSpec(c *ContainerConfig) (generate.Generator, error) {
	if c.CustomSpec != nil {
		// The generator edits in place: work on a copy.
		b, err := json.Marshal(c.CustomSpec)
		if err != nil {
			return generate.Generator{}, err
		}
		var spec specs.Spec
		if err := json.Unmarshal(b, &spec); err != nil {
			return generate.Generator{}, err
		}
		return generate.NewFromSpec(&spec), nil
	}
	spec, err := DefaultSpec()
	if err != nil {
		return generate.Generator{}, err
	}
	return generate.NewFromSpec(spec), nil
}

// DefaultSpec is the OCI spec a container of a pod VM starts from:
// runtime-tools' defaults without network, IPC and UTS namespaces, as
// the guest is the pod: its containers share the guest's, as a
// Kubernetes pod's containers share the pause container's.
func DefaultSpec() (*specs.Spec, error) {
	g, err := generate.New("linux")
	if err != nil {
		return nil, err
	}
	for _, ns := range []string{"network", "ipc", "uts"} {
		if err := g.RemoveLinuxNamespace(ns); err != nil {
			return nil, err
		}
	}
	g.SetHostname("")
	return g.Config, nil
}

// applyCmd applies what cmd sets to the spec's process.
func applyCmd(g *generate.Generator, rootfs string, cmd Cmd) error {
	if len(cmd.Args) > 0 {
		g.SetProcessArgs(cmd.Args)
	}
	if len(g.Config.Process.Args) == 0 {
		return fmt.Errorf("no command: %w", ErrInvalidConfig)
	}
	for _, e := range cmd.Envs {
		g.AddProcessEnv(e.Var, e.Value)
	}
	if cmd.WorkDir != "" {
		g.SetProcessCwd(cmd.WorkDir)
	}
	if err := setUser(g, rootfs, cmd); err != nil {
		return err
	}
	g.SetProcessTerminal(cmd.Console != "" || g.Config.Process.Terminal)
	g.SetProcessNoNewPrivileges(cmd.NoNewPrivileges || g.Config.Process.NoNewPrivileges)
	if caps := cmd.Capabilities; len(caps.Bounding)+len(caps.Effective)+len(caps.Permitted)+len(caps.Inheritable)+len(caps.Ambient) > 0 {
		g.Config.Process.Capabilities = &specs.LinuxCapabilities{
			Bounding: caps.Bounding, Effective: caps.Effective, Permitted: caps.Permitted,
			Inheritable: caps.Inheritable, Ambient: caps.Ambient,
		}
	}
	return nil
}

func isBind(m Mount) bool {
	if m.Type == "bind" {
		return true
	}
	for _, o := range m.Options {
		if o == "bind" || o == "rbind" {
			return true
		}
	}
	return false
}

func isZeroResources(r specs.LinuxResources) bool {
	return r.Memory == nil && r.CPU == nil && r.Pids == nil && r.BlockIO == nil &&
		len(r.HugepageLimits) == 0 && len(r.Devices) == 0 && len(r.Unified) == 0
}

// setUser resolves Cmd's user and groups, names or numbers, against the
// container's own /etc/passwd and /etc/group, as runc does.
func setUser(g *generate.Generator, rootfs string, cmd Cmd) error {
	spec := cmd.User
	if cmd.PrimaryGroup != "" {
		spec += ":" + cmd.PrimaryGroup
	}
	if spec == "" && len(cmd.SupplementaryGroups) == 0 {
		return nil
	}
	passwd, _ := user.GetPasswdPath()
	group, _ := user.GetGroupPath()
	if rootfs != "" {
		passwd, group = filepath.Join(rootfs, "etc/passwd"), filepath.Join(rootfs, "etc/group")
	}
	defaults := &user.ExecUser{Uid: 0, Gid: 0, Home: "/"}
	u, err := user.GetExecUserPath(spec, defaults, passwd, group)
	if err != nil {
		return fmt.Errorf("user %q: %w: %w", spec, err, ErrInvalidConfig)
	}
	g.SetProcessUID(uint32(u.Uid))
	g.SetProcessGID(uint32(u.Gid))
	for _, gid := range u.Sgids {
		g.AddProcessAdditionalGid(uint32(gid))
	}
	for _, name := range cmd.SupplementaryGroups {
		gid, err := strconv.Atoi(name)
		if err != nil {
			groups, gerr := user.ParseGroupFileFilter(group, func(gr user.Group) bool { return gr.Name == name })
			if gerr != nil || len(groups) == 0 {
				return fmt.Errorf("group %q: not found: %w", name, ErrInvalidConfig)
			}
			gid = groups[0].Gid
		}
		g.AddProcessAdditionalGid(uint32(gid))
	}
	return nil
}

// addDevice adds a device node of the guest to the container. Host
// devices are not passed through: the VM has no hotplug of them.
func addDevice(g *generate.Generator, d DeviceInfo) {
	mode := d.FileMode.Perm()
	uid, gid := d.UID, d.GID
	dev := specs.LinuxDevice{
		Path: d.ContainerPath, Type: d.DevType, Major: d.Major, Minor: d.Minor,
		FileMode: &mode, UID: &uid, GID: &gid,
	}
	g.AddDevice(dev)
	g.AddLinuxResourcesDevice(true, d.DevType, &dev.Major, &dev.Minor, "rwm")
}
