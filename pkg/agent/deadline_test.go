package agent

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vc-cri/vc-cri/pkg/agent/protocol"
)

// silentAgent accepts calls and never answers them, as a hung or
// hostile guest: each handler returns only when the host gives up.
// Check answers, so that Dial works.
type silentAgent struct {
	protocol.UnimplementedAgentServer
}

func (silentAgent) Check(context.Context, *protocol.CheckRequest) (*protocol.CheckResponse, error) {
	return &protocol.CheckResponse{Version: "silent"}, nil
}

func (silentAgent) StatsContainer(ctx context.Context, _ *protocol.ContainerRequest) (*protocol.StatsContainerResponse, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (silentAgent) WaitProcess(ctx context.Context, _ *protocol.ProcessRequest) (*protocol.WaitProcessResponse, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (silentAgent) ReadOutput(_ *protocol.ReadOutputRequest, st grpc.ServerStreamingServer[protocol.Data]) error {
	<-st.Context().Done()
	return st.Context().Err()
}

// shortBounds sets the default call and handshake bounds to d for the
// test.
func shortBounds(t *testing.T, d time.Duration) {
	t.Helper()
	call, handshake := callTimeout, handshakeTimeout
	callTimeout, handshakeTimeout = d, d
	t.Cleanup(func() { callTimeout, handshakeTimeout = call, handshake })
}

func dialSilent(t *testing.T) *Client {
	t.Helper()
	gs := grpc.NewServer()
	protocol.RegisterAgentServer(gs, silentAgent{})
	path := serveAgent(t, gs, 0, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, path)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// isHostDeadline tells whether err is a deadline of the host's own: a
// context.DeadlineExceeded, in errdefs' words too, and no gRPC status.
func isHostDeadline(err error) bool {
	_, isStatus := status.FromError(err)
	return errors.Is(err, context.DeadlineExceeded) && errdefs.IsDeadlineExceeded(err) && !isStatus
}

// TestUnaryCallDefaultDeadline: a call without a deadline of its own,
// which the guest never answers, ends with DeadlineExceeded after the
// default bound.
func TestUnaryCallDefaultDeadline(t *testing.T) {
	const bound = 200 * time.Millisecond
	shortBounds(t, bound)
	c := dialSilent(t)
	start := time.Now()
	_, err := c.StatsContainer(context.Background(), &protocol.ContainerRequest{ContainerId: "c"})
	took := time.Since(start)
	if !isHostDeadline(err) {
		t.Fatalf("StatsContainer of a silent guest: %v, want the host's DeadlineExceeded", err)
	}
	if took < bound/2 || took > bound+5*time.Second {
		t.Fatalf("StatsContainer gave up after %v, want about %v", took, bound)
	}
	// The link is not harmed: the next call is answered.
	if r, err := c.Check(context.Background(), &protocol.CheckRequest{}); err != nil || r.Version != "silent" {
		t.Fatalf("Check after a call timed out: %v, %v", r, err)
	}
}

// TestUnaryCallKeepsCallerDeadline: a caller's deadline, even one beyond
// the default bound, is the call's.
func TestUnaryCallKeepsCallerDeadline(t *testing.T) {
	const bound = 100 * time.Millisecond
	shortBounds(t, bound)
	c := dialSilent(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*bound)
	defer cancel()
	start := time.Now()
	_, err := c.StatsContainer(ctx, &protocol.ContainerRequest{ContainerId: "c"})
	if took := time.Since(start); took < 4*bound {
		t.Fatalf("StatsContainer with a deadline of %v gave up after %v: the default bound replaced the caller's", 5*bound, took)
	}
	if !errors.Is(err, context.DeadlineExceeded) || status.Code(err) == codes.DeadlineExceeded {
		t.Fatalf("StatsContainer past the caller's deadline: %v", err)
	}
}

// TestWaitProcessHasNoDefaultDeadline: WaitProcess waits as long as the
// process lives, well beyond the default bound, until the caller stops.
func TestWaitProcessHasNoDefaultDeadline(t *testing.T) {
	const bound = 100 * time.Millisecond
	shortBounds(t, bound)
	c := dialSilent(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.WaitProcess(ctx, &protocol.ProcessRequest{ContainerId: "c"})
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("WaitProcess ended after less than %v: %v", 10*bound, err)
	case <-time.After(10 * bound):
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled WaitProcess: %v, want Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WaitProcess did not end with its caller's context")
	}
}

// TestStreamHandshakeDeadline: a stream whose headers never come ends
// with DeadlineExceeded after the handshake bound, however long the
// caller's context lasts.
func TestStreamHandshakeDeadline(t *testing.T) {
	const bound = 200 * time.Millisecond
	shortBounds(t, bound)
	c := dialSilent(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := c.ReadOutput(ctx, &protocol.ReadOutputRequest{ContainerId: "c"})
	if err != nil {
		t.Fatalf("ReadOutput: %v", err)
	}
	start := time.Now()
	_, err = st.Header()
	took := time.Since(start)
	if !isHostDeadline(err) {
		t.Fatalf("Header of a stream the guest never attaches: %v, want the host's DeadlineExceeded", err)
	}
	if took < bound/2 || took > bound+5*time.Second {
		t.Fatalf("Header gave up after %v, want about %v", took, bound)
	}
	// The stream is over, with the same error.
	if _, err := st.Recv(); !isHostDeadline(err) {
		t.Fatalf("Recv after the handshake timed out: %v, want the host's DeadlineExceeded", err)
	}
}

// TestStreamWithHeadersOutlivesHandshake: once the guest sent its
// headers, the stream lasts beyond the handshake bound.
func TestStreamWithHeadersOutlivesHandshake(t *testing.T) {
	const bound = 100 * time.Millisecond
	shortBounds(t, bound)
	gs := grpc.NewServer()
	protocol.RegisterAgentServer(gs, slowOutputAgent{wait: 5 * bound})
	path := serveAgent(t, gs, 0, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st, err := c.ReadOutput(context.Background(), &protocol.ReadOutputRequest{ContainerId: "c"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Header(); err != nil {
		t.Fatalf("Header: %v", err)
	}
	if d, err := st.Recv(); err != nil || string(d.GetData()) != "late" {
		t.Fatalf("output sent after %v: %v, %v", 5*bound, d, err)
	}
}

// slowOutputAgent attaches a stream at once and writes to it after wait.
type slowOutputAgent struct {
	protocol.UnimplementedAgentServer
	wait time.Duration
}

func (slowOutputAgent) Check(context.Context, *protocol.CheckRequest) (*protocol.CheckResponse, error) {
	return &protocol.CheckResponse{Version: "slow"}, nil
}

func (a slowOutputAgent) ReadOutput(_ *protocol.ReadOutputRequest, st grpc.ServerStreamingServer[protocol.Data]) error {
	if err := st.SendHeader(nil); err != nil {
		return err
	}
	time.Sleep(a.wait)
	return st.Send(&protocol.Data{Data: []byte("late")})
}

// TestFailureAtTheDeadlineIsTheDeadline: the guest, told the deadline,
// may end a call a moment before the host's timer fires; that failure is
// the caller's deadline. Well before it, the guest's error is its own.
func TestFailureAtTheDeadlineIsTheDeadline(t *testing.T) {
	guest := status.Error(codes.Canceled, "stream terminated by RST_STREAM")
	ctx, cancel := context.WithTimeout(context.Background(), deadlineSlack/2)
	defer cancel()
	if err := hostError(ctx, protocol.Agent_StatsContainer_FullMethodName, guest); !isHostDeadline(err) {
		t.Errorf("a failure %v before the deadline: %v, want the host's DeadlineExceeded", deadlineSlack/2, err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := hostError(ctx, protocol.Agent_StatsContainer_FullMethodName, guest); errors.Is(err, context.DeadlineExceeded) || errdefs.Resolve(err) != errdefs.ErrUnknown {
		t.Errorf("a failure a minute before the deadline: %v, want the guest's Unknown", err)
	}
}
