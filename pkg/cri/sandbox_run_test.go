package cri

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/vc-cri/vc-cri/pkg/sandbox"
)

func TestRunPodSandbox(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, f := newFakeService(t)
	cfg := podConfig("web")
	cfg.DnsConfig = &runtime.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: []string{"default.svc"}}
	cfg.Linux = &runtime.LinuxPodSandboxConfig{Resources: &runtime.LinuxContainerResources{MemoryLimitInBytes: 1 << 30, CpuQuota: 250000, CpuPeriod: 100000}}
	run, err := s.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: cfg, RuntimeHandler: "vc-cri"})
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	id := run.PodSandboxId
	t.Cleanup(func() { s.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: id}) })
	if len(id) != 64 {
		t.Fatalf("pod ID %q: want 64 hex digits", id)
	}
	if st := f.podState(id); st != sandbox.StateRunning {
		t.Fatalf("sandbox is %q, want running", st)
	}
	f.mu.Lock()
	sb := f.pods[id].cfg
	f.mu.Unlock()
	if sb.Hostname != "web" || sb.VMConfig.Memory != 1024+guestOverheadMiB || sb.VMConfig.VCPUs != 3 || sb.Annotations["io.kubernetes.cri.sandbox-name"] != "web" {
		t.Fatalf("sandbox config: hostname %q, %d MiB, %d vCPUs, annotations %v", sb.Hostname, sb.VMConfig.Memory, sb.VMConfig.VCPUs, sb.Annotations)
	}
	resolv, err := os.ReadFile(filepath.Join(s.podDir(id), "resolv.conf"))
	if err != nil || string(resolv) != "nameserver 10.96.0.10\nsearch default.svc\n" {
		t.Fatalf("resolv.conf: %q, %v", resolv, err)
	}
	if host, err := os.ReadFile(filepath.Join(s.podDir(id), "hostname")); err != nil || string(host) != "web\n" {
		t.Fatalf("hostname file: %q, %v", host, err)
	}
}

func TestRunPodSandboxRefusals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newFakeService(t)
	readyPod(t, s, "taken")
	hostNS := func(ns *runtime.NamespaceOption) *runtime.PodSandboxConfig {
		c := podConfig("host")
		c.Linux = &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{NamespaceOptions: ns}}
		return c
	}
	long := podConfig("long")
	long.Hostname = strings.Repeat("h", 65)
	noUID := podConfig("nouid")
	noUID.Metadata.Uid = ""
	for _, tc := range []struct {
		name    string
		config  *runtime.PodSandboxConfig
		handler string
		want    codes.Code
	}{
		{"no config", nil, "", codes.InvalidArgument},
		{"no uid", noUID, "", codes.InvalidArgument},
		{"host network", hostNS(&runtime.NamespaceOption{Network: runtime.NamespaceMode_NODE}), "", codes.InvalidArgument},
		{"host PID", hostNS(&runtime.NamespaceOption{Pid: runtime.NamespaceMode_NODE}), "", codes.InvalidArgument},
		{"host IPC", hostNS(&runtime.NamespaceOption{Ipc: runtime.NamespaceMode_NODE}), "", codes.InvalidArgument},
		{"hostname too long", long, "", codes.InvalidArgument},
		{"unknown runtime handler", podConfig("h"), "runc", codes.InvalidArgument},
		{"name taken", podConfig("taken"), "", codes.AlreadyExists},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: tc.config, RuntimeHandler: tc.handler})
			wantCode(t, "RunPodSandbox", err, tc.want)
		})
	}
	if list, _ := s.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{}); len(list.Items) != 1 {
		t.Fatalf("pods after the refusals: %v, want the one taken", list.Items)
	}
}

// TestRunPodSandboxRollback: a pod whose network or VM fails leaves
// nothing: no record, no network, no files, and its name is free.
func TestRunPodSandboxRollback(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	boom := errors.New("boom")
	for _, tc := range []struct {
		name   string
		inject func(*fakeSandboxes, *fakeNetwork)
	}{
		{"network setup fails", func(_ *fakeSandboxes, n *fakeNetwork) { n.setupErr = boom }},
		{"VM fails", func(f *fakeSandboxes, _ *fakeNetwork) { f.fail("RunSandbox", "", boom) }},
		{"VM boot times out", func(f *fakeSandboxes, _ *fakeNetwork) { f.hang("RunSandbox", "") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeSandboxes()
			s, net := newTestServiceOn(t, t.TempDir(), f)
			net.mu.Lock()
			tc.inject(f, net)
			net.mu.Unlock()
			cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			defer cancel()
			if _, err := s.RunPodSandbox(cctx, &runtime.RunPodSandboxRequest{Config: podConfig("web")}); err == nil {
				t.Fatal("RunPodSandbox succeeded")
			}
			net.mu.Lock()
			active := len(net.active)
			net.setupErr = nil
			net.mu.Unlock()
			f.clearFaults()
			if len(s.pods.List()) != 0 || active != 0 || len(f.pods) != 0 {
				t.Fatalf("left %d records, %d networks, %d sandboxes", len(s.pods.List()), active, len(f.pods))
			}
			if dirs, _ := os.ReadDir(filepath.Join(s.opts.StateDir, "pod-files")); len(dirs) != 0 {
				t.Fatalf("left pod files %v", dirs)
			}
			readyPod(t, s, "web")
		})
	}
}

func TestPodHostname(t *testing.T) {
	t.Parallel()
	named := podConfig("x")
	named.Hostname = "given"
	for _, tc := range []struct {
		name   string
		config *runtime.PodSandboxConfig
		want   string
	}{
		{"given", named, "given"},
		{"pod name", podConfig("web"), "web"},
		{"long pod name", podConfig(strings.Repeat("a", 62) + "-bcd"), strings.Repeat("a", 62)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if h := podHostname(tc.config); h != tc.want {
				t.Fatalf("hostname %q, want %q", h, tc.want)
			}
		})
	}
}
