package sandbox

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"k8s.io/klog/v2"

	"github.com/vc-cri/vc-cri/internal/safemount"
	"github.com/vc-cri/vc-cri/pkg/agent"
	"github.com/vc-cri/vc-cri/pkg/agent/protocol"
	"github.com/vc-cri/vc-cri/pkg/hypervisor"
)

// FuzzGuestReplies has a guest answer a Runtime's calls with replies
// decoded from the fuzzer's bytes, and drives the Runtime's consumers of
// each: StatusContainer (ProcessStatus), WaitProcess of the container
// and of an exec, StopContainer (WaitProcess), StatsContainer,
// ProcessListContainer (ListProcesses), EnterContainer and IOStream
// (ExecProcess, ReadOutput), and CreateSandbox (GuestDetails, whose huge
// page sizes then decide a container's hugetlb limits). The agent is
// reached without gRPC, on the mock hypervisor: the replies are any
// message gRPC could hand over, or a guest's error. Nothing may panic,
// and what the Runtime keeps of a reply stays within its bounds.
func FuzzGuestReplies(f *testing.F) {
	now := time.Now()
	for _, seed := range []struct {
		op  fuzzOp
		err bool
		msg []proto.Message
	}{
		{op: opStatus, msg: []proto.Message{&protocol.ProcessStatusResponse{}}},
		{op: opStatus, msg: []proto.Message{&protocol.ProcessStatusResponse{Exited: true, Exit: &protocol.WaitProcessResponse{ExitCode: 137, ExitedAtUnixNano: now.UnixNano(), OomKilled: true}}}},
		{op: opStatus, msg: []proto.Message{&protocol.ProcessStatusResponse{Exited: true}}},
		{op: opWait, msg: []proto.Message{&protocol.WaitProcessResponse{ExitCode: 0, ExitedAtUnixNano: now.UnixNano()}}},
		{op: opWaitExec, msg: []proto.Message{&protocol.WaitProcessResponse{ExitCode: 2, ExitedAtUnixNano: now.UnixNano()}}},
		{op: opStop, msg: []proto.Message{&protocol.WaitProcessResponse{ExitCode: 137, ExitedAtUnixNano: now.Add(time.Hour).UnixNano()}}},
		{op: opStats, msg: []proto.Message{&protocol.StatsContainerResponse{
			CpuUsageNanos: 12e9, CpuUserNanos: 8e9, CpuSystemNanos: 4e9, MemoryUsageBytes: 10 << 20, MemoryWorkingSetBytes: 8 << 20,
			MemoryRssBytes: 6 << 20, MemoryLimitBytes: math.MaxUint64, Pids: 3, Threads: 4, PageFaults: 1000, MajorPageFaults: 2,
			TimestampUnixNano: now.UnixNano(), FileDescriptors: 12, UlimitNofileSoft: 1024,
			Interfaces: []*protocol.InterfaceStats{{Name: "lo", RxBytes: 100, TxBytes: 100}, {Name: "eth0", RxBytes: 1 << 20, RxPackets: 900}},
		}}},
		{op: opList, msg: []proto.Message{&protocol.ListProcessesResponse{ProcessList: []byte("PID CMD\n1 sleep\n")}}},
		{op: opExec, msg: []proto.Message{&protocol.Data{Data: []byte("hello\n")}, &protocol.Data{}, &protocol.Data{Data: []byte("world\n")}}},
		{op: opGuest, msg: []proto.Message{&protocol.GuestDetailsResponse{AgentVersion: "0.1.0", KernelRelease: "6.1.0", MemoryTotalBytes: 2 << 30, Cpus: 1, HugepageSizes: []uint64{2 << 20, 1 << 30}}}},
		{op: opGuest, msg: []proto.Message{&protocol.GuestDetailsResponse{}}},
		{op: opStats, err: true},
	} {
		f.Add(encodeGuestReply(seed.op, seed.err, seed.msg...))
	}

	// Millions of calls: their logs are not wanted.
	klog.LogToStderr(false)
	klog.SetOutput(io.Discard)
	f.Cleanup(func() { klog.LogToStderr(true) })

	ctx := context.Background()
	g := &fuzzGuest{}
	dir := fuzzStateDir(f)
	r := NewRuntime(WithStateRoot(filepath.Join(dir, "sandboxes")), WithAgentDialer(NoopAgentType, g))
	f.Cleanup(func() {
		list, err := r.ListSandbox(context.Background())
		if err != nil {
			f.Error(err)
		}
		for _, st := range list {
			if _, err := r.DeleteSandbox(context.Background(), st.ID); err != nil {
				f.Errorf("delete sandbox %s: %v", st.ID, err)
			}
		}
	})
	rootfs := filepath.Join(dir, "rootfs")
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		f.Fatal(err)
	}
	// The sandbox and container the calls are about, made while the
	// guest answers as the noop agent.
	if _, err := r.RunSandbox(ctx, mockConfig("fuzz", ContainerConfig{ID: "c", RootFs: rootfs, Cmd: Cmd{Args: []string{"sleep", "1000"}}})); err != nil {
		f.Fatalf("RunSandbox: %v", err)
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		rep := parseGuestReply(data)
		// The container runs again, started a minute ago.
		start := time.Now().Add(-time.Minute).Truncate(time.Second)
		if err := r.withContainer(ctx, "fuzz", "c", func(ls *lockedSandbox, cs *containerState) error {
			cs.State, cs.StartTime, cs.FinishedAt, cs.ExitCode, cs.OOMKilled = State{StateRunning}, start, time.Time{}, 0, false
			return ls.save(ctx)
		}); err != nil {
			t.Fatal(err)
		}
		g.reply.Store(&rep)
		defer g.reply.Store(nil)
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()

		switch rep.op {
		case opStatus:
			st, err := r.StatusContainer(ctx, "fuzz", "c")
			if err != nil {
				t.Fatalf("StatusContainer: %v", err)
			}
			checkExit(t, r, start, st.State.State == StateStopped)
		case opWait, opStop:
			var err error
			if rep.op == opWait {
				_, err = r.WaitProcess(ctx, "fuzz", "c", "c")
			} else {
				_, err = r.StopContainer(ctx, "fuzz", "c")
			}
			// StopContainer records a kill when the guest does not
			// report the exit: the container stops either way.
			checkExit(t, r, start, err == nil && rep.err == nil || rep.op == opStop)
			if code := guestExitCode(decodeReply(&rep, 0, &protocol.WaitProcessResponse{}).ExitCode); code < 0 || code > 255 {
				t.Fatalf("exit code %d passed on", code)
			}
		case opWaitExec:
			_, _ = r.WaitProcess(ctx, "fuzz", "c", "e")
			if code := guestExitCode(decodeReply(&rep, 0, &protocol.WaitProcessResponse{}).ExitCode); code < 0 || code > 255 {
				t.Fatalf("exit code %d passed on", code)
			}
		case opStats:
			sent := time.Now()
			if st, err := r.StatsContainer(ctx, "fuzz", "c"); err == nil {
				checkInterfaces(t, st.Interfaces)
			}
			if rep.err == nil {
				checkGuestStats(t, decodeReply(&rep, 0, &protocol.StatsContainerResponse{}), sent, time.Now())
			}
		case opList:
			format := []string{"table", "json", ""}[len(rep.msgs)%3]
			_, _ = r.ProcessListContainer(ctx, "fuzz", "c", ProcessListOptions{Format: format})
			if rep.err == nil {
				checkProcessList(t, format, decodeReply(&rep, 0, &protocol.ListProcessesResponse{}).ProcessList)
			}
		case opExec:
			fuzzExec(ctx, t, r, &rep)
		case opGuest:
			fuzzGuestDetails(ctx, t, r, g, rootfs, &rep)
		}
	})
}

