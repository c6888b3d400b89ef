package sandbox

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// TestShareLayouts: binds go to staging/ in a sandbox made with it, and
// to shared/ itself in one made by an older daemon; either way unshare
// and removeSandboxDir undo them all and reach nothing through them.
func TestShareLayouts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (mounts)")
	}
	t.Parallel()
	stateRoot := t.TempDir()
	rootfs := t.TempDir()
	if err := os.WriteFile(filepath.Join(rootfs, "keep"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, staged := range []bool{true, false} {
		id := "legacy"
		if staged {
			id = "staged"
		}
		dir := filepath.Join(stateRoot, id)
		if err := os.MkdirAll(filepath.Join(dir, sharedName), 0o700); err != nil {
			t.Fatal(err)
		}
		if staged {
			if err := setupShare(dir, id, nil); err != nil {
				t.Fatal(err)
			}
		}
		s := &containerShare{sandboxDir: dir, containerID: "c"}
		if _, err := s.shareRootfs(rootfs); err != nil {
			t.Fatal(err)
		}
		// The guest's view shows the rootfs in both layouts.
		if _, err := os.Stat(filepath.Join(dir, sharedName, "c", "rootfs", "keep")); err != nil {
			t.Fatalf("%s: rootfs not seen in the shared directory: %v", id, err)
		}
		wantBase := sharedName
		if staged {
			wantBase = stagingName
		}
		if len(s.mounts) != 1 || s.mounts[0] != filepath.Join(dir, wantBase, "c", "rootfs") {
			t.Fatalf("%s: mounts %v", id, s.mounts)
		}
		if err := unshare(dir, "c", s.mounts); err != nil {
			t.Fatalf("%s: unshare: %v", id, err)
		}
		if _, err := os.Stat(filepath.Join(dir, sharedName, "c")); !os.IsNotExist(err) {
			t.Fatalf("%s: container directory left: %v", id, err)
		}
		if err := removeSandboxDir(stateRoot, id); err != nil {
			t.Fatalf("%s: removeSandboxDir: %v", id, err)
		}
		if infos, _ := mountinfo.GetMounts(mountinfo.PrefixFilter(dir)); len(infos) > 0 {
			t.Fatalf("%s: mounts left: %s", id, infos[0].Mountpoint)
		}
		if _, err := os.Stat(filepath.Join(rootfs, "keep")); err != nil {
			t.Fatalf("%s: rootfs reached through: %v", id, err)
		}
	}
}

// TestShareMountReadOnly: a read-only bind with a submount is read-only
// on the host at its top only, and not marked read-only for the guest,
// so that the submount stays writable; a recursive one ("rro") is
// read-only on the host throughout, in staging/ and in the guest's view,
// and "rro" for the guest too.
func TestShareMountReadOnly(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (mounts)")
	}
	t.Parallel()
	volume := t.TempDir()
	sub := filepath.Join(volume, "tmpfs")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("none", sub, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(sub, unix.MNT_DETACH) })
	dir := filepath.Join(t.TempDir(), "sb")
	if err := os.MkdirAll(filepath.Join(dir, sharedName), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := setupShare(dir, "sb", nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unmountSandbox(dir) })
	share := &containerShare{sandboxDir: dir, containerID: "c"}
	for i, tc := range []struct {
		opt       string
		guestOpts []string
		subRO     bool
	}{
		{"ro", []string{"rbind", "rprivate"}, false},
		{"rro", []string{"rbind", "rprivate", "rro"}, true},
	} {
		m, err := share.shareMount(i, specs.Mount{Destination: "/mnt", Type: "bind", Source: volume, Options: []string{"rbind", tc.opt}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(m.Options, tc.guestOpts) {
			t.Errorf("%s: guest options %v, want %v", tc.opt, m.Options, tc.guestOpts)
		}
		for _, base := range []string{stagingName, sharedName} {
			top := filepath.Join(dir, base, "c", "mounts", strconv.Itoa(i))
			if err := os.WriteFile(filepath.Join(top, "f"), nil, 0o644); !errors.Is(err, unix.EROFS) {
				t.Errorf("%s: write to %s: %v, want EROFS", tc.opt, top, err)
			}
			err := os.WriteFile(filepath.Join(top, "tmpfs", "f"), nil, 0o644)
			if tc.subRO && !errors.Is(err, unix.EROFS) {
				t.Errorf("%s: write to the submount in %s: %v, want EROFS", tc.opt, base, err)
			}
			if !tc.subRO && err != nil {
				t.Errorf("%s: write to the submount in %s: %v, want it writable", tc.opt, base, err)
			}
		}
	}
}
