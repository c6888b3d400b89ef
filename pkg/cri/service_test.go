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

// Mount gives each root an /etc/passwd, as an image has.
func (f *fakeImages) Mount(_ context.Context, id, _, _ string, _ image.IDMap) (string, error) {
	root := filepath.Join(f.dir, id)
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		return "", err
	}
	return root, os.WriteFile(filepath.Join(root, "etc", "passwd"), []byte("root:x:0:0::/root:/bin/sh\n"), 0o644)
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
	// setupErr and statusErr are what Setup and Status fail with.
	setupErr, statusErr error
}

func (f *fakeNetwork) Setup(_ context.Context, pod cni.PodNetwork) (*cni.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.setupErr != nil {
		return nil, f.setupErr
	}
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

func (f *fakeNetwork) Status(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.statusErr
}

// isActive tells whether the pod's network is set up.
func (f *fakeNetwork) isActive(podID string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.active[podID]
}

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

// vmHandlers are the handlers of a node of VM pods on sandboxes, as
// cmd/vc-cri makes them by default: "" and "vc-cri".
func vmHandlers(sandboxes sandboxes) map[string]Handler {
	vm := Handler{
		Runtime:  sandboxes,
		Sandbox:  sandbox.SandboxConfig{HypervisorType: sandbox.MockHypervisor, AgentType: sandbox.NoopAgentType},
		Features: &runtime.RuntimeHandlerFeatures{RecursiveReadOnlyMounts: true},
	}
	return map[string]Handler{"": vm, "vc-cri": vm}
}

// newTestServiceOn is newTestService on the given sandboxes.
func newTestServiceOn(t testing.TB, stateDir string, sandboxes sandboxes) (*Service, *fakeNetwork) {
	t.Helper()
	net := &fakeNetwork{active: map[string]bool{}}
	return newTestServiceWith(t, stateDir, sandboxes, net), net
}

// newTestServiceWith is newTestService on the given sandboxes and
// network, with the options changed as opts say.
func newTestServiceWith(t testing.TB, stateDir string, sandboxes sandboxes, net podNetwork, opts ...func(*Options)) *Service {
	t.Helper()
	o := Options{
		StateDir: stateDir,
		Handlers: vmHandlers(sandboxes),
		Images:   &fakeImages{dir: t.TempDir()},
		Network:  net,
	}
	for _, set := range opts {
		set(&o)
	}
	s, err := New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	s.recover()
	// The pods the test leaves are removed, as kubelet would, and their
	// sandboxes' mounts with them, before the directories go.
	t.Cleanup(func() {
		for _, p := range s.pods.List() {
			if _, err := s.RemovePodSandbox(context.Background(), &runtime.RemovePodSandboxRequest{PodSandboxId: p.ID}); err != nil {
				t.Errorf("remove pod %s: %v", p.ID, err)
			}
		}
	})
	return s
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
	if net.isActive(pod) {
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

// readyPod runs a pod, removed when the test ends.
func readyPod(t *testing.T, s *Service, name string) string {
	t.Helper()
	ctx := context.Background()
	run, err := s.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: podConfig(name)})
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	t.Cleanup(func() { s.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: run.PodSandboxId}) })
	return run.PodSandboxId
}

// loggedPod runs a pod with a log directory, removed when the test
// ends, and returns it with the directory.
func loggedPod(t *testing.T, s *Service, name string) (podID, logDir string) {
	t.Helper()
	ctx := context.Background()
	logDir = t.TempDir()
	c := podConfig(name)
	c.LogDirectory = logDir
	run, err := s.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: c})
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	t.Cleanup(func() { s.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: run.PodSandboxId}) })
	return run.PodSandboxId, logDir
}

// loggedContainer runs a container that logs to the pod's log
// directory, and returns its pod, its ID and its log's path.
func loggedContainer(t *testing.T, s *Service) (podID, id, logPath string) {
	t.Helper()
	podID, dir := loggedPod(t, s, "logged")
	cc := containerConfig("app")
	cc.LogPath = "app.log"
	return podID, startedContainer(t, s, podID, cc), filepath.Join(dir, cc.LogPath)
}

// idsOf returns the IDs of items.
func idsOf[T any](items []T, id func(T) string) []string {
	var ids []string
	for _, it := range items {
		ids = append(ids, id(it))
	}
	return ids
}

// wantURL checks a streaming call's answer: want, and with OK a URL on
// path.
func wantURL(t *testing.T, what string, resp interface{ GetUrl() string }, err error, want codes.Code, path string) {
	t.Helper()
	wantCode(t, what, err, want)
	if err == nil && !strings.Contains(resp.GetUrl(), path) {
		t.Fatalf("%s: URL %q, want one on %s", what, resp.GetUrl(), path)
	}
}

// createdContainer creates a container of cc in pod.
func createdContainer(t *testing.T, s *Service, pod string, cc *runtime.ContainerConfig) string {
	t.Helper()
	created, err := s.CreateContainer(context.Background(), &runtime.CreateContainerRequest{PodSandboxId: pod, Config: cc})
	if err != nil {
		t.Fatalf("CreateContainer: %v", err)
	}
	return created.ContainerId
}

// startedContainer creates and starts a container of cc in pod.
func startedContainer(t *testing.T, s *Service, pod string, cc *runtime.ContainerConfig) string {
	t.Helper()
	id := createdContainer(t, s, pod, cc)
	// The call's context ends with it, as a gRPC call's does: nothing the
	// container goes on doing may hang on it.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := s.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: id}); err != nil {
		t.Fatalf("StartContainer: %v", err)
	}
	return id
}

// runningContainer runs a pod with one started container, removed when
// the test ends.
func runningContainer(t *testing.T, s *Service, pod string) (podID, containerID string) {
	t.Helper()
	podID = readyPod(t, s, pod)
	return podID, startedContainer(t, s, podID, containerConfig("c"))
}

// runningAndCreated runs a pod with a started container and one only
// created, for the calls that need a running container.
func runningAndCreated(t *testing.T, s *Service) (pod, running, created string) {
	t.Helper()
	pod, running = runningContainer(t, s, "web")
	return pod, running, createdContainer(t, s, pod, containerConfig("idle"))
}

// containerState is the container's state as ContainerStatus reports it.
func containerState(t *testing.T, s *Service, id string) *runtime.ContainerStatus {
	t.Helper()
	st, err := s.ContainerStatus(context.Background(), &runtime.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		t.Fatalf("ContainerStatus: %v", err)
	}
	return st.Status
}

// eventually fails the test unless cond holds within 5 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5s", what)
		}
	}
}

// TestRestartReattaches: a restarted service reattaches to a running
// container, and records its exit.
func TestRestartReattaches(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f := newFakeSandboxes()
	s, _ := newTestServiceOn(t, dir, f)
	pod, id := runningContainer(t, s, "keep")
	s.Close() // the daemon ends; the VM runs on

	restarted, _ := newTestServiceOn(t, dir, f)
	if st := containerState(t, restarted, id); st.State != runtime.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("container after restart: %v", st.State)
	}
	f.exit(pod, id, 3, false)
	eventually(t, "exit recorded after restart", func() bool {
		return containerState(t, restarted, id).State == runtime.ContainerState_CONTAINER_EXITED
	})
	if st := containerState(t, restarted, id); st.ExitCode != 3 || st.Reason != reasonError {
		t.Fatalf("exit after restart: %d %s, want 3 Error", st.ExitCode, st.Reason)
	}
}