type fuzzOp byte

const (
	opStatus   fuzzOp = iota // StatusContainer: ProcessStatus
	opWait                   // WaitProcess of the container: WaitProcess
	opWaitExec               // WaitProcess of an exec
	opStop                   // StopContainer: WaitProcess
	opStats                  // StatsContainer
	opList                   // ProcessListContainer: ListProcesses
	opExec                   // EnterContainer, IOStream: ExecProcess, ReadOutput
	opGuest                  // CreateSandbox: GuestDetails
	numOps
)

// guestReply is how the fuzzing guest answers, decoded from the input:
//
//	[0] the operation (fuzzOp, modulo)
//	[1] bit 0: the call fails with the guest's error, of code [1]>>3;
//	    for an exec, bit 1: ExecProcess succeeds and the output's
//	    headers fail instead, bit 2: the output ends with the error
//	the rest: the messages, each as [2 bytes] length then its bytes:
//	the reply, or a stream's Data, decoded by decodeReply
type guestReply struct {
	op                   fuzzOp
	err                  error
	headerErr, streamErr bool
	msgs                 [][]byte
}

const maxGuestFrames = 64

func parseGuestReply(data []byte) guestReply {
	in := fuzzInput(data)
	rep := guestReply{op: fuzzOp(in.byte()) % numOps}
	flags := in.byte()
	if flags&1 != 0 {
		rep.err = agent.GuestError("/vcagent.v1.Agent/Fuzz", status.Error(codes.Code(flags>>3), "fuzzed\x1b[2J failure"))
		rep.headerErr, rep.streamErr = flags&2 != 0, flags&4 != 0
	}
	for len(in) > 0 && len(rep.msgs) < maxGuestFrames {
		rep.msgs = append(rep.msgs, in.take(int(in.uint16())))
	}
	return rep
}

