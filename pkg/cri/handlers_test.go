package cri

import (
	"context"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/grpc/codes"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/vc-cri/vc-cri/pkg/sandbox"
)

// newTwoHandlerService is a test service with VM handlers ("" and
// "vc-cri") on vm and an OS-container handler "runc" on host, which runs
// the pods that share host namespaces.
func newTwoHandlerService(t *testing.T) (s *Service, vm, host *fakeSandboxes, net *fakeNetwork) {
	t.Helper()
	vm, host = newFakeSandboxes(), newFakeSandboxes()
	s, net = newTestServiceOn(t, t.TempDir(), vm)
	s.opts.Handlers["runc"] = Handler{Runtime: host, HostNamespaces: true, Features: &runtime.RuntimeHandlerFeatures{}}
	s.opts.HostNamespacePods = "runc"
	return s, vm, host, net
}

func TestHostNamespacePodRunsOnItsHandler(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, vm, host, net := newTwoHandlerService(t)
	cfg := podConfig("kube-proxy")
	cfg.Linux = &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{
		NamespaceOptions: &runtime.NamespaceOption{Network: runtime.NamespaceMode_NODE, Pid: runtime.NamespaceMode_NODE},
	}}
	run, err := s.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	id := run.PodSandboxId
	if st := host.podState(id); st != sandbox.StateRunning {
		t.Fatalf("on the runc handler the sandbox is %q, want running", st)
	}
	if st := vm.podState(id); st != "" {
		t.Fatalf("a VM was made for a host-namespace pod: %q", st)
	}
	host.mu.Lock()
	got := host.pods[id].cfg
	host.mu.Unlock()
	if want := []specs.LinuxNamespaceType{specs.NetworkNamespace, specs.PIDNamespace}; !slices.Equal(got.HostNamespaces, want) || got.NetworkConfig.NetNSPath != "" {
		t.Errorf("sandbox shares %v with netns %q, want %v and none", got.HostNamespaces, got.NetworkConfig.NetNSPath, want)
	}
	if net.active[id] {
		t.Errorf("CNI set up a network for a pod in the host's")
	}
	st, err := s.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: id})
	if err != nil {
		t.Fatal(err)
	}
	if st.Status.RuntimeHandler != "" || st.Status.Annotations[runtimeAnnotation] != "runc" {
		t.Errorf("status: handler %q, annotations %v; want \"\" and %s=runc", st.Status.RuntimeHandler, st.Status.Annotations, runtimeAnnotation)
	}

	ctr, err := s.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: id, Config: containerConfig("proxy"), SandboxConfig: cfg})
	if err != nil {
		t.Fatalf("CreateContainer: %v", err)
	}
	if _, err := s.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: ctr.ContainerId}); err != nil {
		t.Fatalf("StartContainer: %v", err)
	}
	if st := host.containerState(id, ctr.ContainerId); st != sandbox.StateRunning {
		t.Fatalf("container on the runc handler is %q, want running", st)
	}
	if _, err := s.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatalf("RemovePodSandbox: %v", err)
	}
	if st := host.podState(id); st != "" {
		t.Fatalf("sandbox left on the runc handler: %q", st)
	}
}

func TestHostNamespacePodsRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	hostNet := podConfig("h")
	hostNet.Linux = &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{
		NamespaceOptions: &runtime.NamespaceOption{Ipc: runtime.NamespaceMode_NODE},
	}}
	for _, tc := range []struct {
		name      string
		handler   string
		hostPods  string
		config    *runtime.PodSandboxConfig
		wantError codes.Code
	}{
		{"refuse set", "", "", hostNet, codes.InvalidArgument},
		{"VM handler named", "vc-cri", "runc", hostNet, codes.InvalidArgument},
		{"unknown handler", "kata", "runc", podConfig("k"), codes.InvalidArgument},
		{"runc handler named", "runc", "", hostNet, codes.OK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, _, _, _ := newTwoHandlerService(t)
			s.opts.HostNamespacePods = tc.hostPods
			_, err := s.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: tc.config, RuntimeHandler: tc.handler})
			if got := code(err); got != tc.wantError {
				t.Fatalf("RunPodSandbox = %v, want %v", err, tc.wantError)
			}
		})
	}
}

func TestNewRefusesRecordsOfMissingHandlers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	first, _ := newTestServiceOn(t, dir, newFakeSandboxes())
	first.opts.Handlers["runc"] = Handler{Runtime: newFakeSandboxes(), HostNamespaces: true}
	if _, err := first.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: podConfig("p"), RuntimeHandler: "runc"}); err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	first.Close()
	if _, err := New(ctx, Options{StateDir: dir, Handlers: vmHandlers(newFakeSandboxes()), Images: &fakeImages{dir: t.TempDir()}, Network: &fakeNetwork{active: map[string]bool{}}}); err == nil {
		t.Fatal("New with a pod of a handler no longer configured succeeded")
	}
}
