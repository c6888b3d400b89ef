package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vc-cri/vc-cri/pkg/agent/protocol"
)

// ListProcesses lists the container's processes from /proc, in the table
// or JSON format of virtcontainers' ProcessListContainer. The guest has no
// ps(1) of its own.
func (a *agent) ListProcesses(_ context.Context, req *protocol.ListProcessesRequest) (*protocol.ListProcessesResponse, error) {
	c, err := a.container(req.ContainerId)
	if err != nil {
		return nil, err
	}
	pids, err := c.lc.Processes()
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "list processes of %q: %v", c.id, err)
	}
	switch req.Format {
	case "json":
		b, err := json.Marshal(pids)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "encode pids: %v", err)
		}
		return &protocol.ListProcessesResponse{ProcessList: b}, nil
	case "", "table":
		var buf bytes.Buffer
		fmt.Fprintf(&buf, "%-8s %-8s %-6s %s\n", "PID", "PPID", "UID", "CMD")
		for _, pid := range pids {
			ppid, uid := procStatus(pid)
			fmt.Fprintf(&buf, "%-8d %-8s %-6s %s\n", pid, ppid, uid, procCmdline(pid))
		}
		return &protocol.ListProcessesResponse{ProcessList: buf.Bytes()}, nil
	default:
		return nil, status.Errorf(codes.InvalidArgument, "unknown process list format %q: want table or json", req.Format)
	}
}

// procStatus returns a process's parent PID and real UID, or "?".
func procStatus(pid int) (ppid, uid string) {
	ppid, uid = "?", "?"
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return ppid, uid
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		switch k {
		case "PPid":
			ppid = fields[0]
		case "Uid":
			uid = fields[0]
		}
	}
	return ppid, uid
}

func procCmdline(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}

// countProcesses adds up the threads, open files and sockets of pids,
// and takes the open-files limit of the first.
func countProcesses(pids []int, resp *protocol.StatsContainerResponse) {
	for i, pid := range pids {
		dir := "/proc/" + strconv.Itoa(pid)
		fds, _ := os.ReadDir(dir + "/fd")
		resp.FileDescriptors += uint64(len(fds))
		for _, fd := range fds {
			if target, err := os.Readlink(dir + "/fd/" + fd.Name()); err == nil && strings.HasPrefix(target, "socket:") {
				resp.Sockets++
			}
		}
		if b, err := os.ReadFile(dir + "/status"); err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(line, "Threads:"); ok {
					n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
					resp.Threads += n
				}
			}
		}
		if i == 0 {
			resp.UlimitNofileSoft = nofileSoftLimit(dir)
		}
	}
}

// nofileSoftLimit reads a process's soft limit of open files.
func nofileSoftLimit(procDir string) uint64 {
	b, err := os.ReadFile(procDir + "/limits")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				n, _ := strconv.ParseUint(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}
