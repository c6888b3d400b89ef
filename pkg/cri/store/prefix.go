package store

import (
	"fmt"
	"sort"
	"strings"

	"github.com/containerd/errdefs"
)

// ErrAmbiguous: an ID prefix matches more than one record.
var ErrAmbiguous = fmt.Errorf("ambiguous ID prefix: %w", errdefs.ErrInvalidArgument)

// FullIDLength is the length of the IDs vc-cri gives pods and
// containers: 32 random bytes in lower-case hex.
const FullIDLength = 64

// maxCandidates bounds the IDs an ambiguity error names.
const maxCandidates = 5

// Resolve returns the ID of the one record whose ID is id or starts with
// id, as containerd's truncindex does for crictl's short IDs. An exact
// match wins; a prefix of several records is ErrAmbiguous, naming them;
// a prefix of none is ErrNotFound. The empty string resolves to nothing.
func (s *Store[T]) Resolve(id string) (string, error) {
	if id == "" {
		return "", fmt.Errorf("%s ID is empty: %w", s.kind, ErrNotFound)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if _, ok := s.items[id]; ok {
		return id, nil
	}
	var matches []string
	for full := range s.items {
		if strings.HasPrefix(full, id) {
			matches = append(matches, full)
		}
	}
	switch len(matches) {
	case 0:
		return "", fmt.Errorf("no %s ID starts with %q: %w", s.kind, id, ErrNotFound)
	case 1:
		return matches[0], nil
	}
	sort.Strings(matches)
	return "", fmt.Errorf("%s ID prefix %q matches %d: %s: %w", s.kind, id, len(matches), candidates(matches), ErrAmbiguous)
}

func candidates(ids []string) string {
	if len(ids) <= maxCandidates {
		return strings.Join(ids, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(ids[:maxCandidates], ", "), len(ids)-maxCandidates)
}

// IsShortID tells whether id has the form of a prefix a user typed: 1 to
// 63 lower-case hex digits, shorter than any full ID. kubelet always
// passes full IDs; critest's "not existing" IDs are UUIDs, with dashes.
// An unknown ID of this form is NotFound even where the CRI asks an
// unknown ID to be no error (stop, remove): it names no record that is
// gone but a record that the user meant and that still runs.
func IsShortID(id string) bool {
	if id == "" || len(id) >= FullIDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
