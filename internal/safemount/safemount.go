// Package safemount makes and undoes mounts below a directory that an
// untrusted party (a pod VM's guest) may write into, without ever
// following a symlink it planted or escaping the directory.
//
// Every path is resolved from an open descriptor of the root directory
// with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS);
// mounts are attached to the descriptor of their target (the new mount
// API: open_tree, mount_setattr, move_mount), and unmounted through the
// descriptor of the mount's root after checking its mount ID, so that a
// rename or a symlink swapped in between can only make a call fail, never
// act on another place.
package safemount

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// resolve is how every path below a Root is resolved.
const resolve = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

// ErrMounted is returned by RemoveAll while a mount is left below the path.
var ErrMounted = errors.New("mount points remain")

// Root is an open directory that paths are resolved below.
type Root struct {
	fd   int
	path string // for mountinfo and messages only; never resolved again
}

// OpenRoot opens the directory path. path itself is trusted: it is the
// caller's own (a sandbox's directory), not the guest's.
func OpenRoot(path string) (*Root, error) {
	// The mount table names resolved paths: so must the root's.
	if resolved, err := filepath.EvalSymlinks(path); err == nil {
		path = resolved
	}
	path = filepath.Clean(path)
	fd, err := unix.Open(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return &Root{fd: fd, path: path}, nil
}

// Close releases the root's descriptor.
func (r *Root) Close() error { return unix.Close(r.fd) }

// Path is the root's path as given to OpenRoot.
func (r *Root) Path() string { return r.path }

func (r *Root) join(rel string) string { return filepath.Join(r.path, rel) }

// clean checks that rel is a relative path that stays below the root.
func clean(rel string) (string, error) {
	c := filepath.Clean(rel)
	if filepath.IsAbs(c) || c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("path %q is not below the root", rel)
	}
	return c, nil
}

// openat opens rel below dirfd, never following a symlink.
func openat(dirfd int, rel string, flags int) (int, error) {
	for {
		fd, err := unix.Openat2(dirfd, rel, &unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Resolve: resolve})
		if err == unix.EINTR || err == unix.EAGAIN {
			// EAGAIN: a rename elsewhere on the system raced the lookup.
			continue
		}
		return fd, err
	}
}

// Open opens rel below the root with flags (O_PATH, O_RDONLY...),
// following no symlink on the way, the last component included.
func (r *Root) Open(rel string, flags int) (*os.File, error) {
	rel, err := clean(rel)
	if err != nil {
		return nil, err
	}
	fd, err := openat(r.fd, rel, flags|unix.O_NOFOLLOW)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: r.join(rel), Err: err}
	}
	return os.NewFile(uintptr(fd), r.join(rel)), nil
}

// mkdirAll creates rel and its parents below the root, each with mode,
// and returns an O_PATH descriptor of rel.
func (r *Root) mkdirAll(rel string, mode uint32) (int, error) {
	rel, err := clean(rel)
	if err != nil {
		return -1, err
	}
	fd, err := unix.Dup(r.fd)
	if err != nil {
		return -1, err
	}
	unix.CloseOnExec(fd)
	if rel == "." {
		return fd, nil
	}
	for _, name := range strings.Split(rel, "/") {
		if err := unix.Mkdirat(fd, name, mode); err != nil && err != unix.EEXIST {
			unix.Close(fd)
			return -1, &os.PathError{Op: "mkdir", Path: r.join(rel), Err: err}
		}
		next, err := openat(fd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW)
		unix.Close(fd)
		if err != nil {
			return -1, &os.PathError{Op: "open", Path: r.join(rel), Err: err}
		}
		fd = next
	}
	return fd, nil
}

// MkdirAll creates the directory rel and its missing parents below the
// root. A symlink anywhere on the way is an error.
func (r *Root) MkdirAll(rel string, mode os.FileMode) error {
	fd, err := r.mkdirAll(rel, uint32(mode.Perm()))
	if err != nil {
		return err
	}
	return unix.Close(fd)
}

