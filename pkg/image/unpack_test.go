package image

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestHostileLayers pulls layers crafted to write outside the rootfs
// ("..", absolute paths, a symlink then a write through it, a hard link
// out) and proves nothing lands outside the store: each entry is refused
// or contained. It also checks that whiteouts and opaque directories are
// honoured and that a device node, a setuid bit and ownership are kept.
func TestHostileLayers(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	hostDir := "/tmp/" + hostileTok + "-dir"
	if err := os.MkdirAll(hostDir, 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(hostDir)

	_, pullErr := s.Pull(ctx, ref("hostile/escape:1"), nil)
	t.Logf("escape image pull: %v", pullErr)

	// Nothing outside the store: not in /tmp, not in the test's dirs.
	for _, p := range []string{"/tmp/" + hostileTok + "-dotdot", "/tmp/" + hostileTok + "-dotdot2",
		"/tmp/" + hostileTok + "-abs", hostDir + "/pwned", "/tmp/" + hostileTok + "-up"} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("hostile layer wrote %s (%v)", p, err)
			os.Remove(p)
		}
	}
	entries, _ := os.ReadDir(hostDir)
	if len(entries) != 0 {
		t.Errorf("hostile layer wrote into %s: %v", hostDir, entries)
	}
	parent := filepath.Dir(s.Root())
	_ = filepath.WalkDir(parent, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), hostileTok) && !strings.HasPrefix(p, s.Root()+"/") {
			t.Errorf("hostile file outside the store: %s", p)
		}
		return nil
	})
	if pullErr != nil {
		t.Errorf("escape image refused, want its entries contained: %v", pullErr)
	} else {
		// Contained: whatever landed is inside the rootfs.
		root, err := s.Mount(ctx, "escape", ref("hostile/escape:1"), "", IDMap{})
		if err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(filepath.Join(root, "regular")); err != nil || string(b) != "fine" {
			t.Errorf("regular file: %q %v", b, err)
		}
		// The absolute entry and the write through the symlink land inside.
		for _, p := range []string{"tmp/" + hostileTok + "-abs", "tmp/" + hostileTok + "-dir/pwned"} {
			if _, err := os.Lstat(filepath.Join(root, p)); err != nil {
				t.Logf("contained entry %s: %v", p, err)
			}
		}
		if err := s.RemoveRootfs(ctx, "escape"); err != nil {
			t.Fatal(err)
		}
	}

	// A hard link to /etc/passwd of the host is refused.
	if _, err := s.Pull(ctx, ref("hostile/hardlink:1"), nil); err == nil {
		root, err := s.Mount(ctx, "hl", ref("hostile/hardlink:1"), "", IDMap{})
		if err != nil {
			t.Fatal(err)
		}
		var a, b syscall.Stat_t
		if syscall.Stat(filepath.Join(root, "hl"), &a) == nil && syscall.Stat("/etc/passwd", &b) == nil && a.Ino == b.Ino && a.Dev == b.Dev {
			t.Errorf("hard link reaches the host's /etc/passwd")
		}
		_ = s.RemoveRootfs(ctx, "hl")
	}

	// Whiteouts, opaque directories, device nodes, setuid, ownership.
	if _, err := s.Pull(ctx, ref("hostile/special:1"), nil); err != nil {
		t.Fatal(err)
	}
	root, err := s.Mount(ctx, "special", ref("hostile/special:1"), filepath.Join(t.TempDir(), "rootfs"), IDMap{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.RemoveRootfs(ctx, "special")
	exists := func(p string) bool { _, err := os.Lstat(filepath.Join(root, p)); return err == nil }
	for p, want := range map[string]bool{
		"a/gone": false, "a/kept": true, "a/.wh.gone": false,
		"b/old1": false, "b/old2": false, "b/new": true, "b/.wh..wh..opq": false,
	} {
		if exists(p) != want {
			t.Errorf("%s exists: %v, want %v", p, !want, want)
		}
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(filepath.Join(root, "dev/mynull"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFCHR || st.Rdev != uint64(1<<8|3) {
		t.Errorf("dev/mynull: mode %o rdev %x, want char 1:3", st.Mode, st.Rdev)
	}
	if err := syscall.Lstat(filepath.Join(root, "suid"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&syscall.S_ISUID == 0 || st.Uid != 0 {
		t.Errorf("suid: mode %o uid %d, want setuid root", st.Mode, st.Uid)
	}
	if err := syscall.Lstat(filepath.Join(root, "owned"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != 1234 || st.Gid != 5678 || st.Mode&0o777 != 0o640 {
		t.Errorf("owned: %d:%d %o, want 1234:5678 640", st.Uid, st.Gid, st.Mode&0o777)
	}
}
