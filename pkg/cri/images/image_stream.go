package images

import (
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// StreamImages is Unimplemented: kubelet calls it only behind the
// CRIListStreaming feature gate and falls back to ListImages.
func (s *Service) StreamImages(*runtime.StreamImagesRequest, grpc.ServerStreamingServer[runtime.StreamImagesResponse]) error {
	return status.Error(codes.Unimplemented, "StreamImages is not implemented (CRIListStreaming feature gate)")
}
