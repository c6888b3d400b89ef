// Package store keeps the CRI server's records of pods and containers:
// in memory for reads, each written to its own file on every change so
// that a restarted vc-cri finds them again.
package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/containerd/errdefs"
	"k8s.io/klog/v2"

	"github.com/vc-cri/vc-cri/internal/atomicfile"
)

// Sentinel errors, wrapped with the ID; each wraps its kind of
// github.com/containerd/errdefs.
var (
	ErrNotFound      = fmt.Errorf("%w", errdefs.ErrNotFound)
	ErrAlreadyExists = fmt.Errorf("%w", errdefs.ErrAlreadyExists)
)

// Store holds records of type T by ID. T must survive a JSON round trip;
// records are handed out as copies, so callers never share one.
type Store[T any] struct {
	// Set by Open, never changed.
	dir   string
	kind  string
	files *atomicfile.Dir // dir, for writes: on a disk they are synced

	mu    sync.RWMutex  // guards items and the files under dir
	items map[string]*T // guarded by mu
}

// Open loads every record saved under dir (created if needed).
func Open[T any](dir, kind string) (*Store[T], error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	files, err := atomicfile.Open(dir)
	if err != nil {
		return nil, err
	}
	s := &Store[T]{dir: dir, kind: kind, files: files, items: map[string]*T{}}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if atomicfile.IsTemp(e.Name()) {
			// A write a crash cut short: the record it was to replace
			// is whole beside it.
			_ = os.Remove(filepath.Join(dir, e.Name()))
			continue
		}
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		path := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(path)
		var v T
		if err == nil {
			err = json.Unmarshal(b, &v)
		}
		if err != nil {
			// One bad record (a crash mid-write on a disk without
			// rename's guarantee, a hand edit) must not keep the daemon
			// from serving every other pod: it is kept aside, for a look.
			klog.ErrorS(err, "Record cannot be read: moved aside", "kind", kind, "id", id, "to", path+corruptSuffix)
			if err := os.Rename(path, path+corruptSuffix); err != nil {
				return nil, fmt.Errorf("%s %s: move the unreadable record aside: %w", kind, id, err)
			}
			continue
		}
		s.items[id] = &v
	}
	return s, nil
}

// corruptSuffix names a record file that could not be read.
const corruptSuffix = ".corrupt"

// Add saves a new record.
func (s *Store[T]) Add(id string, v T) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.items[id]; ok {
		return fmt.Errorf("%s %q: %w", s.kind, id, ErrAlreadyExists)
	}
	if err := s.write(id, &v); err != nil {
		return err
	}
	s.items[id] = &v
	return nil
}

// Get returns a copy of the record.
func (s *Store[T]) Get(id string) (T, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.items[id]
	if !ok {
		var zero T
		return zero, fmt.Errorf("%s %q: %w", s.kind, id, ErrNotFound)
	}
	return clone(v), nil
}

// Update applies fn to a copy of the record and saves it; if fn or the
// save fails, the record is left as it was.
func (s *Store[T]) Update(id string, fn func(*T) error) (T, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var zero T
	old, ok := s.items[id]
	if !ok {
		return zero, fmt.Errorf("%s %q: %w", s.kind, id, ErrNotFound)
	}
	v := clone(old)
	if err := fn(&v); err != nil {
		return zero, err
	}
	if err := s.write(id, &v); err != nil {
		return zero, err
	}
	s.items[id] = &v
	return clone(&v), nil
}

// Delete removes the record; a missing one is no error.
func (s *Store[T]) Delete(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.Remove(filepath.Join(s.dir, id+".json")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	delete(s.items, id)
	return nil
}

// List returns copies of every record, ordered by ID.
func (s *Store[T]) List() []T {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ids := make([]string, 0, len(s.items))
	for id := range s.items {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	out := make([]T, 0, len(ids))
	for _, id := range ids {
		out = append(out, clone(s.items[id]))
	}
	return out
}

// write saves v atomically: a crash leaves the old record or the new,
// and on a disk the new one is synced before write returns.
func (s *Store[T]) write(id string, v *T) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.files.WriteFile(id+".json", b, 0o600)
}

// clone deep-copies through JSON: records are small and this keeps every
// nested pointer (protobuf configs) unshared.
func clone[T any](v *T) T {
	var out T
	b, err := json.Marshal(v)
	if err == nil {
		err = json.Unmarshal(b, &out)
	}
	if err != nil {
		panic(fmt.Sprintf("store: record does not survive JSON: %v", err))
	}
	return out
}
