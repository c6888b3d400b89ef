package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/opencontainers/runc/libcontainer/exeseal"
	"github.com/vc-cri/vc-cri/pkg/agent/protocol"
	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

// moduleList names, in load order, the kernel modules the image builder
// put into the initramfs (hack/guest/build.sh writes it).
const moduleList = "/lib/modules/load-order"

// bootStage1 runs first, as PID 1 on the initramfs. The initramfs is the
// kernel's rootfs, which cannot be pivot_root'ed away from, so containers
// could only chroot. Stage 1 therefore loads the modules, moves to a
// tmpfs root, frees the initramfs, and re-executes itself from a sealed
// copy of its binary (the copy libcontainer wants for "runc init" anyway,
// see CVE-2019-5736): stage 2 then runs with /proc/self/exe cloned.
func bootStage1() error {
	klog.V(2).InfoS("Boot stage 1", "uptime", guestUptime())
	if err := mountAll([]mount{
		{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
		{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	}); err != nil {
		return err
	}
	if err := loadModules(moduleList); err != nil {
		return err
	}
	exe, err := exeseal.CloneSelfExe("/")
	if err != nil {
		return fmt.Errorf("seal agent binary: %w", err)
	}
	if err := switchToTmpfsRoot("/newroot"); err != nil {
		return err
	}
	// The sealed copy survives exec: it is this process's next image.
	return unix.Exec(fmt.Sprintf("/proc/self/fd/%d", exe.Fd()), os.Args, os.Environ())
}

type mount struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
}

func mountAll(mounts []mount) error {
	for _, m := range mounts {
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mount %s on %s: %w", m.fstype, m.target, err)
		}
	}
	return nil
}

// loadModules loads the modules listed in path, in order. The image
// builder wrote the list from modules.dep, dependencies first, each line
// naming a module and the virtio device it serves ("-" for always), so
// that a VM without, say, a NIC loads no network driver.
func loadModules(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil // a kernel with everything built in
	}
	if err != nil {
		return err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		name, device, _ := strings.Cut(strings.TrimSpace(s.Text()), " ")
		if name == "" || (device != "-" && device != "" && !virtioDevicePresent(device)) {
			continue
		}
		if err := loadModule(filepath.Join(filepath.Dir(path), name)); err != nil {
			return err
		}
	}
	return s.Err()
}

// virtioDevicePresent tells whether the guest has a virtio device of that
// ID, e.g. 0x0009 for 9p.
func virtioDevicePresent(id string) bool {
	devices, _ := filepath.Glob("/sys/bus/virtio/devices/*/device")
	for _, d := range devices {
		if b, err := os.ReadFile(d); err == nil && strings.TrimSpace(string(b)) == id {
			return true
		}
	}
	return false
}

func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("load module %s: %w", path, err)
	}
	return nil
}

// switchToTmpfsRoot makes a tmpfs the root: it moves the API filesystems
// there, empties the initramfs to give its memory back, and chroots into
// the new root, which is an ordinary mount that pivot_root accepts.
func switchToTmpfsRoot(newRoot string) error {
	if err := os.MkdirAll(newRoot, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", newRoot, "tmpfs", 0, "mode=0755"); err != nil {
		return fmt.Errorf("mount tmpfs root: %w", err)
	}
	for _, dir := range []string{"dev", "proc", "sys", "run", "tmp", "etc", "var", "root"} {
		if err := os.MkdirAll(filepath.Join(newRoot, dir), 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(newRoot, "tmp"), 0o1777); err != nil {
		return err
	}
	for _, dir := range []string{"/dev", "/proc", "/sys"} {
		if err := unix.Mount(dir, filepath.Join(newRoot, dir), "", unix.MS_MOVE, ""); err != nil {
			return fmt.Errorf("move %s: %w", dir, err)
		}
	}
	entries, err := os.ReadDir("/")
	if err != nil {
		return err
	}
	for _, e := range entries {
		if "/"+e.Name() != newRoot {
			if err := os.RemoveAll("/" + e.Name()); err != nil {
				klog.ErrorS(err, "Cannot free initramfs entry", "path", e.Name())
			}
		}
	}
	if err := unix.Chdir(newRoot); err != nil {
		return err
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move root: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot: %w", err)
	}
	return unix.Chdir("/")
}

// bootStage2 prepares the rest of the guest once the root is a tmpfs.
func bootStage2(params map[string]string) error {
	if err := mountAll([]mount{
		{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620"},
		{"shm", "/dev/shm", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
		{"cgroup2", "/sys/fs/cgroup", "cgroup2", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
	}); err != nil {
		return err
	}
	if err := os.Symlink("/proc/self/fd", "/dev/fd"); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	if params[protocol.ParamTemplate] == "1" {
		return nil
	}
	return mountShared(params)
}

// mountShared mounts the filesystem the host shares with the guest.
func mountShared(params map[string]string) error {
	tag := params[protocol.ParamSharedTag]
	if tag == "" {
		tag = protocol.SharedTag
	}
	m := mount{source: tag, target: protocol.SharedDir, fstype: "9p",
		data: "trans=virtio,version=9p2000.L,msize=524288,cache=mmap,access=client"}
	if params[protocol.ParamSharedFS] == "virtio-fs" {
		m = mount{source: tag, target: protocol.SharedDir, fstype: "virtiofs"}
	}
	return mountAll([]mount{m})
}

// kernelParams returns the key=value parameters of the kernel command line.
func kernelParams() map[string]string {
	params := map[string]string{}
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return params
	}
	for _, field := range strings.Fields(string(b)) {
		k, v, _ := strings.Cut(field, "=")
		params[k] = v
	}
	return params
}
