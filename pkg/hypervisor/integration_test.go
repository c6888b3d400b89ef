package hypervisor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// bootConfig is a TCG VM of the test guest; fs is "9p", "virtiofs" or "".
func bootConfig(tb testing.TB, fs string) Config {
	kernel, initrd := testGuest(tb)
	// Short: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "hv")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	shared := filepath.Join(dir, "shared")
	if err := os.Mkdir(shared, 0o755); err != nil {
		tb.Fatal(err)
	}
	c := Config{
		ID: "test-" + filepath.Base(dir), StateDir: filepath.Join(dir, "state"),
		KernelPath: kernel, InitrdPath: initrd, Accelerator: AccelTCG,
		MemoryMiB: 256, SharedDir: shared, AgentPortName: "agent.0", // testdata/guestinit's
	}
	switch fs {
	case "9p":
		c.KernelParams = []string{"vctest.fs=9p", "vctest.tag=" + defaultSharedTag}
	case "virtiofs":
		c.SharedFS = SharedFSVirtioFS
		c.KernelParams = []string{"vctest.fs=virtiofs", "vctest.tag=" + defaultSharedTag}
	}
	return c
}

// launch starts a VM and makes sure the test leaves no QEMU behind.
func launch(tb testing.TB, c Config) VM {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	vm, err := (&QEMU{}).Launch(ctx, c)
	if err != nil {
		tb.Fatalf("Launch: %v", err)
	}
	tb.Cleanup(func() {
		if err := vm.Stop(context.Background()); err != nil {
			tb.Errorf("Stop in cleanup: %v", err)
		}
	})
	return vm
}

// agentReady connects to the agent socket and reads the guest's first
// line, returning the connection for more.
func agentReady(ctx context.Context, vm VM) (net.Conn, string, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", vm.AgentSocket())
	if err != nil {
		return nil, "", err
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetReadDeadline(dl)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		conn.Close()
		return nil, "", fmt.Errorf("read agent port: %w", err)
	}
	return conn, line, nil
}

func readyOrFail(t *testing.T, vm VM, c Config) net.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, line, err := agentReady(ctx, vm)
	if err != nil || line != "ready\n" {
		console, _ := os.ReadFile(c.path(consoleLogName))
		t.Fatalf("agent port: %q, %v; console:\n%s", line, err, console)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// gone reports whether pid no longer names a process (or only a zombie
// that is not ours to reap).
func gone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(fields) > 0 && fields[0] == "Z"
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("not true after 5 s: %s", what)
}

func TestQEMUBoot9p(t *testing.T) {
	c := bootConfig(t, "9p")
	vm := launch(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	readyOrFail(t, vm, c)
	b, err := os.ReadFile(filepath.Join(c.SharedDir, "guest-was-here"))
	if err != nil || string(b) != "hello from 9p\n" {
		t.Fatalf("file written by the guest over 9p: %q, %v", b, err)
	}

	if _, err := (&QEMU{}).Launch(ctx, c); !errors.Is(err, ErrAlreadyExists) {
		t.Fatalf("second Launch = %v, want ErrAlreadyExists", err)
	}

	if err := vm.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	if s, err := queryStatus(ctx, c.ID, c.path(qmpSocketName)); err != nil || s != "paused" {
		t.Fatalf("status after Pause: %q, %v", s, err)
	}
	if err := vm.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	if s, err := queryStatus(ctx, c.ID, c.path(qmpSocketName)); err != nil || s != "running" {
		t.Fatalf("status after Resume: %q, %v", s, err)
	}

	// A second QEMU value, as a restarted daemon would have, finds the
	// VM from its state dir and stops it.
	attached, err := (&QEMU{}).Attach(ctx, Config{ID: c.ID, StateDir: c.StateDir})
	if err != nil {
		t.Fatal(err)
	}
	if attached.Pid() != vm.Pid() || attached.AgentSocket() != vm.AgentSocket() {
		t.Fatalf("attached pid %d socket %s, launched %d %s", attached.Pid(), attached.AgentSocket(), vm.Pid(), vm.AgentSocket())
	}
	if err := attached.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := vm.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "QEMU process gone", func() bool { return gone(vm.Pid()) })
	if _, err := os.Stat(c.StateDir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("state dir after Stop: %v", err)
	}
	if err := vm.Stop(ctx); err != nil {
		t.Fatalf("Stop of the launching handle after the attached one: %v", err)
	}
	if _, err := (&QEMU{}).Attach(ctx, c); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Attach after Stop = %v, want ErrNotFound", err)
	}
}

func TestQEMUVirtioFSAndPoweroff(t *testing.T) {
	c := bootConfig(t, "virtiofs")
	vm := launch(t, c)
	virtiofsd, err := readPidFile(c.path(virtiofsdPid))
	if err != nil {
		t.Fatal(err)
	}
	conn := readyOrFail(t, vm, c)
	b, err := os.ReadFile(filepath.Join(c.SharedDir, "guest-was-here"))
	if err != nil || string(b) != "hello from virtiofs\n" {
		t.Fatalf("file written by the guest over virtio-fs: %q, %v", b, err)
	}

	// A guest that powers off ends QEMU by itself (-no-reboot).
	if _, err := conn.Write([]byte("poweroff\n")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := vm.Wait(ctx); err != nil {
		t.Fatalf("Wait after guest poweroff: %v", err)
	}
	if err := vm.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "virtiofsd gone", func() bool { return gone(virtiofsd) })
	if _, err := os.Stat(c.StateDir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("state dir after Stop: %v", err)
	}
}

