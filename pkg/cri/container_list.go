package cri

import (
	"context"
	"strings"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ListContainers lists the containers that pass the filter.
func (s *Service) ListContainers(_ context.Context, req *runtime.ListContainersRequest) (*runtime.ListContainersResponse, error) {
	f := req.GetFilter()
	var out []*runtime.Container
	for _, c := range s.containers.List() {
		if f != nil {
			if f.Id != "" && !strings.HasPrefix(c.ID, f.Id) {
				continue
			}
			if f.PodSandboxId != "" && !strings.HasPrefix(c.PodID, f.PodSandboxId) {
				continue
			}
			if f.State != nil && f.State.State != c.State {
				continue
			}
			if !matchLabels(f.LabelSelector, c.Config.Labels) {
				continue
			}
		}
		out = append(out, &runtime.Container{
			Id: c.ID, PodSandboxId: c.PodID, Metadata: c.Config.Metadata, Image: c.Config.Image,
			ImageRef: c.ImageRef, ImageId: c.ImageID, State: c.State, CreatedAt: c.CreatedAt.UnixNano(),
			Labels: c.Config.Labels, Annotations: c.Config.Annotations,
		})
	}
	return &runtime.ListContainersResponse{Containers: out}, nil
}
