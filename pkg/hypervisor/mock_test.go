package hypervisor

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestMockTransitions(t *testing.T) {
	ctx := context.Background()
	m := NewMock()
	cfg := Config{ID: "a", StateDir: "/run/test/a", MemoryMiB: 128}
	vm, err := m.Launch(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Launch(ctx, cfg); !errors.Is(err, ErrAlreadyExists) {
		t.Fatalf("second Launch = %v, want ErrAlreadyExists", err)
	}
	if got, err := m.Attach(ctx, cfg); err != nil || got != vm {
		t.Fatalf("Attach = %v, %v", got, err)
	}
	if err := vm.Resume(ctx); !errors.Is(err, ErrInvalidState) {
		t.Fatalf("Resume of running = %v, want ErrInvalidState", err)
	}
	if err := vm.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	if err := vm.Pause(ctx); !errors.Is(err, ErrInvalidState) {
		t.Fatalf("Pause of paused = %v, want ErrInvalidState", err)
	}
	if err := vm.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	if got := vm.(*MockVM).State(); got != MockRunning {
		t.Fatalf("state %s", got)
	}

	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if err := vm.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait on running = %v", err)
	}
	if err := vm.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := vm.Stop(ctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if err := vm.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if err := vm.Pause(ctx); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Pause after Stop = %v, want ErrNotRunning", err)
	}
	if _, err := m.Attach(ctx, cfg); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Attach after Stop = %v, want ErrNotFound", err)
	}
	if _, err := m.Launch(ctx, cfg); err != nil {
		t.Fatalf("relaunch: %v", err)
	}
}

func TestMockExit(t *testing.T) {
	ctx := context.Background()
	m := NewMock()
	vm, err := m.Launch(ctx, Config{ID: "b", StateDir: "/run/test/b", MemoryMiB: 128})
	if err != nil {
		t.Fatal(err)
	}
	vm.(*MockVM).Exit()
	if err := vm.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if err := vm.Resume(ctx); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Resume after exit = %v", err)
	}
	if len(m.VMs()) != 1 {
		t.Fatal("an exited VM stays known until Stop")
	}
	if err := vm.Stop(ctx); err != nil || len(m.VMs()) != 0 {
		t.Fatalf("Stop = %v, VMs %v", err, m.VMs())
	}
}

func TestMockInvalidConfig(t *testing.T) {
	if _, err := NewMock().Launch(context.Background(), Config{ID: "c", StateDir: "/x"}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Launch without memory = %v", err)
	}
}