// createFile creates the regular file rel (its parents as directories)
// with O_EXCL, and returns an O_PATH descriptor of it.
func (r *Root) createFile(rel string, mode uint32) (int, error) {
	rel, err := clean(rel)
	if err != nil {
		return -1, err
	}
	dir, name := filepath.Split(rel)
	if name == "" || name == "." {
		return -1, fmt.Errorf("file %q: no name", rel)
	}
	dfd, err := r.mkdirAll(filepath.Clean(dir), 0o755)
	if err != nil {
		return -1, err
	}
	defer unix.Close(dfd)
	fd, err := unix.Openat(dfd, name, unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, mode)
	if err != nil {
		return -1, &os.PathError{Op: "create", Path: r.join(rel), Err: err}
	}
	return fd, nil
}

// BindOptions tell how Bind mounts.
type BindOptions struct {
	// Dir makes the target a directory; otherwise a regular file,
	// which must not exist yet.
	Dir bool
	// ReadOnly makes the bind's top mount read-only (not its submounts,
	// as a non-recursive read-only bind).
	ReadOnly bool
	// Recursive makes ReadOnly hold for every submount too, as a
	// recursive read-only bind (mount_setattr with AT_RECURSIVE).
	Recursive bool
	// IDMap, if set, idmaps the bind and its submounts: it fails where
	// a filesystem below does not allow it.
	IDMap *IDMap
}

// Bind bind-mounts source, with its submounts, on rel below the root,
// nosuid and nodev throughout, and returns the new mount's ID. source
// is the caller's (a trusted host path) and is resolved as usual; rel is
// made (mode 0755 directories, a 0644 file) without following symlinks.
func (r *Root) Bind(source, rel string, o BindOptions) (uint64, error) {
	var target int
	var err error
	if o.Dir {
		target, err = r.mkdirAll(rel, 0o755)
	} else {
		target, err = r.createFile(rel, 0o644)
	}
	if err != nil {
		return 0, err
	}
	defer unix.Close(target)
	tree, err := unix.OpenTree(unix.AT_FDCWD, source, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
	if err != nil {
		return 0, &os.PathError{Op: "open_tree", Path: source, Err: err}
	}
	defer unix.Close(tree)
	if err := setattr(tree, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV, true); err != nil {
		return 0, fmt.Errorf("bind %s: %w", source, err)
	}
	if o.ReadOnly {
		if err := setattr(tree, unix.MOUNT_ATTR_RDONLY, o.Recursive); err != nil {
			return 0, fmt.Errorf("bind %s: %w", source, err)
		}
	}
	if o.IDMap != nil {
		if err := setIDMap(tree, o.IDMap); err != nil {
			return 0, fmt.Errorf("bind %s: %w", source, err)
		}
	}
	if err := unix.MoveMount(tree, "", target, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return 0, fmt.Errorf("bind %s on %s: %w", source, r.join(rel), err)
	}
	id, _, err := mountID(tree)
	return id, err
}

func setattr(fd int, attr uint64, recursive bool) error {
	flags := uint(unix.AT_EMPTY_PATH)
	if recursive {
		flags |= unix.AT_RECURSIVE
	}
	if err := unix.MountSetattr(fd, "", flags, &unix.MountAttr{Attr_set: attr}); err != nil {
		return fmt.Errorf("mount_setattr: %w", err)
	}
	return nil
}

// mountID returns the ID of the mount fd is on, and whether fd is that
// mount's root.
func mountID(fd int) (uint64, bool, error) {
	var st unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &st); err != nil {
		return 0, false, fmt.Errorf("statx: %w", err)
	}
	if st.Mask&unix.STATX_MNT_ID == 0 || st.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT == 0 {
		return 0, false, errors.New("statx: the kernel reports no mount ID")
	}
	return st.Mnt_id, st.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0, nil
}

// MountID returns the ID of the mount whose root is rel below the root,
// or 0 if rel is not a mount's root.
func (r *Root) MountID(rel string) (uint64, error) {
	f, err := r.Open(rel, unix.O_PATH)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	id, isRoot, err := mountID(int(f.Fd()))
	if err != nil || !isRoot {
		return 0, err
	}
	return id, nil
}

// ErrNotMount is returned by Unmount when rel is not the root of the
// mount it names.
var ErrNotMount = errors.New("not the mount recorded")

