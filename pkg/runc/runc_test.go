package runc

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/vc-cri/vc-cri/pkg/sandbox"
)

// A container in a pod of its own network namespace: its output in the
// CRI log, its exit code, then nothing left of the pod once deleted.
func TestContainerExitAndLog(t *testing.T) {
	r := newRuntime(t, "")
	ctx := testContext(t)
	pod := runPod(t, r, netns(t))
	if st, err := r.StatusSandbox(ctx, pod); err != nil || st.State.State != sandbox.StateRunning {
		t.Fatalf("pod status %+v, %v", st, err)
	}
	cfg := containerConfig(t, busyboxRoot(t), "sh", "-c", "echo hello; hostname; exit 3")
	cfg.LogPath = filepath.Join(t.TempDir(), "c.log")
	if _, _, err := r.CreateContainer(ctx, pod, cfg); err != nil {
		t.Fatal(err)
	}
	if st, err := r.StatusContainer(ctx, pod, cfg.ID); err != nil || st.State.State != sandbox.StateReady || st.PID == 0 {
		t.Fatalf("created container: %+v, %v", st, err)
	}
	if _, err := r.StartContainer(ctx, pod, cfg.ID); err != nil {
		t.Fatal(err)
	}
	code, err := r.WaitProcess(ctx, pod, cfg.ID, cfg.ID)
	if err != nil || code != 3 {
		t.Fatalf("exit %d, %v; want 3", code, err)
	}
	st, err := r.StatusContainer(ctx, pod, cfg.ID)
	if err != nil || st.State.State != sandbox.StateStopped || st.ExitCode != 3 || st.FinishedAt.IsZero() {
		t.Fatalf("exited container: %+v, %v", st, err)
	}
	log, err := os.ReadFile(cfg.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	// The hostname is the pod's: the container is in the infra's UTS
	// namespace.
	want := regexp.MustCompile(`(?m)^\S+ stdout F hello\n\S+ stdout F pod-` + pod[:6] + `$`)
	if !want.Match(log) {
		t.Errorf("log %q does not match %s", log, want)
	}
	if _, err := r.StartContainer(ctx, pod, cfg.ID); !errors.Is(err, sandbox.ErrInvalidState) {
		t.Errorf("start of an exited container: %v, want ErrInvalidState", err)
	}
	if _, err := r.DeleteContainer(ctx, pod, cfg.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := r.StatusContainer(ctx, pod, cfg.ID); !errors.Is(err, sandbox.ErrNotFound) {
		t.Errorf("status of a deleted container: %v", err)
	}
	if _, err := r.StopSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if _, err := r.StopSandbox(ctx, pod); err != nil {
		t.Fatalf("second stop: %v", err)
	}
	if _, err := r.DeleteSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	checkGone(t, r, pod, cfg.ID)
	if _, err := r.DeleteSandbox(ctx, pod); !errors.Is(err, sandbox.ErrNotFound) {
		t.Errorf("delete of a deleted pod: %v", err)
	}
}

// Execs in a running container of a host-network pod: pipes, a terminal,
// a signal; then the container's stats, an update, a signal to it and
// its stop.
func TestExecAndStop(t *testing.T) {
	r := newRuntime(t, "")
	ctx := testContext(t)
	pod := runPod(t, r, "")
	rootfs := busyboxRoot(t)
	id := startContainer(t, r, pod, containerConfig(t, rootfs, "sleep", "1000"))

	t.Run("pipes", func(t *testing.T) {
		_, _, p, err := r.EnterContainer(ctx, pod, id, sandbox.Cmd{Args: []string{"sh", "-c", "echo out; echo err >&2; exit 7"}})
		if err != nil {
			t.Fatal(err)
		}
		_, stdout, stderr, err := r.IOStream(ctx, pod, id, p.Token)
		if err != nil {
			t.Fatal(err)
		}
		errc := make(chan string, 1)
		go func() { b, _ := io.ReadAll(stderr); errc <- string(b) }()
		if out := readAll(t, stdout); out != "out\n" {
			t.Errorf("stdout %q", out)
		}
		if e := <-errc; e != "err\n" {
			t.Errorf("stderr %q", e)
		}
		if code, err := r.WaitProcess(ctx, pod, id, p.Token); err != nil || code != 7 {
			t.Errorf("exit %d, %v; want 7", code, err)
		}
		if _, err := r.WaitProcess(ctx, pod, id, p.Token); !errors.Is(err, sandbox.ErrNotFound) {
			t.Errorf("a waited exec is forgotten: %v", err)
		}
	})
	t.Run("stdin", func(t *testing.T) {
		_, _, p, err := r.EnterContainer(ctx, pod, id, sandbox.Cmd{Args: []string{"cat"}, Interactive: true})
		if err != nil {
			t.Fatal(err)
		}
		stdin, stdout, _, err := r.IOStream(ctx, pod, id, p.Token)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(stdin, "typed\n"); err != nil {
			t.Fatal(err)
		}
		stdin.Close()
		if out := readAll(t, stdout); out != "typed\n" {
			t.Errorf("stdout %q", out)
		}
		if code, err := r.WaitProcess(ctx, pod, id, p.Token); err != nil || code != 0 {
			t.Errorf("exit %d, %v", code, err)
		}
	})
	t.Run("terminal", func(t *testing.T) {
		_, _, p, err := r.EnterContainer(ctx, pod, id, sandbox.Cmd{Args: []string{"sh", "-c", "sleep 0.5; tty; stty size; exit 2"}, Console: "yes"})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.WinsizeProcess(ctx, pod, id, p.Token, 33, 111); err != nil {
			t.Fatal(err)
		}
		_, stdout, stderr, err := r.IOStream(ctx, pod, id, p.Token)
		if err != nil {
			t.Fatal(err)
		}
		out := readAll(t, stdout)
		if !strings.Contains(out, "/dev/pts/") || !strings.Contains(out, "33 111") {
			t.Errorf("terminal output %q, want a /dev/pts/ name and the size 33 111", out)
		}
		if e := readAll(t, stderr); e != "" {
			t.Errorf("stderr of a terminal %q", e)
		}
		if code, err := r.WaitProcess(ctx, pod, id, p.Token); err != nil || code != 2 {
			t.Errorf("exit %d, %v; want 2", code, err)
		}
	})
	t.Run("signal", func(t *testing.T) {
		_, _, p, err := r.EnterContainer(ctx, pod, id, sandbox.Cmd{Args: []string{"sleep", "100"}})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.SignalProcess(ctx, pod, id, p.Token, syscall.SIGTERM, false); err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := r.IOStream(ctx, pod, id, p.Token); err != nil {
			t.Fatal(err)
		}
		if code, err := r.WaitProcess(ctx, pod, id, p.Token); err != nil || code != 128+15 {
			t.Errorf("exit %d, %v; want 143", code, err)
		}
	})
	t.Run("stats and update", func(t *testing.T) {
		const limit = 96 << 20
		lim := int64(limit)
		if err := r.UpdateContainer(ctx, pod, id, specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &lim}}); err != nil {
			t.Fatal(err)
		}
		st, err := r.StatsContainer(ctx, pod, id)
		if err != nil {
			t.Fatal(err)
		}
		if st.MemoryUsageBytes == 0 || st.Pids == 0 {
			t.Errorf("stats %+v: no memory or pids", st)
		}
		if st.MemoryLimitBytes != limit {
			t.Errorf("memory limit %d, want %d", st.MemoryLimitBytes, limit)
		}
	})
	t.Run("signal the container", func(t *testing.T) {
		cid := startContainer(t, r, pod, containerConfig(t, rootfs, "sh", "-c", `trap "exit 5" TERM; while true; do sleep 0.2; done`))
		time.Sleep(300 * time.Millisecond) // the trap is set
		if err := r.SignalProcess(ctx, pod, cid, cid, syscall.SIGTERM, false); err != nil {
			t.Fatal(err)
		}
		if code, err := r.WaitProcess(ctx, pod, cid, cid); err != nil || code != 5 {
			t.Errorf("exit %d, %v; want 5", code, err)
		}
	})

	c, err := r.StopContainer(ctx, pod, id)
	if err != nil {
		t.Fatal(err)
	}
	if c.ID() != id {
		t.Errorf("stopped container %q", c.ID())
	}
	st, err := r.StatusContainer(ctx, pod, id)
	if err != nil || st.State.State != sandbox.StateStopped || st.ExitCode != 128+9 {
		t.Fatalf("stopped container: %+v, %v; want exit 137", st, err)
	}
	if _, _, _, err := r.EnterContainer(ctx, pod, id, sandbox.Cmd{Args: []string{"true"}}); !errors.Is(err, sandbox.ErrInvalidState) {
		t.Errorf("exec in a stopped container: %v", err)
	}
	if _, err := r.DeleteSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	checkGone(t, r, pod, id)
}

