package cri

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/vc-cri/vc-cri/pkg/cni"
	"github.com/vc-cri/vc-cri/pkg/hypervisor"
	"github.com/vc-cri/vc-cri/pkg/image"
	"github.com/vc-cri/vc-cri/pkg/sandbox"
)

// fakeImages knows one image, busybox, and gives containers empty roots.
type fakeImages struct {
	dir string
}

const fakeImage = "registry.k8s.io/e2e-test-images/busybox:1.29-2"

func (f *fakeImages) Status(_ context.Context, ref string) (*image.Image, error) {
	if ref != fakeImage {
		return nil, fmt.Errorf("image %q: %w", ref, image.ErrNotFound)
	}
	return &image.Image{
		ID: "sha256:" + fmt.Sprintf("%064x", 1), RepoTags: []string{fakeImage},
		Config: &imgspecv1.Image{Config: imgspecv1.ImageConfig{Cmd: []string{"sh"}, Env: []string{"PATH=/bin"}}},
	}, nil
}

func (f *fakeImages) Mount(_ context.Context, id, _, _ string) (string, error) {
	root := filepath.Join(f.dir, id)
	return root, os.MkdirAll(root, 0o755)
}

func (f *fakeImages) Root() string { return f.dir }

func (f *fakeImages) RemoveRootfs(_ context.Context, id string) error {
	return os.RemoveAll(filepath.Join(f.dir, id))
}

// fakeNetwork hands out addresses without touching the host.
type fakeNetwork struct {
	mu     sync.Mutex
	next   int
	active map[string]bool
}

func (f *fakeNetwork) Setup(_ context.Context, pod cni.PodNetwork) (*cni.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	f.active[pod.ID] = true
	return &cni.Result{Interfaces: []cni.Interface{{Name: "eth0", IPs: []cni.IP{{Address: fmt.Sprintf("10.0.0.%d/24", f.next)}}}}}, nil
}

func (f *fakeNetwork) Teardown(_ context.Context, podID, _ string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.active, podID)
	return nil
}

func (f *fakeNetwork) Status(context.Context) error { return nil }

// sandboxRoot is where the test service of stateDir keeps its sandboxes.
func sandboxRoot(stateDir string) string { return filepath.Join(stateDir, "sandboxes") }

// testSandboxes is a sandbox runtime on stateDir's sandboxRoot, with the
// VMs of mock and the noop agent.
func testSandboxes(stateDir string, mock hypervisor.Hypervisor) *sandbox.Runtime {
	return sandbox.NewRuntime(sandbox.WithStateRoot(sandboxRoot(stateDir)), sandbox.WithHypervisor(sandbox.MockHypervisor, mock))
}

// newTestService is a service of its own for one test: records in
// stateDir, a sandbox runtime of its own, fake images and network.
func newTestService(t testing.TB, stateDir string) (*Service, *fakeNetwork) {
	t.Helper()
	return newTestServiceOn(t, stateDir, testSandboxes(stateDir, hypervisor.NewMock()))
}

// newTestServiceOn is newTestService on the given sandboxes.
func newTestServiceOn(t testing.TB, stateDir string, sandboxes *sandbox.Runtime) (*Service, *fakeNetwork) {
	t.Helper()
	net := &fakeNetwork{active: map[string]bool{}}
	s, err := New(context.Background(), Options{
		StateDir:  stateDir,
		Sandbox:   sandbox.SandboxConfig{HypervisorType: sandbox.MockHypervisor, AgentType: sandbox.NoopAgentType},
		Sandboxes: sandboxes,
		Images:    &fakeImages{dir: t.TempDir()},
		Network:   net,
	})
	if err != nil {
		t.Fatal(err)
	}
	// The pods the test leaves are removed, as kubelet would, and their
	// sandboxes' mounts with them, before the directories go.
	t.Cleanup(func() {
		for _, p := range s.pods.List() {
			if _, err := s.RemovePodSandbox(context.Background(), &runtime.RemovePodSandboxRequest{PodSandboxId: p.ID}); err != nil {
				t.Errorf("remove pod %s: %v", p.ID, err)
			}
		}
	})
	return s, net
}

