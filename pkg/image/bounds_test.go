package image

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
)

func TestDriverOptionsNosuidNodev(t *testing.T) {
	for _, tc := range []struct {
		driver string
		in     []string
		want   string
	}{
		{"overlay", nil, "overlay.mountopt=nodev,nosuid"},
		{"overlay", []string{"overlay.mountopt=noatime"}, "overlay.mountopt=noatime,nodev,nosuid"},
		{"overlay", []string{"overlay.mountopt=nodev,nosuid"}, "overlay.mountopt=nodev,nosuid"},
		{"vfs", nil, ""},
	} {
		got := strings.Join(driverOptions(tc.driver, tc.in), " ")
		if !strings.Contains(got, tc.want) || tc.want == "" && got != "" {
			t.Errorf("driverOptions(%s, %q) = %q, want %q", tc.driver, tc.in, got, tc.want)
		}
	}
}

// TestRootfsNosuidNodev: the overlay and its bind are nosuid and nodev.
func TestRootfsNosuidNodev(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	if _, err := s.Pull(ctx, ref("test/busybox:1"), nil); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "c1", "rootfs")
	mp, err := s.Mount(ctx, "c1", ref("test/busybox:1"), "", IDMap{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Mount(ctx, "c1", ref("test/busybox:1"), target, IDMap{}); err != nil {
		t.Fatal(err)
	}
	defer s.RemoveRootfs(ctx, "c1")
	for _, p := range []string{mp, target} {
		infos, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(p))
		if err != nil || len(infos) == 0 {
			t.Fatalf("%s not mounted: %v", p, err)
		}
		opts := "," + infos[len(infos)-1].Options + ","
		if !strings.Contains(opts, ",nosuid,") || !strings.Contains(opts, ",nodev,") {
			t.Errorf("%s mounted %s, want nosuid and nodev", p, opts)
		}
	}
}

// TestUsageCached: a measurement is reused while the store's directories
// are unchanged, and redone when they change.
func TestUsageCached(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	u0, err := s.Usage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A file written deep in the store (as a container's writes are) is
	// not seen until the measurement ages.
	deep := filepath.Join(s.Root(), "deep")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	// MkdirAll changed the root's mtime: the next call walks again.
	u1, err := s.Usage(ctx)
	if err != nil || u1.InodesUsed != u0.InodesUsed+1 {
		t.Fatalf("after a new directory: %+v (before %+v), %v", u1, u0, err)
	}
	if err := os.WriteFile(filepath.Join(deep, "f"), make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	// deep's own mtime changed, but deep is only one level down: seen.
	// A second level is not.
	sub := filepath.Join(deep, "sub")
	_ = os.Mkdir(sub, 0o755)
	u2, _ := s.Usage(ctx)
	if err := os.WriteFile(filepath.Join(sub, "g"), make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	u3, _ := s.Usage(ctx)
	if u3 != u2 {
		t.Errorf("a write two levels down was walked at once: %+v then %+v", u2, u3)
	}
	old := usageMaxAge
	usageMaxAge = 0
	defer func() { usageMaxAge = old }()
	u4, _ := s.Usage(ctx)
	if u4.InodesUsed != u3.InodesUsed+1 || !u4.Timestamp.After(u3.Timestamp) {
		t.Errorf("after aging: %+v, before %+v", u4, u3)
	}
}
