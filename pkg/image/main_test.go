package image

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"go.podman.io/storage/pkg/reexec"

	"github.com/vc-cri/vc-cri/hack/testimages"
)

// The package's tests share one in-process registry (see TestMain) and
// each opens its own store under a temporary directory. They run as root:
// overlay mounts and layer unpacking need it.

var (
	regAddr     string
	regConf     string
	busyboxImg  v1.Image
	blobGets    atomic.Int64 // GETs of blobs of the "count/" repositories
	slowBlobs   atomic.Bool  // delays blobs of "slow/" repositories
	hostileTok  = fmt.Sprintf("vccri-hostile-%d", os.Getpid())
	corruptFrom v1.Hash // blob served wrong under "corrupt/"
	corruptTo   v1.Hash
	hardlinkImg v1.Image // a hard link to a file outside the layer
)

const (
	privUser, privPass = "alice", "s3cret"
)

func TestMain(m *testing.M) {
	if reexec.Init() {
		return
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "pkg/image tests need root (overlay mounts, layer unpacking)")
		os.Exit(1)
	}
	cleanup, err := setupRegistry()
	if err != nil {
		fmt.Fprintln(os.Stderr, "test registry:", err)
		os.Exit(1)
	}
	code := m.Run()
	cleanup()
	os.Exit(code)
}

func wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if strings.Contains(p, "/blobs/") && r.Method == http.MethodGet {
			if strings.HasPrefix(p, "/v2/count/") {
				blobGets.Add(1)
			}
			if strings.HasPrefix(p, "/v2/slow/") && slowBlobs.Load() {
				select {
				case <-time.After(3 * time.Second):
				case <-r.Context().Done():
					return
				}
			}
			if strings.HasPrefix(p, "/v2/corrupt/") && strings.HasSuffix(p, corruptFrom.String()) {
				// Another valid blob: it decompresses, only its digest is wrong.
				r = r.Clone(r.Context())
				r.URL.Path = strings.TrimSuffix(p, corruptFrom.String()) + corruptTo.String()
			}
		}
		h.ServeHTTP(w, r)
	})
}

func setupRegistry() (func(), error) {
	ctx := context.Background()
	reg, err := testimages.StartRegistry("127.0.0.1:0", testimages.RegistryOptions{
		PrivatePrefix: "private/", Username: privUser, Password: privPass, Wrap: wrap,
	})
	if err != nil {
		return nil, err
	}
	regAddr = reg.Addr
	busyboxImg, err = testimages.Busybox()
	if err != nil {
		return nil, err
	}
	user := func(u string) v1.Image {
		img, err := testimages.Build(v1.Config{Cmd: []string{"sh"}, User: u}, must(testimages.BusyboxLayer()))
		if err != nil {
			panic(err)
		}
		return img
	}
	// corrupt/busybox: its second layer's blob is served as another blob.
	extraA := must(testimages.LayerFromTar(tarOf(tarFile("a", 0o644, 0, 0, "a"))))
	extraB := must(testimages.LayerFromTar(tarOf(tarFile("b", 0o644, 0, 0, "b"))))
	corruptImg := must(testimages.Build(v1.Config{}, must(testimages.BusyboxLayer()), extraA))
	corruptFrom = must(extraA.Digest())
	corruptTo = must(extraB.Digest())
	withB := must(testimages.Build(v1.Config{}, extraB))

	escape, special := hostileImages()
	imgs := []testimages.Image{
		{Repo: "test/busybox", Tags: []string{"1", "2"}, Image: busyboxImg},
		{Repo: "count/busybox", Tags: []string{"1"}, Image: busyboxImg},
		{Repo: "slow/busybox", Tags: []string{"1"}, Image: busyboxImg},
		{Repo: "private/busybox", Tags: []string{"1"}, Image: busyboxImg},
		{Repo: "user/uid", Tags: []string{"1"}, Image: user("1002")},
		{Repo: "user/name-group", Tags: []string{"1"}, Image: user("www-data:1004")},
		{Repo: "corrupt/busybox", Tags: []string{"1"}, Image: corruptImg},
		{Repo: "corrupt/other", Tags: []string{"1"}, Image: withB},
		{Repo: "hostile/escape", Tags: []string{"1"}, Image: escape},
		{Repo: "hostile/special", Tags: []string{"1"}, Image: special},
		{Repo: "hostile/hardlink", Tags: []string{"1"}, Image: hardlinkImg},
	}
	if err := reg.Push(ctx, imgs...); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "vccri-image-test")
	if err != nil {
		return nil, err
	}
	regConf = filepath.Join(dir, "registries.conf")
	conf := fmt.Sprintf(`unqualified-search-registries = [%[1]q]
short-name-mode = "permissive"

[[registry]]
prefix = "mirror.test"
location = %[1]q
insecure = true

[[registry]]
location = %[1]q
insecure = true

[[registry]]
location = "blocked.test"
blocked = true

[[registry]]
location = "127.0.0.1:1"
insecure = true
`, regAddr)
	if err := os.WriteFile(regConf, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	return func() { reg.Close(); os.RemoveAll(dir) }, nil
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// newService opens a fresh store in a temporary directory.
func newService(t testing.TB) *Service {
	t.Helper()
	dir := t.TempDir()
	s, err := New(Config{Root: filepath.Join(dir, "root"), RunRoot: filepath.Join(dir, "run"), RegistriesConf: regConf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = s.store.Shutdown(true) })
	return s
}

func ref(path string) string { return regAddr + "/" + path }

type tarEntry struct {
	hdr  tar.Header
	data string
}

func tarFile(name string, mode int64, uid, gid int, data string) tarEntry {
	return tarEntry{hdr: tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: mode, Uid: uid, Gid: gid, Size: int64(len(data))}, data: data}
}

