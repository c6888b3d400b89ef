package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vc-cri/vc-cri/internal/ids"
	"github.com/vc-cri/vc-cri/pkg/cni"
)

// sandboxState is what a sandbox persists. Every API call loads it under
// the sandbox's lock and saves it whole, so that any process can act on
// a sandbox by its ID and a restarted process finds it again. The lock
// guards sandbox.json; a sandboxState loaded from it, its
// containerStates and the snapshots made of them (Sandbox, Container)
// are the call's own: no other goroutine reaches them before it returns.
type sandboxState struct {
	Config    SandboxConfig
	State     State
	CreatedAt time.Time
	// VMPid is the hypervisor's PID: the "shim PID" of every container.
	VMPid int
	// Endpoints are the netns interfaces joined to the VM, undone when
	// it stops.
	Endpoints []cni.Endpoint
	// GuestHugePageSizes are the huge page sizes the guest reported when
	// it booted ("2MB"); nil for a sandbox of an older daemon.
	GuestHugePageSizes []string
	// Resized is the VM's size since its last resize (ResizeSandbox):
	// the vCPUs online in the guest and its memory in MiB; nil while it
	// has the size it booted with.
	Resized *Resources
	// Template is the key of the VM template the VM started from, ""
	// when it booted cold.
	Template   string
	Containers []*containerState
}

type containerState struct {
	Config     ContainerConfig
	State      State
	CreatedAt  time.Time
	StartTime  time.Time
	FinishedAt time.Time
	ExitCode   int32
	OOMKilled  bool
	// Mounts are the host mount points made for the container in the
	// shared directory, undone when it is deleted.
	Mounts []string
}

func (s *sandboxState) container(id string) (*containerState, error) {
	for _, c := range s.Containers {
		if c.Config.ID == id {
			return c, nil
		}
	}
	return nil, fmt.Errorf("container %q in sandbox %q: %w", id, s.Config.ID, ErrNotFound)
}

func (s *sandboxState) removeContainer(id string) {
	for i, c := range s.Containers {
		if c.Config.ID == id {
			s.Containers = append(s.Containers[:i], s.Containers[i+1:]...)
			return
		}
	}
}

func checkID(kind, id string) error {
	if !ids.Valid(id) {
		return fmt.Errorf("%s ID %q: want 1 to 128 letters, digits, '_', '.' or '-': %w", kind, id, ErrInvalidConfig)
	}
	return nil
}

// lockedSandbox is a sandbox's state held under its lock, with the
// runtime it belongs to. It is the calling goroutine's alone.
type lockedSandbox struct {
	*sandboxState
	r    *Runtime
	lock *sandboxLock // this process's half of the lock
	file *os.File     // the other processes': an flock of <id>/lock
}

// dir is the sandbox's directory.
func (l *lockedSandbox) dir() string { return l.r.sandboxDir(l.Config.ID) }

// snapshot is the sandbox as it stands.
func (l *lockedSandbox) snapshot() *Sandbox {
	return &Sandbox{r: l.r, state: *l.sandboxState}
}

// createSandboxDir makes the directory of a new sandbox and locks it,
// waiting for the lock until ctx ends.
func (r *Runtime) createSandboxDir(ctx context.Context, id string) (_ *lockedSandbox, retErr error) {
	if err := os.MkdirAll(r.stateRoot, 0o700); err != nil {
		return nil, err
	}
	lock, err := r.locks.lock(ctx, id)
	if err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			r.locks.unlock(lock)
		}
	}()
	if err := os.Mkdir(r.sandboxDir(id), 0o700); errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("sandbox %q: %w", id, ErrAlreadyExists)
	} else if err != nil {
		return nil, err
	}
	file, err := lockFile(ctx, r.sandboxDir(id), id)
	if err != nil {
		// Only another process's look at the new sandbox, which it finds
		// without a state, can have held its flock.
		if rerr := removeSandboxDir(r.stateRoot, id); rerr != nil {
			return nil, fmt.Errorf("%w (and removing its directory failed: %v)", err, rerr)
		}
		return nil, err
	}
	return &lockedSandbox{sandboxState: &sandboxState{}, r: r, lock: lock, file: file}, nil
}

// loadSandbox locks the sandbox, waiting for the lock until ctx ends,
// and reads its state.
func (r *Runtime) loadSandbox(ctx context.Context, id string) (_ *lockedSandbox, retErr error) {
	if err := checkID("sandbox", id); err != nil {
		return nil, err
	}
	lock, err := r.locks.lock(ctx, id)
	if err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			r.locks.unlock(lock)
		}
	}()
	file, err := lockFile(ctx, r.sandboxDir(id), id)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("sandbox %q: %w", id, ErrNotFound)
	} else if err != nil {
		return nil, err
	}
	// The sandbox may have been deleted while this call waited for it.
	b, err := os.ReadFile(filepath.Join(r.sandboxDir(id), "sandbox.json"))
	if errors.Is(err, os.ErrNotExist) {
		file.Close()
		return nil, fmt.Errorf("sandbox %q: %w", id, ErrNotFound)
	} else if err != nil {
		file.Close()
		return nil, err
	}
	var st sandboxState
	if err := json.Unmarshal(b, &st); err != nil {
		file.Close()
		return nil, fmt.Errorf("sandbox %q state: %w", id, err)
	}
	for _, c := range st.Containers {
		upgradeSpec(&c.Config)
	}
	return &lockedSandbox{sandboxState: &st, r: r, lock: lock, file: file}, nil
}

// flockRetry is how often lockFile tries again for an flock another
// process holds.
const flockRetry = 5 * time.Millisecond

// lockFile takes the other processes' half of the sandbox's lock: an
// flock of dir/lock, held while the file stays open. The caller holds
// this process's half. It waits for the flock until ctx ends; then the
// error wraps ctx.Err(). A free flock is taken whatever ctx.
func lockFile(ctx context.Context, dir, id string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	var retry *time.Ticker
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			if retry != nil {
				retry.Stop()
			}
			return f, nil
		}
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock sandbox %q: %w", id, err)
		}
		if retry == nil {
			retry = time.NewTicker(flockRetry)
			defer retry.Stop()
		}
		select {
		case <-retry.C:
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("sandbox %q: waiting for another process's call on it: %w", id, ctx.Err())
		}
	}
}

// save writes the state atomically: a crash leaves the old or the new,
// and a state root on a disk has it synced before save returns.
func (l *lockedSandbox) save(ctx context.Context) (err error) {
	_, span := startPhase(ctx, "state_save")
	defer func() { endPhase(span, err) }()
	b, err := json.MarshalIndent(l.sandboxState, "", "  ")
	if err != nil {
		return err
	}
	files, err := l.r.stateDir()
	if err != nil {
		return err
	}
	return files.WriteFile(filepath.Join(l.Config.ID, "sandbox.json"), b, 0o600)
}

// remove deletes the sandbox's directory, never while a mount is left
// below it; the lock goes with it.
func (l *lockedSandbox) remove() error {
	defer l.unlock()
	return removeSandboxDir(l.r.stateRoot, l.Config.ID)
}

// unlock gives back the sandbox's lock: the flock, then this process's.
// Only the first call does: remove unlocks, and its caller again.
func (l *lockedSandbox) unlock() {
	if l.lock == nil {
		return
	}
	_ = l.file.Close()
	l.r.locks.unlock(l.lock)
	l.lock, l.file = nil, nil
}

// sandboxIDs lists the sandboxes with a state, sorted.
func (r *Runtime) sandboxIDs() ([]string, error) { return ids.Dirs(r.stateRoot) }
