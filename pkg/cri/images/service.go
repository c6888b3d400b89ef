// Package images is vc-cri's CRI ImageService: a thin adapter from the
// CRI wire types (k8s.io/cri-api runtime v1) to pkg/image. It is the one
// place where pkg/image's errors become gRPC status codes.
package images

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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

// toStatus converts an error of pkg/image (or of a context) to a gRPC
// status error.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	code := codes.Unknown
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, image.ErrInvalidReference), errors.Is(err, image.ErrInvalidAuth):
		code = codes.InvalidArgument
	case errors.Is(err, image.ErrNotFound), errors.Is(err, image.ErrContainerNotFound):
		code = codes.NotFound
	case errors.Is(err, image.ErrUnauthorized):
		code = codes.Unauthenticated
	case errors.Is(err, image.ErrBlocked):
		code = codes.PermissionDenied
	case errors.Is(err, image.ErrUnavailable):
		code = codes.Unavailable
	case errors.Is(err, image.ErrDigestMismatch):
		code = codes.DataLoss
	case errors.Is(err, image.ErrLayerTooLarge):
		code = codes.ResourceExhausted
	case errors.Is(err, image.ErrInUse), errors.Is(err, image.ErrConflict):
		code = codes.FailedPrecondition
	}
	return status.Error(code, err.Error())
}

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
