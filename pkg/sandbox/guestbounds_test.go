package sandbox

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/vc-cri/vc-cri/internal/exitcode"
	"github.com/vc-cri/vc-cri/pkg/agent"
	"github.com/vc-cri/vc-cri/pkg/agent/protocol"
)

func TestAcceptInterface(t *testing.T) {
	var kept []InterfaceStats
	for _, name := range []string{"eth0", "eth0", "", "bad name", "a/b", "x\n", strings.Repeat("l", 16), "..", "veth@if3", "é"} {
		if acceptInterface(name, kept) {
			kept = append(kept, InterfaceStats{Name: name})
		}
	}
	if len(kept) != 2 || kept[0].Name != "eth0" || kept[1].Name != "veth@if3" {
		t.Fatalf("kept %v", kept)
	}
	for i := 0; i < 100; i++ {
		if name := fmt.Sprintf("if%d", i); acceptInterface(name, kept) {
			kept = append(kept, InterfaceStats{Name: name})
		}
	}
	if len(kept) != maxGuestInterfaces {
		t.Fatalf("kept %d interfaces, want %d", len(kept), maxGuestInterfaces)
	}
}

func TestGuestStats(t *testing.T) {
	sent := time.Now()
	received := sent.Add(10 * time.Millisecond)
	good := func() *protocol.StatsContainerResponse {
		return &protocol.StatsContainerResponse{
			CpuUsageNanos: 3e9, CpuPeriods: 10, CpuThrottledPeriods: 2, MemoryUsageBytes: 10 << 20, MemoryWorkingSetBytes: 8 << 20,
			MemoryLimitBytes: math.MaxUint64, PageFaults: 100, MajorPageFaults: 1, Pids: 2,
			TimestampUnixNano: sent.Add(5 * time.Millisecond).UnixNano(),
			Interfaces:        []*protocol.InterfaceStats{{Name: "eth0", RxBytes: 1 << 20}, {Name: "bad name"}, nil, {Name: "eth0"}},
		}
	}
	st, err := guestStats(good(), sent, received)
	if err != nil {
		t.Fatalf("good stats: %v", err)
	}
	if !st.Timestamp.Equal(sent.Add(5*time.Millisecond)) || st.MemoryLimitBytes != math.MaxUint64 || st.CPUUsageNanos != 3e9 {
		t.Errorf("good stats taken as %+v", st)
	}
	if len(st.Interfaces) != 1 || st.Interfaces[0].Name != "eth0" || st.Interfaces[0].RxBytes != 1<<20 {
		t.Errorf("interfaces kept: %+v", st.Interfaces)
	}

	// The guest's clock, when far from the host's, is replaced by the
	// host's time of the reply.
	for name, ts := range map[string]int64{
		"no time":         0,
		"before 1970":     -1,
		"an hour ago":     sent.Add(-time.Hour).UnixNano(),
		"in the future":   received.Add(time.Hour).UnixNano(),
		"the end of time": math.MaxInt64,
	} {
		s := good()
		s.TimestampUnixNano = ts
		st, err := guestStats(s, sent, received)
		if err != nil || !st.Timestamp.Equal(received) {
			t.Errorf("%s: timestamp %v, %v; want the host's %v", name, st.Timestamp, err, received)
		}
	}
	// A skew within maxGuestClockSkew is the guest's.
	s := good()
	s.TimestampUnixNano = received.Add(maxGuestClockSkew / 2).UnixNano()
	if st, err := guestStats(s, sent, received); err != nil || st.Timestamp.UnixNano() != s.TimestampUnixNano {
		t.Errorf("a skew of %v: timestamp %v, %v", maxGuestClockSkew/2, st.Timestamp, err)
	}

	for name, spoil := range map[string]func(*protocol.StatsContainerResponse){
		"huge cpu":               func(s *protocol.StatsContainerResponse) { s.CpuUsageNanos = 1 << 63 },
		"huge pids":              func(s *protocol.StatsContainerResponse) { s.Pids = math.MaxUint64 },
		"huge sockets":           func(s *protocol.StatsContainerResponse) { s.Sockets = maxGuestFigure + 1 },
		"working set over usage": func(s *protocol.StatsContainerResponse) { s.MemoryWorkingSetBytes = s.MemoryUsageBytes + 1 },
		"throttled over periods": func(s *protocol.StatsContainerResponse) { s.CpuThrottledPeriods = s.CpuPeriods + 1 },
		"major over faults":      func(s *protocol.StatsContainerResponse) { s.MajorPageFaults = s.PageFaults + 1 },
		"huge interface counter": func(s *protocol.StatsContainerResponse) { s.Interfaces[0].TxDropped = math.MaxUint64 },
	} {
		s := good()
		spoil(s)
		if st, err := guestStats(s, sent, received); err == nil {
			t.Errorf("%s: taken as %+v", name, st)
		}
	}
	if _, err := guestStats(nil, sent, received); err == nil {
		t.Error("no stats taken")
	}
}

func TestGuestExitCode(t *testing.T) {
	for code, want := range map[int32]int32{0: 0, 1: 1, 137: 137, 255: 255, 256: exitcode.Unknown, -1: exitcode.Unknown, math.MinInt32: exitcode.Unknown, math.MaxInt32: exitcode.Unknown} {
		if got := guestExitCode(code); got != want {
			t.Errorf("guestExitCode(%d) = %d, want %d", code, got, want)
		}
	}
}

func TestGuestProcessList(t *testing.T) {
	for _, tc := range []struct {
		format, in, want string
		ok               bool
	}{
		{"json", "[1, 23]", "[1,23]", true},
		{"json", "[]", "[]", true},
		{"json", "null", "[]", true},
		{"json", "[0]", "", false},
		{"json", "[-4]", "", false},
		{"json", "[4194305]", "", false},
		{"json", "[1.5]", "", false},
		{"json", `{"a":1}`, "", false},
		{"json", "[1", "", false},
		{"table", "PID CMD\n1\tsleep 1000\n", "PID CMD\n1\tsleep 1000\n", true},
		{"", "1 evil\x1b[2J\r\x00 \xff\u202e\n", "1 evil\uFFFD[2J\uFFFD\uFFFD \uFFFD\uFFFD\n", true},
		{"yaml", "", "", false},
	} {
		got, err := guestProcessList(tc.format, []byte(tc.in))
		if (err == nil) != tc.ok || (tc.ok && string(got) != tc.want) {
			t.Errorf("guestProcessList(%q, %q) = %q, %v; want %q (ok: %v)", tc.format, tc.in, got, err, tc.want, tc.ok)
		}
	}
	if _, err := guestProcessList("table", make([]byte, agent.MaxReply+1)); err == nil {
		t.Error("a process list over agent.MaxReply was taken")
	}
}