func encodeGuestReply(op fuzzOp, fail bool, msgs ...proto.Message) []byte {
	out := []byte{byte(op), 0}
	if fail {
		out[1] = byte(codes.NotFound)<<3 | 1
	}
	for _, m := range msgs {
		b, err := proto.Marshal(m)
		if err != nil {
			panic(err)
		}
		out = binary.BigEndian.AppendUint16(out, uint16(len(b)))
		out = append(out, b...)
	}
	return out
}

// decodeReply is m decoded from b: as protobuf when b is, else with
// fields set from b's bytes by fillMessage. i picks the message of rep.
func decodeReply[M proto.Message](rep *guestReply, i int, m M) M {
	var b []byte
	if i < len(rep.msgs) {
		b = rep.msgs[i]
	}
	if proto.Unmarshal(b, m) != nil {
		proto.Reset(m)
		in := fuzzInput(b)
		fillMessage(m.ProtoReflect(), &in, 0)
	}
	return m
}

// fillMessage sets fields of m from the input: each field present or
// not, numbers of any value, strings and bytes of any content, lists of
// up to 1023 elements, nested messages three deep.
func fillMessage(m protoreflect.Message, in *fuzzInput, depth int) {
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len() && len(*in) > 0; i++ {
		fd := fields.Get(i)
		if in.byte()&1 == 0 {
			continue
		}
		switch {
		case fd.IsMap():
		case fd.IsList():
			l := m.Mutable(fd).List()
			for n := int(in.uint16() % 1024); n > 0 && len(*in) > 0; n-- {
				if fd.Message() != nil {
					if depth < 3 {
						fillMessage(l.AppendMutable().Message(), in, depth+1)
					}
					continue
				}
				l.Append(scalar(fd, in))
			}
		case fd.Message() != nil:
			if depth < 3 {
				fillMessage(m.Mutable(fd).Message(), in, depth+1)
			}
		default:
			m.Set(fd, scalar(fd, in))
		}
	}
}

// edgeNumbers are the numbers a guest's lie is likeliest made of.
var edgeNumbers = []uint64{0, 1, math.MaxUint64, math.MaxInt64, 1 << 63, math.MaxUint32, math.MaxInt32, 1 << 31, 2 << 20, 1 << 30, 64 << 10}

