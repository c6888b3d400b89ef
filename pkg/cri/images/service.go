// Package images is vc-cri's CRI ImageService: a thin adapter from the
// CRI wire types (k8s.io/cri-api runtime v1) to pkg/image. Its errors,
// pkg/image's, wrap github.com/containerd/errdefs' kinds; the daemon's
// interceptor (pkg/cri's UnaryInterceptor) makes them gRPC statuses.
package images

import (
	"github.com/containerd/errdefs"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/vc-cri/vc-cri/pkg/image"
)

// Service implements runtime.ImageServiceServer over an image store.
type Service struct {
	runtime.UnimplementedImageServiceServer
	store *image.Service
}

var _ runtime.ImageServiceServer = (*Service)(nil)

// NewService returns the ImageService of store, to register on the
// daemon's gRPC server with runtime.RegisterImageServiceServer.
func NewService(store *image.Service) *Service {
	return &Service{store: store}
}

// errEmptyRef refuses a request that names no image.
var errEmptyRef = errdefs.ErrInvalidArgument.WithMessage("image reference is empty")

// toCRI converts an image to the CRI's Image.
func toCRI(img *image.Image) *runtime.Image {
	out := &runtime.Image{
		Id:          img.ID,
		RepoTags:    img.RepoTags,
		RepoDigests: img.RepoDigests,
		Size:        img.Size,
		Spec:        &runtime.ImageSpec{Image: img.ID},
	}
	uid, name := img.User()
	if uid != nil {
		out.Uid = &runtime.Int64Value{Value: *uid}
	}
	out.Username = name
	return out
}
