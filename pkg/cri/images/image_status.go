package images

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/containerd/errdefs"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/vc-cri/vc-cri/pkg/image"
)

// imageInfo is the verbose "info" of ImageStatus.
type imageInfo struct {
	ImageSpec any    `json:"imageSpec"`
	TopLayer  string `json:"topLayer,omitempty"`
}

// ImageStatus returns the image a reference names (ID, tag, digest or
// short name), or no image (and no error) if there is none.
func (s *Service) ImageStatus(ctx context.Context, r *runtime.ImageStatusRequest) (*runtime.ImageStatusResponse, error) {
	ref := r.GetImage().GetImage()
	if ref == "" {
		return nil, errEmptyRef
	}
	img, err := s.store.Status(ctx, ref)
	if errors.Is(err, image.ErrNotFound) {
		return &runtime.ImageStatusResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	resp := &runtime.ImageStatusResponse{Image: toCRI(img)}
	if r.GetVerbose() {
		b, err := json.Marshal(imageInfo{ImageSpec: img.Config, TopLayer: img.TopLayer})
		if err != nil {
			return nil, errdefs.ErrInternal.WithMessage(fmt.Sprintf("verbose info of %s: %v", img.ID, err))
		}
		resp.Info = map[string]string{"info": string(b)}
	}
	return resp, nil
}
