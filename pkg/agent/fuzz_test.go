package agent

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode"

	"github.com/containerd/errdefs"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/vc-cri/vc-cri/pkg/agent/protocol"
)

// The fuzz target plays a guest that answers the host's calls with
// whatever bytes the fuzzer makes: replies that are no protobuf, or
// oversized, or many stream messages, headers and trailers of any size,
// errors of any code and words. The host's client must never panic, must
// word every failure as the host's (no gRPC status, a sanitized message,
// one of the kinds it takes from a guest), must hand over exactly what
// the guest sent when it takes it, within the reply bounds, and must keep
// the link working.

// fuzzCall is one call of the host the fuzzer answers.
type fuzzCall struct {
	method string
	// reply is an empty reply message of the call; nil for streams.
	reply proto.Message
	// stream: the guest answers with many messages, of protocol.Data.
	stream bool
	// call makes the call, returning the messages it received.
	call func(ctx context.Context, c *Client) ([]proto.Message, error)
}

func unary[Req, Resp proto.Message](req Req, call func(protocol.AgentClient, context.Context, Req, ...grpc.CallOption) (Resp, error)) func(context.Context, *Client) ([]proto.Message, error) {
	return func(ctx context.Context, c *Client) ([]proto.Message, error) {
		r, err := call(c, ctx, req)
		if err != nil {
			return nil, err
		}
		return []proto.Message{r}, nil
	}
}

var fuzzCalls = []fuzzCall{
	{method: protocol.Agent_Check_FullMethodName, reply: &protocol.CheckResponse{},
		call: unary(&protocol.CheckRequest{}, protocol.AgentClient.Check)},
	{method: protocol.Agent_GuestDetails_FullMethodName, reply: &protocol.GuestDetailsResponse{},
		call: unary(&protocol.GuestDetailsRequest{}, protocol.AgentClient.GuestDetails)},
	{method: protocol.Agent_StatsContainer_FullMethodName, reply: &protocol.StatsContainerResponse{},
		call: unary(&protocol.ContainerRequest{ContainerId: "c"}, protocol.AgentClient.StatsContainer)},
	{method: protocol.Agent_ListProcesses_FullMethodName, reply: &protocol.ListProcessesResponse{},
		call: unary(&protocol.ListProcessesRequest{ContainerId: "c"}, protocol.AgentClient.ListProcesses)},
	{method: protocol.Agent_WaitProcess_FullMethodName, reply: &protocol.WaitProcessResponse{},
		call: unary(&protocol.ProcessRequest{ContainerId: "c"}, protocol.AgentClient.WaitProcess)},
	{method: protocol.Agent_ProcessStatus_FullMethodName, reply: &protocol.ProcessStatusResponse{},
		call: unary(&protocol.ProcessRequest{ContainerId: "c"}, protocol.AgentClient.ProcessStatus)},
	{method: protocol.Agent_ExecProcess_FullMethodName, reply: &protocol.Empty{},
		call: unary(&protocol.ExecProcessRequest{ContainerId: "c", ExecId: "e"}, protocol.AgentClient.ExecProcess)},
	{method: protocol.Agent_SignalProcess_FullMethodName, reply: &protocol.Empty{},
		call: unary(&protocol.SignalProcessRequest{ContainerId: "c", Signal: 9}, protocol.AgentClient.SignalProcess)},
	{method: protocol.Agent_ReadOutput_FullMethodName, stream: true,
		call: func(ctx context.Context, c *Client) ([]proto.Message, error) {
			st, err := c.ReadOutput(ctx, &protocol.ReadOutputRequest{ContainerId: "c"})
			if err != nil {
				return nil, err
			}
			if _, err := st.Header(); err != nil {
				return nil, err
			}
			return recvAll(st.Recv)
		}},
	{method: protocol.Agent_PortForward_FullMethodName, stream: true,
		call: func(ctx context.Context, c *Client) ([]proto.Message, error) {
			st, err := c.PortForward(ctx)
			if err != nil {
				return nil, err
			}
			if err := st.Send(&protocol.PortForwardRequest{Port: 80}); err != nil && err != io.EOF {
				return nil, err
			}
			return recvAll(st.Recv)
		}},
	{method: protocol.Agent_WriteStdin_FullMethodName, reply: &protocol.Empty{},
		call: func(ctx context.Context, c *Client) ([]proto.Message, error) {
			st, err := c.WriteStdin(ctx)
			if err != nil {
				return nil, err
			}
			if err := st.Send(&protocol.WriteStdinRequest{ContainerId: "c", Data: []byte("in")}); err != nil && err != io.EOF {
				return nil, err
			}
			r, err := st.CloseAndRecv()
			if err != nil {
				return nil, err
			}
			return []proto.Message{r}, nil
		}},
}

