// Package agent is the host side of the agent protocol: it connects to
// the vc-agent of a pod VM and carries process IO over the link.
package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/containerd/errdefs"
	"github.com/hashicorp/yamux"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/vc-cri/vc-cri/pkg/agent/protocol"
)

// The guest is untrusted: it may own its kernel and answer anything.
// What it answers is bounded here, before the rest of the host sees it:
// each reply's size (MaxReply, MaxSmallReply for the calls whose answers
// are small), its headers (MaxHeaderList), the streams it may open
// towards the host (none: accepted and closed at once, behind a backlog
// of acceptBacklog), how long it may keep a call unanswered
// (DefaultCallTimeout, HandshakeTimeout), and its errors, which become
// the host's own (hostError, GuestError).
const (
	// MaxReply bounds any message the agent sends.
	MaxReply = 1 << 20
	// MaxSmallReply bounds the replies of smallReplies.
	MaxSmallReply = 64 << 10
	// MaxHeaderList bounds the headers and trailers of a reply.
	MaxHeaderList = 16 << 10
	// MaxErrorMessage bounds the guest's words in a host error.
	MaxErrorMessage = 1 << 10

	acceptBacklog = 4
	streamWindow  = 1 << 20
	linkWindow    = 4 << 20
)

// smallReplies are the calls whose replies are a few fields or numbers.
var smallReplies = map[string]bool{
	protocol.Agent_Check_FullMethodName:          true,
	protocol.Agent_GuestDetails_FullMethodName:   true,
	protocol.Agent_ResizeGuest_FullMethodName:    true,
	protocol.Agent_StatsContainer_FullMethodName: true,
	protocol.Agent_WaitProcess_FullMethodName:    true,
	protocol.Agent_ProcessStatus_FullMethodName:  true,
}

// Client is a connection to one guest agent. Its embedded AgentClient
// carries the protocol's calls.
type Client struct {
	protocol.AgentClient

	link *link
	grpc *grpc.ClientConn
}

// link is the multiplexed connection to the agent socket under the gRPC
// client. When its yamux session ends (the guest dropped a session it
// could not follow while it booted, say), the next gRPC connection
// attempt makes a new one over a new connection to the socket: the guest
// sees the host leave and come back, and starts a fresh session too.
type link struct {
	socketPath string

	mu      sync.Mutex
	conn    net.Conn       // guarded by mu
	session *yamux.Session // guarded by mu; nil or closed: connect again
	closed  bool           // guarded by mu; set by Client.Close
}

// stream opens a stream of the session for a gRPC transport, making a
// session first if there is none alive.
func (l *link) stream(ctx context.Context, _ string) (net.Conn, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.connectLocked(ctx); err != nil {
		return nil, err
	}
	return l.session.Open()
}

// connect makes the session if there is none alive.
func (l *link) connect(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.connectLocked(ctx)
}

func (l *link) connectLocked(ctx context.Context) error {
	if l.closed {
		return net.ErrClosed
	}
	if l.session != nil && !l.session.IsClosed() {
		return nil
	}
	if l.conn != nil {
		_ = l.conn.Close()
	}
	conn, err := dialUnix(ctx, l.socketPath)
	if err != nil {
		return err
	}
	session, err := yamux.Client(conn, hostYamuxConfig())
	if err != nil {
		conn.Close()
		return fmt.Errorf("agent link: %w", err)
	}
	go refuseStreams(session)
	l.conn, l.session = conn, session
	return nil
}

func (l *link) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.session != nil {
		_ = l.session.Close()
	}
	if l.conn != nil {
		_ = l.conn.Close()
	}
}

// Dial connects to the agent behind the hypervisor's unix socket (the
// virtio-serial port's chardev) and returns once the agent answers, or
// when ctx ends. The socket may not exist yet while the hypervisor
// starts, and the guest may still be booting: both are waited for. opts
// add to the client's own options (a caller's interceptors, say).
func Dial(ctx context.Context, socketPath string, opts ...grpc.DialOption) (*Client, error) {
	l := &link{socketPath: socketPath}
	// Connected here, so that a socket that never appears fails the dial
	// with its own error.
	if err := l.connect(ctx); err != nil {
		return nil, err
	}
	gc, err := grpc.NewClient("passthrough:///vc-agent", append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(l.stream),
		// A guest still booting may drop the first session: try again soon.
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{
			BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second,
		}, MinConnectTimeout: 20 * time.Second}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxReply)),
		grpc.WithMaxHeaderListSize(MaxHeaderList),
		// Fixed flow-control windows (no BDP growth to 16 MiB): what the
		// guest sends ahead of the host's reading is bounded per stream
		// and per link.
		grpc.WithInitialWindowSize(streamWindow),
		grpc.WithInitialConnWindowSize(linkWindow),
		grpc.WithChainUnaryInterceptor(boundUnary),
		grpc.WithChainStreamInterceptor(boundStream),
	}, opts...)...)
	if err != nil {
		l.close()
		return nil, fmt.Errorf("agent client: %w", err)
	}
	c := &Client{AgentClient: protocol.NewAgentClient(gc), link: l, grpc: gc}
	// A Check in flight when a booting guest drops the session fails:
	// ask again, on the session made next, until ctx ends.
	for {
		_, err := c.Check(ctx, &protocol.CheckRequest{}, grpc.WaitForReady(true))
		if err == nil {
			return c, nil
		}
		if ctx.Err() != nil {
			c.Close()
			return nil, fmt.Errorf("agent at %s did not answer: %w", socketPath, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(checkRetryDelay):
		}
	}
}

