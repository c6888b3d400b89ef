package safemount

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (mounts)")
	}
}

// testRoot returns a root directory, a directory outside it and an
// open Root; every mount left below either is undone at the end.
func testRoot(t *testing.T) (dir, outside string, r *Root) {
	t.Helper()
	needRoot(t)
	base := t.TempDir()
	dir, outside = filepath.Join(base, "root"), filepath.Join(base, "outside")
	for _, d := range []string{dir, outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r, err := OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, d := range []string{dir, outside} {
			infos, _ := mountinfo.GetMounts(mountinfo.PrefixFilter(d))
			for i := len(infos) - 1; i >= 0; i-- {
				_ = unix.Unmount(infos[i].Mountpoint, unix.MNT_DETACH)
			}
		}
		r.Close()
	})
	return dir, outside, r
}

func mountAt(t *testing.T, path string) *mountinfo.Info {
	t.Helper()
	infos, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) == 0 {
		return nil
	}
	return infos[len(infos)-1]
}

func hasOpt(opts, want string) bool {
	for _, o := range strings.Split(opts, ",") {
		if o == want {
			return true
		}
	}
	return false
}

func TestBindDirAndFile(t *testing.T) {
	dir, _, r := testRoot(t)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	id, err := r.Bind(src, "c/mounts/0", BindOptions{Dir: true, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	m := mountAt(t, filepath.Join(dir, "c/mounts/0"))
	if m == nil || uint64(m.ID) != id {
		t.Fatalf("mount %+v, want ID %d", m, id)
	}
	for _, o := range []string{"ro", "nosuid", "nodev"} {
		if !hasOpt(m.Options, o) {
			t.Errorf("options %q lack %s", m.Options, o)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "c/mounts/0/f")); err != nil || string(b) != "x" {
		t.Fatalf("read through bind: %q %v", b, err)
	}
	fid, err := r.Bind(filepath.Join(src, "f"), "c/mounts/1", BindOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Bind(filepath.Join(src, "f"), "c/mounts/1", BindOptions{}); !errors.Is(err, unix.EEXIST) {
		t.Fatalf("second file bind on the same target: %v, want EEXIST", err)
	}
	if err := r.Unmount("c/mounts/1", fid+1000); !errors.Is(err, ErrNotMount) {
		t.Fatalf("unmount with a wrong ID: %v, want ErrNotMount", err)
	}
	if err := r.RemoveAll("c"); !errors.Is(err, ErrMounted) {
		t.Fatalf("RemoveAll with mounts left: %v, want ErrMounted", err)
	}
	if err := r.Unmount("c/mounts/1", fid); err != nil {
		t.Fatal(err)
	}
	if err := r.UnmountAll("c"); err != nil {
		t.Fatal(err)
	}
	if err := r.RemoveAll("c"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(src, "f")); err != nil {
		t.Fatalf("the source was reached by RemoveAll: %v", err)
	}
}

// TestBindReadOnlySubmounts: a read-only bind leaves a submount of its
// source writable; a recursive one closes it too.
func TestBindReadOnlySubmounts(t *testing.T) {
	dir, _, r := testRoot(t)
	src := t.TempDir()
	sub := filepath.Join(src, "tmpfs")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("none", sub, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(sub, unix.MNT_DETACH) })
	for _, tc := range []struct {
		rel       string
		recursive bool
	}{{"ro", false}, {"rro", true}} {
		if _, err := r.Bind(src, tc.rel, BindOptions{Dir: true, ReadOnly: true, Recursive: tc.recursive}); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, tc.rel, "top"), nil, 0o644); !errors.Is(err, unix.EROFS) {
			t.Errorf("%s: write to the top: %v, want EROFS", tc.rel, err)
		}
		err := os.WriteFile(filepath.Join(dir, tc.rel, "tmpfs", "f"), nil, 0o644)
		if tc.recursive && !errors.Is(err, unix.EROFS) {
			t.Errorf("%s: write to the submount: %v, want EROFS", tc.rel, err)
		}
		if !tc.recursive && err != nil {
			t.Errorf("%s: write to the submount: %v, want it writable", tc.rel, err)
		}
		if m := mountAt(t, filepath.Join(dir, tc.rel, "tmpfs")); m == nil || hasOpt(m.Options, "ro") != tc.recursive {
			t.Errorf("%s: submount %+v", tc.rel, m)
		}
	}
}