func tarOf(es ...tarEntry) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		h := e.hdr
		h.ModTime = time.Unix(1700000000, 0)
		if err := tw.WriteHeader(&h); err != nil {
			panic(err)
		}
		if e.data != "" {
			if _, err := tw.Write([]byte(e.data)); err != nil {
				panic(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// hostileImages builds the escape image (entries that try to write
// outside the rootfs) and the special image (whiteouts, opaque
// directories, a device node, a setuid file, ownership).
func hostileImages() (escape, special v1.Image) {
	host := "/tmp/" + hostileTok
	esc := tarOf(
		tarFile("../../../../../../../.."+host+"-dotdot", 0o644, 0, 0, "dotdot"),
		tarFile("ok/../../"+hostileTok+"-dotdot2", 0o644, 0, 0, "dotdot2"),
		tarFile(host+"-abs", 0o644, 0, 0, "abs"),
		tarEntry{hdr: tar.Header{Name: "evil", Typeflag: tar.TypeSymlink, Linkname: host + "-dir", Mode: 0o777}},
		tarFile("evil/pwned", 0o644, 0, 0, "through symlink"),
		tarEntry{hdr: tar.Header{Name: "up", Typeflag: tar.TypeSymlink, Linkname: "../../../../../../../../tmp", Mode: 0o777}},
		tarFile("up/"+hostileTok+"-up", 0o644, 0, 0, "through relative symlink"),
		tarFile("regular", 0o644, 0, 0, "fine"),
	)
	base := tarOf(
		tarEntry{hdr: tar.Header{Name: "a/", Typeflag: tar.TypeDir, Mode: 0o755}},
		tarFile("a/gone", 0o644, 0, 0, "x"),
		tarFile("a/kept", 0o644, 0, 0, "x"),
		tarEntry{hdr: tar.Header{Name: "b/", Typeflag: tar.TypeDir, Mode: 0o755}},
		tarFile("b/old1", 0o644, 0, 0, "x"),
		tarFile("b/old2", 0o644, 0, 0, "x"),
	)
	top := tarOf(
		tarFile("a/.wh.gone", 0o644, 0, 0, ""),
		tarEntry{hdr: tar.Header{Name: "b/", Typeflag: tar.TypeDir, Mode: 0o755}},
		tarFile("b/.wh..wh..opq", 0o644, 0, 0, ""),
		tarFile("b/new", 0o644, 0, 0, "x"),
		tarEntry{hdr: tar.Header{Name: "dev/", Typeflag: tar.TypeDir, Mode: 0o755}},
		tarEntry{hdr: tar.Header{Name: "dev/mynull", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3}},
		tarFile("suid", 0o4755, 0, 0, "#!/bin/sh\n"),
		tarFile("owned", 0o640, 1234, 5678, "x"),
	)
	escape = must(testimages.Build(v1.Config{}, must(testimages.LayerFromTar(esc))))
	hardlinkImg = must(testimages.Build(v1.Config{}, must(testimages.LayerFromTar(tarOf(
		tarEntry{hdr: tar.Header{Name: "hl", Typeflag: tar.TypeLink, Linkname: "../../../../../../../../etc/passwd"}},
	)))))
	special = must(testimages.Build(v1.Config{}, must(testimages.LayerFromTar(base)), must(testimages.LayerFromTar(top))))
	return escape, special
}
