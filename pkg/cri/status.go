package cri

import (
	"context"
	"os"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Status reports RuntimeReady when the guest image and hypervisor are
// there to boot pods, and NetworkReady when CNI can set their network up;
// and what vc-cri supports beyond the CRI's baseline: for every handler,
// recursive read-only mounts (runc's "rro" in the guest, and the host's
// bind read-only with its submounts); for the runtime, the
// SupplementalGroupsPolicy (Strict as well as Merge).
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
		Status:          &runtime.RuntimeStatus{Conditions: []*runtime.RuntimeCondition{runtimeCond, networkCond}},
		RuntimeHandlers: []*runtime.RuntimeHandler{{Name: "", Features: handlerFeatures()}, {Name: RuntimeHandler, Features: handlerFeatures()}},
		Features:        &runtime.RuntimeFeatures{SupplementalGroupsPolicy: true},
	}
	if req.Verbose {
		resp.Info = map[string]string{"hypervisor": string(s.opts.Sandbox.HypervisorType)}
	}
	return resp, nil
}

// handlerFeatures are what each runtime handler supports: the same for
// both names of the one handler. User namespaces are not advertised.
func handlerFeatures() *runtime.RuntimeHandlerFeatures {
	return &runtime.RuntimeHandlerFeatures{RecursiveReadOnlyMounts: true}
}

func (s *Service) runtimeReady() error {
	if s.opts.Sandbox.HypervisorType != "qemu" {
		return nil
	}
	h := s.opts.Sandbox.HypervisorConfig
	for _, path := range []string{h.KernelPath, h.ImagePath} {
		if _, err := os.Stat(path); err != nil {
			return err
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

// RuntimeConfig reports the cgroup driver: cgroupfs, as the containers'
// cgroups live in their guest, not under systemd.
func (s *Service) RuntimeConfig(context.Context, *runtime.RuntimeConfigRequest) (*runtime.RuntimeConfigResponse, error) {
	return &runtime.RuntimeConfigResponse{Linux: &runtime.LinuxRuntimeConfiguration{CgroupDriver: runtime.CgroupDriver_CGROUPFS}}, nil
}
