package sandbox

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vc-cri/vc-cri/hack/testimages"
)

// userRootfs is a container root with testimages.UserRoot's users.
func userRootfs(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	if err := testimages.UserRoot(root); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestResolveUser(t *testing.T) {
	root := userRootfs(t)
	u, err := resolveUser(root, Cmd{User: "web", SupplementaryGroups: []string{"other", "42"}}, true)
	if err != nil {
		t.Fatal(err)
	}
	if u.UID != 1000 || u.GID != 1001 || !slices.Equal(u.Groups, []uint32{1001, 2000, 3000, 42}) {
		t.Fatalf("resolved %+v", u)
	}
	if u, err := resolveUser(root, Cmd{}, true); u != nil || err != nil {
		t.Fatalf("no user: %+v %v", u, err)
	}
	if _, err := resolveUser(root, Cmd{User: "nobody-here"}, true); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("unknown user: %v", err)
	}
}

// TestSupplementalGroupsPolicy: Merge (the default) adds the groups
// /etc/group lists the user in, named or numbered, whatever its primary
// group; Strict only the primary group and the ones asked for. The
// primary group is always among the supplementary ones.
func TestSupplementalGroupsPolicy(t *testing.T) {
	root := userRootfs(t)
	for _, tc := range []struct {
		name string
		cmd  Cmd
		want User
	}{
		{"merge by name", Cmd{User: "web", SupplementaryGroups: []string{"42"}}, User{1000, 1001, []uint32{1001, 2000, 42}}},
		{"merge by uid", Cmd{User: "1000", SupplementaryGroups: []string{"42"}}, User{1000, 1001, []uint32{1001, 2000, 42}}},
		{"merge with a primary group", Cmd{User: "1000", PrimaryGroup: "3000", SupplementaryGroups: []string{"42"}}, User{1000, 3000, []uint32{3000, 2000, 42}}},
		{"merge with a named primary group", Cmd{User: "web", PrimaryGroup: "other"}, User{1000, 3000, []uint32{3000, 2000}}},
		{"merge, once each", Cmd{User: "web", SupplementaryGroups: []string{"2000", "1001"}}, User{1000, 1001, []uint32{1001, 2000}}},
		{"strict by uid", Cmd{User: "1000", SupplementaryGroups: []string{"42"}, StrictGroups: true}, User{1000, 1001, []uint32{1001, 42}}},
		{"strict by name", Cmd{User: "web", StrictGroups: true}, User{1000, 1001, []uint32{1001}}},
		{"strict, all numbers", Cmd{User: "1000", PrimaryGroup: "7", SupplementaryGroups: []string{"42"}, StrictGroups: true}, User{1000, 7, []uint32{7, 42}}},
		{"strict, a named group", Cmd{User: "web", SupplementaryGroups: []string{"other"}, StrictGroups: true}, User{1000, 1001, []uint32{1001, 3000}}},
		{"a uid without an entry", Cmd{User: "4242"}, User{4242, 0, []uint32{0}}},
		{"no user: root", Cmd{}, User{0, 0, []uint32{0}}},
	} {
		u, err := ResolveUser(root, tc.cmd)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if u.UID != tc.want.UID || u.GID != tc.want.GID || !slices.Equal(u.Groups, tc.want.Groups) {
			t.Errorf("%s: %+v, want %+v", tc.name, u, tc.want)
		}
		// Set hands the numbers on: resolved again, they are the same,
		// and no file is read.
		cmd := tc.cmd
		u.Set(&cmd)
		again, err := resolveUser(t.TempDir()+"/none", cmd, true)
		if err != nil || again.UID != u.UID || again.GID != u.GID || !slices.Equal(again.Groups, u.Groups) {
			t.Errorf("%s: set %+v, resolved again %+v, %v", tc.name, cmd, again, err)
		}
	}
	// Strict needs /etc/passwd still for a user's primary group, but not
	// /etc/group: a user with a primary group of its own resolves with none.
	noGroup := t.TempDir()
	if err := os.MkdirAll(filepath.Join(noGroup, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(noGroup, "etc", "passwd"), []byte("web:x:1000:1001::/:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if u, err := ResolveUser(noGroup, Cmd{User: "web", SupplementaryGroups: []string{"5"}, StrictGroups: true}); err != nil || !slices.Equal(u.Groups, []uint32{1001, 5}) {
		t.Fatalf("strict without /etc/group: %+v %v", u, err)
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
	if c.Cmd.User != "1000" || c.Cmd.PrimaryGroup != "1001" || !slices.Equal(c.Cmd.SupplementaryGroups, []string{"1001", "2000", "3000"}) || !c.Cmd.StrictGroups {
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
	p, err := ExecProcess(c, Cmd{Args: []string{"id"}})
	if err != nil {
		t.Fatal(err)
	}
	if p.User.UID != 1000 || p.User.GID != 1001 || !slices.Equal(p.User.AdditionalGids, []uint32{1001, 2000, 3000}) {
		t.Fatalf("exec user %+v", p.User)
	}
	// An exec naming a user reads the files again: refused, at once.
	done := make(chan error, 1)
	go func() {
		_, err := ExecProcess(c, Cmd{Args: []string{"id"}, User: "root"})
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
	if _, err := ExecProcess(c, Cmd{Args: []string{"id"}, User: "root"}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("exec with a symlinked passwd: %v", err)
	}
}