// checkRetryDelay spaces Dial's Checks after one failed.
const checkRetryDelay = 50 * time.Millisecond

// hostYamuxConfig is the shared configuration with a small backlog: the
// host accepts no stream from the guest.
func hostYamuxConfig() *yamux.Config {
	cfg := protocol.YamuxConfig()
	cfg.AcceptBacklog = acceptBacklog
	// A guest that stops answering (a frozen kernel, a stopped agent)
	// keeps its socket open: only a ping it leaves unanswered for
	// ConnectionWriteTimeout ends the session, which LinkDown reports.
	cfg.EnableKeepAlive = true
	cfg.KeepAliveInterval = keepAliveInterval
	return cfg
}

// keepAliveInterval spaces the host's pings of the guest.
const keepAliveInterval = 15 * time.Second

// LinkDown returns a channel closed when the link's current session
// ends: the guest dropped it or stopped answering, or the client was
// closed. The next call makes a new session, so a caller that sees it
// close may call Check to find whether the guest is still there.
func (c *Client) LinkDown() <-chan struct{} {
	c.link.mu.Lock()
	defer c.link.mu.Unlock()
	if c.link.session == nil {
		down := make(chan struct{})
		close(down)
		return down
	}
	return c.link.session.CloseChan()
}

// refuseStreams closes every stream the guest opens, until the session
// ends: unaccepted, each would hold a buffer of the host's.
func refuseStreams(session *yamux.Session) {
	for {
		st, err := session.AcceptStream()
		if err != nil {
			return
		}
		_ = st.Close()
	}
}

// DefaultCallTimeout bounds a unary call whose caller gave no deadline.
// A guest may accept a call and never answer it (hung, or hostile): the
// caller, and the sandbox lock it often holds, would wait forever. A
// working agent answers every call but WaitProcess at once, or within
// seconds for those that start or stop processes (CreateContainer runs
// runc); 30 s leaves room for a TCG guest on a loaded host. Callers that
// know better pass a deadline of their own, which is kept as it is.
const DefaultCallTimeout = 30 * time.Second

// HandshakeTimeout bounds the wait for a stream's headers: the guest
// sends them as soon as it has attached the stream (ReadOutput sends
// them before any output), however long the stream then lasts.
const HandshakeTimeout = 30 * time.Second

// The bounds in force: the tests shorten them.
var (
	callTimeout      = DefaultCallTimeout
	handshakeTimeout = HandshakeTimeout
)

// unboundedCalls are the unary calls that legitimately last as long as
// something in the guest does, and get no default deadline: WaitProcess
// returns when the process exits, which may be never. Their callers
// bound them (stopContainerProcesses does) or cancel them.
var unboundedCalls = map[string]bool{
	protocol.Agent_WaitProcess_FullMethodName: true,
}

func boundUnary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if smallReplies[method] {
		opts = append(opts, grpc.MaxCallRecvMsgSize(MaxSmallReply))
	}
	callCtx := ctx
	if _, ok := ctx.Deadline(); !ok && !unboundedCalls[method] {
		var cancel context.CancelFunc
		callCtx, cancel = context.WithTimeout(ctx, callTimeout)
		defer cancel()
	}
	err := invoker(callCtx, method, req, reply, cc, opts...)
	if err != nil && ctxErr(ctx) == nil && ctxErr(callCtx) != nil {
		return noAnswer(method, callTimeout)
	}
	return hostError(ctx, method, err)
}

// deadlineSlack is how long before a deadline a failed call counts as
// ended by it: gRPC tells the guest the deadline, and the guest may end
// the call a moment before the host's own timer has fired.
const deadlineSlack = 20 * time.Millisecond

// ctxErr is ctx's error, or DeadlineExceeded once its deadline is less
// than deadlineSlack away.
func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && time.Until(d) < deadlineSlack {
		return context.DeadlineExceeded
	}
	return nil
}

// noAnswer is the error of a call the guest did not answer within the
// host's own bound d: a deadline of the host's, never the guest's word.
func noAnswer(method string, d time.Duration) error {
	return fmt.Errorf("agent %s: no answer within %v: %w", path.Base(method), d, context.DeadlineExceeded)
}

func boundStream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	// The stream runs on a context of its own, which a Header that waits
	// beyond handshakeTimeout cancels.
	sctx, cancel := context.WithCancelCause(ctx)
	cs, err := streamer(sctx, desc, cc, method, opts...)
	if err != nil {
		cancel(nil)
		return nil, hostError(ctx, method, err)
	}
	return &boundClientStream{ClientStream: cs, ctx: ctx, sctx: sctx, cancel: cancel, method: method, serverStreams: desc.ServerStreams}, nil
}

