package sandbox

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func userRootfs(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{
		"passwd": "root:x:0:0::/root:/bin/sh\nweb:x:1000:1001::/home/web:/bin/sh\n",
		"group":  "root:x:0:\nweb:x:1001:\nextra:x:2000:web\nother:x:3000:\n",
	} {
		if err := os.WriteFile(filepath.Join(root, "etc", name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestResolveUser(t *testing.T) {
	root := userRootfs(t)
	u, err := resolveUser(root, Cmd{User: "web", SupplementaryGroups: []string{"other", "42"}})
	if err != nil {
		t.Fatal(err)
	}
	if u.uid != 1000 || u.gid != 1001 || !slices.Equal(u.sgids, []uint32{2000, 3000, 42}) {
		t.Fatalf("resolved %+v", u)
	}
	if u, err := resolveUser(root, Cmd{}); u != nil || err != nil {
		t.Fatalf("no user: %+v %v", u, err)
	}
	if _, err := resolveUser(root, Cmd{User: "nobody-here"}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("unknown user: %v", err)
	}
}

// TestFreezeUser: resolved at create, the numbers are all an exec needs;
// the guest's later /etc/passwd (a FIFO, a symlink to a host device) is
// never opened.
func TestFreezeUser(t *testing.T) {
	root := userRootfs(t)
	c := &ContainerConfig{RootFs: root, Cmd: Cmd{User: "web", SupplementaryGroups: []string{"other"}}}
	if err := freezeUser(c); err != nil {
		t.Fatal(err)
	}
	if c.Cmd.User != "1000" || c.Cmd.PrimaryGroup != "1001" || !slices.Equal(c.Cmd.SupplementaryGroups, []string{"2000", "3000"}) {
		t.Fatalf("frozen %+v", c.Cmd)
	}
	passwd := filepath.Join(root, "etc", "passwd")
	if err := os.Remove(passwd); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(passwd, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(root, "etc", "group")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/zero", filepath.Join(root, "etc", "group")); err != nil {
		t.Fatal(err)
	}
	p, err := execProcess(c, Cmd{Args: []string{"id"}})
	if err != nil {
		t.Fatal(err)
	}
	if p.User.UID != 1000 || p.User.GID != 1001 || !slices.Equal(p.User.AdditionalGids, []uint32{2000, 3000}) {
		t.Fatalf("exec user %+v", p.User)
	}
	// An exec naming a user reads the files again: refused, at once.
	done := make(chan error, 1)
	go func() {
		_, err := execProcess(c, Cmd{Args: []string{"id"}, User: "root"})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("exec as a named user over a FIFO passwd: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("exec blocked on a FIFO at /etc/passwd")
	}
	// A symlink at /etc/passwd is not followed either.
	if err := os.Remove(passwd); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(t.TempDir(), "passwd")
	if err := os.WriteFile(secret, []byte("root:x:0:0::/:/bin/sh\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, passwd); err != nil {
		t.Fatal(err)
	}
	if _, err := execProcess(c, Cmd{Args: []string{"id"}, User: "root"}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("exec with a symlinked passwd: %v", err)
	}
}
