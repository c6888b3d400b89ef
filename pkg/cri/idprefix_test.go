package cri

import (
	"context"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// grpcClient serves s as the daemon does, with its interceptors, and
// returns a client of it.
func grpcClient(t *testing.T, s *Service) runtime.RuntimeServiceClient {
	t.Helper()
	l := bufconn.Listen(1 << 20)
	unary, stream := s.Interceptors()
	gs := grpc.NewServer(grpc.ChainUnaryInterceptor(unary...), grpc.ChainStreamInterceptor(stream...))
	runtime.RegisterRuntimeServiceServer(gs, s)
	go func() { _ = gs.Serve(l) }()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return l.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		gs.Stop()
	})
	return runtime.NewRuntimeServiceClient(conn)
}

// sharedPrefix returns two of ids that share their first character.
func sharedPrefix(ids []string) (string, string, bool) {
	first := map[byte]string{}
	for _, id := range ids {
		if other, ok := first[id[0]]; ok {
			return other, id, true
		}
		first[id[0]] = id
	}
	return "", "", false
}

// unknownPrefix returns a 12-digit prefix of no ID in ids.
func unknownPrefix(ids ...string) string {
	for _, c := range "0123456789abcdef" {
		p := strings.Repeat(string(c), 12)
		taken := false
		for _, id := range ids {
			taken = taken || strings.HasPrefix(id, p)
		}
		if !taken {
			return p
		}
	}
	panic("every prefix taken")
}

func wantCode(t *testing.T, what string, err error, want codes.Code) {
	t.Helper()
	if got := code(err); got != want {
		t.Fatalf("%s: %v (%v), want %v", what, err, got, want)
	}
}

func TestPodIDPrefixes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestService(t, t.TempDir())
	c := grpcClient(t, s)

	// Pods until two share a first digit (at most 17, by pigeonhole).
	var ids []string
	var a, b string
	for i := 0; ; i++ {
		run, err := c.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: podConfig("p" + string(rune('a'+i)))})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, run.PodSandboxId)
		var ok bool
		if a, b, ok = sharedPrefix(ids); ok {
			break
		}
	}
	short := a[:13] // what crictl pods prints

	// Unique prefix: status, then the request's ID is the full one.
	st, err := c.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: short})
	if err != nil || st.Status.Id != a {
		t.Fatalf("PodSandboxStatus(%s): %v, %v", short, st.GetStatus().GetId(), err)
	}
	if _, err := c.PodSandboxStats(ctx, &runtime.PodSandboxStatsRequest{PodSandboxId: short}); err != nil {
		t.Fatalf("PodSandboxStats(%s): %v", short, err)
	}
	list, err := c.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{Filter: &runtime.PodSandboxFilter{Id: short}})
	if err != nil || len(list.Items) != 1 || list.Items[0].Id != a {
		t.Fatalf("ListPodSandbox(id=%s): %v, %v", short, list, err)
	}
	stats, err := c.ListPodSandboxStats(ctx, &runtime.ListPodSandboxStatsRequest{Filter: &runtime.PodSandboxStatsFilter{Id: short}})
	if err != nil || len(stats.Stats) != 1 {
		t.Fatalf("ListPodSandboxStats(id=%s): %v, %v", short, stats, err)
	}

	// Ambiguous: InvalidArgument naming both, for status and for stop.
	for name, call := range map[string]func() error{
		"PodSandboxStatus": func() error {
			_, err := c.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: a[:1]})
			return err
		},
		"StopPodSandbox": func() error {
			_, err := c.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: a[:1]})
			return err
		},
		"RemovePodSandbox": func() error {
			_, err := c.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: a[:1]})
			return err
		},
	} {
		err := call()
		wantCode(t, name+" of an ambiguous prefix", err, codes.InvalidArgument)
		if !strings.Contains(err.Error(), a) || !strings.Contains(err.Error(), b) {
			t.Fatalf("%s: %v names not both %s and %s", name, err, a, b)
		}
	}

	// Unknown short ID: NotFound everywhere, stop and remove too.
	unknown := unknownPrefix(ids...)
	_, err = c.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: unknown})
	wantCode(t, "PodSandboxStatus of an unknown prefix", err, codes.NotFound)
	_, err = c.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: unknown})
	wantCode(t, "StopPodSandbox of an unknown prefix", err, codes.NotFound)
	_, err = c.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: unknown})
	wantCode(t, "RemovePodSandbox of an unknown prefix", err, codes.NotFound)
	_, err = c.PortForward(ctx, &runtime.PortForwardRequest{PodSandboxId: unknown, Port: []int32{80}})
	wantCode(t, "PortForward of an unknown prefix", err, codes.NotFound)
	_, err = c.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: unknown, Config: containerConfig("x")})
	wantCode(t, "CreateContainer in an unknown prefix", err, codes.NotFound)

	// IDs never known that are no short ID stay idempotent.
	for _, id := range []string{strings.Repeat("0", 64), "5f0c1a3e-7a0c-4d34-9f0e-4b7d1f3b9e2a"} {
		if _, err := c.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Fatalf("StopPodSandbox(%s): %v", id, err)
		}
		if _, err := c.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Fatalf("RemovePodSandbox(%s): %v", id, err)
		}
		_, err := c.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: id})
		wantCode(t, "PodSandboxStatus of "+id, err, codes.NotFound)
	}

	// Stop and remove by a unique prefix act on the pod.
	if _, err := c.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: short}); err != nil {
		t.Fatalf("StopPodSandbox(%s): %v", short, err)
	}
	st, err = c.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: a})
	if err != nil || st.Status.State != runtime.PodSandboxState_SANDBOX_NOTREADY {
		t.Fatalf("pod after StopPodSandbox(%s): %v, %v", short, st, err)
	}
	if _, err := c.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: short}); err != nil {
		t.Fatalf("RemovePodSandbox(%s): %v", short, err)
	}
	_, err = c.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: a})
	wantCode(t, "PodSandboxStatus after RemovePodSandbox", err, codes.NotFound)
	// The other pod of the prefix is now the only one.
	st, err = c.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: a[:1]})
	if err != nil || st.Status.Id != b {
		t.Fatalf("PodSandboxStatus(%s) once unique: %v, %v", a[:1], st.GetStatus().GetId(), err)
	}
	// The removed pod's short ID is now unknown: NotFound, not "removed".
	if strings.HasPrefix(b, short) {
		t.Skip("both pods share 13 digits")
	}
	_, err = c.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: short})
	wantCode(t, "RemovePodSandbox of a removed pod's prefix", err, codes.NotFound)
	for _, id := range ids {
		_, _ = c.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: id})
	}
}