// maxFuzzFrames bounds the stream messages of one answer, and the
// host's receiving of them.
const maxFuzzFrames = 64

func recvAll(recv func() (*protocol.Data, error)) ([]proto.Message, error) {
	var got []proto.Message
	for i := 0; i <= maxFuzzFrames; i++ {
		d, err := recv()
		if err == io.EOF {
			return got, nil
		}
		if err != nil {
			return got, err
		}
		got = append(got, d)
	}
	return got, fmt.Errorf("more than %d stream messages received", maxFuzzFrames)
}

// fuzzAnswer is the guest's answer to one call, decoded from the
// fuzzer's bytes by parseAnswer:
//
//	[0] the call (fuzzCalls, modulo)
//	[1] bits 0-1: 0 messages then OK, 1 messages then an error, 2 an error
//	    alone, 3 OK without any message; bit 2: headers; bit 3: trailers
//	[2] each message is its bytes repeated 1<<([2]%16) times, up to 2 MiB
//	[3] the error's code; [4:6] its message's length, then the message
//	headers, then trailers when asked for: [2 bytes] a value's length
//	the rest: the messages: a unary call's whole; a stream's, each as
//	[2 bytes] length, then the bytes, at most maxFuzzFrames
type fuzzAnswer struct {
	call              int
	messages          [][]byte
	err               *status.Status // nil: OK
	header, trailer   int            // bytes of a value; 0: none
	sendMsg, isStream bool
}

const maxFuzzMessage = 2 << 20

func parseAnswer(data []byte) fuzzAnswer {
	in := fuzzBytes(data)
	a := fuzzAnswer{call: int(in.byte()) % len(fuzzCalls)}
	call := fuzzCalls[a.call]
	a.isStream = call.stream
	flags := in.byte()
	outcome := flags & 3
	copies := 1 << (in.byte() % 16)
	code := codes.Code(in.byte())
	msg := in.take(int(in.uint16()))
	if flags&4 != 0 {
		a.header = int(in.uint16())
	}
	if flags&8 != 0 {
		a.trailer = int(in.uint16())
	}
	if outcome == 1 || outcome == 2 {
		if code == codes.OK {
			code = codes.Unknown
		}
		a.err = status.New(code, string(msg))
	}
	repeat := func(b []byte) []byte {
		n := copies
		if len(b) > 0 && n*len(b) > maxFuzzMessage {
			n = maxFuzzMessage / len(b)
		}
		return bytes.Repeat(b, n)
	}
	if outcome >= 2 {
		return a
	}
	if !call.stream {
		a.messages = [][]byte{repeat(in.rest())}
		return a
	}
	for len(in) > 0 && len(a.messages) < maxFuzzFrames {
		a.messages = append(a.messages, repeat(in.take(int(in.uint16()))))
	}
	return a
}

// encode is the input parseAnswer decodes into the answer of call i with
// the messages msgs, OK, no headers.
func encodeAnswer(i int, msgs ...proto.Message) []byte {
	out := []byte{byte(i), 0, 0, 0, 0, 0}
	for _, m := range msgs {
		b, err := proto.Marshal(m)
		if err != nil {
			panic(err)
		}
		if fuzzCalls[i].stream {
			out = binary.BigEndian.AppendUint16(out, uint16(len(b)))
		}
		out = append(out, b...)
	}
	return out
}

// fuzzBytes reads an input from its start; past its end, it reads zeros.
type fuzzBytes []byte

func (b *fuzzBytes) byte() byte {
	if len(*b) == 0 {
		return 0
	}
	c := (*b)[0]
	*b = (*b)[1:]
	return c
}

func (b *fuzzBytes) uint16() uint16 { return uint16(b.byte())<<8 | uint16(b.byte()) }

