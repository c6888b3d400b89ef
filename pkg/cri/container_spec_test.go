package cri

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/vc-cri/vc-cri/hack/testimages"
	"github.com/vc-cri/vc-cri/pkg/sandbox"
)

// TestContainerConfigSpec: this package builds the whole spec; the
// sandbox's Cmd carries only the user and groups, resolved, and stdin.
func TestContainerConfigSpec(t *testing.T) {
	t.Parallel()
	s, _ := newTestService(t, t.TempDir())
	cc := containerConfig("app")
	cc.Command, cc.Args, cc.Tty, cc.Stdin = []string{"/app"}, []string{"-v"}, true, true
	cc.Envs = []*runtime.KeyValue{{Key: "PATH", Value: []byte("/opt")}, {Key: "A", Value: []byte("1")}}
	cc.Annotations = map[string]string{"note": "x"}
	cc.Mounts = []*runtime.Mount{{HostPath: t.TempDir(), ContainerPath: "/data", Readonly: true}}
	cc.Linux = &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{
		RunAsUsername: "web", SupplementalGroups: []int64{42}, NoNewPrivs: true,
		Capabilities: &runtime.Capability{DropCapabilities: []string{"chown"}, AddCapabilities: []string{"sys_admin"}},
		Seccomp:      &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault},
	}}
	img := &imgspecv1.ImageConfig{Entrypoint: []string{"/entry"}, Env: []string{"HOME=/home/web"}, WorkingDir: "/srv"}
	cfg, err := s.containerConfig("c1", userRootfs(t), podRecord{ID: "p1"}, cc, img)
	if err != nil {
		t.Fatal(err)
	}
	want := sandbox.Cmd{User: "1000", PrimaryGroup: "1001", SupplementaryGroups: []string{"1001", "2000", "42"}, StrictGroups: true, Interactive: true}
	if !slices.Equal(cfg.Cmd.SupplementaryGroups, want.SupplementaryGroups) || cfg.Cmd.User != want.User || cfg.Cmd.PrimaryGroup != want.PrimaryGroup || !cfg.Cmd.StrictGroups ||
		!cfg.Cmd.Interactive || len(cfg.Cmd.Args)+len(cfg.Cmd.Envs) != 0 || cfg.Cmd.WorkDir != "" || cfg.Cmd.Console != "" ||
		cfg.Cmd.NoNewPrivileges || len(cfg.Cmd.Capabilities.Bounding) != 0 || len(cfg.Mounts) != 0 {
		t.Fatalf("Cmd %+v, Mounts %+v: want only %+v", cfg.Cmd, cfg.Mounts, want)
	}
	p := cfg.CustomSpec.Process
	if !slices.Equal(p.Args, []string{"/app", "-v"}) || p.Cwd != "/srv" || !p.Terminal || !p.NoNewPrivileges {
		t.Errorf("process %+v", p)
	}
	for _, e := range []string{"PATH=/opt", "HOME=/home/web", "A=1", "TERM=xterm"} {
		if !slices.Contains(p.Env, e) {
			t.Errorf("env %q lacks %s", p.Env, e)
		}
	}
	if caps := p.Capabilities; !slices.Contains(caps.Bounding, "CAP_SYS_ADMIN") || slices.Contains(caps.Bounding, "CAP_CHOWN") ||
		!slices.Equal(caps.Effective, caps.Bounding) || !slices.Equal(caps.Permitted, caps.Bounding) || len(caps.Inheritable)+len(caps.Ambient) != 0 {
		t.Errorf("capabilities %+v", caps)
	}
	if cfg.CustomSpec.Linux.Seccomp == nil {
		t.Error("no seccomp filter for RuntimeDefault")
	}
	var data, resolv int
	for _, m := range cfg.CustomSpec.Mounts {
		switch m.Destination {
		case "/data":
			data++
			if m.Type != "bind" || m.Source != cc.Mounts[0].HostPath || !slices.Contains(m.Options, "ro") {
				t.Errorf("/data %+v", m)
			}
		case "/etc/resolv.conf":
			resolv++
		}
	}
	if data != 1 || resolv != 1 {
		t.Errorf("mounts %+v", cfg.CustomSpec.Mounts)
	}
	if a := cfg.CustomSpec.Annotations; a["note"] != "x" || a["io.kubernetes.cri.sandbox-id"] != "p1" {
		t.Errorf("annotations %v", a)
	}
}

