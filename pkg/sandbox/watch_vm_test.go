package sandbox_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	vc "github.com/vc-cri/vc-cri/pkg/sandbox"
)

// TestWatchSeesQEMUKilled: kill -9 of a running pod's QEMU is reported
// at once as the VM's end, and the sandbox still stops and deletes
// cleanly.
func TestWatchSeesQEMUKilled(t *testing.T) {
	r, bg := vc.NewTestRuntime(t), context.Background()
	ctr := vc.ContainerConfig{ID: "sleeper", RootFs: containerRootfs, Cmd: vc.Cmd{Args: []string{"sleep", "1000"}}}
	s, err := r.RunSandbox(bg, qemuConfig(t, ctr))
	if err != nil {
		t.Fatalf("RunSandbox: %v", err)
	}
	id := s.ID()
	defer r.DeleteSandbox(bg, id)
	st, err := r.StatusSandbox(bg, id)
	if err != nil || len(st.ContainersStatus) != 1 {
		t.Fatalf("StatusSandbox: %v, %v", st, err)
	}
	pid := st.ContainersStatus[0].PID

	ctx, cancel := context.WithTimeout(bg, time.Minute)
	defer cancel()
	ended := make(chan vc.SandboxEnd, 1)
	go func() {
		end, err := r.WatchSandbox(ctx, id)
		if err != nil {
			t.Errorf("WatchSandbox: %v", err)
		}
		ended <- end
	}()
	// Watching a running VM waits.
	select {
	case end := <-ended:
		t.Fatalf("WatchSandbox returned %v before the VM ended", end)
	case <-time.After(time.Second):
	}
	killed := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	end := <-ended
	t.Logf("QEMU killed: seen after %v", time.Since(killed))
	if end.Reason != vc.EndVMExited {
		t.Fatalf("end %q, want %q", end.Reason, vc.EndVMExited)
	}
	if _, err := r.StopSandbox(bg, id); err != nil {
		t.Fatalf("StopSandbox after QEMU was killed: %v", err)
	}
	if _, err := r.DeleteSandbox(bg, id); err != nil {
		t.Fatalf("DeleteSandbox after QEMU was killed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(r.StateRoot(), id)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("sandbox directory left: %v", err)
	}
	// Watching what is no longer there is refused.
	if _, err := r.WatchSandbox(bg, id); !errors.Is(err, vc.ErrNotFound) {
		t.Fatalf("WatchSandbox of a deleted sandbox: %v, want ErrNotFound", err)
	}
}