// pipeStream is a port forward's stream: what is written to in, and
// what comes back in out.
type pipeStream struct {
	io.Reader
	io.Writer
}

func TestPortForward(t *testing.T) {
	r := newRuntime(t, "")
	ctx := testContext(t)
	pod := runPod(t, r, netns(t))
	startContainer(t, r, pod, containerConfig(t, busyboxRoot(t), "sh", "-c", "echo hello-pf | nc -l -p 8080"))
	var err error
	for try := 0; try < 50; try++ {
		inR, inW := io.Pipe()
		outR, outW := io.Pipe()
		done := make(chan error, 1)
		go func() { done <- r.PortForward(ctx, pod, 8080, pipeStream{inR, outW}); outW.Close() }()
		got := readAll(t, outR)
		inW.Close()
		err = <-done
		if err == nil && got == "hello-pf\n" {
			return
		}
		if err == nil {
			t.Fatalf("forwarded %q", got)
		}
		time.Sleep(100 * time.Millisecond) // nc not listening yet
	}
	t.Fatalf("port forward: %v", err)
}

// The pod's end is reported when its infra is killed.
func TestWatchInfraKilled(t *testing.T) {
	r := newRuntime(t, "")
	ctx := testContext(t)
	pod := runPod(t, r, netns(t))
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := r.WatchSandbox(short, pod); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("watch of a running pod: %v, want the context's end", err)
	}
	ends := make(chan error, 1)
	go func() {
		end, err := r.WatchSandbox(ctx, pod)
		if err == nil && end.Reason != EndInfraExited {
			err = errors.New("reason " + end.Reason)
		}
		ends <- err
	}()
	time.Sleep(100 * time.Millisecond)
	pid, err := r.infraPid(pod)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-ends:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the infra's end was not reported")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := r.StatusSandbox(ctx, pod)
		if err != nil {
			t.Fatal(err)
		}
		if st.State.State == sandbox.StateStopped {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s after its infra died", st.State.State)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := r.DeleteSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	checkGone(t, r, pod)
}

