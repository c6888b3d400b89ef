package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/runtime-tools/generate"
	"golang.org/x/sys/unix"

	"github.com/vc-cri/vc-cri/hack/testimages"
	"github.com/vc-cri/vc-cri/pkg/agent"
	"github.com/vc-cri/vc-cri/pkg/agent/protocol"
	"github.com/vc-cri/vc-cri/pkg/hypervisor"
)

// guestDir is where `make guest` put the kernel and initramfs.
func guestDir(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("boots a VM")
	}
	dir := os.Getenv("VC_GUEST_DIR")
	if dir == "" {
		_, file, _, _ := runtime.Caller(0)
		dir = filepath.Join(filepath.Dir(file), "..", "..", "_output", "guest")
	}
	for _, f := range []string{"vmlinux", "initramfs.cpio"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("guest image missing (run make guest): %v", err)
		}
	}
	return dir
}

// bootVM boots a pod VM sharing shared with the guest, and connects to
// its agent.
func bootVM(t testing.TB, shared string) (hypervisor.VM, *agent.Client, time.Duration) {
	t.Helper()
	dir := guestDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	vm, err := (&hypervisor.QEMU{}).Launch(ctx, hypervisor.Config{
		ID:            "agent-it",
		StateDir:      filepath.Join(t.TempDir(), "vm"),
		KernelPath:    filepath.Join(dir, "vmlinux"),
		InitrdPath:    filepath.Join(dir, "initramfs.cpio"),
		Accelerator:   hypervisor.AccelTCG,
		MemoryMiB:     256,
		SharedDir:     shared,
		AgentPortName: protocol.PortName,
	})
	if err != nil {
		t.Fatalf("Launch: %v", err)
	}
	// A test that fails half-way leaves no VM behind (Stop twice is nil).
	t.Cleanup(func() { vm.Stop(context.Background()) })
	c, err := agent.Dial(ctx, vm.AgentSocket())
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	return vm, c, time.Since(start)
}

