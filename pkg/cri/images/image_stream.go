package images

import (
	"github.com/containerd/errdefs"
	"google.golang.org/grpc"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// StreamImages is Unimplemented: kubelet calls it only behind the
// CRIListStreaming feature gate and falls back to ListImages.
func (s *Service) StreamImages(*runtime.StreamImagesRequest, grpc.ServerStreamingServer[runtime.StreamImagesResponse]) error {
	return errdefs.ErrNotImplemented.WithMessage("StreamImages is not implemented (CRIListStreaming feature gate)")
}