func podConfig(name string) *runtime.PodSandboxConfig {
	return &runtime.PodSandboxConfig{
		Metadata: &runtime.PodSandboxMetadata{Name: name, Namespace: "default", Uid: name + "-uid"},
		Labels:   map[string]string{"app": name},
	}
}

func containerConfig(name string) *runtime.ContainerConfig {
	return &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: name},
		Image:    &runtime.ImageSpec{Image: fakeImage},
		Labels:   map[string]string{"ctr": name},
	}
}

func code(err error) codes.Code { return status.Code(toStatus(err)) }

func TestVersionAndStatus(t *testing.T) {
	t.Parallel()
	s, _ := newTestService(t, t.TempDir())
	v, err := s.Version(context.Background(), &runtime.VersionRequest{})
	if err != nil || v.RuntimeName != RuntimeName || v.RuntimeApiVersion != "v1" {
		t.Fatalf("Version: %v, %v", v, err)
	}
	st, err := s.Status(context.Background(), &runtime.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range st.Status.Conditions {
		if !c.Status {
			t.Fatalf("condition %s is false: %s", c.Type, c.Message)
		}
	}
	rc, err := s.RuntimeConfig(context.Background(), &runtime.RuntimeConfigRequest{})
	if err != nil || rc.Linux.CgroupDriver != runtime.CgroupDriver_CGROUPFS {
		t.Fatalf("RuntimeConfig: %v, %v", rc, err)
	}
}

func TestPodAndContainerLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, net := newTestService(t, t.TempDir())

	run, err := s.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: podConfig("web")})
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	pod := run.PodSandboxId
	st, err := s.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: pod})
	if err != nil || st.Status.State != runtime.PodSandboxState_SANDBOX_READY || st.Status.Network.GetIp() != "10.0.0.1" {
		t.Fatalf("PodSandboxStatus: %v, %v", st, err)
	}

	cc := containerConfig("app")
	cc.Command = []string{"sleep", "1000"}
	created, err := s.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod, Config: cc, SandboxConfig: podConfig("web")})
	if err != nil {
		t.Fatalf("CreateContainer: %v", err)
	}
	id := created.ContainerId
	if _, err := s.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod, Config: cc}); code(err) != codes.AlreadyExists {
		t.Fatalf("second CreateContainer of a name: %v, want AlreadyExists", err)
	}
	if _, err := s.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: id}); err != nil {
		t.Fatalf("StartContainer: %v", err)
	}
	if _, err := s.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: id}); code(err) != codes.FailedPrecondition {
		t.Fatalf("StartContainer of a running container: %v, want FailedPrecondition", err)
	}
	cs, err := s.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: id})
	if err != nil || cs.Status.State != runtime.ContainerState_CONTAINER_RUNNING || cs.Status.StartedAt == 0 || cs.Status.ImageRef == "" {
		t.Fatalf("ContainerStatus: %v, %v", cs, err)
	}
	list, err := s.ListContainers(ctx, &runtime.ListContainersRequest{Filter: &runtime.ContainerFilter{LabelSelector: map[string]string{"ctr": "app"}}})
	if err != nil || len(list.Containers) != 1 {
		t.Fatalf("ListContainers by label: %v, %v", list, err)
	}
	list, _ = s.ListContainers(ctx, &runtime.ListContainersRequest{Filter: &runtime.ContainerFilter{LabelSelector: map[string]string{"ctr": "other"}}})
	if len(list.Containers) != 0 {
		t.Fatalf("ListContainers by another label: %v", list)
	}

	// SIGTERM ends the noop agent's process: exit code 143, Error.
	if _, err := s.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: id, Timeout: 10}); err != nil {
		t.Fatalf("StopContainer: %v", err)
	}
	cs, err = s.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: id})
	if err != nil || cs.Status.State != runtime.ContainerState_CONTAINER_EXITED || cs.Status.ExitCode != 143 || cs.Status.Reason != reasonError || cs.Status.FinishedAt == 0 {
		t.Fatalf("ContainerStatus after stop: %v, %v", cs, err)
	}
	if _, err := s.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: id}); err != nil {
		t.Fatalf("second StopContainer: %v", err)
	}
	if _, err := s.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatalf("RemoveContainer: %v", err)
	}
	if _, err := s.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatalf("second RemoveContainer: %v", err)
	}
	if _, err := s.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: id}); code(err) != codes.NotFound {
		t.Fatalf("ContainerStatus after remove: %v, want NotFound", err)
	}

	for i := 0; i < 2; i++ {
		if _, err := s.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: pod}); err != nil {
			t.Fatalf("StopPodSandbox #%d: %v", i+1, err)
		}
	}
	if net.active[pod] {
		t.Fatal("StopPodSandbox left the pod network")
	}
	for i := 0; i < 2; i++ {
		if _, err := s.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
			t.Fatalf("RemovePodSandbox #%d: %v", i+1, err)
		}
	}
	if _, err := s.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: pod}); code(err) != codes.NotFound {
		t.Fatalf("PodSandboxStatus after remove: %v, want NotFound", err)
	}
	// The name is free again.
	again, err := s.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: podConfig("web")})
	if err != nil {
		t.Fatalf("RunPodSandbox of a removed pod's name: %v", err)
	}
	s.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: again.PodSandboxId})
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestService(t, t.TempDir())
	run, err := s.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: podConfig("bad")})
	if err != nil {
		t.Fatal(err)
	}
	pod := run.PodSandboxId
	defer s.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: pod})

	hostNet := podConfig("hostnet")
	hostNet.Linux = &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{
		NamespaceOptions: &runtime.NamespaceOption{Network: runtime.NamespaceMode_NODE},
	}}
	noImage := containerConfig("noimage")
	noImage.Image.Image = "registry.k8s.io/none:1"

	for _, tc := range []struct {
		name string
		call func() error
		want codes.Code
	}{
		{"pod without config", func() error { _, err := s.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{}); return err }, codes.InvalidArgument},
		{"pod on the host network", func() error {
			_, err := s.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: hostNet})
			return err
		}, codes.InvalidArgument},
		{"hostname too long", func() error {
			c := podConfig("long")
			c.Hostname = strings.Repeat("h", 65)
			_, err := s.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: c})
			return err
		}, codes.InvalidArgument},
		{"unknown runtime handler", func() error {
			_, err := s.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: podConfig("h"), RuntimeHandler: "runc"})
			return err
		}, codes.InvalidArgument},
		{"pod name taken", func() error {
			_, err := s.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: podConfig("bad")})
			return err
		}, codes.AlreadyExists},
		{"status of unknown pod", func() error {
			_, err := s.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: "nope"})
			return err
		}, codes.NotFound},
		{"stop unknown pod", func() error {
			_, err := s.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: "nope"})
			return err
		}, codes.OK},
		{"stop unknown container", func() error {
			_, err := s.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: "nope"})
			return err
		}, codes.OK},
		{"container in unknown pod", func() error {
			_, err := s.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: "nope", Config: containerConfig("c")})
			return err
		}, codes.NotFound},
		{"container without name", func() error {
			_, err := s.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod, Config: &runtime.ContainerConfig{}})
			return err
		}, codes.InvalidArgument},
		{"container of a missing image", func() error {
			_, err := s.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod, Config: noImage})
			return err
		}, codes.NotFound},
		{"start unknown container", func() error {
			_, err := s.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: "nope"})
			return err
		}, codes.NotFound},
		{"exec sync in unknown container", func() error {
			_, err := s.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: "nope", Cmd: []string{"true"}})
			return err
		}, codes.NotFound},
		{"exec without command", func() error {
			_, err := s.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: "nope"})
			return err
		}, codes.InvalidArgument},
		{"port forward to unknown pod", func() error {
			_, err := s.PortForward(ctx, &runtime.PortForwardRequest{PodSandboxId: "nope", Port: []int32{80}})
			return err
		}, codes.NotFound},
		{"checkpoint", func() error {
			_, err := s.CheckpointContainer(ctx, &runtime.CheckpointContainerRequest{})
			return err
		}, codes.Unimplemented},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := code(tc.call()); got != tc.want {
				t.Fatalf("code %v, want %v", got, tc.want)
			}
		})
	}

	// A stopped pod takes no containers.
	if _, err := s.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod, Config: containerConfig("late")}); code(err) != codes.FailedPrecondition {
		t.Fatalf("container in a stopped pod: %v, want FailedPrecondition", err)
	}
}

