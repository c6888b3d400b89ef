// Package testimages builds vc-cri's test images offline, on the host's
// Debian busybox (the dynamic one, with the glibc libraries it needs), and
// serves them from an in-process registry. The images stand in for the
// ones critest (sigs.k8s.io/cri-tools v1.37.0) pulls; see Catalog.
//
// Applets are hard links to /bin/busybox, not symlinks: masking a
// symlinked /bin/ls would mask /bin/busybox itself. Debian's busybox has
// no pgrep and no ipcs, which critest runs, so the rootfs carries small
// shell stand-ins.
package testimages

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// BusyboxPath is the host binary the images are built on.
const BusyboxPath = "/bin/busybox"

// epoch is the modification time of every entry, so that layers and
// their digests are the same on every build.
var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// entry is one file of a layer. Data is the content of a regular file,
// Link the target of a symlink or hard link.
type entry struct {
	Name     string
	Type     byte
	Mode     int64
	UID, GID int
	Data     []byte
	Link     string
	Major    int64
	Minor    int64
}

func dir(name string, mode int64) entry { return entry{Name: name, Type: tar.TypeDir, Mode: mode} }

func file(name string, mode int64, data string) entry {
	return entry{Name: name, Type: tar.TypeReg, Mode: mode, Data: []byte(data)}
}

const passwd = `root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
`

const group = `root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
wheel:x:10:root
mail:x:12:
www-data:x:33:
operator:x:37:
staff:x:50:
users:x:100:
nogroup:x:65534:
`

// pgrep is a stand-in for procps' pgrep: pgrep [-f] PATTERN.
const pgrep = `#!/bin/sh
# pgrep stand-in (Debian's busybox has none): pgrep [-f] PATTERN
full=
if [ "$1" = -f ]; then full=1; shift; fi
pat=$1
rc=1
for d in /proc/[0-9]*; do
	pid=${d#/proc/}
	[ "$pid" = "$$" ] && continue
	if [ -n "$full" ]; then
		s=$(tr '\0' ' ' <"$d/cmdline" 2>/dev/null)
	else
		s=$(cat "$d/comm" 2>/dev/null)
	fi
	[ -n "$s" ] || continue
	if echo "$s" | grep -q -e "$pat"; then
		echo "$pid"
		rc=0
	fi
done
exit $rc
`

// ipcs is a stand-in for util-linux's ipcs, enough for `ipcs -m`: it
// lists the System V shared memory segments of the IPC namespace.
const ipcs = `#!/bin/sh
# ipcs stand-in (Debian's busybox has none): lists shared memory segments
echo
echo "------ Shared Memory Segments --------"
echo "key        shmid      owner      perms      bytes      nattch     status"
if [ -r /proc/sysvipc/shm ]; then
	tail -n +2 /proc/sysvipc/shm | while read -r key shmid perms size cpid lpid nattch uid rest; do
		printf '0x%08x %-10s %-10s %-10s %-10s %-10s\n' "$key" "$shmid" "$uid" "$perms" "$size" "$nattch"
	done
fi
echo
`

var (
	baseOnce    sync.Once
	baseEntries []entry
	baseErr     error
)

// busyboxEntries returns the files of the busybox base rootfs.
func busyboxEntries() ([]entry, error) {
	baseOnce.Do(func() { baseEntries, baseErr = buildBusyboxEntries() })
	return baseEntries, baseErr
}

func buildBusyboxEntries() ([]entry, error) {
	bb, err := os.ReadFile(BusyboxPath)
	if err != nil {
		return nil, fmt.Errorf("reading busybox: %w", err)
	}
	out, err := exec.Command(BusyboxPath, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("listing busybox applets: %w", err)
	}
	libs, err := sharedLibraries(BusyboxPath)
	if err != nil {
		return nil, err
	}

	es := []entry{
		dir("bin", 0o755), dir("dev", 0o755), dir("etc", 0o755), dir("home", 0o755),
		dir("lib", 0o755), dir("lib64", 0o755), dir("proc", 0o555), dir("root", 0o700),
		dir("run", 0o755), dir("sbin", 0o755), dir("sys", 0o555), dir("tmp", 0o1777),
		dir("usr", 0o755), dir("usr/bin", 0o755), dir("usr/sbin", 0o755),
		dir("usr/local", 0o755), dir("usr/local/bin", 0o755), dir("var", 0o755),
		dir("var/run", 0o755), dir("var/tmp", 0o1777), dir("var/www", 0o755),
		{Name: "bin/busybox", Type: tar.TypeReg, Mode: 0o755, Data: bb},
		file("etc/passwd", 0o644, passwd),
		file("etc/group", 0o644, group),
		file("etc/hostname", 0o644, "busybox\n"),
		file("etc/hosts", 0o644, "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"),
		file("etc/resolv.conf", 0o644, ""),
		file("etc/nsswitch.conf", 0o644, "passwd: files\ngroup: files\nhosts: files dns\n"),
		file("usr/bin/pgrep", 0o755, pgrep),
		file("usr/bin/ipcs", 0o755, ipcs),
	}
	seen := map[string]bool{}
	for _, e := range es {
		seen[e.Name] = true
	}
	for _, l := range libs {
		data, err := os.ReadFile(l)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", l, err)
		}
		name := strings.TrimPrefix(l, "/")
		for d := path.Dir(name); d != "." && !seen[d]; d = path.Dir(d) {
			seen[d] = true
			es = append(es, dir(d, 0o755))
		}
		es = append(es, entry{Name: name, Type: tar.TypeReg, Mode: 0o755, Data: data})
	}
	for _, a := range strings.Fields(string(out)) {
		if a == "busybox" || strings.Contains(a, "/") {
			continue
		}
		name := "bin/" + a
		if seen[name] {
			continue
		}
		seen[name] = true
		// Unpackers chmod the shared inode with a link's mode: it must be the target's.
		es = append(es, entry{Name: name, Type: tar.TypeLink, Link: "bin/busybox", Mode: 0o755})
	}
	// Directories first, in path order, so parents precede children.
	sort.SliceStable(es, func(i, j int) bool {
		di, dj := es[i].Type == tar.TypeDir, es[j].Type == tar.TypeDir
		if di != dj {
			return di
		}
		if di {
			return es[i].Name < es[j].Name
		}
		return false
	})
	return es, nil
}

