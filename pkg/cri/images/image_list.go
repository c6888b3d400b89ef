package images

import (
	"context"
	"errors"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/vc-cri/vc-cri/pkg/image"
)

// ListImages lists the stored images; a filter's image reference narrows
// the list to the image it names (none if it names nothing).
func (s *Service) ListImages(ctx context.Context, r *runtime.ListImagesRequest) (*runtime.ListImagesResponse, error) {
	imgs, err := s.list(ctx, r.GetFilter())
	if err != nil {
		return nil, err
	}
	return &runtime.ListImagesResponse{Images: imgs}, nil
}

func (s *Service) list(ctx context.Context, f *runtime.ImageFilter) ([]*runtime.Image, error) {
	if ref := f.GetImage().GetImage(); ref != "" {
		img, err := s.store.Status(ctx, ref)
		if errors.Is(err, image.ErrNotFound) {
			return []*runtime.Image{}, nil
		}
		if err != nil {
			return nil, err
		}
		return []*runtime.Image{toCRI(img)}, nil
	}
	imgs, err := s.store.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*runtime.Image, 0, len(imgs))
	for _, img := range imgs {
		out = append(out, toCRI(img))
	}
	return out, nil
}
