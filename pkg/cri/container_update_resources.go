package cri

import (
	"context"

	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// UpdateContainerResources applies new limits to the container's cgroup
// in the guest. The VM itself keeps its size: limits beyond it cannot be
// used.
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
	if err := s.runtimeOf(c.Runtime).UpdateContainer(ctx, c.PodID, c.ID, resources(r)); err != nil {
		return nil, err
	}
	_, err = s.containers.Update(c.ID, func(rec *containerRecord) error {
		if rec.Config.Linux == nil {
			rec.Config.Linux = &runtime.LinuxContainerConfig{}
		}
		rec.Config.Linux.Resources = proto.Clone(r).(*runtime.LinuxContainerResources)
		return nil
	})
	return &runtime.UpdateContainerResourcesResponse{}, err
}
