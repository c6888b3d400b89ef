package cri

import (
	"context"

	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// UpdatePodSandboxResources resizes a pod to its containers' new limits,
// as kubelet asks after an in-place resize has changed the pod's cgroup:
// a VM pod's VM grows or shrinks to fit (podVMSize) while it runs; an OS
// containers' pod has nothing more to change (its cgroup is kubelet's).
// A resize the VM cannot take (beyond its room: ResourceExhausted; memory
// the guest uses: FailedPrecondition) is refused and changes nothing. The
// record keeps the resources in force.
func (s *Service) UpdatePodSandboxResources(ctx context.Context, req *runtime.UpdatePodSandboxResourcesRequest) (*runtime.UpdatePodSandboxResourcesResponse, error) {
	p, err := s.pods.Get(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	if p.State != runtime.PodSandboxState_SANDBOX_READY {
		return nil, failedPrecondition("pod %q is %s", p.ID, p.State)
	}
	pod := nriPod(p)
	if err := s.opts.NRI.UpdatePodSandbox(ctx, pod, resources(req.GetOverhead()), resources(req.GetResources())); err != nil {
		return nil, err
	}
	size := podVMSize(s.opts.Handlers[p.Runtime].Sandbox, req.GetResources())
	got, err := s.runtimeOf(p.Runtime).ResizeSandbox(ctx, p.ID, size)
	if err != nil {
		return nil, err
	}
	klog.FromContext(ctx).V(2).Info("Pod resized", "pod", p.ID, "vcpus", got.VCPUs, "memoryMiB", got.Memory)
	if p, err = s.pods.Update(p.ID, func(rec *podRecord) error {
		if rec.Config.Linux == nil {
			rec.Config.Linux = &runtime.LinuxPodSandboxConfig{}
		}
		if r := req.GetResources(); r != nil {
			rec.Config.Linux.Resources = proto.Clone(r).(*runtime.LinuxContainerResources)
		}
		if o := req.GetOverhead(); o != nil {
			rec.Config.Linux.Overhead = proto.Clone(o).(*runtime.LinuxContainerResources)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if err := s.opts.NRI.PostUpdatePodSandbox(ctx, nriPod(p)); err != nil {
		klog.FromContext(ctx).Error(err, "NRI plugins failed the pod's post-update", "pod", p.ID)
	}
	return &runtime.UpdatePodSandboxResourcesResponse{}, nil
}
