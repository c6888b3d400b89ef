package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"

	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/vc-cri/vc-cri/pkg/agent/protocol"
)

// The guest sees host files only through the shared directory. A
// container's root and its bind mounts are bind-mounted below
// shared/<container ID>/ on the host, and the spec names them by their
// guest paths below protocol.SharedDir.

// containerShare tracks the host mounts made for one container.
type containerShare struct {
	sandboxID, containerID string
	mounts                 []string // host mount points, in mount order
}

func (s *containerShare) hostPath(elem ...string) string {
	return filepath.Join(append([]string{sharedDir(s.sandboxID), s.containerID}, elem...)...)
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
	target := s.hostPath("rootfs")
	if err := s.bind(rootfs, target, true, false); err != nil {
		return "", err
	}
	return s.guestPath("rootfs"), nil
}

// shareMount makes a bind mount's host source visible to the guest and
// returns the spec mount that names it from inside the guest.
func (s *containerShare) shareMount(i int, m Mount) (specs.Mount, error) {
	source := m.HostPath
	if source == "" {
		source = m.Source
	}
	fi, err := os.Stat(source)
	if err != nil {
		return specs.Mount{}, fmt.Errorf("mount %q: source %q: %w", m.Destination, source, errors.Join(err, ErrInvalidConfig))
	}
	name := strconv.Itoa(i)
	if err := s.bind(source, s.hostPath("mounts", name), fi.IsDir(), m.ReadOnly); err != nil {
		return specs.Mount{}, err
	}
	options := []string{"rbind", "rprivate"}
	// The host's bind is read-only, and the host enforces it on every
	// write the guest makes through the shared filesystem. The guest sees
	// the source and its submounts as one filesystem: marking it
	// read-only there too would also close the submounts, which a
	// non-recursive read-only mount leaves writable.
	if m.ReadOnly && !hasSubmounts(source) {
		options = append(options, "ro")
	}
	return specs.Mount{Destination: m.Destination, Type: "bind", Source: s.guestPath("mounts", name), Options: options}, nil
}

func (s *containerShare) bind(source, target string, dir, readOnly bool) error {
	if dir {
		if err := os.MkdirAll(target, 0o755); err != nil {
			return err
		}
	} else {
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(target, os.O_CREATE|os.O_RDONLY, 0o644)
		if err != nil {
			return err
		}
		f.Close()
	}
	if err := unix.Mount(source, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s on %s: %w", source, target, err)
	}
	s.mounts = append(s.mounts, target)
	if readOnly {
		if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			return fmt.Errorf("make %s read-only: %w", target, err)
		}
	}
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

// unshare undoes the container's mounts, newest first, and removes its
// directory in the shared directory.
func unshare(sandboxID, containerID string, mounts []string) error {
	var errs []error
	for i := len(mounts) - 1; i >= 0; i-- {
		if err := unix.Unmount(mounts[i], unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", mounts[i], err))
		}
	}
	if len(errs) == 0 {
		errs = append(errs, os.RemoveAll(filepath.Join(sharedDir(sandboxID), containerID)))
	}
	return errors.Join(errs...)
}
