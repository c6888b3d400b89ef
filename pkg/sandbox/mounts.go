package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/vc-cri/vc-cri/internal/safemount"
	"github.com/vc-cri/vc-cri/pkg/agent/protocol"
)

// The guest sees host files only through the shared directory, and the
// guest is untrusted: it may own its kernel and write anything it can
// reach there, symlinks included. So, as Kata does since CVE-2020-28914:
//
//   - every bind is made in staging/, a directory of the sandbox that
//     only the host writes: staging/<container ID>/rootfs,
//     staging/<container ID>/mounts/<i>, staging/volumes/<tag>;
//   - the guest is given shared/, a read-only, nosuid, nodev view of
//     staging/ (a slave bind: later binds in staging/ appear there), so
//     that it can write only inside the read-write binds themselves;
//   - every path below the sandbox directory is resolved by
//     internal/safemount from the directory's descriptor, following no
//     symlink; binds are nosuid and nodev; unmounts go through the
//     mount's own descriptor after checking its ID; and nothing is
//     removed while a mount is left below it.
//
// Sandboxes made before staging/ existed keep their binds in shared/
// itself (the guest-writable layout), still with the fd-relative calls.
// The spec names every bind by its guest path below protocol.SharedDir.

const (
	stagingName = "staging" // host-only: binds are made here
	sharedName  = "shared"  // the guest's read-only view of staging/
)

// openSandboxRoot opens the sandbox's directory for fd-relative calls.
func openSandboxRoot(dir string) (*safemount.Root, error) {
	return safemount.OpenRoot(dir)
}

// staged tells whether the sandbox in dir has the staging layout.
func staged(dir string) bool {
	fi, err := os.Lstat(filepath.Join(dir, stagingName))
	return err == nil && fi.IsDir()
}

// setupShare makes the staging directory of sandbox id, in dir, and the
// guest's read-only view of it, and binds the sandbox's volumes there.
// On failure the caller undoes it with removeSandboxDir.
func setupShare(dir, id string, volumes []Volume) error {
	root, err := openSandboxRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	if err := root.ReadOnlyView(stagingName, sharedName); err != nil {
		return fmt.Errorf("shared directory of sandbox %q: %w", id, err)
	}
	for _, v := range volumes {
		if _, err := root.Bind(v.HostPath, path.Join(stagingName, "volumes", v.MountTag), safemount.BindOptions{Dir: true}); err != nil {
			return fmt.Errorf("volume %q from %q: %w", v.MountTag, v.HostPath, errors.Join(err, ErrInvalidConfig))
		}
	}
	return nil
}

// unmountSandbox undoes every mount below the sandbox's directory dir,
// deepest first.
func unmountSandbox(dir string) error {
	root, err := openSandboxRoot(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	defer root.Close()
	return root.UnmountAll(".")
}

// removeSandboxDir unmounts everything below the directory of sandbox
// id in stateRoot and removes it; it refuses to remove while a mount is
// left.
func removeSandboxDir(stateRoot, id string) error {
	if err := unmountSandbox(filepath.Join(stateRoot, id)); err != nil {
		return err
	}
	states, err := safemount.OpenRoot(stateRoot)
	if err != nil {
		return err
	}
	defer states.Close()
	return states.RemoveAll(id)
}

// containerShare tracks the host mounts made for one container.
type containerShare struct {
	sandboxDir, containerID string
	mounts                  []string // host mount points, in mount order
}

// rel is a path of the container's below the sandbox directory.
func (s *containerShare) rel(elem ...string) string {
	base := sharedName
	if staged(s.sandboxDir) {
		base = stagingName
	}
	return path.Join(append([]string{base, s.containerID}, elem...)...)
}

func (s *containerShare) guestPath(elem ...string) string {
	return path.Join(append([]string{protocol.SharedDir, s.containerID}, elem...)...)
}

// shareRootfs makes rootfs visible to the guest and returns its guest path.
func (s *containerShare) shareRootfs(rootfs string) (string, error) {
	if rootfs == "" {
		return "", fmt.Errorf("container %q has no RootFs: %w", s.containerID, ErrInvalidConfig)
	}
	if fi, err := os.Stat(rootfs); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("container %q RootFs %q is not a directory: %w", s.containerID, rootfs, ErrInvalidConfig)
	}
	if err := s.bind(rootfs, s.rel("rootfs"), safemount.BindOptions{Dir: true}); err != nil {
		return "", err
	}
	return s.guestPath("rootfs"), nil
}

