package hypervisor

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
)

// The test guest: Debian's kernel, extracted to an uncompressed vmlinux
// for PVH boot (or $VC_GUEST_KERNEL, whose modules, if any, are those of
// $VC_GUEST_KVER), and an initramfs of testdata/guestinit plus the
// modules it needs.
var guest struct {
	once           sync.Once
	dir            string // this process's build dir, removed by TestMain
	kernel, initrd string
	err            error
}

var guestModules = []string{"virtio_pci", "virtio_console", "9pnet_virtio", "9p", "virtiofs"}

func TestMain(m *testing.M) {
	code := m.Run()
	if guest.dir != "" {
		os.RemoveAll(guest.dir)
	}
	os.Exit(code)
}

// testGuest returns the guest's kernel and initramfs, or fails the test:
// integration tests never skip silently, except under -short.
func testGuest(tb testing.TB) (kernel, initrd string) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("boots a VM")
	}
	if _, err := exec.LookPath(defaultPath); err != nil {
		tb.Fatalf("QEMU is needed for this test: %v (apt-get install qemu-system-x86)", err)
	}
	guest.once.Do(func() { guest.kernel, guest.initrd, guest.err = buildGuest() })
	if guest.err != nil {
		tb.Fatalf("test guest: %v", guest.err)
	}
	return guest.kernel, guest.initrd
}

func buildGuest() (kernel, initrd string, err error) {
	if guest.dir, err = os.MkdirTemp("", "vc-hv-guest"); err != nil {
		return "", "", err
	}
	kernel, kver := os.Getenv("VC_GUEST_KERNEL"), os.Getenv("VC_GUEST_KVER")
	if kernel == "" {
		if kernel, kver, err = debianVmlinux(); err != nil {
			return "", "", err
		}
	}
	stage := filepath.Join(guest.dir, "stage")
	if err := os.MkdirAll(filepath.Join(stage, "lib/modules"), 0o755); err != nil {
		return "", "", err
	}
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	build := exec.Command(gobin, "build", "-o", filepath.Join(stage, "init"), "./testdata/guestinit")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("build guest init: %w: %s", err, out)
	}
	var order []string
	if kver != "" {
		for _, m := range guestModules {
			out, err := exec.Command("modprobe", "-S", kver, "--show-depends", m).Output()
			if err != nil {
				return "", "", fmt.Errorf("modprobe --show-depends %s: %w", m, err)
			}
			for _, line := range strings.Split(string(out), "\n") {
				f := strings.Fields(line)
				if len(f) < 2 || f[0] != "insmod" || slices.Contains(order, filepath.Base(f[1])) {
					continue
				}
				b, err := os.ReadFile(f[1])
				if err != nil {
					return "", "", err
				}
				order = append(order, filepath.Base(f[1]))
				if err := os.WriteFile(filepath.Join(stage, "lib/modules", filepath.Base(f[1])), b, 0o644); err != nil {
					return "", "", err
				}
			}
		}
	}
	if err := os.WriteFile(filepath.Join(stage, "lib/modules/load-order"), []byte(strings.Join(order, "\n")), 0o644); err != nil {
		return "", "", err
	}
	initrd = filepath.Join(guest.dir, "initramfs.cpio")
	sh := fmt.Sprintf("cd %s && find . | cpio --quiet -o -H newc -R 0:0 > %s", stage, initrd)
	if out, err := exec.Command("sh", "-c", sh).CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("cpio: %w: %s", err, out)
	}
	return kernel, initrd, nil
}

// debianVmlinux extracts the ELF kernel from the newest /boot/vmlinuz-*:
// the xz stream inside the bzImage. Cached in the temp dir across runs,
// as extraction takes seconds.
func debianVmlinux() (path, kver string, err error) {
	vmlinuzes, _ := filepath.Glob("/boot/vmlinuz-*")
	if len(vmlinuzes) == 0 {
		return "", "", fmt.Errorf("no /boot/vmlinuz-* (apt-get install linux-image-amd64) and no VC_GUEST_KERNEL")
	}
	slices.Sort(vmlinuzes)
	vmlinuz := vmlinuzes[len(vmlinuzes)-1]
	kver = strings.TrimPrefix(filepath.Base(vmlinuz), "vmlinuz-")
	fi, err := os.Stat(vmlinuz)
	if err != nil {
		return "", "", err
	}
	path = filepath.Join(os.TempDir(), fmt.Sprintf("vc-hv-vmlinux-%s-%d", kver, fi.ModTime().Unix()))
	if isELF(path) {
		return path, kver, nil
	}
	bz, err := os.ReadFile(vmlinuz)
	if err != nil {
		return "", "", err
	}
	off := bytes.Index(bz, []byte("\xfd7zXZ\x00"))
	if off < 0 {
		return "", "", fmt.Errorf("no xz stream in %s", vmlinuz)
	}
	tmp := path + ".tmp"
	out, err := os.Create(tmp)
	if err != nil {
		return "", "", err
	}
	xz := exec.Command("xz", "-dc")
	xz.Stdin, xz.Stdout = bytes.NewReader(bz[off:]), out
	_ = xz.Run() // complains about the data after the stream; the ELF is complete
	out.Close()
	if !isELF(tmp) {
		return "", "", fmt.Errorf("extracting the kernel from %s failed", vmlinuz)
	}
	return path, kver, os.Rename(tmp, path)
}

func isELF(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	magic := make([]byte, 4)
	_, err = f.Read(magic)
	return err == nil && string(magic) == "\x7fELF"
}
