package testimages

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Image is one image of the test registry with the tags it is served
// under. Repo is the repository path without a registry host, for
// example "e2e-test-images/busybox": vc-cri's test registries.conf
// mirrors registry.k8s.io, gcr.io, k8s.gcr.io and public.ecr.aws onto
// these paths.
type Image struct {
	Repo  string
	Tags  []string
	Image v1.Image
}

// DefaultPath is the PATH of every test image.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// LayerFromTar makes an image layer (gzip) of an uncompressed tar stream.
func LayerFromTar(b []byte) (v1.Layer, error) {
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithCompressedCaching)
}

func layerOf(es []entry) (v1.Layer, error) {
	b, err := tarEntries(es)
	if err != nil {
		return nil, err
	}
	return LayerFromTar(b)
}

var (
	baseLayerOnce sync.Once
	baseLayer     v1.Layer
	baseLayerErr  error
)

// BusyboxLayer is the base layer of every test image.
func BusyboxLayer() (v1.Layer, error) {
	baseLayerOnce.Do(func() {
		es, err := busyboxEntries()
		if err != nil {
			baseLayerErr = err
			return
		}
		baseLayer, baseLayerErr = layerOf(es)
	})
	return baseLayer, baseLayerErr
}

// Build makes a linux image of the host's architecture from cfg and
// layers, with fixed creation times so that its digests are stable.
func Build(cfg v1.Config, layers ...v1.Layer) (v1.Image, error) {
	if len(cfg.Env) == 0 {
		cfg.Env = []string{"PATH=" + DefaultPath}
	}
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		Architecture: runtime.GOARCH,
		OS:           "linux",
		Created:      v1.Time{Time: epoch},
		Config:       cfg,
	})
	if err != nil {
		return nil, err
	}
	adds := make([]mutate.Addendum, 0, len(layers))
	for _, l := range layers {
		adds = append(adds, mutate.Addendum{Layer: l, History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "vc-cri testimages"}})
	}
	return mutate.Append(img, adds...)
}

// OnBusybox makes an image of the busybox base layer plus one layer of
// extra files (none when extra is empty).
func onBusybox(cfg v1.Config, extra ...entry) (v1.Image, error) {
	base, err := BusyboxLayer()
	if err != nil {
		return nil, err
	}
	layers := []v1.Layer{base}
	if len(extra) > 0 {
		l, err := layerOf(extra)
		if err != nil {
			return nil, err
		}
		layers = append(layers, l)
	}
	return Build(cfg, layers...)
}

// Busybox is the image registry.k8s.io/e2e-test-images/busybox:1.29-2
// stands for: the busybox rootfs, command sh.
func Busybox() (v1.Image, error) {
	return onBusybox(v1.Config{Cmd: []string{"sh"}})
}

// webServer is an image whose command serves HTTP on port with busybox
// httpd, run as program: its PID 1 argv[0] reads argv0 ("nginx: master
// process ...", as critest looks for in /proc/1/cmdline) and its name is
// program (busybox pidof finds it so: it is executed through
// /usr/sbin/PROGRAM, a link to busybox), and it writes its PID to
// /var/run/PROGRAM.pid, as nginx does. busybox still finds the httpd
// applet through the argv[0] base name.
func webServer(port int, docroot, program, argv0 string, index string) (v1.Image, error) {
	// A line at start, as real servers log one (critest looks for "httpd"
	// in the httpd container's log).
	script := fmt.Sprintf("#!/bin/sh\necho %q >&2\necho $$ >/var/run/%s.pid\nexec -a %q /usr/sbin/%s -f -p %d -h %s\n",
		fmt.Sprintf("%s: listening on port %d", argv0, port), program, argv0, program, port, docroot)
	return onBusybox(v1.Config{
		Cmd:          []string{"/usr/local/bin/serve"},
		ExposedPorts: map[string]struct{}{fmt.Sprintf("%d/tcp", port): {}},
		StopSignal:   "SIGTERM",
	},
		dir(docroot[1:], 0o755),
		file(docroot[1:]+"/index.html", 0o644, index),
		file("usr/local/bin/serve", 0o755, script),
		entry{Name: "usr/sbin/" + program, Type: tar.TypeSymlink, Mode: 0o777, Link: "/bin/busybox"},
	)
}

const nginxIndex = "<!DOCTYPE html>\n<html><head><title>Welcome to nginx!</title></head>\n<body><h1>Welcome to nginx!</h1></body></html>\n"

// Nonewprivs is the nonewprivs image: /usr/local/bin/nnp, setuid root,
// prints "Effective uid: N". nnp is the path of a static binary built from
// ./nnp (see BuildNNP).
func Nonewprivs(nnp string) (v1.Image, error) {
	b, err := os.ReadFile(nnp)
	if err != nil {
		return nil, err
	}
	return onBusybox(v1.Config{Entrypoint: []string{"/usr/local/bin/nnp"}},
		entry{Name: "usr/local/bin/nnp", Type: tar.TypeReg, Mode: 0o4755, Data: b})
}

// BuildNNP builds the nnp program of this package into dir with the go
// tool and returns its path.
func BuildNNP(ctx context.Context, dir string) (string, error) {
	_, self, _, _ := runtime.Caller(0)
	out := filepath.Join(dir, "nnp")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, ".")
	cmd.Dir = filepath.Join(filepath.Dir(self), "nnp")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building nnp: %w: %s", err, b)
	}
	return out, nil
}

