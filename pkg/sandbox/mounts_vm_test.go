package sandbox_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vc-cri/vc-cri/hack/testimages"
	vc "github.com/vc-cri/vc-cri/pkg/sandbox"
)

// TestReadOnlyMountsAndGroupsInVM: in a real guest, a recursive read-only
// mount ("rro") refuses writes to a submount of its host path, where a
// read-only one lets them reach the host's submount; and a container's
// groups are the ones resolved at create, Merge (the user's groups in the
// image's /etc/group added) or Strict, for its own process and its execs.
func TestReadOnlyMountsAndGroupsInVM(t *testing.T) {
	cfg := qemuConfig(t)
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	if err := testimages.BusyboxRootfs(rootfs); err != nil {
		t.Fatal(err)
	}
	for name, line := range map[string]string{"passwd": "app:x:1000:1000::/:/bin/sh\n", "group": "app:x:1000:\nextra:x:50000:app\n"} {
		f, err := os.OpenFile(filepath.Join(rootfs, "etc", name), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(line); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	volume := t.TempDir()
	sub := filepath.Join(volume, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("none", sub, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(sub, unix.MNT_DETACH) })

	container := func(id string, strict bool) vc.ContainerConfig {
		return vc.ContainerConfig{
			ID: id, RootFs: rootfs,
			Cmd: vc.Cmd{
				Args: []string{"sh", "-c", "id -G; exec sleep 1000"}, Envs: []vc.EnvVar{{Var: "PATH", Value: "/bin:/usr/bin"}},
				User: "app", SupplementaryGroups: []string{"1234"}, StrictGroups: strict,
			},
			Mounts: []vc.Mount{
				{Source: volume, Destination: "/rro", Type: "bind", Options: []string{"rbind", "rro"}},
				{Source: volume, Destination: "/ro", Type: "bind", Options: []string{"rbind"}, ReadOnly: true},
			},
		}
	}
	cfg.Containers = []vc.ContainerConfig{container("merge", false), container("strict", true)}
	r, bg := vc.NewTestRuntime(t), context.Background()
	s, err := r.CreateSandbox(bg, cfg)
	if err != nil {
		t.Fatalf("CreateSandbox: %v", err)
	}
	defer r.DeleteSandbox(bg, s.ID())
	ctx, cancel := context.WithTimeout(bg, 2*time.Minute)
	defer cancel()
	firstLines := map[string]io.Reader{}
	for _, id := range []string{"merge", "strict"} {
		_, stdout, _, err := r.IOStream(ctx, s.ID(), id, id)
		if err != nil {
			t.Fatalf("IOStream: %v", err)
		}
		firstLines[id] = stdout
	}
	if _, err := r.StartSandbox(bg, s.ID()); err != nil {
		t.Fatalf("StartSandbox: %v", err)
	}
	exec := func(id string, cmd vc.Cmd) (string, int32) { return execIn(ctx, t, r, s.ID(), id, cmd) }
	for id, want := range map[string]string{"merge": "1000 1234 50000\n", "strict": "1000 1234\n"} {
		line := make([]byte, len(want))
		if _, err := io.ReadFull(firstLines[id], line); err != nil || string(line) != want {
			t.Errorf("%s: the container's groups %q, %v; want %q", id, line, err, want)
		}
		if out, code := exec(id, vc.Cmd{Args: []string{"id", "-G"}}); out != want || code != 0 {
			t.Errorf("%s: an exec's groups %q (exit %d), want %q", id, out, code, want)
		}
	}

	root := func(script string) vc.Cmd { return vc.Cmd{Args: []string{"sh", "-c", script + " 2>&1"}, User: "0"} }
	if out, code := exec("merge", root("touch /rro/sub/f")); code == 0 || !strings.Contains(out, "Read-only file system") {
		t.Errorf("write below the rro mount: %q, exit %d; want Read-only file system", out, code)
	}
	if out, code := exec("merge", root("touch /rro/f")); code == 0 || !strings.Contains(out, "Read-only file system") {
		t.Errorf("write to the rro mount: %q, exit %d; want Read-only file system", out, code)
	}
	if out, code := exec("merge", root("touch /ro/sub/f")); code != 0 {
		t.Errorf("write below the ro mount: %q, exit %d; want it to succeed", out, code)
	}
	if _, err := os.Stat(filepath.Join(sub, "f")); err != nil {
		t.Errorf("the write below the ro mount did not reach the host's submount: %v", err)
	}
	if out, code := exec("merge", root("touch /ro/f")); code == 0 || !strings.Contains(out, "Read-only file system") {
		t.Errorf("write to the ro mount: %q, exit %d; want Read-only file system", out, code)
	}
}
