// Package ids checks the IDs of pods and containers, each of which names
// a directory of a state root, and lists those directories.
package ids

import (
	"errors"
	"os"
	"regexp"
	"slices"
)

var valid = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// Valid tells whether id can name a directory: 1 to 128 letters, digits,
// '_', '.' or '-', not starting with one of the last three.
func Valid(id string) bool { return valid.MatchString(id) }

// Dirs lists, sorted, the subdirectories of dir that a valid ID names:
// none when dir does not exist.
func Dirs(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && Valid(e.Name()) {
			out = append(out, e.Name())
		}
	}
	slices.Sort(out)
	return out, nil
}