func scalar(fd protoreflect.FieldDescriptor, in *fuzzInput) protoreflect.Value {
	var n uint64
	if sel := in.byte(); int(sel) < len(edgeNumbers) {
		n = edgeNumbers[sel]
	} else {
		n = in.uint64()
	}
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(n&1 != 0)
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(int32(n))
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(int64(n))
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(uint32(n))
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(n)
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(math.Float32frombits(uint32(n)))
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64(math.Float64frombits(n))
	case protoreflect.EnumKind:
		return protoreflect.ValueOfEnum(protoreflect.EnumNumber(int32(n)))
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(string(in.take(int(n % 4096))))
	default: // bytes
		return protoreflect.ValueOfBytes(bytes.Clone(in.take(int(n % 4096))))
	}
}

// fuzzInput reads an input from its start; past its end, it reads zeros.
type fuzzInput []byte

func (b *fuzzInput) byte() byte {
	if len(*b) == 0 {
		return 0
	}
	c := (*b)[0]
	*b = (*b)[1:]
	return c
}

func (b *fuzzInput) uint16() uint16 { return uint16(b.byte())<<8 | uint16(b.byte()) }

func (b *fuzzInput) uint64() uint64 {
	return uint64(b.uint16())<<48 | uint64(b.uint16())<<32 | uint64(b.uint16())<<16 | uint64(b.uint16())
}

func (b *fuzzInput) take(n int) []byte {
	n = min(n, len(*b))
	out := (*b)[:n]
	*b = (*b)[n:]
	return out
}

// fuzzGuest dials, for every sandbox, an agent that answers as the noop
// agent but for the calls whose replies are fuzzed, while there is a
// reply to give.
type fuzzGuest struct {
	reply atomic.Pointer[guestReply]
}

func (g *fuzzGuest) Dial(ctx context.Context, vm hypervisor.VM) (Agent, error) {
	a, err := noopDialer{}.Dial(ctx, vm)
	if err != nil {
		return nil, err
	}
	return &fuzzAgent{noopAgent: a.(*noopAgent), guest: g}, nil
}

type fuzzAgent struct {
	*noopAgent
	guest *fuzzGuest
}

// answer is the fuzzed reply to a call, or nil when the noop agent
// answers. As through gRPC, a call that does not fail has a reply.
func answer[M proto.Message](a *fuzzAgent, m M) (*guestReply, M, error) {
	rep := a.guest.reply.Load()
	if rep == nil {
		return nil, m, nil
	}
	if rep.err != nil {
		var none M
		return rep, none, rep.err
	}
	return rep, decodeReply(rep, 0, m), nil
}

func (a *fuzzAgent) GuestDetails(ctx context.Context, req *protocol.GuestDetailsRequest, opts ...grpc.CallOption) (*protocol.GuestDetailsResponse, error) {
	if rep, m, err := answer(a, &protocol.GuestDetailsResponse{}); rep != nil {
		return m, err
	}
	return a.noopAgent.GuestDetails(ctx, req, opts...)
}

func (a *fuzzAgent) StatsContainer(ctx context.Context, req *protocol.ContainerRequest, opts ...grpc.CallOption) (*protocol.StatsContainerResponse, error) {
	if rep, m, err := answer(a, &protocol.StatsContainerResponse{}); rep != nil {
		return m, err
	}
	return a.noopAgent.StatsContainer(ctx, req, opts...)
}

func (a *fuzzAgent) ListProcesses(ctx context.Context, req *protocol.ListProcessesRequest, opts ...grpc.CallOption) (*protocol.ListProcessesResponse, error) {
	if rep, m, err := answer(a, &protocol.ListProcessesResponse{}); rep != nil {
		return m, err
	}
	return a.noopAgent.ListProcesses(ctx, req, opts...)
}

func (a *fuzzAgent) WaitProcess(ctx context.Context, req *protocol.ProcessRequest, opts ...grpc.CallOption) (*protocol.WaitProcessResponse, error) {
	if rep, m, err := answer(a, &protocol.WaitProcessResponse{}); rep != nil {
		return m, err
	}
	return a.noopAgent.WaitProcess(ctx, req, opts...)
}