func (b *fuzzBytes) take(n int) []byte {
	n = min(n, len(*b))
	out := (*b)[:n]
	*b = (*b)[n:]
	return out
}

func (b *fuzzBytes) rest() []byte { return b.take(len(*b)) }

// rawMessage is a message of the fuzzing guest's, as it goes on the wire.
type rawMessage []byte

// rawCodec lets the fuzzing guest read and send raw bytes.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	switch m := v.(type) {
	case *rawMessage:
		return *m, nil
	case proto.Message:
		return proto.Marshal(m)
	}
	return nil, fmt.Errorf("raw codec: %T", v)
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	m, ok := v.(*rawMessage)
	if !ok {
		return fmt.Errorf("raw codec: %T", v)
	}
	*m = append((*m)[:0], data...)
	return nil
}

func (rawCodec) Name() string { return "proto" }

// fuzzGuest answers every call with its current answer; Check, unless it
// is the call answered, as an agent would, so that the link is made and
// tested with it.
type fuzzGuest struct {
	answer atomic.Pointer[fuzzAnswer]
}

func (g *fuzzGuest) handle(_ any, st grpc.ServerStream) error {
	method, _ := grpc.MethodFromServerStream(st)
	a := g.answer.Load()
	if a == nil || fuzzCalls[a.call].method != method {
		if method != protocol.Agent_Check_FullMethodName {
			return status.Error(codes.Unimplemented, method)
		}
		var req rawMessage
		if err := st.RecvMsg(&req); err != nil {
			return err
		}
		return st.SendMsg(&protocol.CheckResponse{Version: "fuzz"})
	}
	var req rawMessage
	if err := st.RecvMsg(&req); err != nil {
		return err
	}
	if a.header > 0 {
		if err := st.SendHeader(metadata.Pairs("x-fuzz-bin", strings.Repeat("h", a.header))); err != nil {
			return err
		}
	}
	for _, m := range a.messages {
		m := rawMessage(m)
		if err := st.SendMsg(&m); err != nil {
			return err
		}
	}
	if a.trailer > 0 {
		st.SetTrailer(metadata.Pairs("x-fuzz-bin", strings.Repeat("t", a.trailer)))
	}
	if a.err != nil {
		return a.err.Err()
	}
	return nil
}

// hostKinds are the kinds an error of the guest may have on the host.
var hostKinds = map[error]bool{
	errdefs.ErrUnknown: true, errdefs.ErrNotFound: true, errdefs.ErrAlreadyExists: true,
	errdefs.ErrInvalidArgument: true, errdefs.ErrFailedPrecondition: true,
}

