package cri

import (
	"context"
	"errors"
	"fmt"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/vc-cri/vc-cri/pkg/cri/store"
	"github.com/vc-cri/vc-cri/pkg/sandbox"
)

// RemovePodSandbox stops the pod if it still runs and removes it with
// its containers. Removing a removed pod succeeds.
func (s *Service) RemovePodSandbox(ctx context.Context, req *runtime.RemovePodSandboxRequest) (*runtime.RemovePodSandboxResponse, error) {
	pod, err := s.pods.Get(req.GetPodSandboxId())
	if errors.Is(err, store.ErrNotFound) {
		return &runtime.RemovePodSandboxResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	if !pod.TornDown {
		if err := s.stopPod(ctx, pod); err != nil {
			return nil, err
		}
	}
	for _, c := range s.containers.List() {
		if c.PodID == pod.ID {
			if err := s.removeContainer(ctx, c); err != nil {
				return nil, err
			}
		}
	}
	if _, err := s.runtimeOf(pod.Runtime).DeleteSandbox(ctx, pod.ID); err != nil && !errors.Is(err, sandbox.ErrNotFound) {
		return nil, fmt.Errorf("delete pod sandbox %q: %w", pod.ID, err)
	}
	if err := s.removePodDir(pod.ID); err != nil {
		return nil, err
	}
	if err := s.pods.Delete(pod.ID); err != nil {
		return nil, err
	}
	s.podNames.Release(pod.Name)
	if err := s.opts.NRI.RemovePodSandbox(ctx, nriPod(pod)); err != nil {
		klog.FromContext(ctx).Error(err, "NRI plugins failed the pod's removal")
	}
	klog.FromContext(ctx).Info("Pod sandbox removed")
	return &runtime.RemovePodSandboxResponse{}, nil
}
