package cri

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestStartContainer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, f := newFakeService(t)
	pod, id, path := loggedContainer(t, s)

	if st := containerState(t, s, id); st.State != runtime.ContainerState_CONTAINER_RUNNING || st.StartedAt == 0 {
		t.Fatalf("status after start: %v", st)
	}
	if got := f.containerState(pod, id); got != "running" {
		t.Fatalf("guest container is %q, want running", got)
	}
	_, err := s.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: id})
	wantCode(t, "StartContainer of a running container", err, codes.FailedPrecondition)
	_, err = s.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: "nope"})
	wantCode(t, "StartContainer of an unknown container", err, codes.NotFound)

	// Its output goes to its log; its exit is recorded.
	f.write(pod, id, 0, "hello\n")
	f.write(pod, id, 1, "oops\n")
	f.exit(pod, id, 0, false)
	eventually(t, "exit recorded", func() bool { return containerState(t, s, id).State == runtime.ContainerState_CONTAINER_EXITED })
	if st := containerState(t, s, id); st.ExitCode != 0 || st.Reason != reasonCompleted || st.FinishedAt == 0 {
		t.Fatalf("status after exit 0: %v", st)
	}
	log, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(log), " stdout F hello") || !strings.Contains(string(log), " stderr F oops") {
		t.Fatalf("log: %q, %v", log, err)
	}
	_, err = s.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: id})
	wantCode(t, "StartContainer of an exited container", err, codes.FailedPrecondition)
}

// TestStartContainerGuestFails: a container the guest cannot start is
// recorded as exited, with the reason, and answers an error.
func TestStartContainerGuestFails(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, method := range []string{"StartContainer", "IOStream"} {
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			s, f := newFakeService(t)
			pod := readyPod(t, s, "web")
			id := createdContainer(t, s, pod, containerConfig("app"))
			f.fail(method, id, errors.New("exec format error"))
			if _, err := s.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: id}); err == nil {
				t.Fatal("StartContainer succeeded")
			}
			st := containerState(t, s, id)
			if st.State != runtime.ContainerState_CONTAINER_EXITED || st.ExitCode != 128 || st.Reason != "StartError" || !strings.Contains(st.Message, "exec format error") {
				t.Fatalf("status after a failed start: %v", st)
			}
		})
	}
}

// TestConcurrentStartContainer: of two StartContainer calls at once, one
// starts the container and the other fails; the container runs and its
// output is logged.
func TestConcurrentStartContainer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for round := 0; round < 20; round++ {
		s, f := newFakeService(t)
		pod, dir := loggedPod(t, s, "race")
		cc := containerConfig("app")
		cc.LogPath = "app.log"
		id := createdContainer(t, s, pod, cc)
		errs := make(chan error, 2)
		for range 2 {
			go func() {
				_, err := s.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: id})
				errs <- err
			}()
		}
		var failed []error
		for range 2 {
			if err := <-errs; err != nil {
				failed = append(failed, err)
			}
		}
		if len(failed) != 1 {
			t.Fatalf("round %d: %d of 2 starts failed (%v), want 1", round, len(failed), failed)
		}
		wantCode(t, "the losing start", failed[0], codes.FailedPrecondition)
		if st := containerState(t, s, id); st.State != runtime.ContainerState_CONTAINER_RUNNING {
			t.Fatalf("round %d: container %v after the starts, want running", round, st.State)
		}
		f.write(pod, id, 0, "still here\n")
		path := filepath.Join(dir, cc.LogPath)
		eventually(t, "output logged", func() bool {
			b, _ := os.ReadFile(path)
			return strings.Contains(string(b), " stdout F still here")
		})
	}
}

// TestOutputReattached: output streams lost with the agent's link while
// the container runs are opened again, and its output goes on to its log.
func TestOutputReattached(t *testing.T) {
	t.Parallel()
	s, f := newFakeService(t)
	pod, id, path := loggedContainer(t, s)
	f.write(pod, id, 0, "before\n")
	eventually(t, "first line logged", func() bool {
		b, _ := os.ReadFile(path)
		return strings.Contains(string(b), " stdout F before")
	})
	f.dropStreams(pod, id)
	// Written while no stream is open: the fake keeps it for the next.
	f.write(pod, id, 0, "after\n")
	eventually(t, "output logged after the streams were lost", func() bool {
		b, _ := os.ReadFile(path)
		return strings.Contains(string(b), " stdout F after")
	})
	if st := containerState(t, s, id); st.State != runtime.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("container %v after its streams were lost", st.State)
	}
}