func FuzzAgentReplies(f *testing.F) {
	for i, c := range fuzzCalls {
		switch c.method {
		case protocol.Agent_Check_FullMethodName:
			f.Add(encodeAnswer(i, &protocol.CheckResponse{Version: "0.1.0"}))
		case protocol.Agent_GuestDetails_FullMethodName:
			f.Add(encodeAnswer(i, &protocol.GuestDetailsResponse{AgentVersion: "0.1.0", KernelRelease: "6.1.0-vc", MemoryTotalBytes: 2 << 30, Cpus: 1, UptimeSeconds: 3.5, HugepageSizes: []uint64{2 << 20, 1 << 30}}))
		case protocol.Agent_StatsContainer_FullMethodName:
			f.Add(encodeAnswer(i, &protocol.StatsContainerResponse{
				CpuUsageNanos: 12e9, CpuUserNanos: 8e9, CpuSystemNanos: 4e9, MemoryUsageBytes: 10 << 20, MemoryWorkingSetBytes: 8 << 20,
				MemoryRssBytes: 6 << 20, MemoryLimitBytes: 1<<64 - 1, Pids: 3, Threads: 4, PageFaults: 1000, MajorPageFaults: 2,
				TimestampUnixNano: time.Now().UnixNano(), FileDescriptors: 12, UlimitNofileSoft: 1024,
				Interfaces: []*protocol.InterfaceStats{{Name: "lo", RxBytes: 100, TxBytes: 100}, {Name: "eth0", RxBytes: 1 << 20, RxPackets: 900, TxBytes: 1 << 10, TxPackets: 12}},
			}))
		case protocol.Agent_ListProcesses_FullMethodName:
			f.Add(encodeAnswer(i, &protocol.ListProcessesResponse{ProcessList: []byte("PID CMD\n1 sleep\n")}))
			f.Add(encodeAnswer(i, &protocol.ListProcessesResponse{ProcessList: []byte("[1,23]")}))
		case protocol.Agent_WaitProcess_FullMethodName:
			f.Add(encodeAnswer(i, &protocol.WaitProcessResponse{ExitCode: 137, ExitedAtUnixNano: time.Now().UnixNano(), OomKilled: true}))
		case protocol.Agent_ProcessStatus_FullMethodName:
			f.Add(encodeAnswer(i, &protocol.ProcessStatusResponse{}))
			f.Add(encodeAnswer(i, &protocol.ProcessStatusResponse{Exited: true, Exit: &protocol.WaitProcessResponse{ExitCode: 1, ExitedAtUnixNano: time.Now().UnixNano()}}))
		case protocol.Agent_ReadOutput_FullMethodName, protocol.Agent_PortForward_FullMethodName:
			f.Add(encodeAnswer(i, &protocol.Data{Data: []byte("hello\n")}, &protocol.Data{}, &protocol.Data{Data: []byte("world\n")}))
		default:
			f.Add(encodeAnswer(i, &protocol.Empty{}))
		}
	}
	// Shapes of hostile answers: an error with escapes; 64 KiB of
	// headers; a small reply past its bound (a 32 KiB list repeated).
	f.Add([]byte{5, 2, 0, byte(codes.NotFound), 0, 12, 'n', 'o', '\x1b', '[', '2', 'J', '\n', 's', 'u', 'c', 'h', '!'})
	f.Add([]byte{1, 4, 0, 0, 0, 0, 0xff, 0xff})
	big := encodeAnswer(2, &protocol.StatsContainerResponse{Interfaces: []*protocol.InterfaceStats{{Name: strings.Repeat("x", 4<<10)}}})
	big[2] = 5 // 32 copies: 128 KiB
	f.Add(big)

	g, c := dialFuzzGuest(f)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzAnswerOnce(t, g, c, data) })
}

