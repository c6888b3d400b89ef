package main

import (
	"os"
	"os/exec"
	"slices"
	"strconv"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-tools/generate"
)

// TestJoinUserns: a container of the pod's user namespace joins the
// holder's user namespace (runc reads the mappings there) and PID
// namespace, unless it has a PID namespace of its own, gets a cgroup
// namespace and the guest's /sys and /dev/mqueue in place of the ones it
// may not mount.
func TestJoinUserns(t *testing.T) {
	u := &podUserns{cmd: &exec.Cmd{Process: &os.Process{Pid: 42}}}
	base := func(ownPID bool) *specs.Spec {
		g, err := generate.New("linux")
		if err != nil {
			t.Fatal(err)
		}
		spec := g.Config
		if !ownPID {
			spec.Linux.Namespaces = slices.DeleteFunc(spec.Linux.Namespaces, func(ns specs.LinuxNamespace) bool { return ns.Type == specs.PIDNamespace })
		}
		ids := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 100000}}
		spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		spec.Linux.UIDMappings, spec.Linux.GIDMappings = ids, ids
		return spec
	}
	for _, ownPID := range []bool{false, true} {
		t.Run("own PID namespace "+strconv.FormatBool(ownPID), func(t *testing.T) {
			spec := base(ownPID)
			joinUserns(spec, u)
			l := spec.Linux
			if len(l.UIDMappings)+len(l.GIDMappings) != 0 {
				t.Errorf("mappings %v/%v left beside the path", l.UIDMappings, l.GIDMappings)
			}
			ns := map[specs.LinuxNamespaceType]string{}
			for _, n := range l.Namespaces {
				ns[n.Type] = n.Path
			}
			wantPID := "/proc/42/ns/pid"
			if ownPID {
				wantPID = ""
			}
			if p, ok := ns[specs.PIDNamespace]; ns[specs.UserNamespace] != "/proc/42/ns/user" || !ok || p != wantPID {
				t.Errorf("namespaces %v: want the holder's user namespace, PID namespace %q", l.Namespaces, wantPID)
			}
			if p, ok := ns[specs.CgroupNamespace]; !ok || p != "" {
				t.Errorf("namespaces %v: want a cgroup namespace of its own", l.Namespaces)
			}
			mounts := map[string]specs.Mount{}
			for _, m := range spec.Mounts {
				mounts[m.Destination] = m
			}
			if m := mounts["/sys"]; m.Type != "bind" || m.Source != "/sys" || !slices.Contains(m.Options, "rro") {
				t.Errorf("/sys %+v: want the guest's, recursively read-only", m)
			}
			if m := mounts["/dev/mqueue"]; m.Type != "bind" || m.Source != guestMqueue {
				t.Errorf("/dev/mqueue %+v: want the guest's", m)
			}
			if m := mounts["/sys/fs/cgroup"]; m.Type != "cgroup" || !slices.Contains(m.Options, "ro") {
				t.Errorf("/sys/fs/cgroup %+v: want its cgroup namespace's, read-only", m)
			}
		})
	}
}

// TestUserSpecRefusals: the agent takes a user namespace only with its
// mappings and no path, and one pod has one set of mappings.
func TestUserSpecRefusals(t *testing.T) {
	a := newAgent(t.TempDir())
	ids := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 100000}}
	a.userns = &podUserns{cmd: &exec.Cmd{Process: &os.Process{Pid: 42}}, uids: ids, gids: ids}
	other := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 2000, Size: 100000}}
	for name, l := range map[string]*specs.Linux{
		"path":           {Namespaces: []specs.LinuxNamespace{{Type: specs.UserNamespace, Path: "/proc/1/ns/user"}}, UIDMappings: ids, GIDMappings: ids},
		"no mappings":    {Namespaces: []specs.LinuxNamespace{{Type: specs.UserNamespace}}},
		"other mappings": {Namespaces: []specs.LinuxNamespace{{Type: specs.UserNamespace}}, UIDMappings: other, GIDMappings: other},
	} {
		if err := a.userSpec(&specs.Spec{Linux: l}); err == nil {
			t.Errorf("%s: userSpec took %+v", name, l)
		}
	}
	if err := a.userSpec(&specs.Spec{Linux: &specs.Linux{}}); err != nil {
		t.Errorf("a spec without a user namespace: %v", err)
	}
}
