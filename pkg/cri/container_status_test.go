package cri

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestContainerStatus(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, f := newFakeService(t)
	pod := readyPod(t, s, "web")
	cc := containerConfig("app")
	cc.Annotations = map[string]string{"a": "b"}
	cc.Mounts = []*runtime.Mount{{ContainerPath: "/data", HostPath: t.TempDir()}}
	cc.Linux = &runtime.LinuxContainerConfig{Resources: &runtime.LinuxContainerResources{MemoryLimitInBytes: 64 << 20}}
	id := createdContainer(t, s, pod, cc)

	resp, err := s.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		t.Fatalf("ContainerStatus: %v", err)
	}
	st := resp.Status
	if st.Id != id || st.State != runtime.ContainerState_CONTAINER_CREATED || st.CreatedAt == 0 || st.StartedAt != 0 || st.FinishedAt != 0 ||
		st.Image.Image != fakeImage || st.ImageId == "" || st.Annotations["a"] != "b" || len(st.Mounts) != 1 ||
		st.Resources.GetLinux().GetMemoryLimitInBytes() != 64<<20 {
		t.Fatalf("status of a created container: %v", st)
	}
	if resp.Info["sandboxID"] != pod {
		t.Fatalf("verbose info %v, want sandboxID %s", resp.Info, pod)
	}

	// The OOM killer's exit: its reason.
	if _, err := s.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	f.exit(pod, id, 137, true)
	eventually(t, "exit recorded", func() bool { return containerState(t, s, id).State == runtime.ContainerState_CONTAINER_EXITED })
	if st := containerState(t, s, id); st.ExitCode != 137 || st.Reason != reasonOOMKilled || st.StartedAt == 0 || st.FinishedAt < st.StartedAt {
		t.Fatalf("status after the OOM killer: %v", st)
	}

	_, err = s.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: "nope"})
	wantCode(t, "ContainerStatus of an unknown container", err, codes.NotFound)
}
