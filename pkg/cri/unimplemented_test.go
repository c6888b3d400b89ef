package cri

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestUnimplemented(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newFakeService(t)
	for name, call := range map[string]func() error{
		"CheckpointContainer": func() error {
			_, err := s.CheckpointContainer(ctx, &runtime.CheckpointContainerRequest{})
			return err
		},
		"CheckpointPod": func() error {
			_, err := s.CheckpointPod(ctx, &runtime.CheckpointPodRequest{})
			return err
		},
		"RestorePod": func() error {
			_, err := s.RestorePod(ctx, &runtime.RestorePodRequest{})
			return err
		},
	} {
		wantCode(t, name, call(), codes.Unimplemented)
	}
}
