package sandbox

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/vc-cri/vc-cri/pkg/agent/protocol"
)

// TestContainerSpec: a CustomSpec's process, security and mounts are the
// caller's, untouched but for the guest's paths and Cmd's user; without
// one, the specification's fields make the spec. Either way bind sources
// move into the shared directory.
func TestContainerSpec(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (mounts)")
	}
	t.Parallel()
	volume := t.TempDir()
	custom, err := DefaultSpec()
	if err != nil {
		t.Fatal(err)
	}
	custom.Process.Args = []string{"app", "--flag"}
	custom.Process.Env = []string{"PATH=/bin", "A=1"}
	custom.Process.Capabilities = &specs.LinuxCapabilities{Bounding: []string{"CAP_KILL"}}
	custom.Mounts = append(custom.Mounts, specs.Mount{Destination: "/data", Type: "bind", Source: volume, Options: []string{"rbind", "ro"}})
	for name, tc := range map[string]struct {
		cfg      ContainerConfig
		wantArgs []string
		wantEnv  string
		wantCaps []string
	}{
		"custom": {
			cfg:      ContainerConfig{Cmd: Cmd{User: "web"}, CustomSpec: custom},
			wantArgs: []string{"app", "--flag"}, wantEnv: "A=1", wantCaps: []string{"CAP_KILL"},
		},
		"seed": {
			cfg: ContainerConfig{
				Cmd: Cmd{
					User: "web", Args: []string{"sh"}, Envs: []EnvVar{{Var: "A", Value: "2"}},
					Capabilities: LinuxCapabilities{Bounding: []string{"CAP_CHOWN"}},
				},
				Mounts: []Mount{{Source: volume, Destination: "/data", Type: "bind", ReadOnly: true}},
			},
			wantArgs: []string{"sh"}, wantEnv: "A=2", wantCaps: []string{"CAP_CHOWN"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "sb")
			if err := os.MkdirAll(filepath.Join(dir, sharedName), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := setupShare(dir, "sb", nil); err != nil {
				t.Fatal(err)
			}
			share := &containerShare{sandboxDir: dir, containerID: "c"}
			t.Cleanup(func() { unmountSandbox(dir) })
			cfg := tc.cfg
			cfg.ID, cfg.RootFs = "c", userRootfs(t)
			spec, err := containerSpec(&cfg, share)
			if err != nil {
				t.Fatal(err)
			}
			p := spec.Process
			if !slices.Equal(p.Args, tc.wantArgs) || !slices.Contains(p.Env, tc.wantEnv) || !slices.Equal(p.Capabilities.Bounding, tc.wantCaps) {
				t.Errorf("process %+v", p)
			}
			if p.User.UID != 1000 || p.User.GID != 1001 {
				t.Errorf("user %+v, want web's 1000:1001", p.User)
			}
			if spec.Root.Path != protocol.SharedDir+"/c/rootfs" {
				t.Errorf("root %q", spec.Root.Path)
			}
			var data []specs.Mount
			for _, m := range spec.Mounts {
				if m.Destination == "/data" {
					data = append(data, m)
				}
			}
			if len(data) != 1 || data[0].Source != protocol.SharedDir+"/c/mounts/0" || !slices.Contains(data[0].Options, "ro") {
				t.Errorf("/data mounts %+v", data)
			}
			if custom.Process.User.UID != 0 || custom.Mounts[len(custom.Mounts)-1].Source != volume {
				t.Error("the caller's CustomSpec was changed")
			}
		})
	}
}

// TestCustomSpecOwnsProcess: with a CustomSpec, a Cmd that sets the
// process, or Mounts, would be a second builder: refused.
func TestCustomSpecOwnsProcess(t *testing.T) {
	t.Parallel()
	spec, err := DefaultSpec()
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]ContainerConfig{
		"args":   {Cmd: Cmd{Args: []string{"sh"}}},
		"env":    {Cmd: Cmd{Envs: []EnvVar{{Var: "A", Value: "1"}}}},
		"caps":   {Cmd: Cmd{Capabilities: LinuxCapabilities{Bounding: []string{"CAP_KILL"}}}},
		"mounts": {Mounts: []Mount{{Source: "/tmp", Destination: "/tmp", Type: "bind"}}},
	} {
		c.ID, c.CustomSpec = "c", spec
		if _, err := containerSpec(&c, &containerShare{}); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: %v, want ErrInvalidConfig", name, err)
		}
	}
}

// TestUpgradeSpec: a container an earlier vc-cri created kept its
// process in Cmd beside its CustomSpec; loaded, its execs still run with
// that process's environment, directory and user.
func TestUpgradeSpec(t *testing.T) {
	t.Parallel()
	spec, err := DefaultSpec()
	if err != nil {
		t.Fatal(err)
	}
	c := ContainerConfig{
		ID: "old", CustomSpec: spec,
		Cmd: Cmd{
			Args: []string{"app"}, Envs: []EnvVar{{Var: "A", Value: "1"}}, WorkDir: "/srv",
			User: "1000", PrimaryGroup: "1001", Interactive: true,
		},
	}
	upgradeSpec(&c)
	if setsProcess(c.Cmd) || c.Cmd.User != "1000" || c.Cmd.PrimaryGroup != "1001" || !c.Cmd.Interactive {
		t.Fatalf("Cmd after the upgrade: %+v", c.Cmd)
	}
	p, err := ExecProcess(&c, Cmd{Args: []string{"id"}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.Args, []string{"id"}) || !slices.Contains(p.Env, "A=1") || p.Cwd != "/srv" || p.User.UID != 1000 || p.User.GID != 1001 {
		t.Fatalf("exec process %+v", p)
	}
}