func TestRestartFindsPodsAndContainers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	mock := hypervisor.NewMock()
	s, _ := newTestServiceOn(t, dir, testSandboxes(dir, mock))
	run, err := s.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: podConfig("keep")})
	if err != nil {
		t.Fatal(err)
	}
	created, err := s.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: run.PodSandboxId, Config: containerConfig("c")})
	if err != nil {
		t.Fatal(err)
	}

	// The daemon restarts; the VMs run on.
	restarted, _ := newTestServiceOn(t, dir, testSandboxes(dir, mock))
	pods, err := restarted.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
	if err != nil || len(pods.Items) != 1 || pods.Items[0].Id != run.PodSandboxId {
		t.Fatalf("pods after restart: %v, %v", pods, err)
	}
	cs, err := restarted.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: created.ContainerId})
	if err != nil || cs.Status.State != runtime.ContainerState_CONTAINER_CREATED {
		t.Fatalf("container after restart: %v, %v", cs, err)
	}
	// Names stay reserved across the restart.
	if _, err := restarted.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: podConfig("keep")}); code(err) != codes.AlreadyExists {
		t.Fatalf("RunPodSandbox of a kept name after restart: %v, want AlreadyExists", err)
	}
	if _, err := restarted.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: run.PodSandboxId}); err != nil {
		t.Fatalf("RemovePodSandbox after restart: %v", err)
	}
}

