package hypervisor

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
)

// Mock is an in-memory Hypervisor for the unit tests of the layers
// above: no process, no files. VMs are known by Config.ID and live
// until stopped, so Attach finds what Launch started.
type Mock struct {
	mu      sync.Mutex
	vms     map[string]*MockVM // guarded by mu; running or paused VMs
	nextPid int                // guarded by mu
}

// MockState is a mock VM's state:
//
//	Launch -> Running <-> Paused (Pause, Resume)
//	Running, Paused -> Stopped (Stop, or Exit: the guest powered off)
type MockState string

const (
	MockRunning MockState = "running"
	MockPaused  MockState = "paused"
	MockStopped MockState = "stopped"
)

var (
	_ Hypervisor = (*Mock)(nil)
	_ VM         = (*MockVM)(nil)
)

// NewMock returns an empty Mock.
func NewMock() *Mock {
	// Fake pids above any real pid_max, so none is mistaken for a process.
	return &Mock{vms: map[string]*MockVM{}, nextPid: 1 << 23}
}

// Launch implements Hypervisor. It checks what needs no host files.
func (m *Mock) Launch(ctx context.Context, cfg Config) (VM, error) {
	c := cfg.withDefaults()
	if err := c.validateIdentity(); err != nil {
		return nil, err
	}
	if c.MemoryMiB == 0 {
		return nil, invalid("MemoryMiB", "zero")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.vms[c.ID]; ok {
		return nil, fmt.Errorf("mock VM %s: %w", c.ID, ErrAlreadyExists)
	}
	m.nextPid++
	vm := &MockVM{mock: m, cfg: c, pid: m.nextPid, state: MockRunning, done: make(chan struct{}), vcpus: c.VCPUs, memMiB: c.MemoryMiB}
	m.vms[c.ID] = vm
	return vm, nil
}

// Attach implements Hypervisor.
func (m *Mock) Attach(ctx context.Context, cfg Config) (VM, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	vm, ok := m.vms[cfg.ID]
	if !ok {
		return nil, fmt.Errorf("mock VM %s: %w", cfg.ID, ErrNotFound)
	}
	return vm, nil
}

// VMs returns the IDs of the VMs not yet stopped.
func (m *Mock) VMs() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	ids := make([]string, 0, len(m.vms))
	for id := range m.vms {
		ids = append(ids, id)
	}
	return ids
}

// MockVM is a VM of a Mock.
type MockVM struct {
	mock *Mock
	cfg  Config
	pid  int

	mu     sync.Mutex // guards state, exited, vcpus, memMiB and minMemMiB
	state  MockState
	vcpus  uint32 // hot-plugged ones included
	memMiB uint32 // boot memory and what is plugged
	// minMemMiB is the least memory the guest manages to unplug down to
	// (SetUnpluggable).
	minMemMiB uint32
	exited    bool          // the "process" has ended (Exit or Stop)
	done      chan struct{} // closed when exited becomes true
}

// Config returns the Config the VM was launched with, defaults filled.
func (v *MockVM) Config() Config { return v.cfg }

func (v *MockVM) Pid() int            { return v.pid }
func (v *MockVM) AgentSocket() string { return filepath.Join(v.cfg.StateDir, agentSocketName) }

// State returns the VM's state.
func (v *MockVM) State() MockState {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.state
}

func (v *MockVM) transition(from, to MockState) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.exited {
		return fmt.Errorf("mock VM %s: %w", v.cfg.ID, ErrNotRunning)
	}
	if v.state != from {
		return fmt.Errorf("mock VM %s is %s, not %s: %w", v.cfg.ID, v.state, from, ErrInvalidState)
	}
	v.state = to
	return nil
}

// Pause implements VM.
func (v *MockVM) Pause(ctx context.Context) error { return v.transition(MockRunning, MockPaused) }

// Resume implements VM.
func (v *MockVM) Resume(ctx context.Context) error { return v.transition(MockPaused, MockRunning) }

// Exit simulates the hypervisor process ending by itself, as after a
// guest poweroff: Wait returns, Stop is still needed.
func (v *MockVM) Exit() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.exited {
		v.exited = true
		close(v.done)
	}
}

// Wait implements VM.
func (v *MockVM) Wait(ctx context.Context) error {
	// An exit comes first, even with ctx ended: a caller may ask with
	// an ended ctx whether the process has exited.
	select {
	case <-v.done:
		return nil
	default:
	}
	select {
	case <-v.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stop implements VM.
func (v *MockVM) Stop(ctx context.Context) error {
	v.Exit()
	v.mu.Lock()
	v.state = MockStopped
	v.mu.Unlock()
	v.mock.mu.Lock()
	defer v.mock.mu.Unlock()
	if v.mock.vms[v.cfg.ID] == v {
		delete(v.mock.vms, v.cfg.ID)
	}
	return nil
}

// SetUnpluggable makes the guest fail to unplug memory below mib, as a
// guest whose memory is in use: SetMemory stops there.
func (v *MockVM) SetUnpluggable(mib uint32) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.minMemMiB = mib
}

// Size implements VM.
func (v *MockVM) Size(ctx context.Context) (Size, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.exited {
		return Size{}, fmt.Errorf("mock VM %s: %w", v.cfg.ID, ErrNotRunning)
	}
	return Size{VCPUs: v.vcpus, MaxVCPUs: v.cfg.MaxVCPUs, MemoryMiB: v.memMiB, MaxMemoryMiB: v.cfg.MemoryMiB + v.cfg.hotplugMemoryMiB()}, nil
}

// PlugVCPUs implements VM.
func (v *MockVM) PlugVCPUs(ctx context.Context, n uint32) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.exited {
		return fmt.Errorf("mock VM %s: %w", v.cfg.ID, ErrNotRunning)
	}
	if n > v.cfg.MaxVCPUs {
		return fmt.Errorf("%d vCPUs asked, mock VM %s has room for %d: %w", n, v.cfg.ID, v.cfg.MaxVCPUs, ErrNoRoom)
	}
	v.vcpus = max(v.vcpus, n)
	return nil
}

// SetMemory implements VM.
func (v *MockVM) SetMemory(ctx context.Context, mib uint32) (uint32, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.exited {
		return 0, fmt.Errorf("mock VM %s: %w", v.cfg.ID, ErrNotRunning)
	}
	if room := v.cfg.MemoryMiB + v.cfg.hotplugMemoryMiB(); mib < v.cfg.MemoryMiB || mib > room {
		return v.memMiB, fmt.Errorf("%d MiB asked, mock VM %s has from %d to %d: %w", mib, v.cfg.ID, v.cfg.MemoryMiB, room, ErrNoRoom)
	}
	mib = v.cfg.MemoryMiB + (mib-v.cfg.MemoryMiB+hotplugBlockMiB-1)/hotplugBlockMiB*hotplugBlockMiB
	if mib < v.minMemMiB {
		v.memMiB = min(v.memMiB, v.minMemMiB)
		return v.memMiB, fmt.Errorf("mock guest unplugged down to %d MiB of the %d asked: %w", v.memMiB, mib, context.DeadlineExceeded)
	}
	v.memMiB = mib
	return mib, nil
}