func TestPathsRefused(t *testing.T) {
	dir, outside, r := testRoot(t)
	if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "file"), filepath.Join(dir, "flink")); err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	for _, c := range []struct {
		rel string
		dir bool
	}{
		{"link/x", true}, {"link", true}, {"link/f", false}, {"flink", false}, {"../outside/y", true}, {"/abs", true},
	} {
		if _, err := r.Bind(src, c.rel, BindOptions{Dir: c.dir}); err == nil {
			t.Errorf("Bind on %q succeeded", c.rel)
		}
	}
	entries, _ := os.ReadDir(outside)
	if len(entries) != 1 {
		t.Errorf("outside holds %d entries, want only its own file", len(entries))
	}
	if infos, _ := mountinfo.GetMounts(mountinfo.PrefixFilter(outside)); len(infos) > 0 {
		t.Errorf("mounts outside the root: %v", infos[0].Mountpoint)
	}
}

// swapper keeps exchanging dir/a, a real directory, with a symlink to
// outside, as a hostile guest would, until stopped.
func swapper(t *testing.T, dir, outside string) (stop func()) {
	t.Helper()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	if err := os.MkdirAll(a, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, b); err != nil {
		t.Fatal(err)
	}
	var done atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !done.Load() {
			_ = unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
		}
	}()
	stop = func() { done.Store(true); wg.Wait() }
	t.Cleanup(stop)
	return stop
}

func TestBindRacingSymlinks(t *testing.T) {
	dir, outside, r := testRoot(t)
	src := t.TempDir()
	stop := swapper(t, dir, outside)
	deadline := time.Now().Add(2 * time.Second)
	var ok, refused int
	for i := 0; time.Now().Before(deadline); i++ {
		_, err := r.Bind(src, filepath.Join("a", "t"+strings.Repeat("x", i%3), "m"), BindOptions{Dir: i%2 == 0})
		if err == nil {
			ok++
			// While the swapper runs, a mount whose path is swapped away
			// cannot be reached: refused, and undone once it stops.
			_ = r.UnmountAll(".")
		} else {
			refused++
		}
	}
	stop()
	t.Logf("binds made %d, refused %d", ok, refused)
	if err := r.UnmountAll("."); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(outside); len(entries) > 0 {
		t.Errorf("created outside the root: %s", entries[0].Name())
	}
	if infos, _ := mountinfo.GetMounts(mountinfo.PrefixFilter(outside)); len(infos) > 0 {
		t.Errorf("mounted outside the root: %s", infos[0].Mountpoint)
	}
}

