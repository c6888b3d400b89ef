package cri

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"google.golang.org/grpc/codes"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestPortForward(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, f := newFakeService(t)
	pod := readyPod(t, s, "web")
	stopped := readyPod(t, s, "stopped")
	if _, err := s.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: stopped}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		pod   string
		ports []int32
		want  codes.Code
	}{
		{"ready pod", pod, []int32{80, 443}, codes.OK},
		{"unknown pod", "nope", []int32{80}, codes.NotFound},
		{"stopped pod", stopped, []int32{80}, codes.FailedPrecondition},
		{"port 0", pod, []int32{0}, codes.InvalidArgument},
		{"port beyond 65535", pod, []int32{65536}, codes.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := s.PortForward(ctx, &runtime.PortForwardRequest{PodSandboxId: tc.pod, Port: tc.ports})
			wantURL(t, "PortForward", resp, err, tc.want, "/portforward/")
		})
	}

	// The stream goes to the pod's guest: the fake echoes.
	var out bytes.Buffer
	rw := struct {
		io.Reader
		io.Writer
	}{bytes.NewReader([]byte("ping")), &out}
	if err := s.portForward(ctx, pod, 8080, rw); err != nil || out.String() != "ping" {
		t.Fatalf("portForward: %q, %v", out.String(), err)
	}
	if len(f.forwarded) != 1 || f.forwarded[0] != 8080 {
		t.Fatalf("forwarded %v, want [8080]", f.forwarded)
	}
	wantCode(t, "portForward to an unknown pod", s.portForward(ctx, "nope", 80, rw), codes.NotFound)
	boom := errors.New("guest refused")
	f.fail("PortForward", pod, boom)
	if err := s.portForward(ctx, pod, 80, rw); !errors.Is(err, boom) {
		t.Fatalf("portForward with a failing guest: %v, want %v", err, boom)
	}
}
