package cri

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestStopContainer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name       string
		timeout    int64
		ignoreTERM bool
		want       int32
	}{
		{"SIGTERM", 10, false, 143},
		{"no grace period", 0, false, 137},
		{"SIGTERM ignored", 1, true, 137},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, f := newFakeService(t)
			pod, id := runningContainer(t, s, "web")
			if tc.ignoreTERM {
				f.ignoreTERM(pod, id)
			}
			start := time.Now()
			if _, err := s.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: id, Timeout: tc.timeout}); err != nil {
				t.Fatalf("StopContainer: %v", err)
			}
			if took, limit := time.Since(start), time.Duration(tc.timeout+1)*time.Second; took > limit {
				t.Fatalf("StopContainer took %v, more than %v", took, limit)
			}
			st := containerState(t, s, id)
			if st.State != runtime.ContainerState_CONTAINER_EXITED || st.ExitCode != tc.want || st.Reason != reasonError {
				t.Fatalf("status after stop: %v exit %d %s, want exited %d", st.State, st.ExitCode, st.Reason, tc.want)
			}
			// Again, and a container never known: nothing to do.
			for _, id := range []string{id, "nope"} {
				if _, err := s.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: id}); err != nil {
					t.Fatalf("StopContainer(%s): %v", id, err)
				}
			}
		})
	}
}

func TestStopContainerGuestFails(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, f := newFakeService(t)
	_, id := runningContainer(t, s, "web")
	f.fail("StopContainer", id, errors.New("agent gone"))
	_, err := s.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: id})
	wantCode(t, "StopContainer in a failing guest", err, codes.Unknown)
	if st := containerState(t, s, id); st.State != runtime.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("container is %v after a failed stop, want running", st.State)
	}
}
