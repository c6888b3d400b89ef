package agent

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/hashicorp/yamux"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vc-cri/vc-cri/pkg/agent/protocol"
)

// fakeAgent answers Check and nothing else, like a guest whose agent runs
// an older protocol.
type fakeAgent struct {
	protocol.UnimplementedAgentServer
}

func (fakeAgent) Check(context.Context, *protocol.CheckRequest) (*protocol.CheckResponse, error) {
	return &protocol.CheckResponse{Version: "fake"}, nil
}

func TestDialReachesAgent(t *testing.T) {
	path := serveFake(t, 0, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, path)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	resp, err := c.Check(ctx, &protocol.CheckRequest{})
	if err != nil || resp.Version != "fake" {
		t.Fatalf("Check: %v, %v", resp, err)
	}
	_, err = c.GuestDetails(ctx, &protocol.GuestDetailsRequest{})
	// Unimplemented is not a code the host takes from a guest: Unknown,
	// its words kept.
	if errdefs.Resolve(err) != errdefs.ErrUnknown || !strings.Contains(err.Error(), "not implemented") {
		t.Fatalf("GuestDetails on a fake agent: %v, want Unknown", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// The host comes back, as after a daemon restart.
	c, err = Dial(ctx, path)
	if err != nil {
		t.Fatalf("Dial after Close: %v", err)
	}
	c.Close()
}

func TestDialWaitsForSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.sock")
	go func() {
		// The hypervisor creates the socket a moment after it starts.
		time.Sleep(200 * time.Millisecond)
		l, err := net.Listen("unix", path)
		if err != nil {
			return
		}
		t.Cleanup(func() { l.Close() })
		conn, err := l.Accept()
		if err != nil {
			return
		}
		session, _ := yamux.Server(conn, protocol.YamuxConfig())
		gs := grpc.NewServer()
		protocol.RegisterAgentServer(gs, fakeAgent{})
		t.Cleanup(gs.Stop)
		go gs.Serve(session)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, path)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	c.Close()
}

func TestDialGivesUpWithContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := Dial(ctx, filepath.Join(t.TempDir(), "none.sock"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial of a missing socket: %v, want DeadlineExceeded", err)
	}
}

func TestDialSilentAgent(t *testing.T) {
	// A socket whose guest never answers: a VM that hangs while booting.
	path := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := Dial(ctx, path); status.Code(err) != codes.DeadlineExceeded && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial of a silent agent: %v, want a deadline error", err)
	}
}

// serveFake serves fakeAgent as serveAgent does.
func serveFake(t *testing.T, drop int, sessions chan<- *yamux.Session) string {
	t.Helper()
	gs := grpc.NewServer()
	protocol.RegisterAgentServer(gs, fakeAgent{})
	return serveAgent(t, gs, drop, sessions)
}

// serveAgent plays QEMU's chardev server and the guest behind it, gs:
// every connection gets a fresh yamux session, as vc-agent starts one
// each time the host returns. The first drop connections are dropped at
// once, as a booting guest may drop a session it could not follow; each
// session is handed to sessions when that is not nil. It returns the
// socket's path; gs is stopped at the test's end.
func serveAgent(t testing.TB, gs *grpc.Server, drop int, sessions chan<- *yamux.Session) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for n := 0; ; n++ {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			if n < drop {
				conn.Close()
				continue
			}
			session, err := yamux.Server(conn, protocol.YamuxConfig())
			if err != nil {
				conn.Close()
				continue
			}
			if sessions != nil {
				sessions <- session
			}
			go gs.Serve(session)
		}
	}()
	t.Cleanup(func() { gs.Stop(); l.Close() })
	return path
}

// TestDialAgainAfterADroppedSession: a guest that drops the host's first
// sessions is reached on a later one, within the dial.
func TestDialAgainAfterADroppedSession(t *testing.T) {
	path := serveFake(t, 2, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := Dial(ctx, path)
	if err != nil {
		t.Fatalf("Dial of a guest that dropped two sessions: %v", err)
	}
	defer c.Close()
	if _, err := c.Check(ctx, &protocol.CheckRequest{}); err != nil {
		t.Fatalf("Check: %v", err)
	}
}

// TestLinkLostIsDialledAgain: when the guest drops a working session,
// the client connects again for the next call.
func TestLinkLostIsDialledAgain(t *testing.T) {
	sessions := make(chan *yamux.Session, 4)
	path := serveFake(t, 0, sessions)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := Dial(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	(<-sessions).Close() // the guest drops the link
	// A call in flight as the link drops may fail; the next one is
	// carried by a new session.
	if _, err := c.Check(ctx, &protocol.CheckRequest{}, grpc.WaitForReady(true)); err != nil {
		t.Logf("the call as the link dropped: %v", err)
		if _, err := c.Check(ctx, &protocol.CheckRequest{}, grpc.WaitForReady(true)); err != nil {
			t.Fatalf("Check after the link was lost: %v", err)
		}
	}
	select {
	case <-sessions:
	default:
		t.Fatal("the call was answered without a new session")
	}
}

// TestGuestError maps the guest's codes to the host's kinds: four are
// taken at their word, every other is Unknown, and a guest's deadline or
// cancellation is never the caller's.
func TestGuestError(t *testing.T) {
	for _, tc := range []struct {
		code codes.Code
		want error
	}{
		{codes.NotFound, errdefs.ErrNotFound},
		{codes.AlreadyExists, errdefs.ErrAlreadyExists},
		{codes.InvalidArgument, errdefs.ErrInvalidArgument},
		{codes.FailedPrecondition, errdefs.ErrFailedPrecondition},
		{codes.Unknown, errdefs.ErrUnknown},
		{codes.Internal, errdefs.ErrUnknown},
		{codes.Unavailable, errdefs.ErrUnknown},
		{codes.Unimplemented, errdefs.ErrUnknown},
		{codes.PermissionDenied, errdefs.ErrUnknown},
		{codes.Unauthenticated, errdefs.ErrUnknown},
		{codes.ResourceExhausted, errdefs.ErrUnknown},
		{codes.DeadlineExceeded, errdefs.ErrUnknown},
		{codes.Canceled, errdefs.ErrUnknown},
	} {
		t.Run(tc.code.String(), func(t *testing.T) {
			err := hostError(context.Background(), protocol.Agent_StartContainer_FullMethodName, status.Error(tc.code, "no\x1b[2J such\n container"))
			if got := errdefs.Resolve(err); got != tc.want {
				t.Errorf("kind %v, want %v", got, tc.want)
			}
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				t.Errorf("%v: the guest's word became the caller's", err)
			}
			if _, ok := status.FromError(err); ok {
				t.Errorf("%v: a gRPC status reached the host", err)
			}
			if want := "agent StartContainer: no[2J such container"; err.Error() != want {
				t.Errorf("message %q, want %q", err.Error(), want)
			}
		})
	}
	// The caller's own end keeps its meaning, whatever the guest said.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := hostError(ctx, protocol.Agent_StartContainer_FullMethodName, status.Error(codes.NotFound, "x")); !errors.Is(err, context.Canceled) || errdefs.IsNotFound(err) {
		t.Errorf("cancelled call: %v", err)
	}
}
