package cri

import (
	"context"

	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// UpdateContainerResources applies new limits to the container's cgroup
// in the guest, as NRI plugins adjust them. The VM itself keeps its
// size: limits beyond it cannot be used. The record keeps the limits
// kubelet asked for.
func (s *Service) UpdateContainerResources(ctx context.Context, req *runtime.UpdateContainerResourcesRequest) (*runtime.UpdateContainerResourcesResponse, error) {
	c, err := s.containers.Get(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	if c.State != runtime.ContainerState_CONTAINER_RUNNING && c.State != runtime.ContainerState_CONTAINER_CREATED {
		return nil, failedPrecondition("container %q is %s", c.ID, c.State)
	}
	r := req.GetLinux()
	if r == nil {
		return &runtime.UpdateContainerResourcesResponse{}, nil
	}
	pod := s.nriPodOf(c.PodID)
	res, err := s.opts.NRI.UpdateContainer(ctx, pod, nriContainer(c), resources(r))
	if err != nil {
		return nil, err
	}
	if err := s.runtimeOf(c.Runtime).UpdateContainer(ctx, c.PodID, c.ID, res); err != nil {
		return nil, err
	}
	c, err = s.containers.Update(c.ID, func(rec *containerRecord) error {
		if rec.Config.Linux == nil {
			rec.Config.Linux = &runtime.LinuxContainerConfig{}
		}
		rec.Config.Linux.Resources = proto.Clone(r).(*runtime.LinuxContainerResources)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := s.opts.NRI.PostUpdateContainer(ctx, pod, nriContainer(c)); err != nil {
		klog.FromContext(ctx).Error(err, "NRI plugins failed the container's post-update", "pod", c.PodID)
	}
	return &runtime.UpdateContainerResourcesResponse{}, nil
}