// sharedLibraries returns the interpreter and the shared libraries a
// dynamic ELF binary needs, found the way ld.so would on Debian.
func sharedLibraries(bin string) ([]string, error) {
	dirs := []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/lib", "/usr/lib",
		"/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu"}
	var libs []string
	seen := map[string]bool{}
	var walk func(string) error
	walk = func(p string) error {
		f, err := elf.Open(p)
		if err != nil {
			return fmt.Errorf("reading ELF %s: %w", p, err)
		}
		defer f.Close()
		for _, prog := range f.Progs {
			if prog.Type != elf.PT_INTERP {
				continue
			}
			b := make([]byte, prog.Filesz)
			if _, err := prog.ReadAt(b, 0); err != nil {
				return fmt.Errorf("reading interpreter of %s: %w", p, err)
			}
			interp := strings.TrimRight(string(b), "\x00")
			if !seen[interp] {
				seen[interp] = true
				libs = append(libs, interp)
			}
		}
		needed, err := f.ImportedLibraries()
		if err != nil {
			return fmt.Errorf("reading libraries of %s: %w", p, err)
		}
		for _, n := range needed {
			found := ""
			for _, d := range dirs {
				if _, err := os.Stat(filepath.Join(d, n)); err == nil {
					found = filepath.Join(d, n)
					break
				}
			}
			if found == "" {
				return fmt.Errorf("library %s of %s not found", n, p)
			}
			if seen[found] {
				continue
			}
			seen[found] = true
			libs = append(libs, found)
			if err := walk(found); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(bin); err != nil {
		return nil, err
	}
	return libs, nil
}

// BusyboxRootfs writes the rootfs of the busybox test image
// (registry.k8s.io/e2e-test-images/busybox:1.29-2 as served by the test
// registry) into dir, which is created if needed.
func BusyboxRootfs(dir string) error {
	es, err := busyboxEntries()
	if err != nil {
		return err
	}
	return writeEntries(dir, es)
}

func writeEntries(root string, es []entry) error {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	for _, e := range es {
		p := filepath.Join(root, filepath.FromSlash(e.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		switch e.Type {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.WriteFile(p, e.Data, 0o644); err != nil {
				return err
			}
		case tar.TypeLink:
			_ = os.Remove(p)
			if err := os.Link(filepath.Join(root, filepath.FromSlash(e.Link)), p); err != nil {
				return err
			}
			continue
		case tar.TypeSymlink:
			_ = os.Remove(p)
			if err := os.Symlink(e.Link, p); err != nil {
				return err
			}
			continue
		default:
			return fmt.Errorf("entry %s: type %q not supported in a rootfs directory", e.Name, e.Type)
		}
		if err := os.Chmod(p, os.FileMode(e.Mode&0o777)|modeBits(e.Mode)); err != nil {
			return err
		}
		if err := os.Lchown(p, e.UID, e.GID); err != nil {
			return err
		}
	}
	return nil
}

func modeBits(m int64) os.FileMode {
	var fm os.FileMode
	if m&0o4000 != 0 {
		fm |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		fm |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		fm |= os.ModeSticky
	}
	return fm
}

// tarEntries serializes entries as an uncompressed tar stream.
func tarEntries(es []entry) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		h := &tar.Header{
			Name: e.Name, Typeflag: e.Type, Mode: e.Mode, Uid: e.UID, Gid: e.GID,
			Linkname: e.Link, ModTime: epoch, Devmajor: e.Major, Devminor: e.Minor,
			Format: tar.FormatPAX,
		}
		if e.Type == tar.TypeDir && !strings.HasSuffix(h.Name, "/") {
			h.Name += "/"
		}
		if e.Type == tar.TypeReg {
			h.Size = int64(len(e.Data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("tar header %s: %w", e.Name, err)
		}
		if e.Type == tar.TypeReg {
			if _, err := tw.Write(e.Data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
