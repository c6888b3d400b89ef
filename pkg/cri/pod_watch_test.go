package cri

import (
	"context"
	"strings"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/vc-cri/vc-cri/pkg/runc"
	"github.com/vc-cri/vc-cri/pkg/sandbox"
)

// TestVMEndedByItself: a pod whose VM (or a runc pod's infra) ends by
// itself turns NOTREADY, its running container EXITED with 255 and the
// reason, with a CONTAINER_STOPPED event for each; stop and remove then
// clean up.
func TestVMEndedByItself(t *testing.T) {
	t.Parallel()
	for _, reason := range []string{sandbox.EndVMExited, sandbox.EndAgentLost, runc.EndInfraExited} {
		t.Run(reason, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s, f := newFakeService(t)
			events := s.events.subscribe()
			defer s.events.unsubscribe(events)
			pod, running, created := runningAndCreated(t, s)
			other, otherRunning := runningContainer(t, s, "bystander")

			f.endVM(pod, reason)
			eventually(t, "pod NOTREADY", func() bool {
				return podState(t, s, pod) == runtime.PodSandboxState_SANDBOX_NOTREADY
			})
			st := containerState(t, s, running)
			if st.State != runtime.ContainerState_CONTAINER_EXITED || st.ExitCode != 255 || st.Reason != reason || st.Message != endMessage(reason) || strings.Contains(st.Message, "VM ended") {
				t.Fatalf("running container after its VM ended: %v %d %q %q", st.State, st.ExitCode, st.Reason, st.Message)
			}
			if st := containerState(t, s, created); st.State != runtime.ContainerState_CONTAINER_CREATED {
				t.Fatalf("created container after its VM ended: %v", st.State)
			}
			if podState(t, s, other) != runtime.PodSandboxState_SANDBOX_READY || containerState(t, s, otherRunning).State != runtime.ContainerState_CONTAINER_RUNNING {
				t.Fatal("another pod was touched")
			}
			stopped := map[string]bool{}
			for len(stopped) < 2 {
				select {
				case ev := <-events:
					if ev.ContainerEventType == runtime.ContainerEventType_CONTAINER_STOPPED_EVENT {
						stopped[ev.ContainerId] = true
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("stopped events: %v, want the container's and the pod's", stopped)
				}
			}
			if !stopped[running] || !stopped[pod] {
				t.Fatalf("stopped events for %v, want %s and %s", stopped, running, pod)
			}

			if _, err := s.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: pod}); err != nil {
				t.Fatalf("StopPodSandbox: %v", err)
			}
			if _, err := s.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
				t.Fatalf("RemovePodSandbox: %v", err)
			}
			if f.podState(pod) != "" {
				t.Fatalf("sandbox left: %q", f.podState(pod))
			}
		})
	}
}

// TestRemoveAfterVMEndedTearsDown: a pod whose VM ended, removed without
// a stop first, still has its network torn down.
func TestRemoveAfterVMEndedTearsDown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFakeSandboxes()
	s, net := newTestServiceOn(t, t.TempDir(), f)
	pod := readyPod(t, s, "gone")
	f.endVM(pod, sandbox.EndVMExited)
	eventually(t, "pod NOTREADY", func() bool {
		return podState(t, s, pod) == runtime.PodSandboxState_SANDBOX_NOTREADY
	})
	if _, err := s.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatalf("RemovePodSandbox: %v", err)
	}
	if net.isActive(pod) {
		t.Fatal("the pod's network is still up")
	}
}

// TestStopIsNotAnEnd: stopping a pod ends its VM, which is not reported
// as the VM ending by itself.
func TestStopIsNotAnEnd(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newFakeService(t)
	pod, id := runningContainer(t, s, "stopped")
	events := s.events.subscribe()
	defer s.events.unsubscribe(events)
	if _, err := s.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	if st := containerState(t, s, id); st.State != runtime.ContainerState_CONTAINER_EXITED || st.ExitCode != 137 || st.Reason == sandbox.EndVMExited {
		t.Fatalf("container of a stopped pod: %v %d %q", st.State, st.ExitCode, st.Reason)
	}
	for timeout := time.After(300 * time.Millisecond); ; {
		select {
		case ev := <-events:
			if ev.ContainerId == pod {
				t.Fatalf("event %v for the stopped pod: its stop was taken for the VM's end", ev.ContainerEventType)
			}
		case <-timeout:
			return
		}
	}
}

