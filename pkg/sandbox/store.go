package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vc-cri/vc-cri/pkg/cni"
)

// sandboxState is what a sandbox persists. Every API call loads it under
// the sandbox's lock and saves it whole, so that any process can act on
// a sandbox by its ID and a restarted process finds it again.
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
	Containers         []*containerState
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

var validID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

func checkID(kind, id string) error {
	if !validID.MatchString(id) {
		return fmt.Errorf("%s ID %q: want 1 to 128 letters, digits, '_', '.' or '-': %w", kind, id, ErrInvalidConfig)
	}
	return nil
}

// lockedSandbox is a sandbox's state held under its lock, with the
// runtime it belongs to.
type lockedSandbox struct {
	*sandboxState
	r    *Runtime
	lock *os.File
}

// dir is the sandbox's directory.
func (l *lockedSandbox) dir() string { return l.r.sandboxDir(l.Config.ID) }

// snapshot is the sandbox as it stands.
func (l *lockedSandbox) snapshot() *Sandbox {
	return &Sandbox{r: l.r, state: *l.sandboxState}
}

// createSandboxDir makes the directory of a new sandbox and locks it.
func (r *Runtime) createSandboxDir(id string) (*lockedSandbox, error) {
	if err := os.MkdirAll(r.stateRoot, 0o700); err != nil {
		return nil, err
	}
	if err := os.Mkdir(r.sandboxDir(id), 0o700); errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("sandbox %q: %w", id, ErrAlreadyExists)
	} else if err != nil {
		return nil, err
	}
	lock, err := lockFile(r.sandboxDir(id), id)
	if err != nil {
		return nil, err
	}
	return &lockedSandbox{sandboxState: &sandboxState{}, r: r, lock: lock}, nil
}

// loadSandbox locks the sandbox and reads its state.
func (r *Runtime) loadSandbox(id string) (*lockedSandbox, error) {
	if err := checkID("sandbox", id); err != nil {
		return nil, err
	}
	lock, err := lockFile(r.sandboxDir(id), id)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("sandbox %q: %w", id, ErrNotFound)
	} else if err != nil {
		return nil, err
	}
	// The sandbox may have been deleted while this call waited for it.
	b, err := os.ReadFile(filepath.Join(r.sandboxDir(id), "sandbox.json"))
	if errors.Is(err, os.ErrNotExist) {
		lock.Close()
		return nil, fmt.Errorf("sandbox %q: %w", id, ErrNotFound)
	} else if err != nil {
		lock.Close()
		return nil, err
	}
	var st sandboxState
	if err := json.Unmarshal(b, &st); err != nil {
		lock.Close()
		return nil, fmt.Errorf("sandbox %q state: %w", id, err)
	}
	for _, c := range st.Containers {
		upgradeSpec(&c.Config)
	}
	return &lockedSandbox{sandboxState: &st, r: r, lock: lock}, nil
}

// lockFile takes the sandbox's lock: an flock of dir/lock, held while
// the file stays open.
func lockFile(dir, id string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock sandbox %q: %w", id, err)
	}
	return f, nil
}

// save writes the state atomically: a crash leaves the old or the new,
// and a state root on a disk has it synced before save returns.
func (l *lockedSandbox) save() error {
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

func (l *lockedSandbox) unlock() {
	_ = l.lock.Close()
}

// sandboxIDs lists the sandboxes with a state, sorted.
func (r *Runtime) sandboxIDs() ([]string, error) {
	entries, err := os.ReadDir(r.stateRoot)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range entries {
		if e.IsDir() && validID.MatchString(e.Name()) {
			ids = append(ids, e.Name())
		}
	}
	sort.Strings(ids)
	return ids, nil
}