func (a *fuzzAgent) ProcessStatus(ctx context.Context, req *protocol.ProcessRequest, opts ...grpc.CallOption) (*protocol.ProcessStatusResponse, error) {
	if rep, m, err := answer(a, &protocol.ProcessStatusResponse{}); rep != nil {
		return m, err
	}
	return a.noopAgent.ProcessStatus(ctx, req, opts...)
}

func (a *fuzzAgent) ExecProcess(ctx context.Context, req *protocol.ExecProcessRequest, opts ...grpc.CallOption) (*protocol.Empty, error) {
	if rep := a.guest.reply.Load(); rep != nil && (rep.headerErr || rep.streamErr) {
		return &protocol.Empty{}, nil // the output fails instead
	}
	if rep, m, err := answer(a, &protocol.Empty{}); rep != nil {
		return m, err
	}
	return a.noopAgent.ExecProcess(ctx, req, opts...)
}

func (a *fuzzAgent) ReadOutput(ctx context.Context, req *protocol.ReadOutputRequest, opts ...grpc.CallOption) (grpc.ServerStreamingClient[protocol.Data], error) {
	rep := a.guest.reply.Load()
	if rep == nil {
		return a.noopAgent.ReadOutput(ctx, req, opts...)
	}
	return &fuzzStream{ctx: ctx, rep: rep}, nil
}

// fuzzStream is a ReadOutput stream of the fuzzed messages, then the
// guest's error, if any; its headers fail when the reply says so.
type fuzzStream struct {
	ctx context.Context
	rep *guestReply
	i   int
}

func (s *fuzzStream) Header() (metadata.MD, error) {
	if s.rep.headerErr {
		return nil, s.rep.err
	}
	return metadata.MD{}, nil
}

func (s *fuzzStream) Recv() (*protocol.Data, error) {
	if s.i < len(s.rep.msgs) {
		s.i++
		return decodeReply(s.rep, s.i-1, &protocol.Data{}), nil
	}
	if s.rep.streamErr {
		return nil, s.rep.err
	}
	return nil, io.EOF
}

func (s *fuzzStream) Trailer() metadata.MD     { return nil }
func (s *fuzzStream) CloseSend() error         { return nil }
func (s *fuzzStream) Context() context.Context { return s.ctx }
func (s *fuzzStream) SendMsg(any) error        { return errors.New("fuzz stream: no SendMsg") }
func (s *fuzzStream) RecvMsg(any) error        { return errors.New("fuzz stream: no RecvMsg") }

// concatData is the output of the reply's stream.
func concatData(rep *guestReply) (out []byte) {
	for i := range rep.msgs {
		out = append(out, decodeReply(rep, i, &protocol.Data{}).Data...)
	}
	return out
}