func spec(t testing.TB, root string, args ...string) []byte {
	t.Helper()
	g, err := generate.New("linux")
	if err != nil {
		t.Fatal(err)
	}
	g.SetRootPath(root)
	g.SetProcessArgs(args)
	g.SetProcessTerminal(false)
	g.SetHostname("it")
	b, err := json.Marshal(g.Config)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readAll(t testing.TB, c *agent.Client, ctx context.Context, cid, eid string, which protocol.OutputStream) <-chan string {
	t.Helper()
	stream, err := c.ReadOutput(ctx, &protocol.ReadOutputRequest{ContainerId: cid, ExecId: eid, Stream: which})
	if err != nil {
		t.Fatal(err)
	}
	// The headers say the agent holds the output: only then may the
	// process be waited for, which forgets an exec.
	if _, err := stream.Header(); err != nil {
		t.Fatal(err)
	}
	out := make(chan string, 1)
	go func() {
		var b bytes.Buffer
		for {
			d, err := stream.Recv()
			if err != nil {
				out <- b.String()
				return
			}
			b.Write(d.Data)
		}
	}()
	return out
}

// execOutput runs args in container cid as exec eid and returns its
// standard output; an exit code other than 0 is an error.
// It may run on any goroutine.
func execOutput(c *agent.Client, ctx context.Context, cid, eid string, args ...string) (string, error) {
	proc, _ := json.Marshal(map[string]any{"args": args, "cwd": "/", "env": []string{"PATH=/bin"}})
	if _, err := c.ExecProcess(ctx, &protocol.ExecProcessRequest{ContainerId: cid, ExecId: eid, OciProcess: proc}); err != nil {
		return "", err
	}
	stream, err := c.ReadOutput(ctx, &protocol.ReadOutputRequest{ContainerId: cid, ExecId: eid, Stream: protocol.OutputStream_STDOUT})
	if err != nil {
		return "", err
	}
	if _, err := stream.Header(); err != nil {
		return "", err
	}
	exit, err := c.WaitProcess(ctx, &protocol.ProcessRequest{ContainerId: cid, ExecId: eid})
	if err != nil {
		return "", err
	}
	var out bytes.Buffer
	for {
		d, err := stream.Recv()
		if err != nil {
			break
		}
		out.Write(d.Data)
	}
	if exit.ExitCode != 0 {
		return out.String(), fmt.Errorf("exec %s exited %d", eid, exit.ExitCode)
	}
	return out.String(), nil
}

// TestContainerInVM runs the pod VM end to end: a real guest kernel, the
// real vc-agent as PID 1, a container from a busybox rootfs.
func TestContainerInVM(t *testing.T) {
	shared := t.TempDir()
	for _, id := range []string{"hello", "sleeper", "confined"} {
		if err := testimages.BusyboxRootfs(filepath.Join(shared, id)); err != nil {
			t.Fatal(err)
		}
	}
	vm, c, _ := bootVM(t, shared)
	pid, sock := vm.Pid(), vm.AgentSocket()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	details, err := c.GuestDetails(ctx, &protocol.GuestDetailsRequest{})
	if err != nil || details.KernelRelease == "" || details.MemoryTotalBytes == 0 {
		t.Fatalf("GuestDetails: %v, %v", details, err)
	}

	// sh -c 'echo hello; exit 3': its output and its exit code.
	root := protocol.SharedDir + "/hello"
	if _, err := c.CreateContainer(ctx, &protocol.CreateContainerRequest{ContainerId: "hello", OciSpec: spec(t, root, "sh", "-c", "echo hello; exit 3")}); err != nil {
		t.Fatalf("CreateContainer: %v", err)
	}
	stdout := readAll(t, c, ctx, "hello", "", protocol.OutputStream_STDOUT)
	if _, err := c.StartContainer(ctx, &protocol.ContainerRequest{ContainerId: "hello"}); err != nil {
		t.Fatalf("StartContainer: %v", err)
	}
	exit, err := c.WaitProcess(ctx, &protocol.ProcessRequest{ContainerId: "hello"})
	if err != nil {
		t.Fatalf("WaitProcess: %v", err)
	}
	if out := <-stdout; out != "hello\n" || exit.ExitCode != 3 {
		t.Fatalf("container said %q and exited %d, want \"hello\\n\" and 3", out, exit.ExitCode)
	}
	if _, err := c.RemoveContainer(ctx, &protocol.ContainerRequest{ContainerId: "hello"}); err != nil {
		t.Fatalf("RemoveContainer: %v", err)
	}

	// ps in a running container sees that container's processes only.
	// sleeper has no seccomp filter: its execs start directly
	// (exec_direct.go); confined has runtime-tools' default filter: its
	// execs go through runc's init.
	for _, id := range []string{"sleeper", "confined"} {
		var g generate.Generator
		if err := json.Unmarshal(spec(t, protocol.SharedDir+"/"+id, "sleep", "1000"), &g.Config); err != nil {
			t.Fatal(err)
		}
		if g.Config.Linux.Seccomp == nil {
			t.Fatal("runtime-tools' default spec has no seccomp filter")
		}
		if id == "sleeper" {
			g.Config.Linux.Seccomp = nil
		}
		b, _ := json.Marshal(g.Config)
		if _, err := c.CreateContainer(ctx, &protocol.CreateContainerRequest{ContainerId: id, OciSpec: b}); err != nil {
			t.Fatalf("CreateContainer %s: %v", id, err)
		}
		if _, err := c.StartContainer(ctx, &protocol.ContainerRequest{ContainerId: id}); err != nil {
			t.Fatalf("StartContainer %s: %v", id, err)
		}
	}
	proc, _ := json.Marshal(map[string]any{"args": []string{"ps", "-o", "pid,args"}, "cwd": "/", "env": []string{"PATH=/bin"}})
	if _, err := c.ExecProcess(ctx, &protocol.ExecProcessRequest{ContainerId: "sleeper", ExecId: "ps", OciProcess: proc}); err != nil {
		t.Fatalf("ExecProcess: %v", err)
	}
	psOut := readAll(t, c, ctx, "sleeper", "ps", protocol.OutputStream_STDOUT)
	if exit, err := c.WaitProcess(ctx, &protocol.ProcessRequest{ContainerId: "sleeper", ExecId: "ps"}); err != nil || exit.ExitCode != 0 {
		t.Fatalf("ps: %v, %v", exit, err)
	}
	var cmds []string
	for _, line := range strings.Split(strings.TrimSpace(<-psOut), "\n")[1:] {
		fields := strings.Fields(line)
		cmds = append(cmds, strings.Join(fields[1:], " "))
	}
	sort.Strings(cmds)
	if strings.Join(cmds, "|") != "ps -o pid,args|sleep 1000" {
		t.Fatalf("ps in the container sees %q, want only sleep and ps", cmds)
	}
	list, err := c.ListProcesses(ctx, &protocol.ListProcessesRequest{ContainerId: "sleeper", Format: "json"})
	if err != nil || !bytes.HasPrefix(list.ProcessList, []byte("[")) {
		t.Fatalf("ListProcesses: %s, %v", list.GetProcessList(), err)
	}

	// Execs started at once each run, each with its own output, and an
	// exec ID is taken once even while its process starts.
	type result struct {
		id, out string
		err     error
	}
	results := make(chan result, 4)
	for _, id := range []string{"a", "b", "dup", "dup"} {
		go func() {
			out, err := execOutput(c, ctx, "sleeper", id, "echo", id)
			results <- result{id, out, err}
		}()
	}
	var dupOK, dupTaken int
	for range 4 {
		r := <-results
		switch {
		case r.id == "dup" && errdefs.IsAlreadyExists(r.err):
			dupTaken++
		case r.err != nil:
			t.Fatalf("exec %s: %v", r.id, r.err)
		case r.out != r.id+"\n":
			t.Fatalf("exec %s said %q", r.id, r.out)
		case r.id == "dup":
			dupOK++
		}
	}
	if dupOK != 1 || dupTaken != 1 {
		t.Fatalf("two execs with one ID: %d ran and %d were refused, want 1 and 1", dupOK, dupTaken)
	}

	// An exec runs as its user, with its capabilities, no_new_privs and
	// working directory, the container's rlimits, and in the container's
	// cgroup: the same whether it starts directly or through runc's init.
	script := `grep -E '^(Uid|Gid|Groups|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs):' /proc/self/status; ` +
		`ulimit -n; pwd; echo "HOME=$HOME"; [ "$(cat /proc/self/cgroup)" = "$(cat /proc/1/cgroup)" ] && echo same-cgroup`
	proc, _ = json.Marshal(map[string]any{
		"args": []string{"sh", "-c", script}, "cwd": "/bin", "env": []string{"PATH=/bin"},
		"user":            map[string]any{"uid": 1000, "gid": 1001, "additionalGids": []int{10}},
		"capabilities":    map[string]any{"bounding": []string{"CAP_CHOWN", "CAP_KILL"}},
		"noNewPrivileges": true,
	})
	want := strings.Join([]string{
		"Uid:\t1000\t1000\t1000\t1000", "Gid:\t1001\t1001\t1001\t1001", "Groups:\t10 ",
		"CapInh:\t0000000000000000", "CapPrm:\t0000000000000000", "CapEff:\t0000000000000000",
		"CapBnd:\t0000000000000021", "CapAmb:\t0000000000000000", "NoNewPrivs:\t1",
		"1024", "/bin", "HOME=/", "same-cgroup", "",
	}, "\n")
	for _, id := range []string{"sleeper", "confined"} {
		if _, err := c.ExecProcess(ctx, &protocol.ExecProcessRequest{ContainerId: id, ExecId: "who", OciProcess: proc}); err != nil {
			t.Fatalf("ExecProcess as a user in %s: %v", id, err)
		}
		whoOut := readAll(t, c, ctx, id, "who", protocol.OutputStream_STDOUT)
		if exit, err := c.WaitProcess(ctx, &protocol.ProcessRequest{ContainerId: id, ExecId: "who"}); err != nil || exit.ExitCode != 0 {
			t.Fatalf("exec as a user in %s: %v, %v", id, exit, err)
		}
		if got := <-whoOut; got != want {
			t.Fatalf("exec as a user in %s saw\n%s\nwant\n%s", id, got, want)
		}
	}

	// A paused container refuses an exec rather than hang its start.
	if _, err := c.PauseContainer(ctx, &protocol.ContainerRequest{ContainerId: "sleeper"}); err != nil {
		t.Fatalf("PauseContainer: %v", err)
	}
	if _, err := execOutput(c, ctx, "sleeper", "paused", "true"); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("exec in a paused container: %v, want FailedPrecondition", err)
	}
	if _, err := c.ResumeContainer(ctx, &protocol.ContainerRequest{ContainerId: "sleeper"}); err != nil {
		t.Fatalf("ResumeContainer: %v", err)
	}
	if out, err := execOutput(c, ctx, "sleeper", "resumed", "echo", "resumed"); err != nil || out != "resumed\n" {
		t.Fatalf("exec after resume: %q, %v", out, err)
	}

	// Kill it, then shut the VM down.
	if _, err := c.SignalProcess(ctx, &protocol.SignalProcessRequest{ContainerId: "sleeper", Signal: uint32(syscall.SIGKILL)}); err != nil {
		t.Fatalf("SignalProcess: %v", err)
	}
	if exit, err := c.WaitProcess(ctx, &protocol.ProcessRequest{ContainerId: "sleeper"}); err != nil || exit.ExitCode != 128+9 {
		t.Fatalf("killed container: %v, %v; want exit code 137", exit, err)
	}
	if _, err := c.DestroySandbox(ctx, &protocol.DestroySandboxRequest{}); err != nil {
		t.Fatalf("DestroySandbox: %v", err)
	}
	// The guest powers off while the host is still connected, promptly.
	waitCtx, cancelWait := context.WithTimeout(ctx, 10*time.Second)
	defer cancelWait()
	if err := vm.Wait(waitCtx); err != nil {
		t.Fatalf("the guest did not power off: %v", err)
	}
	c.Close()
	if err := vm.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}

	// Nothing is left: process, socket, state directory, mounts.
	if err := unix.Kill(pid, 0); err == nil {
		t.Errorf("QEMU (pid %d) still runs", pid)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("agent socket left: %v", err)
	}
	if _, err := os.Stat(filepath.Dir(sock)); !os.IsNotExist(err) {
		t.Errorf("VM state directory left: %v", err)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if bytes.Contains(mounts, []byte(shared)) {
		t.Errorf("a mount under %s is left", shared)
	}
}

