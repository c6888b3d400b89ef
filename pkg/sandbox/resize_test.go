package sandbox

import (
	"context"
	"errors"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/vc-cri/vc-cri/pkg/hypervisor"
)

// TestResizeSandbox: on the mock, a VM grows and shrinks within its room;
// what is beyond the room, or would take memory the guest uses, is refused
// and changes nothing; a shrink the guest fails part way is undone; the
// size is kept in the state, as a restarted daemon finds it.
func TestResizeSandbox(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mock := hypervisor.NewMock()
	r := testRuntime(t, WithHypervisor(MockHypervisor, mock))
	cfg := mockConfig("pod")
	cfg.HypervisorConfig = HypervisorConfig{NumVCPUs: 1, MemorySize: 256, DefaultMaxVCPUs: 4, DefaultMaxMemorySize: 1024}
	if _, err := r.RunSandbox(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	vm, err := mock.Attach(ctx, hypervisor.Config{ID: "pod"})
	if err != nil {
		t.Fatal(err)
	}
	size := func() Resources { return mustState(t, r, "pod", StateRunning).Size }
	if got := size(); got != (Resources{VCPUs: 1, Memory: 256}) {
		t.Fatalf("boot size %+v", got)
	}
	resize := func(want Resources) (Resources, error) { return r.ResizeSandbox(ctx, "pod", want) }
	for _, step := range []struct {
		ask, want Resources
	}{
		{Resources{VCPUs: 3, Memory: 512}, Resources{VCPUs: 3, Memory: 512}},
		{Resources{VCPUs: 3, Memory: 512}, Resources{VCPUs: 3, Memory: 512}}, // again: the same
		{Resources{VCPUs: 2}, Resources{VCPUs: 2, Memory: 512}},
		{Resources{Memory: 301}, Resources{VCPUs: 2, Memory: 302}}, // virtio-mem's 2 MiB block
		{Resources{Memory: 100}, Resources{VCPUs: 2, Memory: 256}}, // never below boot memory
		{Resources{VCPUs: 4, Memory: 1024}, Resources{VCPUs: 4, Memory: 1024}},
	} {
		got, err := resize(step.ask)
		if err != nil || got != step.want {
			t.Fatalf("resize to %+v = %+v, %v; want %+v", step.ask, got, err, step.want)
		}
		if st := size(); st != step.want {
			t.Fatalf("after resize to %+v the status says %+v", step.ask, st)
		}
	}
	hv, _ := vm.Size(ctx)
	if hv.VCPUs != 4 || hv.MemoryMiB != 1024 {
		t.Fatalf("hypervisor size %+v", hv)
	}

	setUsed := func(mib uint64) {
		ag, ok := r.agents.get("pod")
		if !ok {
			t.Fatal("no agent")
		}
		noop := ag.(*noopAgent)
		noop.mu.Lock()
		defer noop.mu.Unlock()
		noop.usedMiB = mib
	}

	// Refused: nothing changes.
	for _, tc := range []struct {
		name string
		ask  Resources
		kind error
	}{
		{"beyond the vCPUs' room", Resources{VCPUs: 5}, errdefs.ErrResourceExhausted},
		{"beyond the memory's room", Resources{Memory: 1026}, errdefs.ErrResourceExhausted},
		{"memory the guest uses", Resources{Memory: 256}, errdefs.ErrFailedPrecondition},
	} {
		if tc.name == "memory the guest uses" {
			setUsed(900) // of its 1024 MiB: 768 are not free
		}
		before := size()
		_, err := resize(tc.ask)
		if !errors.Is(err, tc.kind) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.kind)
		}
		if got := size(); got != before {
			t.Errorf("%s changed the size: %+v, was %+v", tc.name, got, before)
		}
		setUsed(noopGuestUsedMiB)
	}
	if _, err := resize(Resources{VCPUs: 1, Memory: 1024}); err != nil {
		t.Fatal(err)
	}

	// A guest that cannot unplug part way: the vCPUs come back online and
	// the memory is plugged back.
	vm.(*hypervisor.MockVM).SetUnpluggable(800)
	if _, err := resize(Resources{VCPUs: 4, Memory: 512}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a shrink the guest failed: %v, want the mock's timeout", err)
	}
	if got := size(); got != (Resources{VCPUs: 1, Memory: 1024}) {
		t.Fatalf("after a failed resize: %+v", got)
	}
	if hv, _ := vm.Size(ctx); hv.MemoryMiB != 1024 {
		t.Fatalf("after a failed resize the VM has %d MiB", hv.MemoryMiB)
	}

	// A daemon restart: another Runtime on the same state finds the size.
	r2 := NewRuntime(WithStateRoot(r.StateRoot()), WithHypervisor(MockHypervisor, mock))
	if st, err := r2.StatusSandbox(ctx, "pod"); err != nil || st.Size != (Resources{VCPUs: 1, Memory: 1024}) {
		t.Fatalf("restarted: %+v, %v", st.Size, err)
	}

	// A stopped sandbox has nothing to resize.
	if _, err := r.StopSandbox(ctx, "pod"); err != nil {
		t.Fatal(err)
	}
	if _, err := resize(Resources{VCPUs: 2}); !errors.Is(err, ErrInvalidState) {
		t.Fatalf("resize of a stopped sandbox: %v", err)
	}
}
