package images

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"go.podman.io/storage/pkg/reexec"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/vc-cri/vc-cri/hack/testimages"
	"github.com/vc-cri/vc-cri/pkg/cri"
	"github.com/vc-cri/vc-cri/pkg/image"
)

var (
	regAddr string
	regConf string
)

func TestMain(m *testing.M) {
	if reexec.Init() {
		return
	}
	reg, err := testimages.StartRegistry("127.0.0.1:0", testimages.RegistryOptions{PrivatePrefix: "private/", Username: "u", Password: "p"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	regAddr = reg.Addr
	bb, err := testimages.Busybox()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	base, _ := testimages.BusyboxLayer()
	user, err := testimages.Build(v1.Config{User: "www-data:1004"}, base)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	uid, _ := testimages.Build(v1.Config{User: "1002"}, base)
	if err := reg.Push(context.Background(),
		testimages.Image{Repo: "e2e/busybox", Tags: []string{"1", "2", "3"}, Image: bb},
		testimages.Image{Repo: "private/busybox", Tags: []string{"1"}, Image: bb},
		testimages.Image{Repo: "user/name", Tags: []string{"latest"}, Image: user},
		testimages.Image{Repo: "user/uid", Tags: []string{"latest"}, Image: uid},
	); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	dir, _ := os.MkdirTemp("", "vccri-cri-images")
	regConf = filepath.Join(dir, "registries.conf")
	_ = os.WriteFile(regConf, []byte(fmt.Sprintf(`unqualified-search-registries = [%[1]q]
[[registry]]
prefix = "registry.test"
location = %[1]q
insecure = true
[[registry]]
location = %[1]q
insecure = true
[[registry]]
location = "blocked.test"
blocked = true
`, regAddr)), 0o644)
	code := m.Run()
	reg.Close()
	os.RemoveAll(dir)
	os.Exit(code)
}

// newClient serves a fresh store's ImageService over an in-memory gRPC
// connection.
func newClient(t *testing.T) runtime.ImageServiceClient {
	t.Helper()
	dir := t.TempDir()
	store, err := image.New(image.Config{Root: filepath.Join(dir, "root"), RunRoot: filepath.Join(dir, "run"), RegistriesConf: regConf})
	if err != nil {
		t.Fatal(err)
	}
	lis := bufconn.Listen(1 << 20)
	// The daemon's conversion of errors to statuses, as it serves this.
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(cri.UnaryInterceptor, cri.UnaryLogger), grpc.ChainStreamInterceptor(cri.StreamInterceptor))
	runtime.RegisterImageServiceServer(srv, NewService(store))
	go srv.Serve(lis)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Stop()
		if err := store.Close(); err != nil {
			t.Errorf("close the store: %v", err)
		}
	})
	return runtime.NewImageServiceClient(conn)
}

func spec(ref string) *runtime.ImageSpec { return &runtime.ImageSpec{Image: ref} }