// Unmount detaches the mount whose root is rel below the root, provided
// its ID is id (0: any mount whose root rel is). The mount is unmounted
// through its own descriptor: whatever the guest renames or plants
// afterwards, no other mount is reached.
func (r *Root) Unmount(rel string, id uint64) error {
	f, err := r.Open(rel, unix.O_PATH)
	if err != nil {
		return err
	}
	defer f.Close()
	got, isRoot, err := mountID(int(f.Fd()))
	if err != nil {
		return err
	}
	if !isRoot || id != 0 && got != id {
		return fmt.Errorf("unmount %s: mount %d, root %t, want %d: %w", r.join(rel), got, isRoot, id, ErrNotMount)
	}
	// umount2 follows the /proc magic link to exactly the mount the
	// descriptor is on (UMOUNT_NOFOLLOW would refuse that very link).
	if err := unix.Unmount(procPath(int(f.Fd())), unix.MNT_DETACH); err != nil {
		return fmt.Errorf("unmount %s: %w", r.join(rel), err)
	}
	return nil
}

func procPath(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// mountsBelow lists the mounts at or below rel, deepest first.
func (r *Root) mountsBelow(rel string) ([]*mountinfo.Info, error) {
	dir := r.join(rel)
	infos, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return nil, err
	}
	sort.SliceStable(infos, func(i, j int) bool {
		di, dj := strings.Count(infos[i].Mountpoint, "/"), strings.Count(infos[j].Mountpoint, "/")
		if di != dj {
			return di > dj
		}
		return infos[i].ID > infos[j].ID // stacked: newest first
	})
	return infos, nil
}

// UnmountAll unmounts every mount at or below rel, deepest first, each
// through its descriptor after checking its ID, until none is left. It
// fails if one cannot be unmounted (for example a mount moved where its
// path no longer leads to it).
func (r *Root) UnmountAll(rel string) error {
	rel, err := clean(rel)
	if err != nil {
		return err
	}
	var lastErr error
	for pass := 0; pass < 8; pass++ {
		infos, err := r.mountsBelow(rel)
		if err != nil {
			return err
		}
		if len(infos) == 0 {
			return nil
		}
		lastErr = nil
		for _, m := range infos {
			mrel, err := filepath.Rel(r.path, m.Mountpoint)
			if err != nil {
				continue
			}
			err = r.Unmount(mrel, uint64(m.ID))
			if err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, unix.EINVAL) {
				lastErr = err
			}
		}
	}
	infos, err := r.mountsBelow(rel)
	if err != nil {
		return err
	}
	if len(infos) > 0 {
		return fmt.Errorf("unmount %s: %d left (%s): %w", r.join(rel), len(infos), infos[0].Mountpoint, errors.Join(ErrMounted, lastErr))
	}
	return nil
}

// RemoveAll removes rel and everything below it, refusing while any
// mount is left there: removal would reach through it.
func (r *Root) RemoveAll(rel string) error {
	rel, err := clean(rel)
	if err != nil {
		return err
	}
	infos, err := r.mountsBelow(rel)
	if err != nil {
		return err
	}
	if len(infos) > 0 {
		return fmt.Errorf("remove %s: %s: %w", r.join(rel), infos[0].Mountpoint, ErrMounted)
	}
	if rel == "." {
		return errors.New("safemount: RemoveAll of the root itself")
	}
	dir, name := filepath.Split(rel)
	dfd := r.fd
	if dir != "" {
		if dfd, err = openat(r.fd, filepath.Clean(dir), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW); errors.Is(err, unix.ENOENT) {
			return nil
		} else if err != nil {
			return &os.PathError{Op: "open", Path: r.join(dir), Err: err}
		}
		defer unix.Close(dfd)
	}
	return removeAt(dfd, name, r.join(rel))
}

// removeAt removes name below dirfd and everything under it, without
// following symlinks and without crossing into another mount: should the
// mount table have missed a mount, removal stops at it (EXDEV) rather
// than deleting the files of whatever is mounted there.
func removeAt(dirfd int, name, path string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if err == unix.ENOENT {
			return nil
		}
		return &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		if err := unix.Unlinkat(dirfd, name, 0); err != nil && err != unix.ENOENT {
			return &os.PathError{Op: "unlink", Path: path, Err: err}
		}
		return nil
	}
	fd, err := unix.Openat2(dirfd, name, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC,
		Resolve: resolve | unix.RESOLVE_NO_XDEV,
	})
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	if _, isRoot, err := mountID(fd); err != nil || isRoot {
		unix.Close(fd)
		return fmt.Errorf("remove %s: %w", path, errors.Join(err, ErrMounted))
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := removeAt(fd, n, filepath.Join(path, n)); err != nil {
			return err
		}
	}
	if err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR); err != nil && err != unix.ENOENT {
		return &os.PathError{Op: "rmdir", Path: path, Err: err}
	}
	return nil
}

