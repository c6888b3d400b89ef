package agent

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/containerd/errdefs"
	"github.com/hashicorp/yamux"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/vc-cri/vc-cri/pkg/agent/protocol"
)

// hostileAgent is a guest that owns its kernel and replaced vc-agent:
// oversized replies, huge headers, errors of its own wording.
type hostileAgent struct {
	protocol.UnimplementedAgentServer
}

func (hostileAgent) Check(context.Context, *protocol.CheckRequest) (*protocol.CheckResponse, error) {
	return &protocol.CheckResponse{Version: "hostile"}, nil
}

// StatsContainer answers 100 KiB: over the small-reply limit.
func (hostileAgent) StatsContainer(context.Context, *protocol.ContainerRequest) (*protocol.StatsContainerResponse, error) {
	return &protocol.StatsContainerResponse{Interfaces: []*protocol.InterfaceStats{{Name: strings.Repeat("x", 100<<10)}}}, nil
}

// ListProcesses answers 2 MiB: over any reply's limit.
func (hostileAgent) ListProcesses(context.Context, *protocol.ListProcessesRequest) (*protocol.ListProcessesResponse, error) {
	return &protocol.ListProcessesResponse{ProcessList: make([]byte, 2<<20)}, nil
}

// ProcessStatus sends 64 KiB of headers.
func (hostileAgent) ProcessStatus(ctx context.Context, _ *protocol.ProcessRequest) (*protocol.ProcessStatusResponse, error) {
	_ = grpc.SetHeader(ctx, metadata.Pairs("x-flood", strings.Repeat("h", 64<<10)))
	return &protocol.ProcessStatusResponse{}, nil
}

// StartContainer fails with a code and words chosen to mislead: 10 KiB
// with terminal escapes and newlines.
func (hostileAgent) StartContainer(context.Context, *protocol.ContainerRequest) (*protocol.Empty, error) {
	return nil, status.Error(codes.NotFound, "sandbox gone\n\x1b[2J\x1b[31mFAKE LOG LINE\r"+strings.Repeat("A", 10<<10))
}

// ReadOutput streams a message over the limit, after a good one.
func (hostileAgent) ReadOutput(_ *protocol.ReadOutputRequest, st grpc.ServerStreamingServer[protocol.Data]) error {
	if err := st.Send(&protocol.Data{Data: []byte("ok")}); err != nil {
		return err
	}
	return st.Send(&protocol.Data{Data: make([]byte, 2<<20)})
}

// serveHostile serves hostileAgent; once the host connects it also
// opens streams towards the host, many, as a guest pinning host buffers.
func serveHostile(t *testing.T) (path string, opened chan int) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	opened = make(chan int, 1)
	gs := grpc.NewServer(grpc.MaxSendMsgSize(8 << 20))
	protocol.RegisterAgentServer(gs, hostileAgent{})
	go func() {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		session, err := yamux.Server(conn, protocol.YamuxConfig())
		if err != nil {
			return
		}
		go gs.Serve(session)
		n := 0
		for i := 0; i < 1000; i++ {
			st, err := session.OpenStream()
			if err != nil {
				break
			}
			_, _ = st.Write(make([]byte, 1024))
			n++
		}
		opened <- n
	}()
	t.Cleanup(func() { gs.Stop(); l.Close() })
	return path, opened
}

func TestHostileAgentAnswersBounded(t *testing.T) {
	path, opened := serveHostile(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := Dial(ctx, path)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	select {
	case n := <-opened:
		t.Logf("guest opened %d streams towards the host", n)
	case <-ctx.Done():
		t.Fatal("guest's stream opening blocked: the host accepts none")
	}

	alive := func(what string) {
		t.Helper()
		if r, err := c.Check(ctx, &protocol.CheckRequest{}); err != nil || r.Version != "hostile" {
			t.Fatalf("link after %s: %v %v", what, r, err)
		}
	}
	alive("the guest's streams")

	if _, err := c.StatsContainer(ctx, &protocol.ContainerRequest{ContainerId: "c"}); err == nil {
		t.Error("a 100 KiB stats reply was taken")
	}
	alive("an oversized stats reply")
	if _, err := c.ListProcesses(ctx, &protocol.ListProcessesRequest{ContainerId: "c"}); err == nil {
		t.Error("a 2 MiB reply was taken")
	}
	alive("an oversized reply")
	if _, err := c.ProcessStatus(ctx, &protocol.ProcessRequest{ContainerId: "c"}); err == nil {
		t.Error("64 KiB of headers were taken")
	}
	alive("oversized headers")

	_, err = c.StartContainer(ctx, &protocol.ContainerRequest{ContainerId: "c"})
	// The guest's NotFound is taken at its word, its message sanitized.
	if !errdefs.IsNotFound(err) {
		t.Errorf("guest's NotFound reached the host as %v", errdefs.Resolve(err))
	}
	msg := err.Error()
	if len(msg) > MaxErrorMessage+100 || strings.IndexFunc(msg, unicode.IsControl) >= 0 || !strings.Contains(msg, "FAKE LOG LINE") {
		t.Errorf("guest's error reached the host as %d bytes: %.200q", len(msg), msg)
	}

	st, err := c.ReadOutput(ctx, &protocol.ReadOutputRequest{ContainerId: "c"})
	if err != nil {
		t.Fatal(err)
	}
	if d, err := st.Recv(); err != nil || string(d.Data) != "ok" {
		t.Fatalf("first message: %v %v", d, err)
	}
	if _, err := st.Recv(); err == nil || errdefs.Resolve(err) != errdefs.ErrUnknown {
		t.Errorf("oversized stream message: %v", err)
	}
	alive("an oversized stream message")
}

func TestSanitize(t *testing.T) {
	for in, want := range map[string]string{
		"plain":             "plain",
		"a\nb\r\x1b[0m\x00": "ab[0m",
		"bad \xff utf8":     "bad \uFFFD utf8",
		"bidi \u202e x":     "bidi  x",
	} {
		if got := sanitize(in, 100); got != want {
			t.Errorf("sanitize(%q) = %q, want %q", in, got, want)
		}
	}
	if got := sanitize(strings.Repeat("é", 1000), 1024); len(got) > 1024+3 {
		t.Errorf("sanitize kept %d bytes", len(got))
	}
}