// dialFuzzGuest serves a fuzzGuest and connects to it.
func dialFuzzGuest(tb testing.TB) (*fuzzGuest, *Client) {
	tb.Helper()
	g := &fuzzGuest{}
	gs := grpc.NewServer(grpc.ForceServerCodec(rawCodec{}), grpc.UnknownServiceHandler(g.handle), grpc.MaxSendMsgSize(64<<20))
	path := serveAgent(tb, gs, 0, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := Dial(ctx, path)
	if err != nil {
		tb.Fatalf("Dial: %v", err)
	}
	tb.Cleanup(func() { c.Close() })
	return g, c
}

// fuzzAnswerOnce has the guest answer a call as data says and checks
// what the host made of it; it returns the call's error.
func fuzzAnswerOnce(t *testing.T, g *fuzzGuest, c *Client, data []byte) error {
	t.Helper()
	a := parseAnswer(data)
	call := fuzzCalls[a.call]
	g.answer.Store(&a)
	defer g.answer.Store(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got, err := call.call(ctx, c)
	if ctx.Err() != nil {
		t.Fatalf("%s: the host still waited after %v: %v", call.method, 20*time.Second, err)
	}
	if err != nil {
		checkHostError(t, call.method, err)
	}
	checkReceived(t, call, a, got, err)

	// Whatever the guest answered, the link carries the next call.
	g.answer.Store(nil)
	if r, err := c.Check(ctx, &protocol.CheckRequest{}, grpc.WaitForReady(true)); err != nil || r.GetVersion() != "fuzz" {
		t.Fatalf("Check after %s's answer: %v, %v", call.method, r, err)
	}
	return err
}

// TestFuzzGuestShapes: the fuzzing guest's answers reach the host as
// meant: good replies are taken whole, hostile ones refused.
func TestFuzzGuestShapes(t *testing.T) {
	g, c := dialFuzzGuest(t)
	for i, call := range fuzzCalls {
		var msgs []proto.Message
		switch {
		case call.stream:
			msgs = []proto.Message{&protocol.Data{Data: []byte("a")}, &protocol.Data{Data: []byte("b")}}
		case call.method == protocol.Agent_WaitProcess_FullMethodName:
			msgs = []proto.Message{&protocol.WaitProcessResponse{ExitCode: 3}}
		default:
			msgs = []proto.Message{call.reply}
		}
		if err := fuzzAnswerOnce(t, g, c, encodeAnswer(i, msgs...)); err != nil {
			t.Errorf("%s: a good answer failed: %v", call.method, err)
		}
	}
	big := encodeAnswer(2, &protocol.StatsContainerResponse{Interfaces: []*protocol.InterfaceStats{{Name: strings.Repeat("x", 4<<10)}}})
	big[2] = 5
	for name, data := range map[string][]byte{
		"NotFound with escapes": {5, 2, 0, byte(codes.NotFound), 0, 3, 'n', '\x1b', 'o'},
		"64 KiB of headers":     {1, 4, 0, 0, 0, 0, 0xff, 0xff},
		"128 KiB of stats":      big,
		"no protobuf":           {4, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff},
		"no reply":              {6, 3},
		"messages then Unknown": {8, 1, 0, 0, 0, 0, 0, 1, 'x'},
	} {
		if err := fuzzAnswerOnce(t, g, c, data); err == nil {
			t.Errorf("%s: taken", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	if err := fuzzAnswerOnce(t, g, c, []byte{5, 2, 0, byte(codes.NotFound), 0, 1, 'n'}); !errdefs.IsNotFound(err) {
		t.Errorf("the guest's NotFound reached the host as %v", err)
	}
}

// checkHostError: a failed call's error is the host's, worded as such.
func checkHostError(t *testing.T, method string, err error) {
	t.Helper()
	if _, ok := status.FromError(err); ok {
		t.Fatalf("%s: a gRPC status reached the host: %v", method, err)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		t.Fatalf("%s: the guest's answer became a deadline or cancellation of the host's: %v", method, err)
	}
	if kind := errdefs.Resolve(err); !hostKinds[kind] {
		t.Fatalf("%s: error of kind %v: %v", method, kind, err)
	}
	msg := err.Error()
	prefix := "agent " + method[strings.LastIndexByte(method, '/')+1:] + ": "
	if !strings.HasPrefix(msg, prefix) {
		t.Fatalf("%s: error %q, want it to begin with %q", method, msg, prefix)
	}
	if len(msg) > len(prefix)+MaxErrorMessage+len("...") {
		t.Fatalf("%s: %d bytes of error", method, len(msg))
	}
	if i := strings.IndexFunc(msg, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) }); i >= 0 {
		t.Fatalf("%s: control character in error %q", method, msg)
	}
}

// checkReceived: what the host took is what the guest sent, whole,
// within the bounds.
func checkReceived(t *testing.T, call fuzzCall, a fuzzAnswer, got []proto.Message, err error) {
	t.Helper()
	limit := MaxReply
	if smallReplies[call.method] {
		limit = MaxSmallReply
	}
	if len(got) > len(a.messages) {
		t.Fatalf("%s: %d messages received, %d sent", call.method, len(got), len(a.messages))
	}
	for i, m := range got {
		raw := a.messages[i]
		if len(raw) > limit {
			t.Fatalf("%s: a message of %d bytes was taken, over the bound of %d", call.method, len(raw), limit)
		}
		want := m.ProtoReflect().New().Interface()
		if uerr := proto.Unmarshal(raw, want); uerr != nil {
			t.Fatalf("%s: a message that is no %T was taken (%v): %v", call.method, want, uerr, m)
		}
		// Compared as bytes, as proto.Equal has a NaN unequal to itself.
		if !bytes.Equal(deterministic(m), deterministic(want)) {
			t.Fatalf("%s: message %d taken as %v, sent as %v", call.method, i, m, want)
		}
	}
	if err != nil {
		return
	}
	// A success: the guest sent no error, and every message was taken.
	if a.err != nil {
		t.Fatalf("%s: the guest's error %v was lost", call.method, a.err)
	}
	if len(got) != len(a.messages) {
		t.Fatalf("%s: %d of %d messages received, and no error", call.method, len(got), len(a.messages))
	}
}

func deterministic(m proto.Message) []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}