// A Runtime made again on the state root finds the pod and its
// container, their IO and exit too.
func TestRestart(t *testing.T) {
	root := t.TempDir()
	r := newRuntime(t, root)
	ctx := testContext(t)
	pod := runPod(t, r, netns(t))
	cfg := containerConfig(t, busyboxRoot(t), "sh", "-c", "read x; echo got $x; exit 4")
	cfg.Cmd.Interactive = true
	id := startContainer(t, r, pod, cfg)

	r2 := newRuntime(t, root)
	pods, err := r2.ListSandbox(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(pods) != 1 || pods[0].ID != pod || pods[0].State.State != sandbox.StateRunning ||
		len(pods[0].ContainersStatus) != 1 || pods[0].ContainersStatus[0].ID != id {
		t.Fatalf("pods after a restart: %+v", pods)
	}
	if st, err := r2.StatusContainer(ctx, pod, id); err != nil || st.State.State != sandbox.StateRunning || st.PID == 0 {
		t.Fatalf("container after a restart: %+v, %v", st, err)
	}
	stdin, stdout, stderr, err := r2.IOStream(ctx, pod, id, id)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = io.Copy(io.Discard, stderr) }()
	if _, err := io.WriteString(stdin, "abc\n"); err != nil {
		t.Fatal(err)
	}
	if out := readAll(t, stdout); out != "got abc\n" {
		t.Errorf("stdout %q", out)
	}
	stdout.Close()
	stderr.Close()
	if code, err := r2.WaitProcess(ctx, pod, id, id); err != nil || code != 4 {
		t.Errorf("exit %d, %v; want 4", code, err)
	}
	// And once more, for an exited container.
	if code, err := r2.WaitProcess(ctx, pod, id, id); err != nil || code != 4 {
		t.Errorf("second wait: exit %d, %v; want 4", code, err)
	}
	if _, err := r2.StopSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if _, err := r2.DeleteSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	checkGone(t, r2, pod, id)
	if pods, err := r.ListSandbox(ctx); err != nil || len(pods) != 0 {
		t.Errorf("pods after delete: %+v, %v", pods, err)
	}
}

