package metrics

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	goruntime "runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// fakeRuntime answers Version, runs pods in 20 ms and knows no pod.
type fakeRuntime struct {
	runtime.UnimplementedRuntimeServiceServer
}

func (fakeRuntime) Version(context.Context, *runtime.VersionRequest) (*runtime.VersionResponse, error) {
	return &runtime.VersionResponse{RuntimeName: "fake"}, nil
}

func (fakeRuntime) RunPodSandbox(ctx context.Context, _ *runtime.RunPodSandboxRequest) (*runtime.RunPodSandboxResponse, error) {
	RecordPhase(ctx, PhaseNetwork, 3*time.Millisecond) // as the wrapped pod network does
	time.Sleep(20 * time.Millisecond)
	return &runtime.RunPodSandboxResponse{PodSandboxId: "p"}, nil
}

func (fakeRuntime) PodSandboxStatus(context.Context, *runtime.PodSandboxStatusRequest) (*runtime.PodSandboxStatusResponse, error) {
	return nil, status.Error(codes.NotFound, "no such pod")
}

type fakeSource struct{ err error }

func (f fakeSource) Counts(context.Context) (Counts, error) {
	return Counts{
		Pods:       map[string]int{"ready": 2, "notready": 1},
		Containers: map[string]int{"running": 3, "exited": 1},
		VMsRunning: 2,
	}, f.err
}

func serveFake(t *testing.T, m *Metrics) runtime.RuntimeServiceClient {
	t.Helper()
	l := bufconn.Listen(1 << 20)
	gs := grpc.NewServer(grpc.ChainUnaryInterceptor(m.UnaryInterceptor), grpc.ChainStreamInterceptor(m.StreamInterceptor))
	runtime.RegisterRuntimeServiceServer(gs, fakeRuntime{})
	go func() { _ = gs.Serve(l) }()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return l.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); gs.Stop() })
	return runtime.NewRuntimeServiceClient(conn)
}

// scrape serves the metrics on a port of their own, as the daemon does,
// and returns one scrape.
func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.ServeListener(ctx, l) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeListener: %v", err)
		}
	}()
	resp, err := http.Get("http://" + l.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %d %v", resp.StatusCode, err)
	}
	return string(b)
}

// value finds a sample's value in a scrape.
func value(t *testing.T, text, sample string) float64 {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(sample) + ` (\S+)$`)
	m := re.FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no sample %s in:\n%s", sample, grepLines(text, Namespace))
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func grepLines(text, substr string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestOperationsScraped(t *testing.T) {
	m := New(Options{Version: "1.2.3", Source: fakeSource{}})
	c := serveFake(t, m)
	ctx := context.Background()
	for range 3 {
		if _, err := c.Version(ctx, &runtime.VersionRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{}); err != nil {
		t.Fatal(err)
	}
	_, _ = c.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: "x"})
	_, _ = c.ListContainers(ctx, &runtime.ListContainersRequest{})
	stream, err := c.GetContainerEvents(ctx, &runtime.GetEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); status.Code(err) != codes.Unimplemented {
		t.Fatalf("GetContainerEvents: %v", err)
	}

	text := scrape(t, m)
	for sample, want := range map[string]float64{
		`vc_cri_operations_total{operation="Version"}`:                                        3,
		`vc_cri_operations_total{operation="RunPodSandbox"}`:                                  1,
		`vc_cri_operations_total{operation="PodSandboxStatus"}`:                               1,
		`vc_cri_operations_total{operation="GetContainerEvents"}`:                             1,
		`vc_cri_operations_errors_total{code="NotFound",operation="PodSandboxStatus"}`:        1,
		`vc_cri_operations_errors_total{code="Unimplemented",operation="ListContainers"}`:     1,
		`vc_cri_operations_errors_total{code="Unimplemented",operation="GetContainerEvents"}`: 1,
		`vc_cri_operations_latency_seconds_count{operation="Version"}`:                        3,
		`vc_cri_operations_latency_seconds_count{operation="PodSandboxStatus"}`:               1,
		`vc_cri_pod_start_seconds_count`:                                                      1,
		`vc_cri_pods{state="ready"}`:                                                          2,
		`vc_cri_pods{state="notready"}`:                                                       1,
		`vc_cri_containers{state="running"}`:                                                  3,
		`vc_cri_containers{state="created"}`:                                                  0,
		`vc_cri_vms_running`:                                                                  2,
		`vc_cri_build_info{go_version="` + goruntime.Version() + `",version="1.2.3"}`:         1,
	} {
		if got := value(t, text, sample); got != want {
			t.Errorf("%s = %v, want %v", sample, got, want)
		}
	}
	if got := value(t, text, `vc_cri_pod_start_seconds_sum`); got < 0.02 || got > 5 {
		t.Errorf("pod start sum %vs, want about 0.02", got)
	}
	if got := value(t, text, `vc_cri_pod_start_phase_seconds_sum{phase="sandbox"}`); got < 0.017 || got > 5 {
		t.Errorf("sandbox phase %vs, want the call's time less the network's", got)
	}
	// RunPodSandbox took at least 20 ms (how much more depends on the
	// machine's load): not in the 10 ms bucket, in the +Inf one.
	if got := value(t, text, `vc_cri_operations_latency_seconds_bucket{operation="RunPodSandbox",le="0.01"}`); got != 0 {
		t.Errorf("RunPodSandbox in the 10 ms bucket: %v", got)
	}
	if got := value(t, text, `vc_cri_operations_latency_seconds_bucket{operation="RunPodSandbox",le="+Inf"}`); got != 1 {
		t.Errorf("RunPodSandbox not in the +Inf bucket: %v", got)
	}
	// No latency for a stream; no error sample for a call that worked.
	if strings.Contains(text, `vc_cri_operations_latency_seconds_count{operation="GetContainerEvents"}`) ||
		strings.Contains(text, `vc_cri_operations_errors_total{code="OK"`) {
		t.Errorf("unexpected samples:\n%s", grepLines(text, "vc_cri_operations"))
	}
	if !strings.Contains(text, "go_goroutines") || !strings.Contains(text, "process_resident_memory_bytes") {
		t.Error("no Go runtime or process metrics")
	}
}

