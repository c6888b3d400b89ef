// Command guestinit is PID 1 of the hypervisor package's test VMs: it loads
// the modules packed beside it, mounts the shared filesystem named on the
// kernel command line (vctest.fs=9p|virtiofs, vctest.tag=TAG), writes
// "ready\n" to the virtio-serial port agent.0, then obeys "poweroff\n".
package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

// sysFinitModule is finit_module(2) on amd64, which package syscall lacks.
const sysFinitModule = 313

var empty = []byte{0}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "guestinit:", err)
	}
	// PID 1 must not exit: the kernel would panic and hide the error.
	for {
		time.Sleep(time.Hour)
	}
}

func run() error {
	for _, m := range []struct{ src, dst, fs string }{
		{"devtmpfs", "/dev", "devtmpfs"},
		{"proc", "/proc", "proc"},
		{"sysfs", "/sys", "sysfs"},
	} {
		_ = os.MkdirAll(m.dst, 0o755)
		if err := syscall.Mount(m.src, m.dst, m.fs, 0, ""); err != nil {
			return fmt.Errorf("mount %s: %w", m.dst, err)
		}
	}
	if err := loadModules("/lib/modules"); err != nil {
		return err
	}
	params := cmdline()
	if fs := params["vctest.fs"]; fs != "" {
		if err := writeShared(fs, params["vctest.tag"]); err != nil {
			return err
		}
	}
	port, err := findPort("agent.0")
	if err != nil {
		return err
	}
	f, err := os.OpenFile(port, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	// Blocks until the host connects to the port's socket.
	if _, err := f.Write([]byte("ready\n")); err != nil {
		return err
	}
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			// EOF while no host client is connected: wait for the next.
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if line == "poweroff\n" {
			syscall.Sync()
			return syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
		}
	}
}

func loadModules(dir string) error {
	order, err := os.ReadFile(filepath.Join(dir, "load-order"))
	if err != nil {
		return err
	}
	for _, name := range strings.Fields(string(order)) {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		_, _, errno := syscall.Syscall(sysFinitModule, f.Fd(), uintptr(unsafe.Pointer(&empty[0])), 0)
		f.Close()
		if errno != 0 && errno != syscall.EEXIST {
			return fmt.Errorf("load %s: %w", name, errno)
		}
	}
	return nil
}

func cmdline() map[string]string {
	b, _ := os.ReadFile("/proc/cmdline")
	m := map[string]string{}
	for _, f := range strings.Fields(string(b)) {
		k, v, _ := strings.Cut(f, "=")
		m[k] = v
	}
	return m
}

func writeShared(fs, tag string) error {
	if err := os.MkdirAll("/mnt", 0o755); err != nil {
		return err
	}
	var err error
	switch fs {
	case "9p":
		err = syscall.Mount(tag, "/mnt", "9p", 0, "trans=virtio,version=9p2000.L")
	case "virtiofs":
		err = syscall.Mount(tag, "/mnt", "virtiofs", 0, "")
	default:
		err = fmt.Errorf("unknown vctest.fs %q", fs)
	}
	if err != nil {
		return fmt.Errorf("mount %s %s: %w", fs, tag, err)
	}
	return os.WriteFile("/mnt/guest-was-here", []byte("hello from "+fs+"\n"), 0o644)
}

// findPort returns /dev/vportNpM of the virtio-serial port with the given
// name; the device number depends on probe order, the name does not.
func findPort(name string) (string, error) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		paths, _ := filepath.Glob("/sys/class/virtio-ports/*/name")
		for _, p := range paths {
			b, err := os.ReadFile(p)
			if err == nil && strings.TrimSpace(string(b)) == name {
				return "/dev/" + filepath.Base(filepath.Dir(p)), nil
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return "", fmt.Errorf("no virtio port named %q", name)
}