func TestContainerIDPrefixes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestService(t, t.TempDir())
	c := grpcClient(t, s)
	run, err := c.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: podConfig("ctrs")})
	if err != nil {
		t.Fatal(err)
	}
	pod := run.PodSandboxId
	t.Cleanup(func() { _, _ = c.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: pod}) })

	// CreateContainer in a pod named by its prefix records the full ID.
	var ids []string
	var a, b string
	for i := 0; ; i++ {
		cc := containerConfig("c" + string(rune('a'+i)))
		cc.Command = []string{"sleep", "1000"}
		created, err := c.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod[:13], Config: cc, SandboxConfig: podConfig("ctrs")})
		if err != nil {
			t.Fatalf("CreateContainer in %s: %v", pod[:13], err)
		}
		ids = append(ids, created.ContainerId)
		var ok bool
		if a, b, ok = sharedPrefix(ids); ok {
			break
		}
	}
	short := a[:13]
	list, err := c.ListContainers(ctx, &runtime.ListContainersRequest{Filter: &runtime.ContainerFilter{PodSandboxId: pod[:13]}})
	if err != nil || len(list.Containers) != len(ids) || list.Containers[0].PodSandboxId != pod {
		t.Fatalf("ListContainers(pod=%s): %v, %v", pod[:13], list, err)
	}

	if _, err := c.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: short}); err != nil {
		t.Fatalf("StartContainer(%s): %v", short, err)
	}
	cs, err := c.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: short})
	if err != nil || cs.Status.Id != a || cs.Status.State != runtime.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("ContainerStatus(%s): %v, %v", short, cs, err)
	}
	if _, err := c.ContainerStats(ctx, &runtime.ContainerStatsRequest{ContainerId: short}); err != nil {
		t.Fatalf("ContainerStats(%s): %v", short, err)
	}
	stats, err := c.ListContainerStats(ctx, &runtime.ListContainerStatsRequest{Filter: &runtime.ContainerStatsFilter{Id: short}})
	if err != nil || len(stats.Stats) != 1 || stats.Stats[0].Attributes.Id != a {
		t.Fatalf("ListContainerStats(id=%s): %v, %v", short, stats, err)
	}
	if _, err := c.Exec(ctx, &runtime.ExecRequest{ContainerId: short, Cmd: []string{"true"}, Stdout: true}); err != nil {
		t.Fatalf("Exec(%s): %v", short, err)
	}
	if _, err := c.ReopenContainerLog(ctx, &runtime.ReopenContainerLogRequest{ContainerId: short}); status.Code(err) == codes.NotFound {
		t.Fatalf("ReopenContainerLog(%s): %v", short, err)
	}

	_, err = c.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: a[:1]})
	wantCode(t, "ContainerStatus of an ambiguous prefix", err, codes.InvalidArgument)
	if !strings.Contains(err.Error(), a) || !strings.Contains(err.Error(), b) {
		t.Fatalf("ambiguity %v names not both %s and %s", err, a, b)
	}
	_, err = c.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: a[:1]})
	wantCode(t, "RemoveContainer of an ambiguous prefix", err, codes.InvalidArgument)

	unknown := unknownPrefix(ids...)
	for name, call := range map[string]func() error{
		"ContainerStatus": func() error {
			_, err := c.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: unknown})
			return err
		},
		"StopContainer": func() error {
			_, err := c.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: unknown})
			return err
		},
		"RemoveContainer": func() error {
			_, err := c.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: unknown})
			return err
		},
		"ExecSync": func() error {
			_, err := c.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: unknown, Cmd: []string{"true"}})
			return err
		},
	} {
		wantCode(t, name+" of an unknown prefix", call(), codes.NotFound)
	}
	if _, err := c.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: "5f0c1a3e-7a0c-4d34-9f0e-4b7d1f3b9e2a"}); err != nil {
		t.Fatalf("StopContainer of a UUID never known: %v", err)
	}

	if _, err := c.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: short, Timeout: 1}); err != nil {
		t.Fatalf("StopContainer(%s): %v", short, err)
	}
	cs, err = c.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: a})
	if err != nil || cs.Status.State != runtime.ContainerState_CONTAINER_EXITED {
		t.Fatalf("container after StopContainer(%s): %v, %v", short, cs, err)
	}
	if _, err := c.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: short}); err != nil {
		t.Fatalf("RemoveContainer(%s): %v", short, err)
	}
	_, err = c.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: a})
	wantCode(t, "ContainerStatus after RemoveContainer", err, codes.NotFound)
}
