package sandbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"

	"github.com/moby/sys/user"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-tools/generate"

	"github.com/vc-cri/vc-cri/internal/safemount"
)

// The container's OCI spec has one builder: the caller, whose CustomSpec
// is the container's process, security and mounts; or, without one,
// seedSpec, from the specification's fields. Over either, this package
// does only what the VM dictates, each in one place: freezeUser and
// setUser resolve Cmd's user and groups against the rootfs, once (or the
// caller does, with ResolveUser, and hands on the numbers); HostSpec is
// the result as the host sees it, which OS containers (pkg/runc) run as
// it is; containerSpec maps its root and bind mounts' host sources into
// the shared directory and sets the resources the guest can apply
// (guestResources, at create and update); the agent sets the cgroup
// path, in the guest's own tree.

// HostSpec is the container's OCI spec as the host sees it, at create:
// its CustomSpec, or seedSpec, with Cmd's user and groups resolved
// against the rootfs and frozen into c.Cmd as numbers (freezeUser), the
// root at c.RootFs, the bind mounts' sources on the host, Resources and
// DeviceInfos applied (beyond the specification). A runtime of OS
// containers runs it as it is; a VM maps it into its guest
// (containerSpec).
func HostSpec(c *ContainerConfig) (*specs.Spec, error) {
	if c.CustomSpec != nil && (setsProcess(c.Cmd) || len(c.Mounts) > 0) {
		return nil, fmt.Errorf("container %q: the CustomSpec has the process and mounts, Cmd gives only the user and groups, and Mounts none: %w", c.ID, ErrInvalidConfig)
	}
	// Before any guest has seen the rootfs: from here on its /etc/passwd
	// may be a guest's.
	if err := freezeUser(c); err != nil {
		return nil, fmt.Errorf("container %q: %w", c.ID, err)
	}
	g, err := baseSpec(c)
	if err != nil {
		return nil, fmt.Errorf("container %q: %w", c.ID, err)
	}
	g.SetRootPath(c.RootFs)
	g.SetRootReadonly(c.ReadonlyRootfs)
	if c.CustomSpec == nil || !isZeroResources(c.Resources) {
		res := c.Resources
		g.Config.Linux.Resources = &res
	}
	for _, d := range c.DeviceInfos {
		addDevice(&g, d)
	}
	return g.Config, nil
}

// containerSpec builds the OCI spec the agent runs, at create: the
// container's HostSpec with the guest's paths.
func containerSpec(c *ContainerConfig, share *containerShare) (*specs.Spec, error) {
	spec, err := HostSpec(c)
	if err != nil {
		return nil, err
	}
	if spec.Root.Path, err = share.shareRootfs(c.RootFs); err != nil {
		return nil, err
	}
	// In a user namespace, the bind mounts' sources are idmapped by its
	// mappings, as containerd does for a pod of hostUsers: false: the
	// container sees a file owned by 0 on the host owned by its root.
	// The rootfs needs none: its owner (the image store) maps it.
	var ids *safemount.IDMap
	if hasUserNamespace(spec) {
		if ids, err = safemount.NewIDMap(spec.Linux.UIDMappings, spec.Linux.GIDMappings); err != nil {
			return nil, fmt.Errorf("container %q: %w", c.ID, err)
		}
		defer ids.Close()
	}
	binds := 0
	for i, m := range spec.Mounts {
		if !isBind(m) {
			continue
		}
		sm, err := share.shareMount(binds, m, ids)
		if err != nil {
			return nil, err
		}
		spec.Mounts[i] = sm
		binds++
	}
	return spec, nil
}

// ExecProcess is the OCI process of an exec in the container c (as
// HostSpec left it): the container's own process with the exec's command
// applied over it (beyond the specification).
func ExecProcess(c *ContainerConfig, cmd Cmd) (*specs.Process, error) {
	g, err := baseSpec(c)
	if err != nil {
		return nil, err
	}
	if err := applyCmd(&g, c.RootFs, cmd); err != nil {
		return nil, err
	}
	g.SetProcessTerminal(cmd.Console != "")
	return g.Config.Process, nil
}