// TestBadSpecInVM: a spec the guest cannot run gets a clear error and
// leaves the agent serving.
func TestBadSpecInVM(t *testing.T) {
	vm, c, _ := bootVM(t, t.TempDir())
	defer vm.Stop(context.Background())
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := c.CreateContainer(ctx, &protocol.CreateContainerRequest{ContainerId: "bad", OciSpec: spec(t, "/nonexistent/rootfs", "true")})
	if err == nil {
		t.Fatal("CreateContainer with a missing rootfs succeeded")
	}
	if _, err := c.Check(ctx, &protocol.CheckRequest{}); err != nil {
		t.Fatalf("agent after a failed create: %v", err)
	}
}

// BenchmarkBootToAgentReady measures Launch to the agent's first answer,
// and reports the idle VM's host RSS.
func BenchmarkBootToAgentReady(b *testing.B) {
	shared := b.TempDir()
	var rss, anon int64
	for b.Loop() {
		vm, c, _ := bootVM(b, shared)
		b.StopTimer()
		time.Sleep(5 * time.Second) // idle: free page reporting runs after 2 s
		rss, anon = vmMemory(vm.Pid())
		c.Close()
		vm.Stop(context.Background())
		b.StartTimer()
	}
	// RSS counts the kernel and initramfs QEMU maps from files, page cache
	// that every VM shares; anonymous memory is the VM's own.
	b.ReportMetric(float64(rss)/(1<<20), "RSS-MiB")
	b.ReportMetric(float64(anon)/(1<<20), "anon-MiB")
}

