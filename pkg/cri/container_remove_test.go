package cri

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/grpc/codes"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/vc-cri/vc-cri/pkg/sandbox"
)

func TestRemoveContainer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, f := newFakeService(t)
	pod := readyPod(t, s, "web")
	for _, tc := range []struct {
		name  string
		start bool
	}{
		{"created", false},
		{"running", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc := containerConfig(tc.name)
			id := createdContainer(t, s, pod, cc)
			if tc.start {
				if _, err := s.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: id}); err != nil {
					t.Fatal(err)
				}
			}
			// Twice, and a container never known: all succeed.
			for _, id := range []string{id, id, "nope"} {
				if _, err := s.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: id}); err != nil {
					t.Fatalf("RemoveContainer(%s): %v", id, err)
				}
			}
			_, err := s.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: id})
			wantCode(t, "ContainerStatus after remove", err, codes.NotFound)
			if st := f.containerState(pod, id); st != "" {
				t.Fatalf("guest container left, %s", st)
			}
			if _, err := os.Stat(filepath.Join(s.opts.Images.Root(), id)); !os.IsNotExist(err) {
				t.Fatalf("root left: %v", err)
			}
			createdContainer(t, s, pod, cc) // the name is free
		})
	}
}

func TestRemoveContainerGuestFails(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	guestFaults(t, "DeleteContainer", []error{sandbox.ErrNotFound}, func(t *testing.T, s *Service, fail func(string)) (error, bool) {
		id := createdContainer(t, s, readyPod(t, s, "web"), containerConfig("app"))
		fail(id)
		_, err := s.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: id})
		_, gone := s.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: id})
		return err, gone != nil
	})
}
