package atomicfile

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWriteFile: a write replaces the file whole, below d too, and
// leaves no temporary file, with the fsyncs and without.
func TestWriteFile(t *testing.T) {
	for _, onTmpfs := range []bool{false, true} {
		d := &Dir{path: t.TempDir(), onTmpfs: onTmpfs}
		if err := os.Mkdir(filepath.Join(d.path, "sub"), 0o700); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"a.json", filepath.Join("sub", "b.json")} {
			for _, content := range []string{"first, and longer", "second"} {
				if err := d.WriteFile(name, []byte(content), 0o600); err != nil {
					t.Fatalf("tmpfs %v: %v", onTmpfs, err)
				}
				if b, err := os.ReadFile(filepath.Join(d.path, name)); err != nil || string(b) != content {
					t.Fatalf("tmpfs %v: %s holds %q, %v; want %q", onTmpfs, name, b, err, content)
				}
			}
			fi, err := os.Stat(filepath.Join(d.path, name))
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("tmpfs %v: %s: %v, %v; want mode 0600", onTmpfs, name, fi.Mode(), err)
			}
		}
		for _, dir := range []string{d.path, filepath.Join(d.path, "sub")} {
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				if IsTemp(e.Name()) {
					t.Errorf("tmpfs %v: temporary file %s left in %s", onTmpfs, e.Name(), dir)
				}
			}
		}
	}
}

// TestLeftoverTemp: a temporary file a crash left, of the old naming
// (name.tmp) or of this one's, neither breaks a write nor is read.
func TestLeftoverTemp(t *testing.T) {
	d, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	leftovers := []string{"a.json.tmp", ".a.json" + tmpSep + "123"}
	for _, name := range leftovers {
		if err := os.WriteFile(filepath.Join(d.Path(), name), []byte(`{"trunc`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.WriteFile("a.json", []byte(`{}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(d.Path(), "a.json")); err != nil || string(b) != `{}` {
		t.Fatalf("a.json holds %q, %v", b, err)
	}
	if !IsTemp(leftovers[1]) {
		t.Errorf("IsTemp(%q) is false", leftovers[1])
	}
	for _, name := range []string{"a.json", "a.json.tmp", ".hidden.json"} {
		if IsTemp(name) {
			t.Errorf("IsTemp(%q) is true", name)
		}
	}
}

// TestTmpfsDetected: Open tells a tmpfs as /proc/self/mountinfo does,
// for the test's temporary directory (which may be on one or not) and
// for /dev/shm (on one wherever it exists).
func TestTmpfsDetected(t *testing.T) {
	dirs := []string{t.TempDir()}
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		dirs = append(dirs, "/dev/shm")
	}
	seen := map[bool]bool{}
	for _, dir := range dirs {
		want := mountFSType(t, dir) == "tmpfs"
		d, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		if d.onTmpfs != want {
			t.Errorf("%s: detected tmpfs %v, mountinfo says %v", dir, d.onTmpfs, want)
		}
		seen[want] = true
	}
	t.Logf("filesystems seen: tmpfs %v, other %v", seen[true], seen[false])
	if _, err := Open(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("Open of a missing directory succeeded")
	}
}

// mountFSType is the filesystem type of the mount that holds dir: that
// of the longest mount point of /proc/self/mountinfo that contains it.
func mountFSType(t *testing.T, dir string) string {
	t.Helper()
	dir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	var best, fsType string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - type source super
		fields := strings.Fields(sc.Text())
		if len(fields) < 7 {
			continue
		}
		mp := unescapeOctal(fields[4])
		sep := -1
		for i := 6; i < len(fields); i++ {
			if fields[i] == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+1 >= len(fields) {
			continue
		}
		rel, err := filepath.Rel(mp, dir)
		if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			continue
		}
		// Later lines mount over earlier ones at the same point.
		if len(mp) >= len(best) {
			best, fsType = mp, fields[sep+1]
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return fsType
}

// unescapeOctal undoes mountinfo's \040-style escapes.
func unescapeOctal(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			c := (s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0')
			b.WriteByte(c)
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
