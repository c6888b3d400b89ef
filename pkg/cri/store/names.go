package store

import (
	"fmt"
	"sync"
)

// Names reserves unique names (kubelet's pod and container names) for
// IDs, so that a second create of one name fails with AlreadyExists, as
// kubelet expects.
type Names struct {
	mu    sync.Mutex
	names map[string]string // name to ID; guarded by mu
}

// NewNames returns an empty reservation table.
func NewNames() *Names {
	return &Names{names: map[string]string{}}
}

// Reserve takes name for id. Reserving a name again for the same id is
// no error.
func (n *Names) Reserve(name, id string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if owner, ok := n.names[name]; ok && owner != id {
		return fmt.Errorf("name %q is reserved for %q: %w", name, owner, ErrAlreadyExists)
	}
	n.names[name] = id
	return nil
}

// Release frees name.
func (n *Names) Release(name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.names, name)
}