// userRootfs is a container root with testimages.UserRoot's users.
func userRootfs(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	if err := testimages.UserRoot(root); err != nil {
		t.Fatal(err)
	}
	return root
}

// TestContainerUser: the user and groups are resolved against the
// container's root at create, with the SupplementalGroupsPolicy: Merge
// (the default) adds the groups /etc/group lists the user in, Strict
// does not; the primary group is among the supplementary ones either way.
func TestContainerUser(t *testing.T) {
	t.Parallel()
	s, _ := newTestService(t, t.TempDir())
	root := userRootfs(t)
	for _, tc := range []struct {
		name string
		sc   *runtime.LinuxContainerSecurityContext
		img  string
		want *runtime.LinuxContainerUser
	}{
		{"no user: root", nil, "", &runtime.LinuxContainerUser{Uid: 0, Gid: 0, SupplementalGroups: []int64{0}}},
		{"the image's user", nil, "web", &runtime.LinuxContainerUser{Uid: 1000, Gid: 1001, SupplementalGroups: []int64{1001, 2000}}},
		{"the image's user and group", nil, "web:3000", &runtime.LinuxContainerUser{Uid: 1000, Gid: 3000, SupplementalGroups: []int64{3000, 2000}}},
		{"merge", &runtime.LinuxContainerSecurityContext{RunAsUser: &runtime.Int64Value{Value: 1000}, SupplementalGroups: []int64{1234}},
			"", &runtime.LinuxContainerUser{Uid: 1000, Gid: 1001, SupplementalGroups: []int64{1001, 2000, 1234}}},
		{"merge with a group", &runtime.LinuxContainerSecurityContext{
			RunAsUser: &runtime.Int64Value{Value: 1000}, RunAsGroup: &runtime.Int64Value{Value: 3000}, SupplementalGroups: []int64{4000},
		}, "", &runtime.LinuxContainerUser{Uid: 1000, Gid: 3000, SupplementalGroups: []int64{3000, 2000, 4000}}},
		{"strict", &runtime.LinuxContainerSecurityContext{
			RunAsUser: &runtime.Int64Value{Value: 1000}, SupplementalGroups: []int64{1234},
			SupplementalGroupsPolicy: runtime.SupplementalGroupsPolicy_Strict,
		}, "", &runtime.LinuxContainerUser{Uid: 1000, Gid: 1001, SupplementalGroups: []int64{1001, 1234}}},
		{"strict by name", &runtime.LinuxContainerSecurityContext{
			RunAsUsername: "web", SupplementalGroupsPolicy: runtime.SupplementalGroupsPolicy_Strict,
		}, "", &runtime.LinuxContainerUser{Uid: 1000, Gid: 1001, SupplementalGroups: []int64{1001}}},
	} {
		cc := containerConfig("app")
		cc.Linux = &runtime.LinuxContainerConfig{SecurityContext: tc.sc}
		cfg, err := s.containerConfig("c1", root, podRecord{ID: "p1"}, cc, &imgspecv1.ImageConfig{User: tc.img, Cmd: []string{"sh"}})
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got := linuxUser(cfg.Cmd); !proto.Equal(got, tc.want) {
			t.Errorf("%s: user %v, want %v", tc.name, got, tc.want)
		}
	}
	for name, sc := range map[string]*runtime.LinuxContainerSecurityContext{
		"an unknown user":   {RunAsUsername: "nobody-here"},
		"an unknown policy": {SupplementalGroupsPolicy: 7},
	} {
		cc := containerConfig("app")
		cc.Linux = &runtime.LinuxContainerConfig{SecurityContext: sc}
		_, err := s.containerConfig("c1", root, podRecord{ID: "p1"}, cc, &imgspecv1.ImageConfig{Cmd: []string{"sh"}})
		wantCode(t, name, err, codes.InvalidArgument)
	}
}

