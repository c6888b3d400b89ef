package cri

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// fuzzCalls feed a decoded request to one RuntimeService handler each.
var fuzzCalls = []struct {
	req  func() proto.Message
	call func(context.Context, *Service, proto.Message) error
}{
	{func() proto.Message { return &runtime.RunPodSandboxRequest{} }, func(ctx context.Context, s *Service, m proto.Message) error {
		_, err := s.RunPodSandbox(ctx, m.(*runtime.RunPodSandboxRequest))
		return err
	}},
	{func() proto.Message { return &runtime.StopPodSandboxRequest{} }, func(ctx context.Context, s *Service, m proto.Message) error {
		_, err := s.StopPodSandbox(ctx, m.(*runtime.StopPodSandboxRequest))
		return err
	}},
	{func() proto.Message { return &runtime.RemovePodSandboxRequest{} }, func(ctx context.Context, s *Service, m proto.Message) error {
		_, err := s.RemovePodSandbox(ctx, m.(*runtime.RemovePodSandboxRequest))
		return err
	}},
	{func() proto.Message { return &runtime.PodSandboxStatusRequest{} }, func(ctx context.Context, s *Service, m proto.Message) error {
		_, err := s.PodSandboxStatus(ctx, m.(*runtime.PodSandboxStatusRequest))
		return err
	}},
	{func() proto.Message { return &runtime.ListPodSandboxRequest{} }, func(ctx context.Context, s *Service, m proto.Message) error {
		_, err := s.ListPodSandbox(ctx, m.(*runtime.ListPodSandboxRequest))
		return err
	}},
	{func() proto.Message { return &runtime.CreateContainerRequest{} }, func(ctx context.Context, s *Service, m proto.Message) error {
		_, err := s.CreateContainer(ctx, m.(*runtime.CreateContainerRequest))
		return err
	}},
	{func() proto.Message { return &runtime.StartContainerRequest{} }, func(ctx context.Context, s *Service, m proto.Message) error {
		_, err := s.StartContainer(ctx, m.(*runtime.StartContainerRequest))
		return err
	}},
	{func() proto.Message { return &runtime.StopContainerRequest{} }, func(ctx context.Context, s *Service, m proto.Message) error {
		req := m.(*runtime.StopContainerRequest)
		req.Timeout = min(req.Timeout, 1)
		_, err := s.StopContainer(ctx, req)
		return err
	}},
	{func() proto.Message { return &runtime.RemoveContainerRequest{} }, func(ctx context.Context, s *Service, m proto.Message) error {
		_, err := s.RemoveContainer(ctx, m.(*runtime.RemoveContainerRequest))
		return err
	}},
	{func() proto.Message { return &runtime.ContainerStatusRequest{} }, func(ctx context.Context, s *Service, m proto.Message) error {
		_, err := s.ContainerStatus(ctx, m.(*runtime.ContainerStatusRequest))
		return err
	}},
	{func() proto.Message { return &runtime.ListContainersRequest{} }, func(ctx context.Context, s *Service, m proto.Message) error {
		_, err := s.ListContainers(ctx, m.(*runtime.ListContainersRequest))
		return err
	}},
	{func() proto.Message { return &runtime.UpdateContainerResourcesRequest{} }, func(ctx context.Context, s *Service, m proto.Message) error {
		_, err := s.UpdateContainerResources(ctx, m.(*runtime.UpdateContainerResourcesRequest))
		return err
	}},
	{func() proto.Message { return &runtime.ExecSyncRequest{} }, func(ctx context.Context, s *Service, m proto.Message) error {
		req := m.(*runtime.ExecSyncRequest)
		req.Timeout = 1
		_, err := s.ExecSync(ctx, req)
		return err
	}},
	{func() proto.Message { return &runtime.ExecRequest{} }, func(ctx context.Context, s *Service, m proto.Message) error {
		_, err := s.Exec(ctx, m.(*runtime.ExecRequest))
		return err
	}},
	{func() proto.Message { return &runtime.AttachRequest{} }, func(ctx context.Context, s *Service, m proto.Message) error {
		_, err := s.Attach(ctx, m.(*runtime.AttachRequest))
		return err
	}},
	{func() proto.Message { return &runtime.PortForwardRequest{} }, func(ctx context.Context, s *Service, m proto.Message) error {
		_, err := s.PortForward(ctx, m.(*runtime.PortForwardRequest))
		return err
	}},
	{func() proto.Message { return &runtime.ContainerStatsRequest{} }, func(ctx context.Context, s *Service, m proto.Message) error {
		_, err := s.ContainerStats(ctx, m.(*runtime.ContainerStatsRequest))
		return err
	}},
	{func() proto.Message { return &runtime.PodSandboxStatsRequest{} }, func(ctx context.Context, s *Service, m proto.Message) error {
		_, err := s.PodSandboxStats(ctx, m.(*runtime.PodSandboxStatsRequest))
		return err
	}},
	{func() proto.Message { return &runtime.ReopenContainerLogRequest{} }, func(ctx context.Context, s *Service, m proto.Message) error {
		_, err := s.ReopenContainerLog(ctx, m.(*runtime.ReopenContainerLogRequest))
		return err
	}},
}

// FuzzRuntimeService feeds random requests to the handlers: none may
// panic, and every refusal carries a code a client can act on.
func FuzzRuntimeService(f *testing.F) {
	seed := func(i int, m proto.Message) {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(i), b)
	}
	seed(0, &runtime.RunPodSandboxRequest{Config: podConfig("fuzz")})
	seed(0, &runtime.RunPodSandboxRequest{Config: &runtime.PodSandboxConfig{Metadata: &runtime.PodSandboxMetadata{Name: "x"}}})
	seed(5, &runtime.CreateContainerRequest{PodSandboxId: "x", Config: containerConfig("c")})
	seed(12, &runtime.ExecSyncRequest{ContainerId: "x", Cmd: []string{"true"}})
	seed(15, &runtime.PortForwardRequest{PodSandboxId: "x", Port: []int32{-1}})
	seed(4, &runtime.ListPodSandboxRequest{Filter: &runtime.PodSandboxFilter{State: &runtime.PodSandboxStateValue{State: 9}}})

	s, _ := newTestService(f, f.TempDir())
	allowed := map[codes.Code]bool{
		codes.OK: true, codes.InvalidArgument: true, codes.NotFound: true, codes.AlreadyExists: true,
		codes.FailedPrecondition: true, codes.Unimplemented: true, codes.DeadlineExceeded: true,
	}
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		c := fuzzCalls[int(which)%len(fuzzCalls)]
		req := c.req()
		if err := proto.Unmarshal(data, req); err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.call(ctx, s, req); !allowed[code(err)] {
			t.Fatalf("%T: %v (code %v)", req, err, code(err))
		}
	})
}
