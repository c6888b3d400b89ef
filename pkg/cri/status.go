package cri

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/vc-cri/vc-cri/pkg/sandbox"
)

// Status reports RuntimeReady when every VM handler's guest image and
// hypervisor are there to boot pods, and NetworkReady when CNI can set
// their network up; and what vc-cri supports beyond the CRI's baseline:
// for each handler its own features (Handler.Features), for the runtime
// the SupplementalGroupsPolicy (Strict as well as Merge).
func (s *Service) Status(ctx context.Context, req *runtime.StatusRequest) (*runtime.StatusResponse, error) {
	runtimeCond := &runtime.RuntimeCondition{Type: runtime.RuntimeReady, Status: true}
	if err := s.runtimeReady(); err != nil {
		runtimeCond.Status, runtimeCond.Reason, runtimeCond.Message = false, "GuestImageMissing", err.Error()
	}
	networkCond := &runtime.RuntimeCondition{Type: runtime.NetworkReady, Status: true}
	if err := s.opts.Network.Status(ctx); err != nil {
		networkCond.Status, networkCond.Reason, networkCond.Message = false, "NetworkPluginNotReady", err.Error()
	}
	resp := &runtime.StatusResponse{
		Status:   &runtime.RuntimeStatus{Conditions: []*runtime.RuntimeCondition{runtimeCond, networkCond}},
		Features: &runtime.RuntimeFeatures{SupplementalGroupsPolicy: true},
	}
	for _, name := range slices.Sorted(maps.Keys(s.opts.Handlers)) {
		features := s.opts.Handlers[name].Features
		if features == nil {
			features = &runtime.RuntimeHandlerFeatures{}
		}
		resp.RuntimeHandlers = append(resp.RuntimeHandlers, &runtime.RuntimeHandler{Name: name, Features: features})
	}
	if req.Verbose {
		resp.Info = map[string]string{"hypervisor": string(s.opts.Handlers[""].Sandbox.HypervisorType)}
	}
	return resp, nil
}

func (s *Service) runtimeReady() error {
	for _, name := range slices.Sorted(maps.Keys(s.opts.Handlers)) {
		cfg := s.opts.Handlers[name].Sandbox
		if cfg.HypervisorType != sandbox.QemuHypervisor {
			continue
		}
		h := cfg.HypervisorConfig
		for _, path := range []string{h.KernelPath, h.ImagePath} {
			if _, err := os.Stat(path); err != nil {
				return fmt.Errorf("runtime handler %q: %w", name, err)
			}
		}
	}
	return nil
}

// UpdateRuntimeConfig takes the pod CIDR kubelet hands out. The pods'
// addresses come from CNI's own configuration, so it is only logged.
func (s *Service) UpdateRuntimeConfig(ctx context.Context, req *runtime.UpdateRuntimeConfigRequest) (*runtime.UpdateRuntimeConfigResponse, error) {
	if cidr := req.GetRuntimeConfig().GetNetworkConfig().GetPodCidr(); cidr != "" {
		s.setPodCIDR(cidr)
	}
	return &runtime.UpdateRuntimeConfigResponse{}, nil
}

// RuntimeConfig reports the cgroup driver: cgroupfs, as VM containers'
// cgroups live in their guest, and OS containers' under cgroupfs paths.
func (s *Service) RuntimeConfig(context.Context, *runtime.RuntimeConfigRequest) (*runtime.RuntimeConfigResponse, error) {
	return &runtime.RuntimeConfigResponse{Linux: &runtime.LinuxRuntimeConfiguration{CgroupDriver: runtime.CgroupDriver_CGROUPFS}}, nil
}
