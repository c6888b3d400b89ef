package cri

import (
	"context"
	"os"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestReopenContainerLog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, f := newFakeService(t)
	pod, logged, path := loggedContainer(t, s)
	unlogged := startedContainer(t, s, pod, containerConfig("quiet"))
	created := createdContainer(t, s, pod, containerConfig("idle"))

	for _, tc := range []struct {
		name string
		id   string
		want codes.Code
	}{
		{"running with a log", logged, codes.OK},
		{"running without a log", unlogged, codes.FailedPrecondition},
		{"created", created, codes.FailedPrecondition},
		{"unknown", "nope", codes.NotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.ReopenContainerLog(ctx, &runtime.ReopenContainerLogRequest{ContainerId: tc.id})
			wantCode(t, "ReopenContainerLog", err, tc.want)
		})
	}

	// kubelet rotates: renames the log, then asks to reopen it.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReopenContainerLog(ctx, &runtime.ReopenContainerLogRequest{ContainerId: logged}); err != nil {
		t.Fatalf("ReopenContainerLog: %v", err)
	}
	f.write(pod, logged, 0, "after\n")
	eventually(t, "output in the new log", func() bool {
		b, _ := os.ReadFile(path)
		return strings.Contains(string(b), "after")
	})
}