// shareMount makes a bind mount's host source visible to the guest and
// returns the spec mount that names it from inside the guest; "ro" in
// its options makes it read-only, "rro" read-only with its submounts;
// with ids, the bind is idmapped by them.
func (s *containerShare) shareMount(i int, m specs.Mount, ids *safemount.IDMap) (specs.Mount, error) {
	source := m.Source
	recursive := slices.Contains(m.Options, "rro")
	readOnly := recursive || slices.Contains(m.Options, "ro")
	fi, err := os.Stat(source)
	if err != nil {
		return specs.Mount{}, fmt.Errorf("mount %q: source %q: %w", m.Destination, source, errors.Join(err, ErrInvalidConfig))
	}
	name := strconv.Itoa(i)
	if err := s.bind(source, s.rel("mounts", name), safemount.BindOptions{Dir: fi.IsDir(), ReadOnly: readOnly, Recursive: recursive, IDMap: ids}); err != nil {
		return specs.Mount{}, err
	}
	options := []string{"rbind", "rprivate"}
	// The host's bind is read-only, and the host enforces it on every
	// write the guest makes through the shared filesystem: on the top
	// mount only, or, recursive, on its submounts too. The guest sees
	// the source and its submounts as one filesystem: marking it
	// read-only there too would also close the submounts, which a
	// non-recursive read-only mount leaves writable; a recursive one is
	// read-only throughout in the guest as well (runc's "rro":
	// mount_setattr with AT_RECURSIVE).
	switch {
	case recursive:
		options = append(options, "rro")
	case readOnly && !hasSubmounts(source):
		options = append(options, "ro")
	}
	return specs.Mount{Destination: m.Destination, Type: "bind", Source: s.guestPath("mounts", name), Options: options}, nil
}

// bind mounts source on rel, below the sandbox directory, nosuid and
// nodev; the target is made without following symlinks (a file target
// must not exist yet).
func (s *containerShare) bind(source, rel string, o safemount.BindOptions) error {
	root, err := openSandboxRoot(s.sandboxDir)
	if err != nil {
		return err
	}
	defer root.Close()
	if _, err := root.Bind(source, rel, o); err != nil {
		return err
	}
	s.mounts = append(s.mounts, filepath.Join(root.Path(), rel))
	return nil
}

// hasSubmounts tells whether anything is mounted below dir.
func hasSubmounts(dir string) bool {
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return false
	}
	for _, m := range mounts {
		if filepath.Clean(m.Mountpoint) != filepath.Clean(dir) {
			return true
		}
	}
	return false
}

// unshare undoes every mount of the container, deepest first, each
// checked by its mount ID through its own descriptor, and removes the
// container's directory; nothing is removed while a mount is left. The
// recorded mount points only tell that there is something to undo: what
// is unmounted is what the mount table holds below the container's
// directory, wherever the guest moved it within.
func unshare(sandboxDir, containerID string, _ []string) error {
	root, err := openSandboxRoot(sandboxDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	defer root.Close()
	for _, base := range []string{stagingName, sharedName} {
		dir := path.Join(base, containerID)
		if err := root.UnmountAll(dir); err != nil {
			return fmt.Errorf("container %q: %w", containerID, err)
		}
		if err := root.RemoveAll(dir); err != nil && !errors.Is(err, unix.EROFS) {
			return fmt.Errorf("container %q: %w", containerID, err)
		}
	}
	return nil
}
