package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"

	"github.com/vc-cri/vc-cri/pkg/agent/protocol"
)

// The guest's side of a resize. The host hot-plugs vCPUs, which the
// kernel registers offline (ACPI), and virtio-mem memory, which the
// kernel onlines itself (memhp_default_state=online): the agent onlines
// and offlines CPUs, and reports what the guest has.

const cpuSysfs = "/sys/devices/system/cpu"

// cpuPollInterval is how often ResizeGuest looks for hot-plugged CPUs.
const cpuPollInterval = 10 * time.Millisecond

// resizeMu serialises ResizeGuest: two calls would fight over CPUs.
var resizeMu sync.Mutex

// ResizeGuest implements the protocol's call.
func (a *agent) ResizeGuest(ctx context.Context, req *protocol.ResizeGuestRequest) (*protocol.GuestResources, error) {
	resizeMu.Lock()
	defer resizeMu.Unlock()
	if req.Cpus > 0 {
		if err := onlineCPUs(ctx, int(req.Cpus)); err != nil {
			return nil, err
		}
	}
	return guestResources()
}

// onlineCPUs makes the n lowest numbered present CPUs online and the
// others offline, once n are present.
func onlineCPUs(ctx context.Context, n int) error {
	var present []int
	for {
		var err error
		if present, err = cpuList(filepath.Join(cpuSysfs, "present")); err != nil {
			return status.Errorf(codes.Internal, "present CPUs: %v", err)
		}
		if len(present) >= n {
			break
		}
		select {
		case <-ctx.Done():
			return status.Errorf(codes.FailedPrecondition, "%d CPUs present, %d asked", len(present), n)
		case <-time.After(cpuPollInterval):
		}
	}
	// Onlining first: the guest never has fewer CPUs than both sizes.
	for _, on := range []bool{true, false} {
		for i, cpu := range present {
			if (i < n) != on {
				continue
			}
			if err := setCPUOnline(cpu, on); err != nil {
				return status.Errorf(codes.Internal, "%v", err)
			}
		}
	}
	return nil
}

func setCPUOnline(cpu int, on bool) error {
	path := filepath.Join(cpuSysfs, fmt.Sprintf("cpu%d", cpu), "online")
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		if on {
			return nil // the boot CPU: always online
		}
		return fmt.Errorf("CPU %d cannot be taken offline", cpu)
	}
	if err != nil {
		return err
	}
	want := "0"
	if on {
		want = "1"
	}
	if strings.TrimSpace(string(b)) == want {
		return nil
	}
	if err := os.WriteFile(path, []byte(want), 0); err != nil {
		return fmt.Errorf("CPU %d online=%s: %w", cpu, want, err)
	}
	klog.InfoS("CPU state changed", "cpu", cpu, "online", on)
	return nil
}

func guestResources() (*protocol.GuestResources, error) {
	online, err := cpuList(filepath.Join(cpuSysfs, "online"))
	if err != nil {
		return nil, status.Errorf(codes.Internal, "online CPUs: %v", err)
	}
	present, err := cpuList(filepath.Join(cpuSysfs, "present"))
	if err != nil {
		return nil, status.Errorf(codes.Internal, "present CPUs: %v", err)
	}
	mem, err := meminfo("MemTotal", "MemAvailable")
	if err != nil {
		return nil, status.Errorf(codes.Internal, "meminfo: %v", err)
	}
	return &protocol.GuestResources{
		OnlineCpus: uint32(len(online)), PresentCpus: uint32(len(present)),
		MemoryTotalBytes: mem["MemTotal"], MemoryAvailableBytes: mem["MemAvailable"],
	}, nil
}

// cpuList reads a kernel CPU list ("0-3,6").
func cpuList(path string) ([]int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseCPUList(strings.TrimSpace(string(b)))
}

func parseCPUList(s string) ([]int, error) {
	var cpus []int
	if s == "" {
		return nil, nil
	}
	for _, r := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(r, "-")
		first, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("CPU list %q: %w", s, err)
		}
		last := first
		if isRange {
			if last, err = strconv.Atoi(hi); err != nil {
				return nil, fmt.Errorf("CPU list %q: %w", s, err)
			}
		}
		if first < 0 || last < first || last > 1<<16 {
			return nil, fmt.Errorf("CPU list %q: bad range %q", s, r)
		}
		for c := first; c <= last; c++ {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

// meminfo reads fields of /proc/meminfo, in bytes.
func meminfo(fields ...string) (map[string]uint64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]uint64{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		name, rest, ok := strings.Cut(s.Text(), ":")
		if !ok {
			continue
		}
		for _, want := range fields {
			if name == want {
				kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", name, err)
				}
				out[name] = kb << 10
			}
		}
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	for _, want := range fields {
		if _, ok := out[want]; !ok {
			return nil, fmt.Errorf("no %s", want)
		}
	}
	return out, nil
}
