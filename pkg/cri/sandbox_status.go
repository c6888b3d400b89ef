package cri

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// PodSandboxStatus reports the pod with its IP addresses.
func (s *Service) PodSandboxStatus(ctx context.Context, req *runtime.PodSandboxStatusRequest) (*runtime.PodSandboxStatusResponse, error) {
	pod, err := s.pods.Get(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	st := &runtime.PodSandboxStatus{
		Id:             pod.ID,
		Metadata:       pod.Config.Metadata,
		State:          pod.State,
		CreatedAt:      pod.CreatedAt.UnixNano(),
		Labels:         pod.Config.Labels,
		Annotations:    pod.annotations(),
		RuntimeHandler: pod.Handler,
		Linux: &runtime.LinuxPodSandboxStatus{Namespaces: &runtime.Namespace{
			Options: pod.Config.GetLinux().GetSecurityContext().GetNamespaceOptions(),
		}},
	}
	if len(pod.IPs) > 0 && pod.State == runtime.PodSandboxState_SANDBOX_READY {
		st.Network = &runtime.PodSandboxNetworkStatus{Ip: pod.IPs[0]}
		for _, ip := range pod.IPs[1:] {
			st.Network.AdditionalIps = append(st.Network.AdditionalIps, &runtime.PodIP{Ip: ip})
		}
	}
	resp := &runtime.PodSandboxStatusResponse{Status: st}
	if req.Verbose {
		resp.Info = map[string]string{"netns": pod.NetNSPath, "runtimeHandler": pod.Runtime}
	}
	for _, c := range s.containers.List() {
		if c.PodID == pod.ID {
			resp.ContainersStatuses = append(resp.ContainersStatuses, s.containerStatus(c))
		}
	}
	return resp, nil
}
