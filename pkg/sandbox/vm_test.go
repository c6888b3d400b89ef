package sandbox_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vc-cri/vc-cri/internal/exitcode"
	vc "github.com/vc-cri/vc-cri/pkg/sandbox"
)

// execIn runs cmd in container id of sandbox sid and returns its output
// and exit code.
func execIn(ctx context.Context, t *testing.T, r *vc.Runtime, sid, id string, cmd vc.Cmd) (string, int32) {
	t.Helper()
	_, _, p, err := r.EnterContainer(ctx, sid, id, cmd)
	if err != nil {
		t.Fatalf("EnterContainer %q: %v", cmd.Args, err)
	}
	_, out, _, err := r.IOStream(ctx, sid, id, p.Token)
	if err != nil {
		t.Fatalf("IOStream of exec: %v", err)
	}
	b, _ := io.ReadAll(out)
	code, err := r.WaitProcess(ctx, sid, id, p.Token)
	if err != nil {
		t.Fatalf("WaitProcess of %q: %v", cmd.Args, err)
	}
	return string(b), code
}

// shIn runs a shell script in container id of sandbox sid, with envs,
// and returns its output; the test fails unless it exits 0.
func shIn(ctx context.Context, t *testing.T, r *vc.Runtime, sid, id, script string, envs []vc.EnvVar) string {
	t.Helper()
	out, code := execIn(ctx, t, r, sid, id, vc.Cmd{Args: []string{"sh", "-c", script}, Envs: envs})
	if code != 0 {
		t.Fatalf("%q exited %d: %s", script, code, out)
	}
	return out
}

func qemuConfig(t *testing.T, containers ...vc.ContainerConfig) vc.SandboxConfig {
	t.Helper()
	if testing.Short() {
		t.Skip("boots a VM")
	}
	return vc.SandboxConfig{
		HypervisorType:   vc.QemuHypervisor,
		HypervisorConfig: vc.HypervisorConfig{KernelPath: guestKernel, ImagePath: guestImage, MachineAccelerators: "tcg"},
		AgentType:        vc.KataContainersAgent,
		Containers:       containers,
	}
}

// TestProcessListInVM runs a container in a real VM and reads what its
// process does: its output, and its place in ProcessListContainer.
func TestProcessListInVM(t *testing.T) {
	r, bg := vc.NewTestRuntime(t), context.Background()
	ctr := vc.ContainerConfig{
		ID:     "talker",
		RootFs: containerRootfs,
		Cmd: vc.Cmd{
			Args: []string{"sh", "-c", "echo hello from the guest; exec sleep 1000"},
			Envs: []vc.EnvVar{{Var: "PATH", Value: "/bin:/usr/bin"}},
		},
	}
	s, err := r.CreateSandbox(bg, qemuConfig(t, ctr))
	if err != nil {
		t.Fatalf("CreateSandbox: %v", err)
	}
	defer r.DeleteSandbox(bg, s.ID())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, stdout, _, err := r.IOStream(ctx, s.ID(), "talker", "talker")
	if err != nil {
		t.Fatalf("IOStream: %v", err)
	}
	if _, err := r.StartSandbox(bg, s.ID()); err != nil {
		t.Fatalf("StartSandbox: %v", err)
	}
	line := make([]byte, len("hello from the guest\n"))
	if _, err := io.ReadFull(stdout, line); err != nil || string(line) != "hello from the guest\n" {
		t.Fatalf("container output %q, %v", line, err)
	}

	// The shell printed before it exec'd sleep: the list may catch it in
	// the middle of that exec (its command line empty) for a moment.
	var list vc.ProcessList
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if list, err = r.ProcessListContainer(bg, s.ID(), "talker", vc.ProcessListOptions{Format: "table"}); err != nil {
			t.Fatalf("ProcessListContainer: %v", err)
		}
		lines := strings.Split(strings.TrimSpace(string(list)), "\n")
		if len(lines) == 2 && strings.HasSuffix(lines[1], "sleep 1000") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("process list:\n%s\nwant a header and sleep 1000", list)
		}
	}

	// An exec's output and exit code.
	_, _, p, err := r.EnterContainer(bg, s.ID(), "talker", vc.Cmd{Args: []string{"sh", "-c", "echo in; exit 7"}})
	if err != nil {
		t.Fatalf("EnterContainer: %v", err)
	}
	_, out, _, err := r.IOStream(ctx, s.ID(), "talker", p.Token)
	if err != nil {
		t.Fatalf("IOStream of exec: %v", err)
	}
	b, _ := io.ReadAll(out)
	code, err := r.WaitProcess(ctx, s.ID(), "talker", p.Token)
	if err != nil || code != 7 || string(b) != "in\n" {
		t.Fatalf("exec said %q and exited %d (%v), want \"in\\n\" and 7", b, code, err)
	}

	if err := r.KillContainer(bg, s.ID(), "talker", syscall.SIGKILL, true); err != nil {
		t.Fatalf("KillContainer: %v", err)
	}
	if code, err := r.WaitProcess(ctx, s.ID(), "talker", "talker"); err != nil || code != exitcode.Killed {
		t.Fatalf("killed container exited %d, %v; want %d", code, err, exitcode.Killed)
	}
	st, err := r.StatusContainer(bg, s.ID(), "talker")
	if err != nil || st.State.State != vc.StateStopped || st.ExitCode != exitcode.Killed {
		t.Fatalf("StatusContainer: %+v, %v", st, err)
	}
	if _, err := r.DeleteSandbox(bg, s.ID()); err != nil {
		t.Fatalf("DeleteSandbox: %v", err)
	}
	if _, err := r.StatusSandbox(bg, s.ID()); !errors.Is(err, vc.ErrNotFound) {
		t.Fatalf("StatusSandbox after delete: %v", err)
	}
}

// TestPauseResumeInVM freezes a real VM and thaws it.
func TestPauseResumeInVM(t *testing.T) {
	r, bg := vc.NewTestRuntime(t), context.Background()
	s, err := r.RunSandbox(bg, qemuConfig(t))
	if err != nil {
		t.Fatalf("RunSandbox: %v", err)
	}
	defer r.DeleteSandbox(bg, s.ID())
	if _, err := r.PauseSandbox(bg, s.ID()); err != nil {
		t.Fatalf("PauseSandbox: %v", err)
	}
	if _, err := r.ResumeSandbox(bg, s.ID()); err != nil {
		t.Fatalf("ResumeSandbox: %v", err)
	}
	// The guest answers again after the thaw.
	if _, err := r.ProcessListContainer(bg, s.ID(), "none", vc.ProcessListOptions{}); !errors.Is(err, vc.ErrNotFound) {
		t.Fatalf("ProcessListContainer of a missing container: %v", err)
	}
	if _, err := r.StopSandbox(bg, s.ID()); err != nil {
		t.Fatalf("StopSandbox: %v", err)
	}
}
