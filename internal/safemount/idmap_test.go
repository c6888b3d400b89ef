package safemount

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// TestIDMappedBind: an idmapped bind shows a file owned by 0 as owned by
// the host ID 0 maps to; root (a guest's file server) can make a file
// there, and its chown to a mapped ID is stored as the container's ID.
func TestIDMappedBind(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	source := t.TempDir()
	if err := CanIDMap(source); err != nil {
		t.Skipf("no idmapped mounts here: %v", err)
	}
	if err := os.WriteFile(filepath.Join(source, "owned"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ids := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	m, err := NewIDMap(ids, ids)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	r, err := OpenRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Bind(source, "b", BindOptions{Dir: true, IDMap: m}); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(r.join("b"), unix.MNT_DETACH)
	uid := func(p string) uint32 {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Uid
	}
	if got := uid(r.join("b/owned")); got != 100000 {
		t.Errorf("through the bind, a file of 0 is owned by %d, want 100000", got)
	}
	made := r.join("b/made")
	if err := os.WriteFile(made, nil, 0o644); err != nil {
		t.Fatalf("root cannot make a file in the idmapped bind: %v", err)
	}
	if got := uid(filepath.Join(source, "made")); got != rootHoldID {
		t.Errorf("root's new file is owned by %d on disk, want %d", got, uint32(rootHoldID))
	}
	if err := os.Lchown(made, 100000, 100000); err != nil {
		t.Fatal(err)
	}
	if got := uid(filepath.Join(source, "made")); got != 0 {
		t.Errorf("chowned to the container's root, the file is owned by %d on disk, want 0", got)
	}
}
