package sandbox

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/vc-cri/vc-cri/internal/atomicfile"
	"github.com/vc-cri/vc-cri/pkg/hypervisor"
)

// DefaultStateRoot is where a Runtime keeps its sandboxes unless
// WithStateRoot says otherwise.
const DefaultStateRoot = "/run/vc-cri/sandboxes"

// Runtime runs sandboxes: it knows where their state lives, which
// hypervisors and agents they may use, and holds this process's handles
// on their VMs and agent links. Its methods are safe for concurrent use,
// and two Runtimes on one state root see the same sandboxes (a daemon
// and its restart).
type Runtime struct {
	// Set by NewRuntime, never changed.
	stateRoot   string
	hypervisors map[HypervisorType]hypervisor.Hypervisor
	dialers     map[AgentType]AgentDialer

	// locks are this process's halves of the sandboxes' locks.
	locks sandboxLocks

	// stateFiles is the state root opened for atomic writes, once it
	// exists: set by the first save, never changed after.
	stateFiles atomic.Pointer[atomicfile.Dir]

	// The caches of VM handles and agent links, each guarded by its own
	// mutex; a sandbox's entry changes only under the sandbox's lock.
	vms    handles[hypervisor.VM]
	agents handles[Agent]

	templates templates
}

// Option configures a Runtime.
type Option func(*Runtime)

// WithStateRoot keeps the sandboxes' state in dir, one directory per
// sandbox. It belongs on a tmpfs such as /run: VMs do not outlive the
// host.
func WithStateRoot(dir string) Option {
	return func(r *Runtime) { r.stateRoot = dir }
}

// WithHypervisor runs the sandboxes of type t on h.
func WithHypervisor(t HypervisorType, h hypervisor.Hypervisor) Option {
	return func(r *Runtime) { r.hypervisors[t] = h }
}

// WithAgentDialer reaches the agents of type t through d.
func WithAgentDialer(t AgentType, d AgentDialer) Option {
	return func(r *Runtime) { r.dialers[t] = d }
}

// NewRuntime returns a Runtime with DefaultStateRoot, QEMU and a mock
// hypervisor of its own, and the kata and noop agents, as opts change
// them. It touches nothing on disk.
func NewRuntime(opts ...Option) *Runtime {
	r := &Runtime{
		stateRoot: DefaultStateRoot,
		hypervisors: map[HypervisorType]hypervisor.Hypervisor{
			QemuHypervisor: &hypervisor.QEMU{},
			// The mock's VMs outlive the calls that start them, as real
			// ones do, for as long as this Runtime.
			MockHypervisor: hypervisor.NewMock(),
		},
		dialers: map[AgentType]AgentDialer{
			KataContainersAgent: kataDialer{},
			NoopAgentType:       noopDialer{},
		},
	}
	for _, o := range opts {
		o(r)
	}
	return r
}

// StateRoot is the directory of the runtime's sandboxes.
func (r *Runtime) StateRoot() string { return r.stateRoot }

// defaultRuntime is the Runtime of the package-level functions; nil
// until Default or SetDefault sets it.
var defaultRuntime atomic.Pointer[Runtime]

// Default returns the Runtime the package-level functions use, made with
// NewRuntime() on first use unless SetDefault gave one.
func Default() *Runtime {
	if r := defaultRuntime.Load(); r != nil {
		return r
	}
	defaultRuntime.CompareAndSwap(nil, NewRuntime())
	return defaultRuntime.Load()
}

// SetDefault makes r the Runtime of the package-level functions. A
// program calls it once, before their first use.
func SetDefault(r *Runtime) {
	defaultRuntime.Store(r)
}

func (r *Runtime) hypervisorFor(t HypervisorType) (hypervisor.Hypervisor, error) {
	if h, ok := r.hypervisors[t]; ok {
		return h, nil
	}
	return nil, fmt.Errorf("unknown hypervisor type %q: %w", t, ErrInvalidConfig)
}

func (r *Runtime) dialerFor(t AgentType) (AgentDialer, error) {
	if d, ok := r.dialers[t]; ok {
		return d, nil
	}
	return nil, fmt.Errorf("unknown agent type %q: %w", t, ErrInvalidConfig)
}

// sandboxDir holds a sandbox's sandbox.json, its lock, and the
// directories shared with the guest.
func (r *Runtime) sandboxDir(id string) string { return filepath.Join(r.stateRoot, id) }
func (r *Runtime) sharedDir(id string) string  { return filepath.Join(r.sandboxDir(id), sharedName) }