// The namespace rule: a container joins the pod's namespaces its spec
// does not list, the host's for a pod that shares them.
func TestNamespaces(t *testing.T) {
	r := newRuntime(t, "")
	ctx := testContext(t)
	rootfs := busyboxRoot(t)
	self := func(ns string) string {
		l, err := os.Readlink("/proc/self/ns/" + ns)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	// namespaces runs a container whose spec lists only the mount
	// namespace, and returns its namespaces as it sees them.
	namespaces := func(pod string) map[string]string {
		cfg := containerConfig(t, rootfs, "sh", "-c", "for n in net ipc uts pid; do echo $n $(readlink /proc/self/ns/$n); done")
		cfg.CustomSpec.Linux.Namespaces = []specs.LinuxNamespace{{Type: specs.MountNamespace}}
		cfg.LogPath = filepath.Join(t.TempDir(), "log")
		startContainer(t, r, pod, cfg)
		if code, err := r.WaitProcess(ctx, pod, cfg.ID, cfg.ID); err != nil || code != 0 {
			t.Fatalf("exit %d, %v", code, err)
		}
		b, err := os.ReadFile(cfg.LogPath)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			f := strings.Fields(line) // time stdout F ns link
			if len(f) == 5 {
				got[f[3]] = f[4]
			}
		}
		return got
	}

	t.Run("host", func(t *testing.T) {
		id := randomID()
		cfg := sandbox.SandboxConfig{ID: id, HostNamespaces: []specs.LinuxNamespaceType{specs.NetworkNamespace, specs.PIDNamespace, specs.IPCNamespace}}
		if _, err := r.RunSandbox(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		defer r.DeleteSandbox(context.Background(), id)
		got := namespaces(id)
		for _, ns := range []string{"net", "ipc", "uts", "pid"} {
			if got[ns] != self(ns) {
				t.Errorf("%s namespace %q, want the host's %q", ns, got[ns], self(ns))
			}
		}
	})
	t.Run("pod", func(t *testing.T) {
		nsPath := netns(t)
		pod := runPod(t, r, nsPath)
		got := namespaces(pod)
		var st syscall.Stat_t
		if err := syscall.Stat(nsPath, &st); err != nil {
			t.Fatal(err)
		}
		if want := "net:[" + strconv.FormatUint(st.Ino, 10) + "]"; got["net"] != want {
			t.Errorf("net namespace %q, want the pod's %q", got["net"], want)
		}
		pid, err := r.infraPid(pod)
		if err != nil {
			t.Fatal(err)
		}
		for _, ns := range []string{"ipc", "uts", "pid"} {
			infra, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "ns", ns))
			if err != nil {
				t.Fatal(err)
			}
			if got[ns] != infra || infra == self(ns) {
				t.Errorf("%s namespace %q, want the infra's %q, not the host's %q", ns, got[ns], infra, self(ns))
			}
		}
	})
}

