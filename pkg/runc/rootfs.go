package runc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// The image store mounts every container root nosuid, as a guest is
// given it (pkg/image). An OS container is the host's own: its image's
// setuid programs work, as under containerd or CRI-O (NoNewPrivileges is
// what stops them, when asked). Its root is a bind of the store's, in the
// bundle, remounted without nosuid; device nodes stay inert (nodev), as
// runc makes the container's /dev.

// rootfsDir is the container's root inside its bundle.
func rootfsDir(bundle string) string { return filepath.Join(bundle, "rootfs") }

// bindRootfs binds the store's root of the container into its bundle.
func bindRootfs(source, bundle string) (string, error) {
	target := rootfsDir(bundle)
	if err := os.Mkdir(target, 0o755); err != nil {
		return "", err
	}
	if err := unix.Mount(source, target, "", unix.MS_BIND, ""); err != nil {
		return "", fmt.Errorf("bind the root %s: %w", source, err)
	}
	if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_NODEV, ""); err != nil {
		_ = unix.Unmount(target, unix.MNT_DETACH)
		return "", fmt.Errorf("remount the root %s: %w", target, err)
	}
	return target, nil
}

// unbindRootfs undoes bindRootfs, wherever a crash left it. Nothing of
// the bundle may be removed while the bind is there: that would remove
// the container's files through it.
func unbindRootfs(bundle string) error {
	target := rootfsDir(bundle)
	for {
		err := unix.Unmount(target, unix.MNT_DETACH)
		switch {
		case err == nil:
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			return nil // not, or no longer, a mount point
		default:
			return fmt.Errorf("unmount the root %s: %w", target, err)
		}
	}
}
