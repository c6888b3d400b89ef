package images

import (
	"context"
	"errors"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/vc-cri/vc-cri/pkg/image"
)

// RemoveImage removes the image a reference names, with all its tags, as
// containerd does. Removing an absent image is no error (the CRI asks
// RemoveImage to be idempotent).
func (s *Service) RemoveImage(ctx context.Context, r *runtime.RemoveImageRequest) (*runtime.RemoveImageResponse, error) {
	ref := r.GetImage().GetImage()
	if ref == "" {
		return nil, errEmptyRef
	}
	if err := s.store.Remove(ctx, ref); err != nil && !errors.Is(err, image.ErrNotFound) {
		return nil, err
	}
	return &runtime.RemoveImageResponse{}, nil
}
