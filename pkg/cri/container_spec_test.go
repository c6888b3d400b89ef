package cri

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc/codes"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/vc-cri/vc-cri/pkg/sandbox"
)

// TestContainerConfigSpec: this package builds the whole spec; the
// sandbox's Cmd carries only the user and groups to resolve, and stdin.
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
	cfg, err := s.containerConfig("c1", "/rootfs", podRecord{ID: "p1"}, cc, img)
	if err != nil {
		t.Fatal(err)
	}
	want := sandbox.Cmd{User: "web", SupplementaryGroups: []string{"42"}, Interactive: true}
	if !slices.Equal(cfg.Cmd.SupplementaryGroups, want.SupplementaryGroups) || cfg.Cmd.User != want.User || cfg.Cmd.PrimaryGroup != "" ||
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
