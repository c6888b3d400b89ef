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

// RemoveContainer removes a container, stopping it first if it runs.
// Removing a removed container succeeds.
func (s *Service) RemoveContainer(ctx context.Context, req *runtime.RemoveContainerRequest) (*runtime.RemoveContainerResponse, error) {
	c, err := s.containers.Get(req.GetContainerId())
	if errors.Is(err, store.ErrNotFound) {
		return &runtime.RemoveContainerResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	if err := s.removeContainer(ctx, c); err != nil {
		return nil, err
	}
	return &runtime.RemoveContainerResponse{}, nil
}

func (s *Service) removeContainer(ctx context.Context, c containerRecord) error {
	if err := s.stopContainer(ctx, c, 0); err != nil {
		return err
	}
	if _, err := s.runtimeOf(c.Runtime).DeleteContainer(ctx, c.PodID, c.ID); err != nil && !errors.Is(err, sandbox.ErrNotFound) {
		return fmt.Errorf("delete container %q: %w", c.ID, err)
	}
	if err := s.opts.Images.RemoveRootfs(ctx, c.ID); err != nil {
		return fmt.Errorf("remove root of container %q: %w", c.ID, err)
	}
	if err := s.removeImageVolumes(ctx, c.ImageVolumes); err != nil {
		return err
	}
	if err := s.containers.Delete(c.ID); err != nil {
		return err
	}
	s.ctrNames.Release(c.Name)
	if err := s.opts.NRI.RemoveContainer(ctx, s.nriPodOf(c.PodID), nriContainer(c)); err != nil {
		klog.ErrorS(err, "NRI plugins failed the container's removal", "pod", c.PodID, "container", c.ID)
	}
	if pod, err := s.pods.Get(c.PodID); err == nil {
		s.events.publish(runtime.ContainerEventType_CONTAINER_DELETED_EVENT, c, pod)
	}
	klog.InfoS("Container removed", "pod", c.PodID, "container", c.ID)
	return nil
}