// checkExit: a container that stopped on the guest's word stopped
// between its start and now, by the host's clock.
func checkExit(t *testing.T, r *Runtime, start time.Time, wantStopped bool) {
	t.Helper()
	after := time.Now()
	err := r.withContainer(context.Background(), "fuzz", "c", func(_ *lockedSandbox, cs *containerState) error {
		stopped := cs.State.State == StateStopped
		if wantStopped && !stopped {
			t.Errorf("container is %s, want stopped", cs.State.State)
		}
		if stopped && (cs.FinishedAt.Before(start) || cs.FinishedAt.After(after)) {
			t.Errorf("container finished at %v, before its start at %v or after now (%v)", cs.FinishedAt, start, after)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkGuestStats: the stats guestStats takes are within its bounds,
// at a time between the call and its reply, give or take the skew.
func checkGuestStats(t *testing.T, s *protocol.StatsContainerResponse, sent, received time.Time) {
	t.Helper()
	st, err := guestStats(s, sent, received)
	if err != nil {
		return
	}
	checkInterfaces(t, st.Interfaces)
	if st.Timestamp.Before(sent.Add(-maxGuestClockSkew)) || st.Timestamp.After(received.Add(maxGuestClockSkew)) {
		t.Fatalf("stats of %v taken, asked for at %v", st.Timestamp, sent)
	}
	if st.MemoryWorkingSetBytes > st.MemoryUsageBytes || st.CPUThrottledPeriods > st.CPUPeriods || st.MajorPageFaults > st.PageFaults {
		t.Fatalf("contradictory stats taken: %+v", st)
	}
	for _, v := range []uint64{st.CPUUsageNanos, st.CPUUserNanos, st.CPUSystemNanos, st.CPUThrottledNanos, st.MemoryUsageBytes, st.MemoryMaxUsageBytes,
		st.MemoryRSSBytes, st.MemoryCacheBytes, st.MemoryMappedFileBytes, st.MemoryKernelBytes, st.MemorySwapBytes, st.MemoryFailcnt,
		st.OOMEvents, st.Pids, st.Threads, st.ThreadsMax, st.FileDescriptors, st.Sockets, st.UlimitNofileSoft} {
		if v > maxGuestFigure {
			t.Fatalf("a figure of %d taken: %+v", v, st)
		}
	}
}

// checkProcessList: a list guestProcessList takes is a JSON array of
// PIDs, or text without control characters but newlines and tabs.
func checkProcessList(t *testing.T, format string, b []byte) {
	t.Helper()
	list, err := guestProcessList(format, b)
	if err != nil {
		return
	}
	if format == "json" {
		var pids []int
		if err := json.Unmarshal(list, &pids); err != nil || pids == nil {
			t.Fatalf("process list %q taken: %v", list, err)
		}
		for _, pid := range pids {
			if pid < 1 || pid > maxGuestPID {
				t.Fatalf("PID %d taken", pid)
			}
		}
		return
	}
	if !utf8.Valid(list) {
		t.Fatalf("process list of invalid UTF-8 taken: %q", list)
	}
	if i := strings.IndexFunc(string(list), func(r rune) bool {
		return unicode.IsControl(r) && r != '\n' && r != '\t' || unicode.Is(unicode.Bidi_Control, r)
	}); i >= 0 {
		t.Fatalf("control character in process list %q", list)
	}
}

// checkInterfaces: the interfaces the host keeps are few, of valid
// names, each once.
func checkInterfaces(t *testing.T, ifs []InterfaceStats) {
	t.Helper()
	if len(ifs) > maxGuestInterfaces {
		t.Fatalf("%d interfaces kept", len(ifs))
	}
	seen := map[string]bool{}
	for _, i := range ifs {
		if !validInterfaceName.MatchString(i.Name) || i.Name == "." || i.Name == ".." || seen[i.Name] {
			t.Fatalf("interface %q kept among %v", i.Name, ifs)
		}
		seen[i.Name] = true
	}
}

// fuzzExec runs an exec and reads its output: the host hands over
// exactly what the guest sent, or fails.
func fuzzExec(ctx context.Context, t *testing.T, r *Runtime, rep *guestReply) {
	t.Helper()
	_, _, p, err := r.EnterContainer(ctx, "fuzz", "c", Cmd{Args: []string{"true"}})
	if err != nil {
		if rep.err == nil {
			t.Fatalf("EnterContainer failed on a guest's success: %v", err)
		}
		return
	}
	_, stdout, stderr, err := r.IOStream(ctx, "fuzz", "c", p.Token)
	if err != nil {
		if !rep.headerErr {
			t.Fatalf("IOStream failed, and the guest's headers did not: %v", err)
		}
		return
	}
	defer stdout.Close()
	defer stderr.Close()
	want := concatData(rep)
	for _, rc := range []io.Reader{stdout, stderr} {
		got, err := io.ReadAll(io.LimitReader(rc, int64(len(want))+1))
		if !bytes.Equal(got, want) {
			t.Fatalf("output %q, the guest sent %q", got, want)
		}
		if (err == nil) == rep.streamErr {
			t.Fatalf("output ended with %v, the guest's stream with %v", err, rep.err)
		}
	}
}

// fuzzGuestDetails boots a sandbox on the guest's details: it is kept
// only with valid huge page sizes, which then decide what hugetlb limits
// a container may have.
func fuzzGuestDetails(ctx context.Context, t *testing.T, r *Runtime, g *fuzzGuest, rootfs string, rep *guestReply) {
	t.Helper()
	details := decodeReply(rep, 0, &protocol.GuestDetailsResponse{})
	valid := rep.err == nil && len(details.HugepageSizes) <= maxGuestHugePageSizes
	for _, s := range details.HugepageSizes {
		valid = valid && s >= 64<<10 && s <= 16<<30 && bits.OnesCount64(s) == 1
	}
	_, err := r.CreateSandbox(ctx, mockConfig("details"))
	if err != nil {
		if valid {
			t.Fatalf("CreateSandbox on valid details %v: %v", details, err)
		}
		if _, serr := r.StatusSandbox(ctx, "details"); !errors.Is(serr, ErrNotFound) {
			t.Fatalf("a sandbox refused for its guest's details was kept: %v", serr)
		}
		return
	}
	defer func() {
		if _, err := r.DeleteSandbox(context.Background(), "details"); err != nil {
			t.Fatalf("DeleteSandbox: %v", err)
		}
	}()
	if !valid {
		t.Fatalf("CreateSandbox took the details %v", details)
	}
	var sizes []string
	if err := r.withSandbox(ctx, "details", func(ls *lockedSandbox) error {
		sizes = ls.GuestHugePageSizes
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if sizes == nil || len(sizes) != len(details.HugepageSizes) {
		t.Fatalf("guest sizes %v recorded as %v", details.HugepageSizes, sizes)
	}
	g.reply.Store(nil) // the container is created on the noop agent
	has2M := slices.ContainsFunc(sizes, func(s string) bool { return strings.EqualFold(s, "2MB") })
	_, _, err = r.CreateContainer(ctx, "details", ContainerConfig{
		ID: "h", RootFs: rootfs, Cmd: Cmd{Args: []string{"true"}},
		Resources: specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 2 << 20}}},
	})
	if has2M != (err == nil) {
		t.Fatalf("a 2MB hugetlb limit on a guest of %v pages: %v", sizes, err)
	}
}

// fuzzStatePrefix names the directories of FuzzGuestReplies's state, one
// per process that runs it: the fuzzing coordinator and each worker.
const fuzzStatePrefix = "vc-fuzz-sandbox-"

// fuzzStateDir makes this process's state directory, removed at the
// end, after reaping those of processes that died without removing
// theirs: the coordinator may kill a worker in the middle of a call,
// which leaves the binds of its sandboxes mounted.
func fuzzStateDir(tb testing.TB) string {
	tb.Helper()
	reapFuzzStateDirs(tb)
	dir, err := os.MkdirTemp("", fuzzStatePrefix)
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "owner"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := removeFuzzStateDir(dir); err != nil {
			tb.Errorf("remove %s: %v", dir, err)
		}
	})
	return dir
}

// reapFuzzStateDirs removes the state directories whose owner is gone. A
// directory without an owner yet, or whose owner lives (or whose PID a
// process has now), is left alone.
func reapFuzzStateDirs(tb testing.TB) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), fuzzStatePrefix+"*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, "owner"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(string(b))
		if err != nil || pid <= 0 || unix.Kill(pid, 0) != unix.ESRCH {
			continue
		}
		if err := removeFuzzStateDir(dir); err != nil {
			tb.Logf("cannot reap %s, left by process %d: %v", dir, pid, err)
		} else {
			tb.Logf("reaped %s, left by process %d", dir, pid)
		}
	}
}

// removeFuzzStateDir unmounts and removes each sandbox's directory, as
// DeleteSandbox does, then the whole directory: never while a mount is
// left below it.
func removeFuzzStateDir(dir string) error {
	sandboxes := filepath.Join(dir, "sandboxes")
	entries, err := os.ReadDir(sandboxes)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, e := range entries {
		if err := removeSandboxDir(sandboxes, e.Name()); err != nil {
			return err
		}
	}
	tmp, err := safemount.OpenRoot(filepath.Dir(dir))
	if err != nil {
		return err
	}
	defer tmp.Close()
	return tmp.RemoveAll(filepath.Base(dir))
}