// A container with a terminal: its size set through conmon before it
// starts, its stdin and output through the attach socket.
func TestTerminalContainer(t *testing.T) {
	r := newRuntime(t, "")
	ctx := testContext(t)
	pod := runPod(t, r, "")
	cfg := containerConfig(t, busyboxRoot(t), "sh", "-c", "stty size; read x; echo got $x; exit 6")
	cfg.CustomSpec.Process.Terminal = true
	cfg.Cmd.Interactive = true
	if _, _, err := r.CreateContainer(ctx, pod, cfg); err != nil {
		t.Fatal(err)
	}
	if err := r.WinsizeProcess(ctx, pod, cfg.ID, cfg.ID, 40, 120); err != nil {
		t.Fatal(err)
	}
	stdin, stdout, stderr, err := r.IOStream(ctx, pod, cfg.ID, cfg.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	if _, err := r.StartContainer(ctx, pod, cfg.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(stdin, "xyz\n"); err != nil {
		t.Fatal(err)
	}
	out := readAll(t, stdout)
	if !strings.Contains(out, "40 120") || !strings.Contains(out, "got xyz") {
		t.Errorf("terminal output %q, want the size 40 120 and got xyz", out)
	}
	if e := readAll(t, stderr); e != "" {
		t.Errorf("stderr of a terminal %q", e)
	}
	if code, err := r.WaitProcess(ctx, pod, cfg.ID, cfg.ID); err != nil || code != 6 {
		t.Errorf("exit %d, %v; want 6", code, err)
	}
}

// conmon reopens the log when told, after a rotation.
func TestReopenContainerLog(t *testing.T) {
	r := newRuntime(t, "")
	ctx := testContext(t)
	pod := runPod(t, r, "")
	cfg := containerConfig(t, busyboxRoot(t), "sh", "-c", "echo first; sleep 1; echo second; sleep 100")
	cfg.LogPath = filepath.Join(t.TempDir(), "log")
	startContainer(t, r, pod, cfg)
	waitFor(t, func() bool { b, _ := os.ReadFile(cfg.LogPath); return strings.Contains(string(b), "first") })
	if err := os.Rename(cfg.LogPath, cfg.LogPath+".1"); err != nil {
		t.Fatal(err)
	}
	if err := r.ReopenContainerLog(ctx, pod, cfg.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { b, _ := os.ReadFile(cfg.LogPath); return strings.Contains(string(b), "stdout F second") })
	if _, err := r.StopContainer(ctx, pod, cfg.ID); err != nil {
		t.Fatal(err)
	}
	if err := r.ReopenContainerLog(ctx, pod, cfg.ID); !errors.Is(err, sandbox.ErrInvalidState) {
		t.Errorf("reopen the log of a stopped container: %v", err)
	}
}

// The pod's sysctls are set in its namespaces, which its containers see.
func TestSysctls(t *testing.T) {
	r := newRuntime(t, "")
	ctx := testContext(t)
	id := randomID()
	cfg := sandbox.SandboxConfig{ID: id, NetworkConfig: sandbox.NetworkConfig{NetNSPath: netns(t)},
		Sysctls: map[string]string{"net.ipv4.ip_unprivileged_port_start": "77", "kernel.shmmni": "1234"}}
	if _, err := r.RunSandbox(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	defer r.DeleteSandbox(context.Background(), id)
	c := containerConfig(t, busyboxRoot(t), "sh", "-c", "cat /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/kernel/shmmni")
	c.LogPath = filepath.Join(t.TempDir(), "log")
	startContainer(t, r, id, c)
	if code, err := r.WaitProcess(ctx, id, c.ID, c.ID); err != nil || code != 0 {
		t.Fatalf("exit %d, %v", code, err)
	}
	b, _ := os.ReadFile(c.LogPath)
	if !regexp.MustCompile(`stdout F 77\n.* stdout F 1234\n`).Match(b) {
		t.Errorf("log %q, want the pod's sysctls 77 and 1234", b)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("condition never met")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Unknown pods, containers and tokens are ErrNotFound; IDs that are no
// names of a directory too.
func TestNotFound(t *testing.T) {
	r := newRuntime(t, "")
	ctx := testContext(t)
	pod := runPod(t, r, "")
	id := startContainer(t, r, pod, containerConfig(t, busyboxRoot(t), "sleep", "1000"))
	for name, err := range map[string]error{
		"pod":          func() error { _, err := r.StatusSandbox(ctx, randomID()); return err }(),
		"pod path":     func() error { _, err := r.StatusSandbox(ctx, "../pods"); return err }(),
		"delete pod":   func() error { _, err := r.DeleteSandbox(ctx, randomID()); return err }(),
		"container":    func() error { _, err := r.StatusContainer(ctx, pod, randomID()); return err }(),
		"in other pod": func() error { _, err := r.StopContainer(ctx, randomID(), id); return err }(),
		"token":        func() error { _, err := r.WaitProcess(ctx, pod, id, randomID()); return err }(),
		"signal token": r.SignalProcess(ctx, pod, id, randomID(), syscall.SIGTERM, false),
	} {
		if !errors.Is(err, sandbox.ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", name, err)
		}
	}
	if _, err := r.DeleteContainer(ctx, pod, id); !errors.Is(err, sandbox.ErrInvalidState) {
		t.Errorf("delete of a running container: %v, want ErrInvalidState", err)
	}
	if _, _, err := r.CreateContainer(ctx, pod, containerConfig(t, "relative", "true")); !errors.Is(err, sandbox.ErrInvalidConfig) {
		t.Errorf("a relative root: %v, want ErrInvalidConfig", err)
	}
}