func TestSourceFailureFailsOnlyItsGauges(t *testing.T) {
	m := New(Options{Source: fakeSource{err: errors.New("store unreadable")}})
	m.observe("Version", nil, time.Millisecond, true)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = m.ServeListener(ctx, l) }()
	resp, err := http.Get("http://" + l.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	// promhttp answers 500 when a collector fails, by default: the
	// scrape says that something is wrong rather than giving zeros.
	if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(string(b), "store unreadable") {
		t.Fatalf("scrape with a failing source: %d %s", resp.StatusCode, b)
	}
}

func TestOperation(t *testing.T) {
	for in, want := range map[string]string{
		"/runtime.v1.RuntimeService/RunPodSandbox": "RunPodSandbox",
		"/runtime.v1.ImageService/PullImage":       "PullImage",
		"Bare":                                     "Bare",
	} {
		if got := operation(in); got != want {
			t.Errorf("operation(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRecordPhaseOutsideAPodStart(t *testing.T) {
	RecordPhase(context.Background(), PhaseNetwork, time.Second) // no recorder: nothing, no panic
	ctx, p := withPhases(context.Background())
	RecordPhase(ctx, PhaseNetwork, time.Second)
	RecordPhase(ctx, PhaseNetwork, time.Second)
	if p.d[PhaseNetwork] != 2*time.Second {
		t.Fatalf("network phase %v, want 2s", p.d[PhaseNetwork])
	}
}

// TestAgentCallsScraped: the agent link's interceptor times each call
// and counts failures by code.
func TestAgentCallsScraped(t *testing.T) {
	m := New(Options{})
	ctx := context.Background()
	ok := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error { return nil }
	silent := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error {
		return status.Error(codes.DeadlineExceeded, "guest silent")
	}
	for range 2 {
		if err := m.AgentUnaryInterceptor(ctx, "/vcagent.Agent/ExecProcess", nil, nil, nil, ok); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.AgentUnaryInterceptor(ctx, "/vcagent.Agent/WaitProcess", nil, nil, nil, silent); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("the interceptor changed the call's error: %v", err)
	}
	text := scrape(t, m)
	for sample, want := range map[string]float64{
		`vc_cri_agent_call_latency_seconds_count{method="ExecProcess"}`:                2,
		`vc_cri_agent_call_latency_seconds_count{method="WaitProcess"}`:                1,
		`vc_cri_agent_call_errors_total{code="DeadlineExceeded",method="WaitProcess"}`: 1,
	} {
		if got := value(t, text, sample); got != want {
			t.Errorf("%s = %v, want %v", sample, got, want)
		}
	}
	if strings.Contains(text, `vc_cri_agent_call_errors_total{code="DeadlineExceeded",method="ExecProcess"}`) {
		t.Error("an error counted for a call that worked")
	}
}
