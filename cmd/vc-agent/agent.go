package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"

	"github.com/vc-cri/vc-cri/pkg/agent/protocol"
)

// agent implements the agent service. Errors leave it as gRPC statuses:
// this is the protocol boundary.
type agent struct {
	protocol.UnimplementedAgentServer

	stateDir string

	// mu guards containers and userns; a container guards its own
	// processes. A container's entry is nil while it is created.
	mu         sync.Mutex
	containers map[string]*container
	// userns is the pod's user namespace, once a container asked for one.
	userns *podUserns

	restoreMu sync.Mutex
	restored  bool // guarded by restoreMu; see Restore

	destroyOnce sync.Once
	// destroyed is closed once the host asked to destroy the sandbox.
	destroyed chan struct{}
}

var _ protocol.AgentServer = (*agent)(nil)

func newAgent(stateDir string) *agent {
	return &agent{
		stateDir:   stateDir,
		containers: map[string]*container{},
		destroyed:  make(chan struct{}),
	}
}

func (a *agent) Check(context.Context, *protocol.CheckRequest) (*protocol.CheckResponse, error) {
	return &protocol.CheckResponse{Version: version}, nil
}

func (a *agent) GuestDetails(context.Context, *protocol.GuestDetailsRequest) (*protocol.GuestDetailsResponse, error) {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return nil, status.Errorf(codes.Internal, "uname: %v", err)
	}
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return nil, status.Errorf(codes.Internal, "sysinfo: %v", err)
	}
	var cpus unix.CPUSet
	if err := unix.SchedGetaffinity(0, &cpus); err != nil {
		return nil, status.Errorf(codes.Internal, "cpus: %v", err)
	}
	return &protocol.GuestDetailsResponse{
		AgentVersion:     version,
		KernelRelease:    unix.ByteSliceToString(uts.Release[:]),
		MemoryTotalBytes: si.Totalram * uint64(si.Unit),
		Cpus:             uint32(cpus.Count()),
		UptimeSeconds:    float64(si.Uptime),
		HugepageSizes:    hugePageSizes(),
	}, nil
}

// hugePageSizes lists the kernel's huge page sizes: one directory
// hugepages-<N>kB each under /sys/kernel/mm/hugepages.
func hugePageSizes() []uint64 {
	entries, _ := os.ReadDir("/sys/kernel/mm/hugepages")
	var sizes []uint64
	for _, e := range entries {
		kb, ok := strings.CutPrefix(e.Name(), "hugepages-")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSuffix(kb, "kB"), 10, 64); err == nil {
			sizes = append(sizes, n<<10)
		}
	}
	return sizes
}

// DestroySandbox kills every container, answers, and then lets serve end,
// after which PID 1 powers the guest off.
func (a *agent) DestroySandbox(context.Context, *protocol.DestroySandboxRequest) (*protocol.Empty, error) {
	a.mu.Lock()
	for id, c := range a.containers {
		if c != nil { // nil: being created, destroyed by its creator
			c.destroy()
		}
		delete(a.containers, id)
	}
	a.mu.Unlock()
	a.destroyOnce.Do(func() {
		// Give the answer time to leave before the link goes down.
		time.AfterFunc(100*time.Millisecond, func() { close(a.destroyed) })
	})
	klog.InfoS("Sandbox destroyed")
	return &protocol.Empty{}, nil
}

func (a *agent) SetupNetwork(_ context.Context, req *protocol.SetupNetworkRequest) (*protocol.Empty, error) {
	if err := setupNetwork(req); err != nil {
		return nil, status.Errorf(codes.Internal, "setup network: %v", err)
	}
	if req.Hostname != "" {
		if err := unix.Sethostname([]byte(req.Hostname)); err != nil {
			return nil, status.Errorf(codes.Internal, "set hostname: %v", err)
		}
	}
	for k, v := range req.Sysctls {
		if err := setSysctl(k, v); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "sysctl %s: %v", k, err)
		}
	}
	if req.ResolvConf != "" {
		if err := os.WriteFile("/etc/resolv.conf", []byte(req.ResolvConf), 0o644); err != nil {
			return nil, status.Errorf(codes.Internal, "write resolv.conf: %v", err)
		}
	}
	return &protocol.Empty{}, nil
}

// container returns the container id or a NotFound status.
func (a *agent) container(id string) (*container, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.containers[id]
	if c == nil {
		return nil, status.Errorf(codes.NotFound, "container %q not found", id)
	}
	return c, nil
}

// validID keeps IDs usable as path elements.
func validID(id string) bool {
	return id != "" && !strings.ContainsAny(id, "/\x00") && id != "." && id != ".."
}

// setSysctl writes a sysctl of the guest: the pod's, as its containers
// share the guest's network and IPC namespaces.
func setSysctl(name, value string) error {
	if name == "" || strings.Contains(name, "..") || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("invalid name")
	}
	return os.WriteFile(filepath.Join("/proc/sys", strings.ReplaceAll(name, ".", "/")), []byte(value), 0o644)
}
