package runc

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/vc-cri/vc-cri/pkg/sandbox"
)

// pausePath is the vc-pause TestMain builds; "" when not root.
var pausePath string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Geteuid() == 0 {
		dir, err := os.MkdirTemp("", "vc-pause-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		pausePath = filepath.Join(dir, "vc-pause")
		build := exec.Command("go", "build", "-o", pausePath, "github.com/vc-cri/vc-cri/cmd/vc-pause")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build vc-pause: %v\n%s", err, out)
			return 1
		}
	}
	return m.Run()
}

// newRuntime is a Runtime on a state root of the test: it needs root,
// and runc and conmon, whose absence fails the test.
func newRuntime(t *testing.T, stateRoot string) *Runtime {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("runs containers: needs root")
	}
	for _, p := range []string{"/usr/sbin/runc", "/usr/bin/conmon"} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s is missing (apt-get install runc conmon): %v", p, err)
		}
	}
	if stateRoot == "" {
		stateRoot = t.TempDir()
	}
	r, err := New(Config{StateRoot: stateRoot, Runc: "/usr/sbin/runc", Conmon: "/usr/bin/conmon", Pause: pausePath})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// busyboxRoot is a root filesystem of the host's busybox, with the
// libraries it links, at their paths, and its applets' links.
func busyboxRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	bb, err := filepath.EvalSymlinks("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	files := []string{bb}
	out, err := exec.Command("ldd", bb).Output()
	if err != nil && !strings.Contains(string(out), "not a dynamic") {
		t.Fatalf("ldd %s: %v", bb, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		for _, f := range strings.Fields(sc.Text()) {
			if strings.HasPrefix(f, "/") {
				files = append(files, f)
			}
		}
	}
	for _, f := range files {
		copyFile(t, f, filepath.Join(root, f))
	}
	if bb != "/bin/busybox" {
		copyFile(t, bb, filepath.Join(root, "bin/busybox"))
	}
	for _, d := range []string{"tmp", "etc", "proc", "sys", "dev"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, applet := range []string{"sh", "echo", "cat", "sleep", "ls", "nc", "tty", "stty", "true", "read", "hostname", "readlink"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", applet)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// netns makes a network namespace, with its loopback up, for the test.
func netns(t *testing.T) string {
	t.Helper()
	name := "vcrunc-" + randomID()[:8]
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip link set lo up: %v: %s", err, out)
	}
	return "/var/run/netns/" + name
}

// runPod runs a pod: on the host's network when nsPath is "".
func runPod(t *testing.T, r *Runtime, nsPath string) string {
	t.Helper()
	id := randomID()
	cfg := sandbox.SandboxConfig{ID: id, Hostname: "pod-" + id[:6], NetworkConfig: sandbox.NetworkConfig{NetNSPath: nsPath}}
	if nsPath == "" {
		cfg.HostNamespaces = []specs.LinuxNamespaceType{specs.NetworkNamespace}
	}
	if _, err := r.RunSandbox(testContext(t), cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := r.DeleteSandbox(context.Background(), id); err != nil && !isNotFound(err) {
			t.Errorf("cleanup: %v", err)
		}
	})
	return id
}

func isNotFound(err error) bool { return err != nil && strings.Contains(err.Error(), "not found") }

// containerConfig is a container of rootfs running args, as pkg/cri
// makes one: a whole CustomSpec.
func containerConfig(t *testing.T, rootfs string, args ...string) sandbox.ContainerConfig {
	t.Helper()
	spec, err := sandbox.DefaultSpec()
	if err != nil {
		t.Fatal(err)
	}
	spec.Process.Args = args
	spec.Annotations = map[string]string{"io.kubernetes.cri.container-name": "test"}
	return sandbox.ContainerConfig{ID: randomID(), RootFs: rootfs, CustomSpec: spec}
}

// startContainer creates and starts the container.
func startContainer(t *testing.T, r *Runtime, podID string, cfg sandbox.ContainerConfig) string {
	t.Helper()
	ctx := testContext(t)
	if _, _, err := r.CreateContainer(ctx, podID, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := r.StartContainer(ctx, podID, cfg.ID); err != nil {
		t.Fatal(err)
	}
	return cfg.ID
}

// checkGone fails unless nothing of the pod is left: no process naming
// it (conmon, runc), no directory, no runc container, no cgroup.
func checkGone(t *testing.T, r *Runtime, podID string, containerIDs ...string) {
	t.Helper()
	if _, err := os.Stat(r.podDir(podID)); !os.IsNotExist(err) {
		t.Errorf("pod directory left: %v", err)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, _ := os.ReadFile(p)
		if bytes.Contains(b, []byte(podID)) {
			t.Errorf("process left: %s: %q", p, bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
		}
	}
	out, err := exec.Command("/usr/sbin/runc", "--root", r.runcRoot, "list", "-q").Output()
	if err != nil {
		t.Errorf("runc list: %v", err)
	}
	for _, id := range append(containerIDs, podID) {
		if strings.Contains(string(out), id) {
			t.Errorf("runc still has %s", id)
		}
	}
	cgs, _ := filepath.Glob("/sys/fs/cgroup/*/vc-cri/" + podID)
	if d := "/sys/fs/cgroup/vc-cri/" + podID; exists(d) {
		cgs = append(cgs, d)
	}
	if len(cgs) > 0 {
		t.Errorf("cgroups left: %v", cgs)
	}
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// readAll reads r until its end, for a minute at most.
func readAll(t *testing.T, r io.Reader) string {
	t.Helper()
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(r)
		got <- b
	}()
	select {
	case b := <-got:
		return string(b)
	case <-time.After(time.Minute):
		t.Fatal("output never ended")
		return ""
	}
}
