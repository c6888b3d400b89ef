package sandbox

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/vc-cri/vc-cri/pkg/hypervisor"
)

// TestWatchSandbox: a VM that exits by itself is reported; a watch whose
// context ends says so; a sandbox that does not run is refused.
func TestWatchSandbox(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mock := hypervisor.NewMock()
	r := testRuntime(t, WithHypervisor(MockHypervisor, mock))
	if _, err := r.CreateSandbox(ctx, mockConfig("created")); err != nil {
		t.Fatal(err)
	}
	if _, err := r.WatchSandbox(ctx, "created"); !errors.Is(err, ErrInvalidState) {
		t.Fatalf("WatchSandbox of a created sandbox: %v, want ErrInvalidState", err)
	}
	if _, err := r.RunSandbox(ctx, mockConfig("running")); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := r.WatchSandbox(short, "running"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WatchSandbox until its deadline: %v", err)
	}
	ended := make(chan SandboxEnd, 1)
	go func() {
		end, err := r.WatchSandbox(ctx, "running")
		if err != nil {
			t.Error(err)
		}
		ended <- end
	}()
	time.Sleep(50 * time.Millisecond)
	vm, err := mock.Attach(ctx, hypervisor.Config{ID: "running"})
	if err != nil {
		t.Fatal(err)
	}
	vm.(*hypervisor.MockVM).Exit()
	select {
	case end := <-ended:
		if end.Reason != EndVMExited || end.At.IsZero() {
			t.Fatalf("end %+v, want %s", end, EndVMExited)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the VM's exit was not reported")
	}
}