// boundClientStream words a stream's errors as the host's, and bounds
// the wait for its headers.
type boundClientStream struct {
	grpc.ClientStream
	ctx    context.Context // the caller's: read, never kept beyond the stream
	sctx   context.Context // the stream's, below ctx
	cancel context.CancelCauseFunc
	method string
	// serverStreams: the guest sends a stream, which ends with an error
	// or io.EOF; else its one reply ends it.
	serverStreams bool
}

// errHandshake is the cause of a stream cancelled as its headers did not
// come in time.
var errHandshake = errors.New("no stream headers in time")

// Header waits for the stream's headers, at most handshakeTimeout: a
// guest that accepts a stream and never attaches it ends it, and Header
// fails with the host's DeadlineExceeded. Otherwise, as gRPC's, it
// returns no headers and no error for a stream that ended without
// headers: RecvMsg tells how.
func (s *boundClientStream) Header() (metadata.MD, error) {
	d := handshakeTimeout
	t := time.AfterFunc(d, func() { s.cancel(errHandshake) })
	md, err := s.ClientStream.Header()
	t.Stop()
	if md == nil && s.ctx.Err() == nil && errors.Is(context.Cause(s.sctx), errHandshake) {
		return nil, noAnswer(s.method, d)
	}
	if err != nil {
		s.cancel(nil)
		return nil, hostError(s.ctx, s.method, err)
	}
	return md, nil
}

// RecvMsg receives the next message; the end of the stream, or its
// failure, frees the stream's context.
func (s *boundClientStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err != nil || !s.serverStreams {
		s.cancel(nil)
	}
	if err != nil && err != io.EOF && s.ctx.Err() == nil && errors.Is(context.Cause(s.sctx), errHandshake) {
		return noAnswer(s.method, handshakeTimeout)
	}
	return hostError(s.ctx, s.method, err)
}

// SendMsg sends a message; a failure other than io.EOF (the guest ended
// the stream: RecvMsg tells how) ends the stream.
func (s *boundClientStream) SendMsg(m any) error {
	err := s.ClientStream.SendMsg(m)
	if err != nil && err != io.EOF {
		s.cancel(nil)
	}
	return hostError(s.ctx, s.method, err)
}

func (s *boundClientStream) CloseSend() error {
	return hostError(s.ctx, s.method, s.ClientStream.CloseSend())
}

// hostError turns an error of a call to the agent into the host's: the
// caller's own cancellation or deadline stays that (a failure within
// deadlineSlack of the deadline is the deadline's); anything else is
// GuestError's. io.EOF, the end of a stream, stays as it is.
func hostError(ctx context.Context, method string, err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	if cerr := ctxErr(ctx); cerr != nil {
		return fmt.Errorf("agent %s: %w", path.Base(method), cerr)
	}
	return GuestError(method, err)
}

// guestKinds are the codes of the guest's answers that the host takes at
// their word, as the errdefs kinds they map to: each says no more than
// that the request did not fit the guest's state, which the guest knows
// best. Any other code, chosen by the guest or by the link, is Unknown:
// a guest must not make the host report a deadline, a cancellation or
// an authentication of its own.
var guestKinds = map[codes.Code]error{
	codes.NotFound:           errdefs.ErrNotFound,
	codes.AlreadyExists:      errdefs.ErrAlreadyExists,
	codes.InvalidArgument:    errdefs.ErrInvalidArgument,
	codes.FailedPrecondition: errdefs.ErrFailedPrecondition,
}

// GuestError is err, the error of a call to the agent's method, in the
// host's words: "agent <call>: <message>", with the guest's message cut
// to MaxErrorMessage bytes of printable text, wrapping the errdefs kind
// of its code (guestKinds), or none.
func GuestError(method string, err error) error {
	st, _ := status.FromError(err)
	return &guestError{
		msg:  "agent " + path.Base(method) + ": " + sanitize(st.Message(), MaxErrorMessage),
		kind: guestKinds[st.Code()],
	}
}

// guestError is a GuestError.
type guestError struct {
	msg  string
	kind error // nil: Unknown
}

func (e *guestError) Error() string { return e.msg }
func (e *guestError) Unwrap() error { return e.kind }

// sanitize keeps at most max bytes of valid UTF-8 from msg, without
// control characters.
func sanitize(msg string, max int) string {
	var b strings.Builder
	for _, r := range strings.ToValidUTF8(msg, "\uFFFD") {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || unicode.Is(unicode.Bidi_Control, r) {
			continue
		}
		if b.Len()+utf8.RuneLen(r) > max {
			b.WriteString("...")
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}

func dialUnix(ctx context.Context, path string) (net.Conn, error) {
	var d net.Dialer
	for {
		conn, err := d.DialContext(ctx, "unix", path)
		if err == nil {
			return conn, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("connect to agent socket %s: %w", path, errors.Join(ctx.Err(), err))
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Close ends the link. The guest sees the host leave and waits for the
// next connection; nothing in the guest stops.
func (c *Client) Close() error {
	err := c.grpc.Close()
	c.link.close()
	return err
}