// TestRecursiveReadOnlyMounts: a recursive read-only mount is "rro" in
// the spec; it must be read-only and private, as containerd has it,
// else InvalidArgument before anything is made.
func TestRecursiveReadOnlyMounts(t *testing.T) {
	t.Parallel()
	s, _ := newTestService(t, t.TempDir())
	mountOpts := func(m *runtime.Mount) ([]string, error) {
		cc := containerConfig("app")
		cc.Mounts = []*runtime.Mount{m}
		cfg, err := s.containerConfig("c1", t.TempDir(), podRecord{ID: "p1"}, cc, &imgspecv1.ImageConfig{Cmd: []string{"sh"}})
		if err != nil {
			return nil, err
		}
		for _, sm := range cfg.CustomSpec.Mounts {
			if sm.Destination == "/mnt" {
				return sm.Options, nil
			}
		}
		return nil, fmt.Errorf("no mount on /mnt in %+v", cfg.CustomSpec.Mounts)
	}
	for _, tc := range []struct {
		readOnly, recursive bool
		want                []string
	}{
		{false, false, []string{"rbind"}},
		{true, false, []string{"rbind", "ro"}},
		{true, true, []string{"rbind", "rro"}},
	} {
		opts, err := mountOpts(&runtime.Mount{HostPath: t.TempDir(), ContainerPath: "/mnt", Readonly: tc.readOnly, RecursiveReadOnly: tc.recursive})
		if err != nil || !slices.Equal(opts, tc.want) {
			t.Errorf("read-only %v, recursive %v: options %v, %v; want %v", tc.readOnly, tc.recursive, opts, err, tc.want)
		}
	}
	missing := filepath.Join(t.TempDir(), "missing")
	for name, m := range map[string]*runtime.Mount{
		"not read-only": {HostPath: missing, ContainerPath: "/mnt", RecursiveReadOnly: true},
		"host to container": {
			HostPath: missing, ContainerPath: "/mnt", Readonly: true, RecursiveReadOnly: true,
			Propagation: runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER,
		},
		"bidirectional": {
			HostPath: missing, ContainerPath: "/mnt", Readonly: true, RecursiveReadOnly: true,
			Propagation: runtime.MountPropagation_PROPAGATION_BIDIRECTIONAL,
		},
	} {
		_, err := mountOpts(m)
		wantCode(t, "recursive read-only, "+name, err, codes.InvalidArgument)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Fatalf("a refused mount's host path was made: %v", err)
	}
}

// TestCapabilities: ALL applies first, single capabilities over it, as
// containerd does.
func TestCapabilities(t *testing.T) {
	t.Parallel()
	caps := func(add, drop []string) []string {
		return capabilities(&runtime.LinuxContainerSecurityContext{
			Capabilities: &runtime.Capability{AddCapabilities: add, DropCapabilities: drop},
		}).Bounding
	}
	has := func(set []string, c string) bool { return slices.Contains(set, c) }
	if got := caps([]string{"NET_ADMIN"}, []string{"ALL"}); len(got) != 1 || got[0] != "CAP_NET_ADMIN" {
		t.Errorf("drop ALL, add NET_ADMIN: %v, want NET_ADMIN alone", got)
	}
	if got := caps([]string{"ALL"}, []string{"CHOWN"}); has(got, "CAP_CHOWN") || !has(got, "CAP_SYS_ADMIN") {
		t.Errorf("add ALL, drop CHOWN: %v", got)
	}
	if got := caps(nil, []string{"ALL"}); len(got) != 0 {
		t.Errorf("drop ALL: %v, want none", got)
	}
	if got := caps([]string{"sys_time"}, []string{"cap_chown"}); !has(got, "CAP_SYS_TIME") || has(got, "CAP_CHOWN") || !has(got, "CAP_KILL") {
		t.Errorf("add SYS_TIME, drop CHOWN over the defaults: %v", got)
	}
	if got := caps(nil, nil); len(got) != len(defaultCapabilities) {
		t.Errorf("defaults: %v", got)
	}
}