func marker(name string) entry { return file(name, 0o644, "") }

// Catalog returns every image critest v1.37.0 names (but the fixed-digest
// test-image-digest@sha256:9700f9..., which no offline build can match),
// under the repository paths and tags critest uses. nnp is the path given
// by BuildNNP.
func Catalog(nnp string) ([]Image, error) {
	const e2e, cri = "e2e-test-images/", "k8s-staging-cri-tools/"
	var out []Image
	add := func(repo string, img v1.Image, err error, tags ...string) error {
		if err != nil {
			return fmt.Errorf("building %s: %w", repo, err)
		}
		out = append(out, Image{Repo: repo, Tags: tags, Image: img})
		return nil
	}
	img, err := Busybox()
	if err := add(e2e+"busybox", img, err, "1.29-2"); err != nil {
		return nil, err
	}
	img, err = webServer(80, "/usr/share/nginx/html", "nginx", "nginx: master process /usr/sbin/httpd", nginxIndex)
	if err := add(e2e+"nginx", img, err, "1.14-2"); err != nil {
		return nil, err
	}
	img, err = webServer(12003, "/usr/share/nginx/html", "nginx", "nginx: master process /usr/sbin/httpd", nginxIndex)
	if err := add(cri+"hostnet-nginx-"+runtime.GOARCH, img, err, "latest"); err != nil {
		return nil, err
	}
	img, err = webServer(80, "/usr/local/apache2/htdocs", "httpd", "httpd", "<html><body><h1>It works!</h1></body></html>\n")
	if err := add(e2e+"httpd", img, err, "2.4.39-4"); err != nil {
		return nil, err
	}
	img, err = Nonewprivs(nnp)
	if err := add(e2e+"nonewprivs", img, err, "1.3"); err != nil {
		return nil, err
	}
	for repo, user := range map[string]string{
		"test-image-user-uid":            "1002",
		"test-image-user-username":       "www-data",
		"test-image-user-uid-group":      "1003:1004",
		"test-image-user-username-group": "www-data:1004",
	} {
		img, err = onBusybox(v1.Config{Cmd: []string{"sh"}, User: user})
		if err := add(cri+repo, img, err, "latest"); err != nil {
			return nil, err
		}
	}
	img, err = onBusybox(v1.Config{Cmd: []string{"sh"}, User: "1000"},
		file("etc/passwd", 0o644, passwd+"default-user:x:1000:1000:Linux User,,,:/home/default-user:/bin/sh\n"),
		file("etc/group", 0o644, group+"default-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n"),
		entry{Name: "home/default-user", Type: tar.TypeDir, Mode: 0o755, UID: 1000, GID: 1000},
	)
	if err := add(cri+"test-image-predefined-group", img, err, "latest"); err != nil {
		return nil, err
	}
	for _, n := range []string{"test-image-1", "test-image-2", "test-image-3", "test-image-latest", "test-image-digest"} {
		img, err = onBusybox(v1.Config{Cmd: []string{"sh"}}, marker(n))
		if err := add(cri+n, img, err, "latest"); err != nil {
			return nil, err
		}
	}
	img, err = onBusybox(v1.Config{Cmd: []string{"sh"}}, marker("same-image"))
	if err := add(cri+"test-image-tags", img, err, "1", "2", "3"); err != nil {
		return nil, err
	}
	for _, t := range []string{"test", "all"} {
		img, err = onBusybox(v1.Config{Cmd: []string{"sh"}}, marker(t))
		if err := add(cri+"test-image-tag", img, err, t); err != nil {
			return nil, err
		}
	}
	// Each pause tag is its own image: pulling the runtime's pause image
	// must not add a tag to the image critest's pause:3.9 specs count.
	for _, t := range []string{"3.9", "3.10", "3.10.1"} {
		img, err = onBusybox(v1.Config{
			Entrypoint: []string{"/pause"},
			Labels:     map[string]string{"io.vc-cri.test.pause": t},
		}, file("pause", 0o755, "#!/bin/sh\ntrap 'exit 0' TERM INT\nwhile :; do sleep 3600 & wait $!; done\n"))
		if err := add("pause", img, err, t); err != nil {
			return nil, err
		}
	}
	// critest's image listing benchmark (public.ecr.aws/docker/library/...).
	img, err = onBusybox(v1.Config{Cmd: []string{"sh"}, Labels: map[string]string{"io.vc-cri.test.library": "busybox"}})
	if err := add("docker/library/busybox", img, err, "1.35.0-glibc", "1-uclibc", "1", "1-glibc", "1-musl", "latest"); err != nil {
		return nil, err
	}
	return out, nil
}

// Bench is an image of n layers of size bytes each (incompressible,
// seeded, so every build has the same digests) on no base, for pull
// benchmarks.
func Bench(n int, size int) (v1.Image, error) {
	layers := make([]v1.Layer, 0, n)
	for i := range n {
		data := make([]byte, size)
		r := rand.NewChaCha8([32]byte{byte(i), 'v', 'c'})
		_, _ = r.Read(data)
		es := []entry{dir("data", 0o755), {Name: fmt.Sprintf("data/blob%d", i), Type: tar.TypeReg, Mode: 0o644, Data: data}}
		l, err := layerOf(es)
		if err != nil {
			return nil, err
		}
		layers = append(layers, l)
	}
	return Build(v1.Config{Cmd: []string{"/bin/sh"}}, layers...)
}
