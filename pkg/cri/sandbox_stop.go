package cri

import (
	"context"
	"errors"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/vc-cri/vc-cri/internal/exitcode"
	"github.com/vc-cri/vc-cri/pkg/cri/store"
	"github.com/vc-cri/vc-cri/pkg/sandbox"
)

// StopPodSandbox ends the pod's containers and VM and tears its network
// down. Stopping a stopped or unknown pod does nothing: the call is
// idempotent, as CRI asks.
func (s *Service) StopPodSandbox(ctx context.Context, req *runtime.StopPodSandboxRequest) (*runtime.StopPodSandboxResponse, error) {
	pod, err := s.pods.Get(req.GetPodSandboxId())
	if errors.Is(err, store.ErrNotFound) {
		return &runtime.StopPodSandboxResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	if err := s.stopPod(ctx, pod); err != nil {
		return nil, err
	}
	return &runtime.StopPodSandboxResponse{}, nil
}

func (s *Service) stopPod(ctx context.Context, pod podRecord) error {
	if err := s.teardownPod(ctx, pod.ID, pod.NetNSPath); err != nil {
		return err
	}
	_, err := s.pods.Update(pod.ID, func(p *podRecord) error {
		p.State = runtime.PodSandboxState_SANDBOX_NOTREADY
		return nil
	})
	klog.FromContext(ctx).Info("Pod sandbox stopped")
	return err
}

// recordStoppedContainers marks every container of a stopped pod exited,
// with the exit its sandbox recorded.
func (s *Service) recordStoppedContainers(podID string) {
	st, _ := s.opts.Sandboxes.StatusSandbox(context.Background(), podID)
	exits := map[string]sandbox.ContainerStatus{}
	for _, c := range st.ContainersStatus {
		exits[c.ID] = c
	}
	for _, c := range s.containers.List() {
		if c.PodID != podID || c.State == runtime.ContainerState_CONTAINER_EXITED {
			continue
		}
		s.stopIO(c.ID)
		exit, ok := exits[c.ID]
		code, at := exitcode.Killed, time.Now()
		if ok && !exit.FinishedAt.IsZero() {
			code, at = exit.ExitCode, exit.FinishedAt
		}
		s.recordExit(c.ID, code, at)
	}
}