// runningContainer runs a pod with one started container, removed when
// the test ends.
func runningContainer(t *testing.T, s *Service, pod string) (podID, containerID string) {
	t.Helper()
	ctx := context.Background()
	run, err := s.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: podConfig(pod)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: run.PodSandboxId}) })
	created, err := s.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: run.PodSandboxId, Config: containerConfig("c")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: created.ContainerId}); err != nil {
		t.Fatal(err)
	}
	return run.PodSandboxId, created.ContainerId
}

func TestContainerEvents(t *testing.T) {
	t.Parallel()
	s, _ := newTestService(t, t.TempDir())
	ch := s.events.subscribe()
	defer s.events.unsubscribe(ch)
	podID, containerID := runningContainer(t, s, "ev")
	want := []runtime.ContainerEventType{runtime.ContainerEventType_CONTAINER_CREATED_EVENT, runtime.ContainerEventType_CONTAINER_STARTED_EVENT}
	for _, w := range want {
		select {
		case ev := <-ch:
			if ev.ContainerEventType != w || ev.ContainerId != containerID || ev.PodSandboxStatus.GetId() != podID {
				t.Fatalf("event %v for %s, want %v", ev.ContainerEventType, ev.ContainerId, w)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no %v event", w)
		}
	}
}

func TestPodHostname(t *testing.T) {
	t.Parallel()
	long := podConfig(strings.Repeat("a", 62) + "-bcd")
	if h := podHostname(long); len(h) > 63 || strings.HasSuffix(h, "-") {
		t.Fatalf("hostname %q of a long pod name: want at most 63 bytes, no trailing dash", h)
	}
	named := podConfig("x")
	named.Hostname = "given"
	if h := podHostname(named); h != "given" {
		t.Fatalf("hostname %q, want the given one", h)
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestService(t, t.TempDir())
	runningContainer(t, s, "metrics")
	descs, err := s.ListMetricDescriptors(ctx, &runtime.ListMetricDescriptorsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]int{}
	for _, d := range descs.Descriptors {
		keys[d.Name] = len(d.LabelKeys)
	}
	metrics, err := s.ListPodSandboxMetrics(ctx, &runtime.ListPodSandboxMetricsRequest{})
	if err != nil || len(metrics.PodMetrics) != 1 || len(metrics.PodMetrics[0].ContainerMetrics) != 1 {
		t.Fatalf("ListPodSandboxMetrics: %v, %v", metrics, err)
	}
	seen := map[string]bool{}
	for _, m := range metrics.PodMetrics[0].ContainerMetrics[0].Metrics {
		n, ok := keys[m.Name]
		if !ok || n != len(m.LabelValues) {
			t.Fatalf("metric %s: %d label values, described with %d keys (described: %v)", m.Name, len(m.LabelValues), n, ok)
		}
		seen[m.Name] = true
	}
	for _, d := range containerMetrics {
		if !seen[d.name] {
			t.Errorf("described metric %s has no value", d.name)
		}
	}
}
