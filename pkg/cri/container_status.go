package cri

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ContainerStatus reports the container: state, times, exit, image,
// mounts, log path and resources.
func (s *Service) ContainerStatus(_ context.Context, req *runtime.ContainerStatusRequest) (*runtime.ContainerStatusResponse, error) {
	c, err := s.containers.Get(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	resp := &runtime.ContainerStatusResponse{Status: s.containerStatus(c)}
	if req.Verbose {
		resp.Info = map[string]string{"sandboxID": c.PodID}
	}
	return resp, nil
}

func (s *Service) containerStatus(c containerRecord) *runtime.ContainerStatus {
	st := &runtime.ContainerStatus{
		Id:          c.ID,
		Metadata:    c.Config.Metadata,
		State:       c.State,
		CreatedAt:   c.CreatedAt.UnixNano(),
		Image:       c.Config.Image,
		ImageRef:    c.ImageRef,
		ImageId:     c.ImageID,
		Reason:      c.Reason,
		Message:     c.Message,
		Labels:      c.Config.Labels,
		Annotations: c.Config.Annotations,
		Mounts:      c.Config.Mounts,
		LogPath:     c.LogPath,
		User:        &runtime.ContainerUser{Linux: &runtime.LinuxContainerUser{}},
	}
	if !c.StartedAt.IsZero() {
		st.StartedAt = c.StartedAt.UnixNano()
	}
	if c.State == runtime.ContainerState_CONTAINER_EXITED {
		st.FinishedAt = c.FinishedAt.UnixNano()
		st.ExitCode = c.ExitCode
	}
	if r := c.Config.GetLinux().GetResources(); r != nil {
		st.Resources = &runtime.ContainerResources{Linux: r}
	}
	return st
}