func TestImageServiceLifecycle(t *testing.T) {
	c := newClient(t)
	ctx := context.Background()
	tags := []string{"registry.test/e2e/busybox:1", "registry.test/e2e/busybox:2", "registry.test/e2e/busybox:3"}
	var id string
	for _, tag := range tags {
		r, err := c.PullImage(ctx, &runtime.PullImageRequest{Image: spec(tag)})
		if err != nil {
			t.Fatal(err)
		}
		if id != "" && r.ImageRef != id {
			t.Fatalf("tags give IDs %s and %s", id, r.ImageRef)
		}
		id = r.ImageRef
	}
	st, err := c.ImageStatus(ctx, &runtime.ImageStatusRequest{Image: spec(tags[0]), Verbose: true})
	if err != nil || st.Image == nil {
		t.Fatalf("ImageStatus = %v, %v", st, err)
	}
	got := slices.Clone(st.Image.RepoTags)
	slices.Sort(got)
	if st.Image.Id != id || !slices.Equal(got, tags) || len(st.Image.RepoDigests) != 1 || st.Image.Size == 0 {
		t.Errorf("status %+v", st.Image)
	}
	var info struct {
		ImageSpec struct {
			Config struct{ Cmd []string }
		}
	}
	if err := json.Unmarshal([]byte(st.Info["info"]), &info); err != nil || !slices.Equal(info.ImageSpec.Config.Cmd, []string{"sh"}) {
		t.Errorf("verbose info %q: %v", st.Info["info"], err)
	}
	// Every reference gives the same status.
	for _, r := range append([]string{id, st.Image.RepoDigests[0]}, tags...) {
		s2, err := c.ImageStatus(ctx, &runtime.ImageStatusRequest{Image: spec(r)})
		if err != nil || s2.Image.String() != st.Image.String() {
			t.Errorf("status by %s = %v, %v", r, s2, err)
		}
	}

	l, err := c.ListImages(ctx, &runtime.ListImagesRequest{})
	if err != nil || len(l.Images) != 1 {
		t.Fatalf("ListImages = %v, %v", l, err)
	}
	l, err = c.ListImages(ctx, &runtime.ListImagesRequest{Filter: &runtime.ImageFilter{Image: spec(tags[1])}})
	if err != nil || len(l.Images) != 1 || l.Images[0].Id != id {
		t.Fatalf("filtered ListImages = %v, %v", l, err)
	}
	l, err = c.ListImages(ctx, &runtime.ListImagesRequest{Filter: &runtime.ImageFilter{Image: spec("registry.test/nope:1")}})
	if err != nil || len(l.Images) != 0 {
		t.Fatalf("ListImages of an absent image = %v, %v", l, err)
	}

	fs, err := c.ImageFsInfo(ctx, &runtime.ImageFsInfoRequest{})
	if err != nil || len(fs.ImageFilesystems) != 1 || fs.ImageFilesystems[0].UsedBytes.GetValue() < 1<<20 ||
		fs.ImageFilesystems[0].InodesUsed.GetValue() == 0 || fs.ImageFilesystems[0].FsId.GetMountpoint() == "" {
		t.Errorf("ImageFsInfo = %v, %v", fs, err)
	}

	// Removing by one tag removes the image with every tag.
	if _, err := c.RemoveImage(ctx, &runtime.RemoveImageRequest{Image: spec(tags[1])}); err != nil {
		t.Fatal(err)
	}
	for _, r := range append([]string{id}, tags...) {
		s2, err := c.ImageStatus(ctx, &runtime.ImageStatusRequest{Image: spec(r)})
		if err != nil || s2.Image != nil {
			t.Errorf("status by %s after remove = %v, %v", r, s2, err)
		}
	}
	// Idempotent.
	if _, err := c.RemoveImage(ctx, &runtime.RemoveImageRequest{Image: spec(id)}); err != nil {
		t.Errorf("second RemoveImage: %v", err)
	}
	// By digest.
	if _, err := c.PullImage(ctx, &runtime.PullImageRequest{Image: spec(tags[0])}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RemoveImage(ctx, &runtime.RemoveImageRequest{Image: spec(st.Image.RepoDigests[0])}); err != nil {
		t.Fatal(err)
	}
	if l, _ := c.ListImages(ctx, &runtime.ListImagesRequest{}); len(l.GetImages()) != 0 {
		t.Errorf("images left: %v", l)
	}
}

func TestImageUser(t *testing.T) {
	c := newClient(t)
	ctx := context.Background()
	for _, tc := range []struct {
		ref  string
		uid  *runtime.Int64Value
		name string
	}{
		{"registry.test/user/uid", &runtime.Int64Value{Value: 1002}, ""},
		{"registry.test/user/name", nil, "www-data"},
		{"registry.test/e2e/busybox:1", nil, ""},
	} {
		if _, err := c.PullImage(ctx, &runtime.PullImageRequest{Image: spec(tc.ref)}); err != nil {
			t.Fatal(err)
		}
		st, err := c.ImageStatus(ctx, &runtime.ImageStatusRequest{Image: spec(tc.ref)})
		if err != nil {
			t.Fatal(err)
		}
		if st.Image.Uid.GetValue() != tc.uid.GetValue() || (st.Image.Uid == nil) != (tc.uid == nil) || st.Image.Username != tc.name {
			t.Errorf("%s: uid %v username %q", tc.ref, st.Image.Uid, st.Image.Username)
		}
		if tc.uid == nil && tc.name == "www-data" && !slices.Equal(st.Image.RepoTags, []string{tc.ref + ":latest"}) {
			t.Errorf("untagged pull: tags %v", st.Image.RepoTags)
		}
	}
}

func TestImageServiceErrors(t *testing.T) {
	c := newClient(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		ref  string
		auth *runtime.AuthConfig
		want codes.Code
	}{
		{"empty", "", nil, codes.InvalidArgument},
		{"malformed", "Bad//Ref::", nil, codes.InvalidArgument},
		{"unknown", "registry.test/e2e/nope:1", nil, codes.NotFound},
		{"blocked", "blocked.test/x:1", nil, codes.PermissionDenied},
		{"refused", "127.0.0.1:1/x:1", nil, codes.Unavailable},
		{"no credentials", regAddr + "/private/busybox:1", nil, codes.Unauthenticated},
		{"wrong credentials", regAddr + "/private/busybox:1", &runtime.AuthConfig{Username: "u", Password: "x"}, codes.Unauthenticated},
		{"bad auth", regAddr + "/private/busybox:1", &runtime.AuthConfig{Auth: "!!"}, codes.InvalidArgument},
		{"credentials", regAddr + "/private/busybox:1", &runtime.AuthConfig{Username: "u", Password: "p"}, codes.OK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.PullImage(ctx, &runtime.PullImageRequest{Image: spec(tc.ref), Auth: tc.auth})
			if status.Code(err) != tc.want {
				t.Errorf("PullImage(%s) = %v, want %v", tc.ref, err, tc.want)
			}
		})
	}
	tctx, cancel := context.WithTimeout(ctx, time.Millisecond)
	defer cancel()
	if _, err := c.PullImage(tctx, &runtime.PullImageRequest{Image: spec("registry.test/e2e/busybox:1")}); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("PullImage with 1ms deadline = %v", err)
	}
	if _, err := c.ImageStatus(ctx, &runtime.ImageStatusRequest{Image: spec("Bad//Ref::")}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("ImageStatus(malformed) = %v", err)
	}
	if _, err := c.RemoveImage(ctx, &runtime.RemoveImageRequest{Image: spec("")}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("RemoveImage(empty) = %v", err)
	}
	s, err := c.StreamImages(ctx, &runtime.StreamImagesRequest{})
	if err == nil {
		_, err = s.Recv()
	}
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("StreamImages = %v", err)
	}
}
