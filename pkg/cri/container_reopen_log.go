package cri

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ReopenContainerLog reopens a running container's log file, after
// kubelet rotated it: the service's, or its runtime's monitor's.
func (s *Service) ReopenContainerLog(ctx context.Context, req *runtime.ReopenContainerLogRequest) (*runtime.ReopenContainerLogResponse, error) {
	c, err := s.containers.Get(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	if c.State != runtime.ContainerState_CONTAINER_RUNNING {
		return nil, failedPrecondition("container %q is not running", c.ID)
	}
	if lk, ok := s.runtimeOf(c.Runtime).(logKeeper); ok {
		if c.LogPath == "" {
			return nil, failedPrecondition("container %q has no log", c.ID)
		}
		if err := lk.ReopenContainerLog(ctx, c.PodID, c.ID); err != nil {
			return nil, err
		}
		return &runtime.ReopenContainerLogResponse{}, nil
	}
	cio, ok := s.containerIO(c.ID)
	if !ok || cio.log == nil {
		return nil, failedPrecondition("container %q has no log", c.ID)
	}
	if err := cio.log.Reopen(); err != nil {
		return nil, err
	}
	return &runtime.ReopenContainerLogResponse{}, nil
}
