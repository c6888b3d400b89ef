package sandbox_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"

	vc "github.com/vc-cri/vc-cri/pkg/sandbox"
)

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
	ctr := vc.ContainerConfig{
		ID:     "talker",
		RootFs: containerRootfs,
		Cmd: vc.Cmd{
			Args: []string{"sh", "-c", "echo hello from the guest; exec sleep 1000"},
			Envs: []vc.EnvVar{{Var: "PATH", Value: "/bin:/usr/bin"}},
		},
	}
	s, err := vc.CreateSandbox(qemuConfig(t, ctr))
	if err != nil {
		t.Fatalf("CreateSandbox: %v", err)
	}
	defer vc.DeleteSandbox(s.ID())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, stdout, _, err := vc.IOStream(ctx, s.ID(), "talker", "talker")
	if err != nil {
		t.Fatalf("IOStream: %v", err)
	}
	if _, err := vc.StartSandbox(s.ID()); err != nil {
		t.Fatalf("StartSandbox: %v", err)
	}
	line := make([]byte, len("hello from the guest\n"))
	if _, err := io.ReadFull(stdout, line); err != nil || string(line) != "hello from the guest\n" {
		t.Fatalf("container output %q, %v", line, err)
	}

	list, err := vc.ProcessListContainer(s.ID(), "talker", vc.ProcessListOptions{Format: "table"})
	if err != nil {
		t.Fatalf("ProcessListContainer: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(list)), "\n")
	if len(lines) != 2 || !strings.HasSuffix(lines[1], "sleep 1000") {
		t.Fatalf("process list:\n%s\nwant a header and sleep 1000", list)
	}

	// An exec's output and exit code.
	_, _, p, err := vc.EnterContainer(s.ID(), "talker", vc.Cmd{Args: []string{"sh", "-c", "echo in; exit 7"}})
	if err != nil {
		t.Fatalf("EnterContainer: %v", err)
	}
	_, out, _, err := vc.IOStream(ctx, s.ID(), "talker", p.Token)
	if err != nil {
		t.Fatalf("IOStream of exec: %v", err)
	}
	b, _ := io.ReadAll(out)
	code, err := vc.WaitProcess(ctx, s.ID(), "talker", p.Token)
	if err != nil || code != 7 || string(b) != "in\n" {
		t.Fatalf("exec said %q and exited %d (%v), want \"in\\n\" and 7", b, code, err)
	}

	if err := vc.KillContainer(s.ID(), "talker", syscall.SIGKILL, true); err != nil {
		t.Fatalf("KillContainer: %v", err)
	}
	if code, err := vc.WaitProcess(ctx, s.ID(), "talker", "talker"); err != nil || code != 137 {
		t.Fatalf("killed container exited %d, %v; want 137", code, err)
	}
	st, err := vc.StatusContainer(s.ID(), "talker")
	if err != nil || st.State.State != vc.StateStopped || st.ExitCode != 137 {
		t.Fatalf("StatusContainer: %+v, %v", st, err)
	}
	if _, err := vc.DeleteSandbox(s.ID()); err != nil {
		t.Fatalf("DeleteSandbox: %v", err)
	}
	if _, err := vc.StatusSandbox(s.ID()); !errors.Is(err, vc.ErrNotFound) {
		t.Fatalf("StatusSandbox after delete: %v", err)
	}
}

// TestPauseResumeInVM freezes a real VM and thaws it.
func TestPauseResumeInVM(t *testing.T) {
	s, err := vc.RunSandbox(qemuConfig(t))
	if err != nil {
		t.Fatalf("RunSandbox: %v", err)
	}
	defer vc.DeleteSandbox(s.ID())
	if _, err := vc.PauseSandbox(s.ID()); err != nil {
		t.Fatalf("PauseSandbox: %v", err)
	}
	if _, err := vc.ResumeSandbox(s.ID()); err != nil {
		t.Fatalf("ResumeSandbox: %v", err)
	}
	// The guest answers again after the thaw.
	if _, err := vc.ProcessListContainer(s.ID(), "none", vc.ProcessListOptions{}); !errors.Is(err, vc.ErrNotFound) {
		t.Fatalf("ProcessListContainer of a missing container: %v", err)
	}
	if _, err := vc.StopSandbox(s.ID()); err != nil {
		t.Fatalf("StopSandbox: %v", err)
	}
}