// stateDir is the state root for atomic writes, opened (its filesystem
// asked whether it is a tmpfs) by the first call, once the root exists.
func (r *Runtime) stateDir() (*atomicfile.Dir, error) {
	if d := r.stateFiles.Load(); d != nil {
		return d, nil
	}
	d, err := atomicfile.Open(r.stateRoot)
	if err != nil {
		return nil, err
	}
	// Two first calls may race: the loser's Dir tells the same.
	r.stateFiles.CompareAndSwap(nil, d)
	return r.stateFiles.Load(), nil
}

// vmDir holds the VM's runtime files, unix sockets among them: its name
// is a short hash of the ID, as a socket path must fit in 108 bytes.
func (r *Runtime) vmDir(id string) string {
	sum := sha256.Sum256([]byte(id))
	return filepath.Join(r.stateRoot, ".vm", hex.EncodeToString(sum[:8]))
}

// sandboxLocks are the in-process halves of the sandboxes' locks, taken
// before their flocks: one lock by sandbox ID, in the map only while a
// call holds it or waits for it.
type sandboxLocks struct {
	// mu is held only to read or change m and the locks' refs, never
	// while waiting for a lock.
	mu sync.Mutex
	m  map[string]*sandboxLock // guarded by mu
}

// sandboxLock is one sandbox's in-process lock.
type sandboxLock struct {
	// Set when made, never changed.
	id string
	// held has room for one: full while a call holds the lock.
	held chan struct{}
	// refs counts the calls that hold the lock or wait for it: the lock
	// leaves the map when it drops to 0. Guarded by sandboxLocks.mu.
	refs int
}

// lock takes the sandbox's in-process lock, waiting for it until ctx
// ends; then the error wraps ctx.Err(). A free lock is taken whatever
// ctx. unlock gives it back.
func (l *sandboxLocks) lock(ctx context.Context, id string) (*sandboxLock, error) {
	l.mu.Lock()
	sl := l.m[id]
	if sl == nil {
		sl = &sandboxLock{id: id, held: make(chan struct{}, 1)}
		if l.m == nil {
			l.m = map[string]*sandboxLock{}
		}
		l.m[id] = sl
	}
	sl.refs++
	l.mu.Unlock()
	select {
	case sl.held <- struct{}{}:
		return sl, nil
	default:
	}
	select {
	case sl.held <- struct{}{}:
		return sl, nil
	case <-ctx.Done():
		l.release(sl)
		return nil, fmt.Errorf("sandbox %q: waiting for another call on it: %w", id, ctx.Err())
	}
}

// unlock gives back the sandbox's lock, which the caller holds.
func (l *sandboxLocks) unlock(sl *sandboxLock) {
	<-sl.held
	l.release(sl)
}

// release drops a call's reference to the lock, and the lock from the
// map with the last one.
func (l *sandboxLocks) release(sl *sandboxLock) {
	l.mu.Lock()
	defer l.mu.Unlock()
	sl.refs--
	if sl.refs == 0 {
		delete(l.m, sl.id)
	}
}

// count is the number of sandboxes whose lock a call holds or waits for.
func (l *sandboxLocks) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}

// handles caches this process's handles of one kind by sandbox ID.
type handles[T any] struct {
	mu sync.Mutex
	m  map[string]T // guarded by mu
}

func (h *handles[T]) get(id string) (T, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.m[id]
	return v, ok
}

// getOrAdd returns the ID's handle, made by add, under the mutex, when
// there is none yet.
func (h *handles[T]) getOrAdd(id string, add func() (T, error)) (T, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if v, ok := h.m[id]; ok {
		return v, nil
	}
	v, err := add()
	if err != nil {
		return v, err
	}
	if h.m == nil {
		h.m = map[string]T{}
	}
	h.m[id] = v
	return v, nil
}

// put stores v, replacing any handle of the ID.
func (h *handles[T]) put(id string, v T) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = map[string]T{}
	}
	h.m[id] = v
}

// keep stores v unless the ID has a handle already, and returns the
// handle kept and whether it is v.
func (h *handles[T]) keep(id string, v T) (T, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if cur, ok := h.m[id]; ok {
		return cur, false
	}
	if h.m == nil {
		h.m = map[string]T{}
	}
	h.m[id] = v
	return v, true
}

// take removes the ID's handle and returns it.
func (h *handles[T]) take(id string) (T, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.m[id]
	delete(h.m, id)
	return v, ok
}