// Mounted tells whether any mount is at or below rel.
func (r *Root) Mounted(rel string) (bool, error) {
	rel, err := clean(rel)
	if err != nil {
		return false, err
	}
	infos, err := r.mountsBelow(rel)
	return len(infos) > 0, err
}

// ReadOnlyView makes the directory staging below the root a mount of its
// own with a fresh shared peer group, and mounts a read-only, nosuid,
// nodev view of it on view (a slave: mounts made later below staging
// appear below view, nothing made below view reaches staging). This is
// Kata's answer to CVE-2020-28914: the guest is given view, in which it
// can write only inside the read-write mounts the host put there.
func (r *Root) ReadOnlyView(staging, view string) error {
	if err := r.selfBind(staging); err != nil {
		return err
	}
	s, err := r.Open(staging, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer s.Close()
	for _, flag := range []uintptr{unix.MS_PRIVATE, unix.MS_SHARED} {
		if err := unix.Mount("", procPath(int(s.Fd())), "", flag, ""); err != nil {
			return fmt.Errorf("propagation of %s: %w", r.join(staging), err)
		}
	}
	if err := setattr(int(s.Fd()), unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV, false); err != nil {
		return err
	}
	vfd, err := r.mkdirAll(view, 0o755)
	if err != nil {
		return err
	}
	err = unix.Mount(procPath(int(s.Fd())), procPath(vfd), "", unix.MS_BIND, "")
	unix.Close(vfd)
	if err != nil {
		return fmt.Errorf("bind %s on %s: %w", r.join(staging), r.join(view), err)
	}
	v, err := r.Open(view, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer v.Close()
	if _, isRoot, err := mountID(int(v.Fd())); err != nil || !isRoot {
		return fmt.Errorf("view %s is not the mount made: %w", r.join(view), errors.Join(err, ErrNotMount))
	}
	if err := unix.Mount("", procPath(int(v.Fd())), "", unix.MS_SLAVE, ""); err != nil {
		return fmt.Errorf("propagation of %s: %w", r.join(view), err)
	}
	return setattr(int(v.Fd()), unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV, false)
}

// selfBind makes the directory rel (created if needed) a mount point by
// binding it on itself.
func (r *Root) selfBind(rel string) error {
	fd, err := r.mkdirAll(rel, 0o755)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	tree, err := unix.OpenTree(fd, "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH)
	if err != nil {
		return fmt.Errorf("open_tree %s: %w", r.join(rel), err)
	}
	defer unix.Close(tree)
	if err := unix.MoveMount(tree, "", fd, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return fmt.Errorf("bind %s on itself: %w", r.join(rel), err)
	}
	return nil
}

// ErrTooLarge is returned by ReadFile for a file over its size limit.
var ErrTooLarge = errors.New("file too large")

// ReadFile reads the regular file rel below the root, of at most max
// bytes, without following symlinks or crossing a mount, and without
// blocking on a FIFO or a device planted there.
func (r *Root) ReadFile(rel string, max int64) ([]byte, error) {
	rel, err := clean(rel)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Openat2(r.fd, rel, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_NONBLOCK | unix.O_NOFOLLOW | unix.O_NOCTTY | unix.O_CLOEXEC,
		Resolve: resolve | unix.RESOLVE_NO_XDEV,
	})
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: r.join(rel), Err: err}
	}
	f := os.NewFile(uintptr(fd), r.join(rel))
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %s is not a regular file", r.join(rel), fi.Mode().Type())
	}
	if fi.Size() > max {
		return nil, fmt.Errorf("%s: %d bytes, over %d: %w", r.join(rel), fi.Size(), max, ErrTooLarge)
	}
	b := make([]byte, max+1)
	n, err := readFull(f, b)
	if err != nil {
		return nil, err
	}
	if int64(n) > max {
		return nil, fmt.Errorf("%s: over %d bytes: %w", r.join(rel), max, ErrTooLarge)
	}
	return b[:n], nil
}

func readFull(f *os.File, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := f.Read(b[n:])
		n += m
		if err != nil {
			if errors.Is(err, io.EOF) {
				return n, nil
			}
			return n, err
		}
	}
	return n, nil
}
