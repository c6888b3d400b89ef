package cni

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// createNetns creates a network namespace and bind-mounts it on path,
// which must not exist, as `ip netns add` does.
func createNetns(path string) (retErr error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return err
	}
	f.Close()
	defer func() {
		if retErr != nil {
			removeNetns(path)
		}
	}()

	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		errc <- bindNewNetns(path)
	}()
	return <-errc
}

// bindNewNetns moves the locked calling thread into a new netns, mounts
// that on path and moves the thread back. Only then does it unlock the
// thread: a thread left in the pod's netns must end with its goroutine,
// and if that thread is the main one, Go parks it for good, which would
// keep the netns, and its interfaces, alive after the unmount.
func bindNewNetns(path string) error {
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return err
	}
	defer orig.Close()
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("unshare: %w", err)
	}
	mountErr := unix.Mount("/proc/thread-self/ns/net", path, "none", unix.MS_BIND, "")
	if mountErr != nil {
		mountErr = fmt.Errorf("bind mount on %s: %w", path, mountErr)
	}
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		return errors.Join(mountErr, fmt.Errorf("return to the original netns: %w", err))
	}
	runtime.UnlockOSThread()
	return mountErr
}

// removeNetns unmounts and removes a namespace made by createNetns; a
// missing or already unmounted one is not an error.
func removeNetns(path string) error {
	err := unix.Unmount(path, unix.MNT_DETACH)
	if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