func TestUnmountRacingSymlinks(t *testing.T) {
	dir, outside, r := testRoot(t)
	// The victim: a host mount outside, at the path the guest aims the
	// root's "a" at.
	victim := filepath.Join(outside, "m")
	if err := os.Mkdir(victim, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", victim, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	stop := swapper(t, dir, outside)
	deadline := time.Now().Add(2 * time.Second)
	var unmounted int
	for time.Now().Before(deadline) {
		id, err := r.Bind(src, "a/m", BindOptions{Dir: true})
		if err != nil {
			continue
		}
		// Unmount by path and ID while the swapper runs; then the rest.
		for r.Unmount("a/m", id) != nil && time.Now().Before(deadline) {
		}
		unmounted++
		_ = r.UnmountAll(".")
		if mountAt(t, victim) == nil {
			t.Fatal("the host mount outside the root was detached")
		}
	}
	stop()
	t.Logf("mounts made and undone: %d", unmounted)
	if mountAt(t, victim) == nil {
		t.Fatal("the host mount outside the root was detached")
	}
	if err := r.UnmountAll("."); err != nil {
		t.Fatal(err)
	}
	if mountAt(t, victim) == nil {
		t.Fatal("UnmountAll detached the host mount outside the root")
	}
}

func TestReadOnlyView(t *testing.T) {
	dir, _, r := testRoot(t)
	if err := r.ReadOnlyView("staging", "shared"); err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	if _, err := r.Bind(src, "staging/c/rootfs", BindOptions{Dir: true}); err != nil {
		t.Fatal(err)
	}
	// The view shows the later bind, writable, and nothing else writable.
	if err := os.WriteFile(filepath.Join(dir, "shared/c/rootfs/w"), []byte("x"), 0o644); err != nil {
		t.Fatalf("write inside the rw bind seen in the view: %v", err)
	}
	if _, err := os.Stat(filepath.Join(src, "w")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "shared/c/planted"), 0o755); !errors.Is(err, unix.EROFS) {
		t.Fatalf("mkdir in the view: %v, want EROFS", err)
	}
	if err := os.Symlink("/", filepath.Join(dir, "shared/c/rootfs2")); !errors.Is(err, unix.EROFS) {
		t.Fatalf("symlink in the view: %v, want EROFS", err)
	}
	m := mountAt(t, filepath.Join(dir, "shared"))
	if m == nil || !hasOpt(m.Options, "ro") || !hasOpt(m.Options, "nosuid") || !hasOpt(m.Options, "nodev") {
		t.Fatalf("view mount %+v", m)
	}
	if err := r.UnmountAll("."); err != nil {
		t.Fatal(err)
	}
	if mounted, _ := r.Mounted("."); mounted {
		t.Fatal("mounts left")
	}
}

func TestReadFile(t *testing.T) {
	dir, outside, r := testRoot(t)
	etc := filepath.Join(dir, "etc")
	if err := os.Mkdir(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(etc, "passwd"), []byte("root:x:0:0::/root:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := r.ReadFile("etc/passwd", 1<<10); err != nil || !strings.HasPrefix(string(b), "root:") {
		t.Fatalf("ReadFile: %q %v", b, err)
	}
	if _, err := r.ReadFile("etc/passwd", 4); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("over the limit: %v", err)
	}
	if err := unix.Mkfifo(filepath.Join(etc, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(etc, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../outside", filepath.Join(dir, "up")); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := r.ReadFile("etc/fifo", 1<<10)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a FIFO was read")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ReadFile blocked on a FIFO")
	}
	for _, rel := range []string{"etc/link", "up/secret", "../outside/secret", "etc/null"} {
		if rel == "etc/null" {
			if err := unix.Mknod(filepath.Join(etc, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
				t.Fatal(err)
			}
		}
		if b, err := r.ReadFile(rel, 1<<10); err == nil {
			t.Errorf("ReadFile(%q) = %q, want an error", rel, b)
		}
	}
}

// TestRemoveStopsAtMounts: should the mount table miss a mount, removal
// stops at it instead of deleting what is mounted there.
func TestRemoveStopsAtMounts(t *testing.T) {
	dir, _, r := testRoot(t)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "precious"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Bind(src, "c/m", BindOptions{Dir: true}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "c", "other"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(src, filepath.Join(dir, "c", "link")); err != nil {
		t.Fatal(err)
	}
	if err := removeAt(r.fd, "c", filepath.Join(dir, "c")); err == nil {
		t.Fatal("removal crossed into a mount")
	}
	if _, err := os.Stat(filepath.Join(src, "precious")); err != nil {
		t.Fatalf("a mounted file was removed: %v", err)
	}
	if err := r.UnmountAll("."); err != nil {
		t.Fatal(err)
	}
	if err := r.RemoveAll("c"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "c")); !os.IsNotExist(err) {
		t.Fatalf("c left: %v", err)
	}
	if _, err := os.Stat(filepath.Join(src, "precious")); err != nil {
		t.Fatalf("removal followed a symlink: %v", err)
	}
	if err := r.RemoveAll("missing/dir"); err != nil {
		t.Fatalf("RemoveAll of a missing path: %v", err)
	}
}
