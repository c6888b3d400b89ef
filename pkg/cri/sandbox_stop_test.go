package cri

import (
	"context"
	"strings"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/vc-cri/vc-cri/pkg/sandbox"
)

func TestStopPodSandbox(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFakeSandboxes()
	s, net := newTestServiceOn(t, t.TempDir(), f)
	pod := readyPod(t, s, "web")
	running := startedContainer(t, s, pod, containerConfig("app"))
	created := createdContainer(t, s, pod, containerConfig("idle"))

	// Twice, and a pod never known: the call is idempotent.
	for _, id := range []string{pod, pod, strings.Repeat("0", 64)} {
		if _, err := s.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Fatalf("StopPodSandbox(%s): %v", id, err)
		}
	}
	st, err := s.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: pod})
	if err != nil || st.Status.State != runtime.PodSandboxState_SANDBOX_NOTREADY || st.Status.Network != nil {
		t.Fatalf("PodSandboxStatus after stop: %v, %v", st, err)
	}
	if net.isActive(pod) || f.podState(pod) != sandbox.StateStopped {
		t.Fatalf("after stop: network active %v, sandbox %s", net.isActive(pod), f.podState(pod))
	}
	// The VM's end ended its containers: the running one with SIGKILL's
	// code, the one never started too.
	for _, id := range []string{running, created} {
		if c := containerState(t, s, id); c.State != runtime.ContainerState_CONTAINER_EXITED || c.ExitCode != 137 {
			t.Fatalf("container %s after its pod stopped: %v exit %d, want exited 137", id, c.State, c.ExitCode)
		}
	}
}

func TestStopPodSandboxFaults(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tolerated := []error{sandbox.ErrInvalidState, sandbox.ErrNotFound}
	guestFaults(t, "StopSandbox", tolerated, func(t *testing.T, s *Service, fail func(string)) (error, bool) {
		pod := readyPod(t, s, "web")
		fail(pod)
		_, err := s.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: pod})
		st, _ := s.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: pod})
		return err, st.Status.State == runtime.PodSandboxState_SANDBOX_NOTREADY
	})
}
