package cri

import (
	"context"
	"os"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/vc-cri/vc-cri/pkg/sandbox"
)

func TestRemovePodSandbox(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFakeSandboxes()
	s, net := newTestServiceOn(t, t.TempDir(), f)
	pod := readyPod(t, s, "web")
	ctr := startedContainer(t, s, pod, containerConfig("app"))

	// A ready pod is stopped first; twice, and a pod never known, succeed.
	for _, id := range []string{pod, pod, strings.Repeat("0", 64)} {
		if _, err := s.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Fatalf("RemovePodSandbox(%s): %v", id, err)
		}
	}
	_, err := s.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: pod})
	wantCode(t, "PodSandboxStatus after remove", err, codes.NotFound)
	_, err = s.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: ctr})
	wantCode(t, "ContainerStatus of a removed pod's container", err, codes.NotFound)
	if _, err := os.Stat(s.podDir(pod)); !os.IsNotExist(err) {
		t.Fatalf("pod files left: %v", err)
	}
	if net.isActive(pod) || f.podState(pod) != "" {
		t.Fatalf("left network %v, sandbox %q", net.isActive(pod), f.podState(pod))
	}
	// The names are free again.
	again := readyPod(t, s, "web")
	createdContainer(t, s, again, containerConfig("app"))
}

func TestRemovePodSandboxFaults(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	guestFaults(t, "DeleteSandbox", []error{sandbox.ErrNotFound}, func(t *testing.T, s *Service, fail func(string)) (error, bool) {
		pod := readyPod(t, s, "web")
		fail(pod)
		_, err := s.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: pod})
		_, gone := s.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: pod})
		return err, gone != nil
	})
}
