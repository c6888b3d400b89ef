package sandbox

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/moby/sys/mountinfo"
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