func TestQEMUNetNS(t *testing.T) {
	c := bootConfig(t, "")
	ns := "vchv" + strconv.Itoa(os.Getpid())
	run := func(args ...string) {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	run("netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	run("-n", ns, "tuntap", "add", "dev", "vctap0", "mode", "tap")
	c.NetNSPath = "/run/netns/" + ns
	c.NetDevices = []NetDevice{{TapName: "vctap0", MAC: "02:00:00:00:00:01"}}
	vm := launch(t, c)

	var want, got syscall.Stat_t
	if err := syscall.Stat(c.NetNSPath, &want); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Stat(fmt.Sprintf("/proc/%d/ns/net", vm.Pid()), &got); err != nil {
		t.Fatal(err)
	}
	if got.Ino != want.Ino {
		t.Fatalf("QEMU runs in netns inode %d, want %d", got.Ino, want.Ino)
	}
	// QEMU opened the tap inside the namespace instead of creating one.
	if _, err := net.InterfaceByName("vctap0"); err == nil {
		t.Fatal("a vctap0 appeared in the host namespace")
	}
	// No thread of this process was left inside the namespace.
	tasks, _ := filepath.Glob("/proc/self/task/*/ns/net")
	for _, task := range tasks {
		var st syscall.Stat_t
		if syscall.Stat(task, &st) == nil && st.Ino == want.Ino {
			t.Errorf("%s is in the VM's netns", task)
		}
	}
}

// QEMU accepts the command line of the memory and bridge options.
func TestQEMUAcceptsOptions(t *testing.T) {
	c := bootConfig(t, "")
	c.DefaultBridges = 2
	c.MemPrealloc = true
	c.Mlock, c.Realtime = true, true
	c.VCPUs = 2
	vm := launch(t, c)
	if err := vm.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestQEMULaunchFailureCleansUp(t *testing.T) {
	c := bootConfig(t, "")
	c.ExtraArgs = []string{"-no-such-option"}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := (&QEMU{}).Launch(ctx, c)
	if err == nil || !strings.Contains(err.Error(), "no-such-option") {
		t.Fatalf("Launch = %v, want QEMU's complaint", err)
	}
	if _, err := os.Stat(c.StateDir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("state dir after a failed Launch: %v", err)
	}
}

func TestQEMULaunchInvalid(t *testing.T) {
	_, err := (&QEMU{}).Launch(context.Background(), Config{ID: "x", StateDir: "/tmp/x", KernelPath: "/nonexistent", MemoryMiB: 64})
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Launch = %v, want ErrInvalidConfig", err)
	}
}

func TestQEMUAttachNotFound(t *testing.T) {
	_, err := (&QEMU{}).Attach(context.Background(), Config{ID: "x", StateDir: filepath.Join(t.TempDir(), "none")})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Attach = %v, want ErrNotFound", err)
	}
}

func TestChooseAccelerator(t *testing.T) {
	kernel, _ := testGuest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	accel, reason, err := ChooseAccelerator(ctx, "", kernel, AccelAuto, "")
	if err != nil || reason == "" {
		t.Fatalf("ChooseAccelerator(auto) = %s, %q, %v", accel, reason, err)
	}
	t.Logf("auto: %s (%s)", accel, reason)
	if _, err := os.Stat("/dev/kvm"); err != nil {
		if accel != AccelTCG || reason != "no /dev/kvm" {
			t.Errorf("without /dev/kvm: %s, %q", accel, reason)
		}
		if _, _, err := ChooseAccelerator(ctx, "", kernel, AccelKVM, ""); !errors.Is(err, ErrNoKVM) {
			t.Errorf("ChooseAccelerator(kvm) = %v, want ErrNoKVM", err)
		}
	}
	if a, _, err := ChooseAccelerator(ctx, "", kernel, AccelTCG, ""); err != nil || a != AccelTCG {
		t.Errorf("ChooseAccelerator(tcg) = %s, %v", a, err)
	}
	if _, _, err := ChooseAccelerator(ctx, "", kernel, "xen", ""); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("ChooseAccelerator(xen) = %v", err)
	}
}

// The KVM probe's test of a guest, run under TCG where it must pass.
func TestProbeBoot(t *testing.T) {
	kernel, _ := testGuest(t)
	if err := probeBoot(context.Background(), defaultPath, kernel, "tcg", 30*time.Second); err != nil {
		t.Fatalf("probe under TCG: %v", err)
	}
	if err := probeBoot(context.Background(), defaultPath, kernel, "tcg", 200*time.Millisecond); err == nil {
		t.Fatal("probe passed in 200 ms")
	}
}

func TestVersion(t *testing.T) {
	testGuest(t)
	v, err := Version(context.Background(), "")
	if err != nil || v == "" || v[0] < '0' || v[0] > '9' {
		t.Fatalf("Version = %q, %v", v, err)
	}
}

// BenchmarkBootToAgentReady measures Launch to the agent port's first
// byte, the guest's boot with Debian's kernel under TCG.
func BenchmarkBootToAgentReady(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		c := bootConfig(b, "9p")
		b.StartTimer()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		vm, err := (&QEMU{}).Launch(ctx, c)
		if err != nil {
			b.Fatal(err)
		}
		conn, _, err := agentReady(ctx, vm)
		b.StopTimer()
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		conn.Close()
		if err := vm.Stop(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
