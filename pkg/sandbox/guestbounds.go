package sandbox

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/vc-cri/vc-cri/internal/exitcode"
	"github.com/vc-cri/vc-cri/pkg/agent"
	"github.com/vc-cri/vc-cri/pkg/agent/protocol"
)

// The guest is untrusted: each of its reports is checked here before the
// host keeps it. pkg/agent bounds the size of a reply; these bound what
// it says. A report that cannot be true is a protocol error; what is the
// guest's word but harmless (an exit code out of range, a clock of its
// own) is replaced by what the host knows.

// maxGuestInterfaces bounds the interfaces a guest may report in its
// stats: their names become metric labels on the host.
const maxGuestInterfaces = 16

// validInterfaceName is a Linux interface name (at most 15 bytes) of
// the characters real ones use.
var validInterfaceName = regexp.MustCompile(`^[A-Za-z0-9_.:@-]{1,15}$`)

// acceptInterface tells whether the guest's report of an interface is
// kept, given how many were kept already: at most maxGuestInterfaces,
// each with a valid name, never twice the same.
func acceptInterface(name string, kept []InterfaceStats) bool {
	if len(kept) >= maxGuestInterfaces || !validInterfaceName.MatchString(name) || name == "." || name == ".." {
		return false
	}
	for _, k := range kept {
		if k.Name == name {
			return false
		}
	}
	return true
}

// maxGuestFigure bounds every figure of a guest's stats but the memory
// limit (which is 2^64-1 for none): 2^62 bytes, or nanoseconds (146
// years of CPU time), or of anything counted, is beyond any VM. A figure
// past it is garbage, and would turn negative where it is taken as an
// int64.
const maxGuestFigure = 1 << 62

// maxGuestClockSkew is how far from the host's clock the guest's may be
// for the stats to keep the guest's timestamp. Beyond it the host's time
// of the reply stands in: a guest's clock may lag by the time its VM was
// paused, and its stats must not be refused for that.
const maxGuestClockSkew = 5 * time.Second

// guestStats checks the guest's report of a container's usage, s, asked
// for at sent and received at received (the host's clock), and returns
// it in the host's terms. A missing report, a figure past maxGuestFigure,
// or figures that contradict each other are protocol errors. Interfaces
// of invalid or repeated names, and those past maxGuestInterfaces, are
// left out (acceptInterface).
func guestStats(s *protocol.StatsContainerResponse, sent, received time.Time) (ContainerStats, error) {
	if s == nil {
		return ContainerStats{}, fmt.Errorf("guest sent no stats")
	}
	st := ContainerStats{
		Timestamp:             received,
		CPUUsageNanos:         s.CpuUsageNanos,
		CPUUserNanos:          s.CpuUserNanos,
		CPUSystemNanos:        s.CpuSystemNanos,
		CPUPeriods:            s.CpuPeriods,
		CPUThrottledPeriods:   s.CpuThrottledPeriods,
		CPUThrottledNanos:     s.CpuThrottledNanos,
		MemoryUsageBytes:      s.MemoryUsageBytes,
		MemoryMaxUsageBytes:   s.MemoryMaxUsageBytes,
		MemoryWorkingSetBytes: s.MemoryWorkingSetBytes,
		MemoryRSSBytes:        s.MemoryRssBytes,
		MemoryCacheBytes:      s.MemoryCacheBytes,
		MemoryMappedFileBytes: s.MemoryMappedFileBytes,
		MemoryKernelBytes:     s.MemoryKernelBytes,
		MemorySwapBytes:       s.MemorySwapBytes,
		MemoryLimitBytes:      s.MemoryLimitBytes,
		MemoryFailcnt:         s.MemoryFailcnt,
		PageFaults:            s.PageFaults,
		MajorPageFaults:       s.MajorPageFaults,
		OOMEvents:             s.OomEvents,
		Pids:                  s.Pids,
		Threads:               s.Threads,
		ThreadsMax:            s.ThreadsMax,
		FileDescriptors:       s.FileDescriptors,
		Sockets:               s.Sockets,
		UlimitNofileSoft:      s.UlimitNofileSoft,
	}
	if ts := s.TimestampUnixNano; ts > sent.Add(-maxGuestClockSkew).UnixNano() && ts < received.Add(maxGuestClockSkew).UnixNano() {
		st.Timestamp = time.Unix(0, ts)
	}
	for _, f := range []struct {
		name  string
		value uint64
	}{
		{"cpu_usage_nanos", s.CpuUsageNanos}, {"cpu_user_nanos", s.CpuUserNanos}, {"cpu_system_nanos", s.CpuSystemNanos},
		{"cpu_periods", s.CpuPeriods}, {"cpu_throttled_periods", s.CpuThrottledPeriods}, {"cpu_throttled_nanos", s.CpuThrottledNanos},
		{"memory_usage_bytes", s.MemoryUsageBytes}, {"memory_max_usage_bytes", s.MemoryMaxUsageBytes},
		{"memory_working_set_bytes", s.MemoryWorkingSetBytes}, {"memory_rss_bytes", s.MemoryRssBytes},
		{"memory_cache_bytes", s.MemoryCacheBytes}, {"memory_mapped_file_bytes", s.MemoryMappedFileBytes},
		{"memory_kernel_bytes", s.MemoryKernelBytes}, {"memory_swap_bytes", s.MemorySwapBytes},
		{"memory_failcnt", s.MemoryFailcnt}, {"page_faults", s.PageFaults}, {"major_page_faults", s.MajorPageFaults},
		{"oom_events", s.OomEvents}, {"pids", s.Pids}, {"threads", s.Threads}, {"threads_max", s.ThreadsMax},
		{"file_descriptors", s.FileDescriptors}, {"sockets", s.Sockets}, {"ulimit_nofile_soft", s.UlimitNofileSoft},
	} {
		if f.value > maxGuestFigure {
			return ContainerStats{}, fmt.Errorf("guest reports an impossible %s of %d", f.name, f.value)
		}
	}
	switch {
	case s.MemoryWorkingSetBytes > s.MemoryUsageBytes:
		return ContainerStats{}, fmt.Errorf("guest reports a working set of %d bytes, over a memory usage of %d", s.MemoryWorkingSetBytes, s.MemoryUsageBytes)
	case s.CpuThrottledPeriods > s.CpuPeriods:
		return ContainerStats{}, fmt.Errorf("guest reports %d throttled CPU periods of %d", s.CpuThrottledPeriods, s.CpuPeriods)
	case s.MajorPageFaults > s.PageFaults:
		return ContainerStats{}, fmt.Errorf("guest reports %d major page faults of %d", s.MajorPageFaults, s.PageFaults)
	}
	for _, i := range s.Interfaces {
		if !acceptInterface(i.GetName(), st.Interfaces) {
			continue
		}
		for _, v := range []uint64{i.RxBytes, i.RxPackets, i.RxErrors, i.RxDropped, i.TxBytes, i.TxPackets, i.TxErrors, i.TxDropped} {
			if v > maxGuestFigure {
				return ContainerStats{}, fmt.Errorf("guest reports an impossible counter of %d for interface %s", v, i.Name)
			}
		}
		st.Interfaces = append(st.Interfaces, InterfaceStats{
			Name: i.Name, RxBytes: i.RxBytes, RxPackets: i.RxPackets, RxErrors: i.RxErrors, RxDropped: i.RxDropped,
			TxBytes: i.TxBytes, TxPackets: i.TxPackets, TxErrors: i.TxErrors, TxDropped: i.TxDropped,
		})
	}
	return st, nil
}

