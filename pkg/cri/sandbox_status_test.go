package cri

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestPodSandboxStatus(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newFakeService(t)
	pod := readyPod(t, s, "web")
	ctr := createdContainer(t, s, pod, containerConfig("app"))

	resp, err := s.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: pod, Verbose: true})
	if err != nil {
		t.Fatalf("PodSandboxStatus: %v", err)
	}
	st := resp.Status
	if st.Id != pod || st.State != runtime.PodSandboxState_SANDBOX_READY || st.Metadata.Name != "web" || st.Labels["app"] != "web" || st.CreatedAt == 0 {
		t.Fatalf("status: %v", st)
	}
	if st.Network.GetIp() != "10.0.0.1" {
		t.Fatalf("pod IP %q, want 10.0.0.1", st.Network.GetIp())
	}
	if _, ok := resp.Info["netns"]; !ok {
		t.Fatalf("verbose info %v has no netns", resp.Info)
	}
	if len(resp.ContainersStatuses) != 1 || resp.ContainersStatuses[0].Id != ctr {
		t.Fatalf("containers %v, want %s", resp.ContainersStatuses, ctr)
	}

	_, err = s.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: "nope"})
	wantCode(t, "PodSandboxStatus of an unknown pod", err, codes.NotFound)
}
