package cri

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestUpdateContainerResources(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, f := newFakeService(t)
	pod, id := runningContainer(t, s, "web")
	exited := startedContainer(t, s, pod, containerConfig("done"))
	f.exit(pod, exited, 0, false)
	eventually(t, "exit recorded", func() bool { return containerState(t, s, exited).State == runtime.ContainerState_CONTAINER_EXITED })

	res := &runtime.LinuxContainerResources{MemoryLimitInBytes: 256 << 20, CpuShares: 512}
	for _, tc := range []struct {
		name  string
		id    string
		linux *runtime.LinuxContainerResources
		want  codes.Code
	}{
		{"running container", id, res, codes.OK},
		{"no resources", id, nil, codes.OK},
		{"unknown container", "nope", res, codes.NotFound},
		{"exited container", exited, res, codes.FailedPrecondition},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.UpdateContainerResources(ctx, &runtime.UpdateContainerResourcesRequest{ContainerId: tc.id, Linux: tc.linux})
			wantCode(t, "UpdateContainerResources", err, tc.want)
		})
	}
	// The guest has the new limits, and the status says so.
	if got := f.resourcesOf(pod, id); got.Memory == nil || *got.Memory.Limit != 256<<20 || *got.CPU.Shares != 512 {
		t.Fatalf("guest resources %+v", got)
	}
	if st := containerState(t, s, id); st.Resources.GetLinux().GetMemoryLimitInBytes() != 256<<20 {
		t.Fatalf("status resources %v", st.Resources)
	}

	// A guest that fails keeps the old limits in the record.
	f.fail("UpdateContainer", id, errors.New("cgroup gone"))
	_, err := s.UpdateContainerResources(ctx, &runtime.UpdateContainerResourcesRequest{ContainerId: id, Linux: &runtime.LinuxContainerResources{MemoryLimitInBytes: 512 << 20}})
	wantCode(t, "UpdateContainerResources in a failing guest", err, codes.Unknown)
	if st := containerState(t, s, id); st.Resources.GetLinux().GetMemoryLimitInBytes() != 256<<20 {
		t.Fatalf("status resources after a failed update: %v", st.Resources)
	}
}