// guestExitCode is the guest's report of an exit code, which the host
// passes on as a process's: a code or 128 plus a signal number, 0 to
// 255. Any other is exitcode.Unknown.
func guestExitCode(code int32) int32 {
	if code < 0 || code > 255 {
		return exitcode.Unknown
	}
	return code
}

// maxGuestPID is the kernel's PID_MAX_LIMIT: no PID is larger.
const maxGuestPID = 1 << 22

// guestProcessList checks the guest's list of a container's processes
// in format: "json", an array of PIDs, is refused unless it is one, and
// given back as compact JSON; a table ("table" or "") is text of the
// container's command lines, which hold anything: it is given back as
// valid UTF-8 whose control characters but newlines and tabs are
// replaced by U+FFFD.
func guestProcessList(format string, b []byte) (ProcessList, error) {
	if len(b) > agent.MaxReply {
		return nil, fmt.Errorf("guest sent a process list of %d bytes, over %d", len(b), agent.MaxReply)
	}
	switch format {
	case "json":
		var pids []int64
		if err := json.Unmarshal(b, &pids); err != nil {
			return nil, fmt.Errorf("guest sent a process list that is no JSON array of PIDs: %v", err)
		}
		for _, pid := range pids {
			if pid < 1 || pid > maxGuestPID {
				return nil, fmt.Errorf("guest lists an impossible PID %d", pid)
			}
		}
		if pids == nil {
			pids = []int64{}
		}
		out, err := json.Marshal(pids)
		return out, err
	case "", "table":
		var out strings.Builder
		out.Grow(len(b))
		for _, r := range strings.ToValidUTF8(string(b), string(utf8.RuneError)) {
			if (unicode.IsControl(r) && r != '\n' && r != '\t') || r == '\u2028' || r == '\u2029' || unicode.Is(unicode.Bidi_Control, r) {
				r = utf8.RuneError
			}
			out.WriteRune(r)
		}
		return ProcessList(out.String()), nil
	}
	return nil, fmt.Errorf("process list format %q: want table or json: %w", format, ErrInvalidConfig)
}
