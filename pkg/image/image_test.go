package image

import (
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
)

func TestPullStatusListRemove(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	img, err := s.Pull(ctx, ref("test/busybox:1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	wantDigest, _ := busyboxImg.Digest()
	cfgName, _ := busyboxImg.ConfigName()
	if img.ID != cfgName.String() {
		t.Errorf("ID %s, want the config digest %s", img.ID, cfgName)
	}
	if !slices.Equal(img.RepoTags, []string{ref("test/busybox:1")}) {
		t.Errorf("RepoTags %v", img.RepoTags)
	}
	if !slices.Equal(img.RepoDigests, []string{ref("test/busybox@") + wantDigest.String()}) {
		t.Errorf("RepoDigests %v", img.RepoDigests)
	}
	if img.Size == 0 || img.Config == nil || !slices.Equal(img.Config.Config.Cmd, []string{"sh"}) {
		t.Errorf("Size %d, Config %+v", img.Size, img.Config)
	}

	// Idempotent; a second tag of the same image adds a name.
	if _, err := s.Pull(ctx, ref("test/busybox:1"), nil); err != nil {
		t.Fatal(err)
	}
	img2, err := s.Pull(ctx, ref("test/busybox:2"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if img2.ID != img.ID || len(img2.RepoTags) != 2 {
		t.Errorf("second tag: ID %s tags %v", img2.ID, img2.RepoTags)
	}

	hex := strings.TrimPrefix(img.ID, "sha256:")
	for _, r := range []string{img.ID, hex, hex[:12], ref("test/busybox:1"), ref("test/busybox:2"),
		ref("test/busybox@") + wantDigest.String(), "test/busybox:1"} {
		st, err := s.Status(ctx, r)
		if err != nil {
			t.Errorf("Status(%s): %v", r, err)
			continue
		}
		if st.ID != img.ID {
			t.Errorf("Status(%s) = %s", r, st.ID)
		}
	}
	list, err := s.List(ctx)
	if err != nil || len(list) != 1 || list[0].ID != img.ID {
		t.Fatalf("List = %v, %v", list, err)
	}

	// By tag: the whole image goes, with all its names.
	if err := s.Remove(ctx, ref("test/busybox:2")); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{img.ID, ref("test/busybox:1")} {
		if _, err := s.Status(ctx, r); !errors.Is(err, ErrNotFound) {
			t.Errorf("Status(%s) after remove: %v, want ErrNotFound", r, err)
		}
	}
	if err := s.Remove(ctx, img.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Remove: %v", err)
	}
}

func TestRemoveByIDAndDigest(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	for _, r := range []func(*Image) string{
		func(i *Image) string { return i.ID },
		func(i *Image) string { return i.RepoDigests[0] },
	} {
		img, err := s.Pull(ctx, ref("test/busybox:1"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Remove(ctx, r(img)); err != nil {
			t.Fatalf("Remove(%s): %v", r(img), err)
		}
		if l, _ := s.List(ctx); len(l) != 0 {
			t.Fatalf("images left: %v", l)
		}
	}
}

func TestPullByDigestMirrorShortName(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	d, _ := busyboxImg.Digest()
	byDigest := ref("test/busybox@") + d.String()
	img, err := s.Pull(ctx, byDigest, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(img.RepoTags) != 0 || !slices.Equal(img.RepoDigests, []string{byDigest}) {
		t.Errorf("by digest: tags %v digests %v", img.RepoTags, img.RepoDigests)
	}
	// mirror.test is rewritten to the local registry; the name stays.
	img, err = s.Pull(ctx, "mirror.test/test/busybox:1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(img.RepoTags, "mirror.test/test/busybox:1") {
		t.Errorf("mirror: tags %v", img.RepoTags)
	}
	// A short name resolves through unqualified-search-registries.
	img, err = s.Pull(ctx, "test/busybox:2", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(img.RepoTags, ref("test/busybox:2")) {
		t.Errorf("short name: tags %v", img.RepoTags)
	}
}

func TestPullErrors(t *testing.T) {
	s := newService(t)
	basic := base64.StdEncoding.EncodeToString([]byte(privUser + ":" + privPass))
	for _, tc := range []struct {
		name string
		ref  string
		auth *Auth
		want error
	}{
		{"malformed", "Bad//Ref::x", nil, ErrInvalidReference},
		{"uppercase", ref("Test/Busybox:1"), nil, ErrInvalidReference},
		{"id", strings.Repeat("a", 64), nil, ErrInvalidReference},
		{"empty", "", nil, ErrInvalidReference},
		{"unknown repo", ref("test/nope:1"), nil, ErrNotFound},
		{"unknown tag", ref("test/busybox:nope"), nil, ErrNotFound},
		{"blocked", "blocked.test/test/busybox:1", nil, ErrBlocked},
		{"refused", "127.0.0.1:1/test/busybox:1", nil, ErrUnavailable},
		{"no credentials", ref("private/busybox:1"), nil, ErrUnauthorized},
		{"wrong credentials", ref("private/busybox:1"), &Auth{Username: privUser, Password: "wrong"}, ErrUnauthorized},
		{"bad auth", ref("private/busybox:1"), &Auth{Auth: "%%%"}, ErrInvalidAuth},
		{"corrupt blob", ref("corrupt/busybox:1"), nil, ErrDigestMismatch},
		{"credentials", ref("private/busybox:1"), &Auth{Username: privUser, Password: privPass}, nil},
		{"auth field", ref("private/busybox:1"), &Auth{Auth: basic}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Pull(context.Background(), tc.ref, tc.auth)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Pull(%s) = %v, want %v", tc.ref, err, tc.want)
			}
		})
	}
	// The corrupt pull left no image behind.
	list, err := s.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range list {
		for _, tag := range img.RepoTags {
			if strings.Contains(tag, "corrupt") {
				t.Errorf("corrupt pull left image %v", img.RepoTags)
			}
		}
	}
}

func TestPullDeadline(t *testing.T) {
	s := newService(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	time.Sleep(2 * time.Millisecond)
	if _, err := s.Pull(ctx, ref("test/busybox:1"), nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Pull = %v, want DeadlineExceeded", err)
	}
}

func TestPullCancelledLeavesNoImage(t *testing.T) {
	s := newService(t)
	slowBlobs.Store(true)
	defer slowBlobs.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if _, err := s.Pull(ctx, ref("slow/busybox:1"), nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Pull = %v, want DeadlineExceeded", err)
	}
	// The pull, given up by its only caller, is cancelled and leaves nothing.
	deadline := time.Now().Add(10 * time.Second)
	for {
		l, err := s.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(l) != 0 {
			t.Fatalf("images after a cancelled pull: %v", l[0].RepoTags)
		}
		s.flights.mu.Lock()
		n := len(s.flights.flights)
		s.flights.mu.Unlock()
		if n == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	// And a later pull works.
	slowBlobs.Store(false)
	if _, err := s.Pull(context.Background(), ref("slow/busybox:1"), nil); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentPullsDedup(t *testing.T) {
	s := newService(t)
	before := blobGets.Load()
	var wg sync.WaitGroup
	ids := make([]string, 8)
	errs := make([]error, 8)
	for i := range ids {
		wg.Go(func() {
			img, err := s.Pull(context.Background(), ref("count/busybox:1"), nil)
			errs[i] = err
			if err == nil {
				ids[i] = img.ID
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("pull %d: %v", i, err)
		}
		if ids[i] != ids[0] {
			t.Fatalf("IDs differ: %v", ids)
		}
	}
	// One layer and one config blob: fetched once for all eight pulls.
	if got := blobGets.Load() - before; got != 2 {
		t.Errorf("%d blob GETs for 8 concurrent pulls, want 2", got)
	}
}

func TestImageUser(t *testing.T) {
	s := newService(t)
	for _, tc := range []struct {
		ref  string
		uid  int64
		name string
	}{
		{"user/uid:1", 1002, ""},
		{"user/name-group:1", -1, "www-data"},
		{"test/busybox:1", -1, ""},
	} {
		img, err := s.Pull(context.Background(), ref(tc.ref), nil)
		if err != nil {
			t.Fatal(err)
		}
		uid, name := img.User()
		got := int64(-1)
		if uid != nil {
			got = *uid
		}
		if got != tc.uid || name != tc.name {
			t.Errorf("%s: User() = %d %q, want %d %q", tc.ref, got, name, tc.uid, tc.name)
		}
	}
}

func TestUsage(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	u0, err := s.Usage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pull(ctx, ref("test/busybox:1"), nil); err != nil {
		t.Fatal(err)
	}
	u1, err := s.Usage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// busybox and glibc alone are over 2 MB and 30 inodes (the applets
	// are hard links: one inode).
	if u1.UsedBytes < u0.UsedBytes+2<<20 || u1.InodesUsed < u0.InodesUsed+30 || u1.Mountpoint != s.Root() {
		t.Errorf("usage before %+v after %+v", u0, u1)
	}
}

func TestMountRootfs(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	img, err := s.Pull(ctx, ref("test/busybox:1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	shared := t.TempDir()
	t1, t2 := filepath.Join(shared, "c1", "rootfs"), filepath.Join(shared, "c2", "rootfs")
	if p, err := s.Mount(ctx, "c1", ref("test/busybox:1"), t1, IDMap{}); err != nil || p != t1 {
		t.Fatalf("Mount = %s, %v", p, err)
	}
	if _, err := s.Mount(ctx, "c1", img.ID, t1, IDMap{}); err != nil {
		t.Fatalf("second Mount: %v", err)
	}
	if _, err := s.Mount(ctx, "c2", img.ID, t2, IDMap{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(t1, "bin", "busybox")); err != nil {
		t.Fatal(err)
	}
	var a, b syscall.Stat_t
	_ = syscall.Stat(filepath.Join(t1, "bin", "busybox"), &a)
	_ = syscall.Stat(filepath.Join(t1, "bin", "ls"), &b)
	if a.Ino != b.Ino {
		t.Errorf("bin/ls is not a hard link of bin/busybox")
	}
	if err := os.WriteFile(filepath.Join(t1, "written"), []byte("c1"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(t2, "written")); !os.IsNotExist(err) {
		t.Errorf("c2 sees c1's write: %v", err)
	}
	if err := s.Remove(ctx, img.ID); !errors.Is(err, ErrInUse) {
		t.Errorf("Remove of an image in use = %v, want ErrInUse", err)
	}
	if _, err := s.Mount(ctx, "c1", ref("user/uid:1"), t1, IDMap{}); err == nil {
		t.Errorf("Mount with another image succeeded")
	}

	if err := s.Unmount(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if m, _ := mountinfo.Mounted(t1); m {
		t.Errorf("%s still mounted", t1)
	}
	if _, err := s.Mount(ctx, "c1", img.ID, t1, IDMap{}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(t1, "written")); err != nil || string(b) != "c1" {
		t.Errorf("write lost over a remount: %q %v", b, err)
	}
	for _, c := range []string{"c1", "c2", "c2"} {
		if err := s.RemoveRootfs(ctx, c); err != nil {
			t.Fatalf("RemoveRootfs(%s): %v", c, err)
		}
	}
	for _, target := range []string{t1, t2} {
		if _, err := os.Stat(target); !os.IsNotExist(err) {
			t.Errorf("target %s left: %v", target, err)
		}
	}
	if err := s.Unmount(ctx, "c1"); !errors.Is(err, ErrContainerNotFound) {
		t.Errorf("Unmount of a removed rootfs = %v", err)
	}
	if err := s.Remove(ctx, img.ID); err != nil {
		t.Errorf("Remove after the rootfs went: %v", err)
	}
	if _, err := s.Mount(ctx, "c3", "nope:1", "", IDMap{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Mount of an unknown image = %v", err)
	}
}