// vmMemory is a process's resident set and its anonymous part, in bytes.
func vmMemory(pid int) (rss, anon int64) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			rss = kb << 10
		case "RssAnon":
			anon = kb << 10
		}
	}
	return rss, anon
}

// BenchmarkExecInVM measures an exec of `echo hi` in a running container,
// in the steps the host takes: start (ExecProcess, which runs runc's init
// in the guest), attach (both output streams), and wait (the exit).
func BenchmarkExecInVM(b *testing.B) {
	shared := b.TempDir()
	if err := testimages.BusyboxRootfs(filepath.Join(shared, "c")); err != nil {
		b.Fatal(err)
	}
	vm, c, _ := bootVM(b, shared)
	defer vm.Stop(context.Background())
	defer c.Close()
	ctx := context.Background()
	if _, err := c.CreateContainer(ctx, &protocol.CreateContainerRequest{ContainerId: "c", OciSpec: spec(b, protocol.SharedDir+"/c", "sleep", "1000")}); err != nil {
		b.Fatal(err)
	}
	if _, err := c.StartContainer(ctx, &protocol.ContainerRequest{ContainerId: "c"}); err != nil {
		b.Fatal(err)
	}
	proc, _ := json.Marshal(map[string]any{"args": []string{"echo", "hi"}, "cwd": "/", "env": []string{"PATH=/bin"}})
	var start, attach, wait time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		eid := fmt.Sprintf("e%d", i)
		t0 := time.Now()
		if _, err := c.ExecProcess(ctx, &protocol.ExecProcessRequest{ContainerId: "c", ExecId: eid, OciProcess: proc}); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		out := readAll(b, c, ctx, "c", eid, protocol.OutputStream_STDOUT)
		errOut := readAll(b, c, ctx, "c", eid, protocol.OutputStream_STDERR)
		t2 := time.Now()
		if exit, err := c.WaitProcess(ctx, &protocol.ProcessRequest{ContainerId: "c", ExecId: eid}); err != nil || exit.ExitCode != 0 {
			b.Fatalf("exec: %v, %v", exit, err)
		}
		if got := <-out; got != "hi\n" {
			b.Fatalf("exec said %q", got)
		}
		<-errOut
		t3 := time.Now()
		start, attach, wait = start+t1.Sub(t0), attach+t2.Sub(t1), wait+t3.Sub(t2)
	}
	n := float64(b.N)
	b.ReportMetric(float64(start.Milliseconds())/n, "start-ms/op")
	b.ReportMetric(float64(attach.Milliseconds())/n, "attach-ms/op")
	b.ReportMetric(float64(wait.Milliseconds())/n, "wait-ms/op")
	_, anon := vmMemory(vm.Pid())
	b.ReportMetric(float64(anon>>20), "anon-MiB")
}