// TestSilentGuestHangsNothing: a guest that answered and then stops
// answering holds every CRI call only until its deadline; other pods go
// on, and a restarted service serves at once.
func TestSilentGuestHangsNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f := newFakeSandboxes()
	s, _ := newTestServiceOn(t, dir, f)
	pod, id := runningContainer(t, s, "silent")
	other, otherID := runningContainer(t, s, "fine")
	for _, m := range []string{"StopContainer", "SignalProcess", "StatusContainer", "StatsContainer", "EnterContainer",
		"IOStream", "WaitProcess", "StopSandbox", "StatusSandbox", "UpdateContainer", "PortForward"} {
		f.hang(m, pod)
		f.hang(m, id)
	}
	deadline := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), 500*time.Millisecond)
	}
	calls := map[string]func(ctx context.Context) error{
		"StopContainer": func(ctx context.Context) error {
			_, err := s.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: id, Timeout: 1})
			return err
		},
		"ExecSync": func(ctx context.Context) error {
			_, err := s.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: id, Cmd: []string{"true"}, Timeout: 1})
			return err
		},
		"ContainerStats": func(ctx context.Context) error {
			_, err := s.ContainerStats(ctx, &runtime.ContainerStatsRequest{ContainerId: id})
			return err
		},
		"UpdateContainerResources": func(ctx context.Context) error {
			_, err := s.UpdateContainerResources(ctx, &runtime.UpdateContainerResourcesRequest{ContainerId: id, Linux: &runtime.LinuxContainerResources{CpuShares: 512}})
			return err
		},
		"StopPodSandbox": func(ctx context.Context) error {
			_, err := s.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: pod})
			return err
		},
	}
	for name, call := range calls {
		ctx, cancel := deadline()
		start := time.Now()
		err := call(ctx)
		cancel()
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("%s took %v against a silent guest", name, took)
		}
		if err == nil {
			t.Errorf("%s succeeded against a silent guest", name)
		}
	}
	// Calls that need no guest answer at once.
	if st := containerState(t, s, id); st.State != runtime.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("container of the silent guest: %v", st.State)
	}
	if _, err := s.ListContainerStats(context.Background(), &runtime.ListContainerStatsRequest{}); err != nil {
		t.Fatalf("ListContainerStats with a silent guest: %v", err)
	}
	// The other pod goes on.
	if resp, err := s.ExecSync(context.Background(), &runtime.ExecSyncRequest{ContainerId: otherID, Cmd: []string{"true"}, Timeout: 5}); err != nil || resp.ExitCode != 0 {
		t.Fatalf("ExecSync in another pod: %v, %v", resp, err)
	}
	// A restart serves at once: nothing waits for the silent guest.
	s.Close()
	start := time.Now()
	restarted, _ := newTestServiceOn(t, dir, f)
	if took := time.Since(start); took > time.Second {
		t.Fatalf("restart took %v with a silent guest", took)
	}
	if podState(t, restarted, other) != runtime.PodSandboxState_SANDBOX_READY {
		t.Fatal("the other pod after the restart is not ready")
	}
	f.clearFaults()
}

// podState is the pod's state as PodSandboxStatus reports it.
func podState(t *testing.T, s *Service, id string) runtime.PodSandboxState {
	t.Helper()
	st, err := s.PodSandboxStatus(context.Background(), &runtime.PodSandboxStatusRequest{PodSandboxId: id})
	if err != nil {
		t.Fatalf("PodSandboxStatus: %v", err)
	}
	return st.Status.State
}
