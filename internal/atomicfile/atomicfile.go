// Package atomicfile writes files whole: a reader, or the next boot after
// a crash, finds the old content or the new, never a mix or a truncation.
//
// A file is written to a temporary file beside it, which is fsync'd,
// renamed over the file, and then the directory is fsync'd, so that the
// rename itself survives a power loss. On a tmpfs, which a reboot empties
// anyway, the two fsyncs are skipped: whether a directory is on one is
// asked once, when it is opened.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Dir is a directory whose files are written whole. Its fields are set
// by Open and never changed: a Dir is safe for concurrent use, though
// two concurrent writes of one file leave either of them.
type Dir struct {
	path string
	// onTmpfs: the directory is on a tmpfs, and its writes skip fsync.
	onTmpfs bool
}

// Open opens dir, which must exist, for atomic writes.
func Open(dir string) (*Dir, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return nil, &os.PathError{Op: "statfs", Path: dir, Err: err}
	}
	return &Dir{path: dir, onTmpfs: st.Type == unix.TMPFS_MAGIC}, nil
}

// Path is the directory's path.
func (d *Dir) Path() string { return d.path }

// tmpSep is in the name of every temporary file, after the name of the
// file it is to replace.
const tmpSep = ".tmp-"

// IsTemp tells whether name (a base name) is that of a temporary file
// left by a write that did not finish, as a crash leaves one: such a
// file is never read, and can be removed when no write runs.
func IsTemp(name string) bool {
	return strings.HasPrefix(name, ".") && strings.Contains(name, tmpSep)
}

// WriteFile replaces the file name, a path relative to d (in d or below
// it, on the same filesystem), by data, with permissions perm when it is
// made. It returns only once the new content is durable, except on a
// tmpfs.
func (d *Dir) WriteFile(name string, data []byte, perm os.FileMode) error {
	path := filepath.Join(d.path, name)
	dir, base := filepath.Split(path)
	// Hidden, and never with the suffix of the files it replaces.
	f, err := os.CreateTemp(dir, "."+base+tmpSep+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	if err := d.fill(f, data, perm); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if d.onTmpfs {
		return nil
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// fill writes data to the temporary file f, syncs it unless on a tmpfs,
// and closes it.
func (d *Dir) fill(f *os.File, data []byte, perm os.FileMode) error {
	err := f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil && !d.onTmpfs {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
