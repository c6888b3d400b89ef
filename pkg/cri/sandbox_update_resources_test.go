package cri

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"google.golang.org/grpc/codes"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/vc-cri/vc-cri/pkg/hypervisor"
	"github.com/vc-cri/vc-cri/pkg/nri/nritest"
	"github.com/vc-cri/vc-cri/pkg/sandbox"
)

func podResources(cpuMilli, memMiB int64) *runtime.LinuxContainerResources {
	return &runtime.LinuxContainerResources{CpuPeriod: 100000, CpuQuota: cpuMilli * 100, MemoryLimitInBytes: memMiB << 20}
}

// TestUpdatePodSandboxResources: the pod's VM is resized to its
// containers' limits plus the guest's overhead, and the record keeps the
// resources in force; a refused resize keeps the old ones, and its code
// says why.
func TestUpdatePodSandboxResources(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, f := newFakeService(t)
	pod := readyPod(t, s, "web")
	update := func(res *runtime.LinuxContainerResources) error {
		_, err := s.UpdatePodSandboxResources(ctx, &runtime.UpdatePodSandboxResourcesRequest{PodSandboxId: pod, Resources: res})
		return err
	}
	recorded := func() *runtime.LinuxContainerResources {
		p, err := s.pods.Get(pod)
		if err != nil {
			t.Fatal(err)
		}
		return p.Config.GetLinux().GetResources()
	}
	for _, tc := range []struct {
		res  *runtime.LinuxContainerResources
		want sandbox.Resources
	}{
		{podResources(1500, 512), sandbox.Resources{VCPUs: 2, Memory: 512 + guestOverheadMiB}},
		{podResources(500, 256), sandbox.Resources{VCPUs: 1, Memory: 256 + guestOverheadMiB}},
	} {
		if err := update(tc.res); err != nil {
			t.Fatalf("UpdatePodSandboxResources(%v): %v", tc.res, err)
		}
		if got := f.sizeOf(pod); got != tc.want {
			t.Errorf("VM size %+v, want %+v", got, tc.want)
		}
		if got := recorded(); got.GetMemoryLimitInBytes() != tc.res.MemoryLimitInBytes || got.GetCpuQuota() != tc.res.CpuQuota {
			t.Errorf("record keeps %v, want %v", got, tc.res)
		}
	}

	for _, tc := range []struct {
		name string
		err  error
		want codes.Code
	}{
		{"beyond the room", fmt.Errorf("no: %w", hypervisor.ErrNoRoom), codes.ResourceExhausted},
		{"memory in use", fmt.Errorf("no: %w", sandbox.ErrGuestInUse), codes.FailedPrecondition},
	} {
		f.fail("ResizeSandbox", pod, tc.err)
		wantCode(t, tc.name, update(podResources(4000, 64)), tc.want)
		if got := recorded(); got.GetMemoryLimitInBytes() != 256<<20 {
			t.Errorf("%s: record keeps %v", tc.name, got)
		}
		f.clearFaults()
	}
	_, err := s.UpdatePodSandboxResources(ctx, &runtime.UpdatePodSandboxResourcesRequest{PodSandboxId: "nope"})
	wantCode(t, "unknown pod", err, codes.NotFound)
	if _, err := s.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "stopped pod", update(podResources(1000, 128)), codes.FailedPrecondition)
}

// TestNRIUpdatePodSandbox: plugins see the pod's update and its end; a
// plugin failing the update fails it before the VM is resized.
func TestNRIUpdatePodSandbox(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, f, _, connect := nriService(t)
	p := &nritest.Plugin{Fail: failOnce("UpdatePodSandbox", nil)}
	connect(p)
	pod := readyPod(t, s, "web")
	req := &runtime.UpdatePodSandboxResourcesRequest{PodSandboxId: pod, Resources: podResources(2000, 512)}
	_, err := s.UpdatePodSandboxResources(ctx, req)
	wantCode(t, "UpdatePodSandboxResources failed by a plugin", err, codes.Unknown)
	if got := f.sizeOf(pod); got != (sandbox.Resources{}) {
		t.Errorf("VM resized to %+v despite the plugin", got)
	}
	if _, err := s.UpdatePodSandboxResources(ctx, req); err != nil {
		t.Fatal(err)
	}
	if got, want := p.Kinds(pod), []string{"RunPodSandbox", "UpdatePodSandbox", "UpdatePodSandbox", "PostUpdatePodSandbox"}; !slices.Equal(got, want) {
		t.Errorf("events of the pod: %v, want %v", got, want)
	}
}