// baseSpec is the container's spec with host paths, and its process's
// user from Cmd: a copy of the CustomSpec, or seedSpec.
func baseSpec(c *ContainerConfig) (generate.Generator, error) {
	var g generate.Generator
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
		g = generate.NewFromSpec(&spec)
		if err := setUser(&g, c.RootFs, c.Cmd); err != nil {
			return generate.Generator{}, err
		}
	} else {
		var err error
		if g, err = seedSpec(c); err != nil {
			return generate.Generator{}, err
		}
	}
	if g.Config.Process == nil || len(g.Config.Process.Args) == 0 {
		return generate.Generator{}, fmt.Errorf("no command: %w", ErrInvalidConfig)
	}
	if g.Config.Linux == nil {
		g.Config.Linux = &specs.Linux{}
	}
	return g, nil
}

// seedSpec is the spec of a container described by the specification's
// fields alone: DefaultSpec with Cmd, Mounts and Annotations applied.
func seedSpec(c *ContainerConfig) (generate.Generator, error) {
	spec, err := DefaultSpec()
	if err != nil {
		return generate.Generator{}, err
	}
	g := generate.NewFromSpec(spec)
	if err := applyCmd(&g, c.RootFs, c.Cmd); err != nil {
		return generate.Generator{}, err
	}
	for _, m := range c.Mounts {
		source := m.HostPath
		if source == "" {
			source = m.Source
		}
		opts := slices.Clone(m.Options)
		if m.ReadOnly && !slices.Contains(opts, "ro") {
			opts = append(opts, "ro")
		}
		g.RemoveMount(m.Destination)
		g.AddMount(specs.Mount{Destination: m.Destination, Type: m.Type, Source: source, Options: opts})
	}
	for k, v := range c.Annotations {
		g.AddAnnotation(k, v)
	}
	return g, nil
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

// setsProcess tells whether cmd sets more of the process than its user,
// groups and stdin.
func setsProcess(cmd Cmd) bool {
	caps := cmd.Capabilities
	return len(cmd.Args)+len(cmd.Envs) > 0 || cmd.WorkDir != "" || cmd.Console != "" || cmd.NoNewPrivileges ||
		len(caps.Bounding)+len(caps.Effective)+len(caps.Permitted)+len(caps.Inheritable)+len(caps.Ambient) > 0
}

// upgradeSpec moves into the CustomSpec of a container that an earlier
// vc-cri created, which applied Cmd over its CustomSpec, what Cmd set of
// the process: the spec then is whole, as baseSpec takes it, and Cmd
// keeps the user and groups it froze and stdin. containerSpec refuses
// such a Cmd now, so only those containers have anything to move.
func upgradeSpec(c *ContainerConfig) {
	if c.CustomSpec == nil || !setsProcess(c.Cmd) {
		return
	}
	process := c.Cmd
	process.User, process.PrimaryGroup, process.SupplementaryGroups, process.StrictGroups = "", "", nil, false
	g := generate.NewFromSpec(c.CustomSpec)
	_ = applyCmd(&g, c.RootFs, process) // no user to resolve: no file read, no error
	c.Cmd = Cmd{
		User: c.Cmd.User, PrimaryGroup: c.Cmd.PrimaryGroup, SupplementaryGroups: c.Cmd.SupplementaryGroups,
		StrictGroups: c.Cmd.StrictGroups, Interactive: c.Cmd.Interactive,
	}
}

// applyCmd applies what cmd sets to the spec's process.
func applyCmd(g *generate.Generator, rootfs string, cmd Cmd) error {
	if len(cmd.Args) > 0 {
		g.SetProcessArgs(cmd.Args)
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

// hasUserNamespace tells whether the spec puts the container in a user
// namespace of mappings of its own.
func hasUserNamespace(spec *specs.Spec) bool {
	if spec.Linux == nil || len(spec.Linux.UIDMappings) == 0 {
		return false
	}
	return slices.ContainsFunc(spec.Linux.Namespaces, func(ns specs.LinuxNamespace) bool { return ns.Type == specs.UserNamespace })
}

func isBind(m specs.Mount) bool {
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

// maxUserFile bounds the /etc/passwd and /etc/group the host reads.
const maxUserFile = 4 << 20

// User is a resolved user: what a container's process runs as, in
// numbers.
type User struct {
	UID, GID uint32
	// Groups are the supplementary groups in force: the primary group
	// first, then the others, each once.
	Groups []uint32
}

// ResolveUser resolves cmd's user and groups against the root
// filesystem rootfs, as CreateContainer does, and returns them in
// numbers: the user (uid 0 when cmd names none, where CreateContainer
// would leave the spec's 0:0 with no supplementary groups) and its
// primary group, from /etc/passwd unless given; then the groups
// /etc/group lists the user in, unless cmd.StrictGroups; then
// SupplementaryGroups. The primary group is always among the
// supplementary ones, as containerd has it, so that the process's group
// list is the whole of what it is in. A caller that must know the user
// before CreateContainer (CRI reports it) resolves it here and hands the
// result on with User.Set: CreateContainer then reads no file.
func ResolveUser(rootfs string, cmd Cmd) (User, error) {
	if cmd.User == "" {
		cmd.User = "0"
	}
	u, err := resolveUser(rootfs, cmd, true)
	if err != nil {
		return User{}, err
	}
	return *u, nil
}

// Set makes cmd run as u: its user and groups in numbers, the groups
// the whole list (StrictGroups), so that nothing is looked up again.
func (u User) Set(cmd *Cmd) {
	cmd.User = strconv.FormatUint(uint64(u.UID), 10)
	cmd.PrimaryGroup = strconv.FormatUint(uint64(u.GID), 10)
	cmd.SupplementaryGroups = nil
	for _, g := range u.Groups {
		cmd.SupplementaryGroups = append(cmd.SupplementaryGroups, strconv.FormatUint(uint64(g), 10))
	}
	cmd.StrictGroups = true
}

// freezeUser resolves the container's user and groups once, at create,
// and keeps them as numbers: every exec reuses them, and the host never
// reads the container's /etc/passwd again once the guest can write it.
func freezeUser(c *ContainerConfig) error {
	u, err := resolveUser(c.RootFs, c.Cmd, true)
	if err != nil || u == nil {
		return err
	}
	u.Set(&c.Cmd)
	return nil
}

// setUser applies Cmd's user and groups to the spec: at exec, so
// numbers are taken as they are (see resolveUser).
func setUser(g *generate.Generator, rootfs string, cmd Cmd) error {
	u, err := resolveUser(rootfs, cmd, false)
	if err != nil || u == nil {
		return err
	}
	g.SetProcessUID(u.UID)
	g.SetProcessGID(u.GID)
	g.ClearProcessAdditionalGids()
	for _, gid := range u.Groups {
		g.AddProcessAdditionalGid(gid)
	}
	return nil
}

// resolveUser resolves Cmd's user and groups, names or numbers, against
// the container's own /etc/passwd and /etc/group, as runc does; nil if
// Cmd sets none. The groups are the primary one, the user's groups in
// /etc/group (whatever the primary group, as Kubernetes'
// SupplementalGroupsPolicy Merge has it; none with StrictGroups), and
// SupplementaryGroups, each once.
//
// A user and groups all given as numbers need no file when the groups
// are the whole list: with StrictGroups, or at exec (atCreate false),
// where the numbers are the ones frozen at create (containers of an
// earlier vc-cri have them without StrictGroups). The files are read
// below the rootfs without following symlinks, only if regular, never
// blocking, and of at most maxUserFile bytes.
func resolveUser(rootfs string, cmd Cmd, atCreate bool) (*User, error) {
	spec := cmd.User
	if cmd.PrimaryGroup != "" {
		spec += ":" + cmd.PrimaryGroup
	}
	if spec == "" && len(cmd.SupplementaryGroups) == 0 {
		return nil, nil
	}
	if uid, ok := number(cmd.User); ok && (cmd.StrictGroups || !atCreate) {
		if gid, ok := number(cmd.PrimaryGroup); ok {
			u := &User{UID: uid, GID: gid}
			all := true
			for _, name := range cmd.SupplementaryGroups {
				sg, ok := number(name)
				all = all && ok
				u.Groups = append(u.Groups, sg)
			}
			if all {
				u.Groups = withPrimary(gid, u.Groups)
				return u, nil
			}
		}
	}
	passwd, group, err := userFiles(rootfs)
	if err != nil {
		return nil, err
	}
	defaults := &user.ExecUser{Uid: 0, Gid: 0, Home: "/"}
	eu, err := user.GetExecUser(spec, defaults, bytes.NewReader(passwd), bytes.NewReader(group))
	if err != nil {
		return nil, fmt.Errorf("user %q: %w: %w", spec, err, ErrInvalidConfig)
	}
	u := &User{UID: uint32(eu.Uid), GID: uint32(eu.Gid)}
	if !cmd.StrictGroups {
		// GetExecUser lists the user's groups only when no primary group
		// is given (runc's rule); Merge wants them either way.
		sgids := eu.Sgids
		if cmd.PrimaryGroup != "" {
			sgids = memberships(passwd, group, cmd.User, eu.Uid)
		}
		for _, gid := range sgids {
			u.Groups = append(u.Groups, uint32(gid))
		}
	}
	for _, name := range cmd.SupplementaryGroups {
		gid, ok := number(name)
		if !ok {
			groups, gerr := user.ParseGroupFilter(bytes.NewReader(group), func(gr user.Group) bool { return gr.Name == name })
			if gerr != nil || len(groups) == 0 {
				return nil, fmt.Errorf("group %q: not found: %w", name, ErrInvalidConfig)
			}
			gid = uint32(groups[0].Gid)
		}
		u.Groups = append(u.Groups, gid)
	}
	u.Groups = withPrimary(u.GID, u.Groups)
	return u, nil
}

// memberships are the groups /etc/group lists the user in: the user
// named name, or, for a number, the first of /etc/passwd with that uid.
func memberships(passwd, group []byte, name string, uid int) []int {
	if _, ok := number(name); ok || name == "" {
		users, err := user.ParsePasswdFilter(bytes.NewReader(passwd), func(u user.User) bool { return u.Uid == uid })
		if err != nil || len(users) == 0 {
			return nil
		}
		name = users[0].Name
	}
	groups, err := user.ParseGroupFilter(bytes.NewReader(group), func(g user.Group) bool { return slices.Contains(g.List, name) })
	if err != nil {
		return nil
	}
	var gids []int
	for _, g := range groups {
		gids = append(gids, g.Gid)
	}
	return gids
}

// withPrimary is groups with gid first and every group once, in order.
func withPrimary(gid uint32, groups []uint32) []uint32 {
	out := []uint32{gid}
	for _, g := range groups {
		if !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	return out
}

// number parses a user or group ID.
func number(s string) (uint32, bool) {
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err == nil
}

// userFiles reads /etc/passwd and /etc/group of rootfs (of the host when
// rootfs is ""); a missing file reads as empty, as for runc.
func userFiles(rootfs string) (passwd, group []byte, err error) {
	if rootfs == "" {
		pp, _ := user.GetPasswdPath()
		gp, _ := user.GetGroupPath()
		passwd, _ = os.ReadFile(pp)
		group, _ = os.ReadFile(gp)
		return passwd, group, nil
	}
	root, err := safemount.OpenRoot(rootfs)
	if err != nil {
		return nil, nil, fmt.Errorf("rootfs %q: %w", rootfs, errors.Join(err, ErrInvalidConfig))
	}
	defer root.Close()
	read := func(rel string) ([]byte, error) {
		b, err := root.ReadFile(rel, maxUserFile)
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("container's /%s: %w", rel, errors.Join(err, ErrInvalidConfig))
		}
		return b, nil
	}
	if passwd, err = read("etc/passwd"); err != nil {
		return nil, nil, err
	}
	if group, err = read("etc/group"); err != nil {
		return nil, nil, err
	}
	return passwd, group, nil
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
