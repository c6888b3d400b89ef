package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// mntnsEnv marks a vc-cri that already runs in its own mount namespace.
const mntnsEnv = "_VC_CRI_MNTNS"

// enterMountNamespace re-executes vc-cri in a mount namespace of its own,
// pinned at pin so that a restarted daemon enters the same one, where its
// pods' mounts are.
//
// Why: a pod VM reaches host files through binds into the directory it
// shares with the guest. Made in the host's namespace, those binds would
// sit on the host's directories, so that a host directory with a submount
// could not be removed while a container used it (EBUSY), and the host's
// mount table would fill with pod mounts. In a namespace of their own
// (with the host's mounts propagating in, nothing propagating out) they
// behave as a container's mounts do. QEMU, CNI plugins and netns mounts
// live there too.
//
// It returns only on failure, or at once when already inside.
func enterMountNamespace(pin string) error {
	if os.Getenv(mntnsEnv) != "" {
		return nil
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	env := append(os.Environ(), mntnsEnv+"=1")
	args := append([]string{exe}, os.Args[1:]...)
	if isNamespaceFile(pin) {
		return exec("nsenter", append([]string{"nsenter", "--mount=" + pin, "--"}, args...), env)
	}
	// Host mounts reach the namespace (it is a slave) only from shared
	// mounts, as on every systemd host; a host whose root is private
	// would hide from pods what it mounts under their volumes later.
	if err := unix.Mount("", "/", "", unix.MS_SHARED|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make / shared: %w", err)
	}
	if err := privateDir(filepath.Dir(pin)); err != nil {
		return fmt.Errorf("mount namespace pin %s: %w", pin, err)
	}
	f, err := os.OpenFile(pin, os.O_CREATE|os.O_RDONLY, 0o600)
	if err != nil {
		return err
	}
	f.Close()
	return exec("unshare", append([]string{"unshare", "--mount=" + pin, "--propagation", "slave", "--"}, args...), env)
}

// exec replaces this process with the util-linux tool name.
func exec(name string, argv, env []string) error {
	for _, dir := range []string{"/usr/bin", "/bin", "/usr/sbin", "/sbin"} {
		path := filepath.Join(dir, name)
		if _, err := os.Stat(path); err == nil {
			return unix.Exec(path, argv, env)
		}
	}
	return fmt.Errorf("%s (util-linux) not found", name)
}

// isNamespaceFile tells whether path is a bind mount of a namespace.
func isNamespaceFile(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == unix.NSFS_MAGIC
}

// privateDir makes dir a private mount: a namespace pinned below a shared
// mount would propagate into the namespace itself, which the kernel
// refuses.
func privateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := unix.Mount("", dir, "", unix.MS_PRIVATE, ""); err == nil {
		return nil // already a mount point
	} else if !errors.Is(err, unix.EINVAL) {
		return err
	}
	if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
		return err
	}
	return unix.Mount("", dir, "", unix.MS_PRIVATE, "")
}
