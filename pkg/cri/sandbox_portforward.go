package cri

import (
	"context"
	"io"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// PortForward returns the URL where the client forwards ports of the
// pod. The connections are made inside the pod's VM.
func (s *Service) PortForward(_ context.Context, req *runtime.PortForwardRequest) (*runtime.PortForwardResponse, error) {
	pod, err := s.pods.Get(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	if pod.State != runtime.PodSandboxState_SANDBOX_READY {
		return nil, failedPrecondition("pod sandbox %q is not ready", pod.ID)
	}
	for _, p := range req.Port {
		if p <= 0 || p > 65535 {
			return nil, invalidArgument("invalid port %d", p)
		}
	}
	return s.streaming.server.GetPortForward(req)
}

func (s *Service) portForward(ctx context.Context, podID string, port int32, stream io.ReadWriter) error {
	pod, err := s.pods.Get(podID)
	if err != nil {
		return err
	}
	return s.runtimeOf(pod.Runtime).PortForward(ctx, podID, uint32(port), stream)
}
