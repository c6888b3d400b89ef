package cri

import (
	"context"
	"strings"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ListPodSandbox lists the pods that pass the filter.
func (s *Service) ListPodSandbox(_ context.Context, req *runtime.ListPodSandboxRequest) (*runtime.ListPodSandboxResponse, error) {
	f := req.GetFilter()
	var items []*runtime.PodSandbox
	for _, p := range s.pods.List() {
		if f != nil {
			if f.Id != "" && !strings.HasPrefix(p.ID, f.Id) {
				continue
			}
			if f.State != nil && f.State.State != p.State {
				continue
			}
			if !matchLabels(f.LabelSelector, p.Config.Labels) {
				continue
			}
		}
		items = append(items, &runtime.PodSandbox{
			Id: p.ID, Metadata: p.Config.Metadata, State: p.State, CreatedAt: p.CreatedAt.UnixNano(),
			Labels: p.Config.Labels, Annotations: p.Config.Annotations, RuntimeHandler: p.Handler,
		})
	}
	return &runtime.ListPodSandboxResponse{Items: items}, nil
}

// matchLabels tells whether labels hold every pair of selector.
func matchLabels(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}
