package cri

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/containerd/nri/pkg/api"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/vc-cri/vc-cri/pkg/nri"
	"github.com/vc-cri/vc-cri/pkg/nri/nritest"
	"github.com/vc-cri/vc-cri/pkg/sandbox"
)

// nriService is a test service on fakes with NRI on, and connect, which
// connects a plugin to it.
func nriService(t *testing.T) (s *Service, f *fakeSandboxes, net *fakeNetwork, connect func(*nritest.Plugin)) {
	t.Helper()
	dir := t.TempDir()
	socket := filepath.Join(dir, "nri.sock")
	n, err := nri.New(nri.Config{Enable: true, SocketPath: socket, PluginPath: filepath.Join(dir, "plugins"), PluginConfigPath: filepath.Join(dir, "conf.d")})
	if err != nil {
		t.Fatal(err)
	}
	// Stopped after the service's cleanup has removed the pods.
	t.Cleanup(n.Stop)
	f = newFakeSandboxes()
	net = &fakeNetwork{active: map[string]bool{}}
	s = newTestServiceWith(t, t.TempDir(), f, net, func(o *Options) { o.NRI = n })
	t.Cleanup(f.clearFaults)
	if err := n.Start(nriRuntime{s}); err != nil {
		t.Fatal(err)
	}
	return s, f, net, func(p *nritest.Plugin) { nritest.Connect(t, socket, p, func() { n.BlockSync()() }) }
}

// failOnce fails the first event of kind.
func failOnce(kind string, check func()) func(string) error {
	var once sync.Once
	return func(k string) error {
		if k != kind {
			return nil
		}
		err := error(nil)
		once.Do(func() {
			if check != nil {
				check()
			}
			err = errors.New("induced " + kind + " failure")
		})
		return err
	}
}

func TestNRIAdjustmentReachesTheSpec(t *testing.T) {
	t.Parallel()
	s, f, _, connect := nriService(t)
	connect(&nritest.Plugin{Adjust: func(_ *api.PodSandbox, c *api.Container) *api.ContainerAdjustment {
		adj := &api.ContainerAdjustment{}
		adj.AddEnv("FROM_NRI", "yes")
		adj.AddMount(&api.Mount{Destination: "/nri", Type: "bind", Source: "/var/lib/nri", Options: []string{"rbind", "ro"}})
		adj.AddAnnotation("nri.example/container", c.GetName())
		adj.SetLinuxMemoryLimit(64 << 20)
		adj.SetLinuxCPUShares(512)
		return adj
	}})
	pod := readyPod(t, s, "web")
	cc := containerConfig("app")
	cc.Envs = []*runtime.KeyValue{{Key: "FROM_CRI", Value: []byte("yes")}}
	cc.Linux = &runtime.LinuxContainerConfig{Resources: &runtime.LinuxContainerResources{CpuShares: 256, MemoryLimitInBytes: 32 << 20}}
	id := createdContainer(t, s, pod, cc)

	var cfg sandbox.ContainerConfig
	f.inspect(pod, id, func(c *fakeContainer) { cfg = c.cfg })
	spec := cfg.CustomSpec
	if !slices.Contains(spec.Process.Env, "FROM_NRI=yes") || !slices.Contains(spec.Process.Env, "FROM_CRI=yes") {
		t.Errorf("env: %v", spec.Process.Env)
	}
	if !slices.ContainsFunc(spec.Mounts, func(m specs.Mount) bool { return m.Destination == "/nri" && m.Source == "/var/lib/nri" }) {
		t.Errorf("mounts: %v", spec.Mounts)
	}
	if spec.Annotations["nri.example/container"] != "app" || spec.Annotations["io.kubernetes.cri.sandbox-id"] != pod {
		t.Errorf("annotations: %v", spec.Annotations)
	}
	// The runtime applies cfg.Resources: the plugin's over kubelet's.
	if m := cfg.Resources.Memory; m == nil || *m.Limit != 64<<20 {
		t.Errorf("memory: %+v", m)
	}
	if c := cfg.Resources.CPU; c == nil || *c.Shares != 512 {
		t.Errorf("cpu: %+v", c)
	}
	if len(cfg.Resources.Devices) != 0 {
		t.Errorf("device rules in the resources: %v", cfg.Resources.Devices)
	}
}

func TestNRIEventOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, f, _, connect := nriService(t)
	p := &nritest.Plugin{}
	var (
		mu      sync.Mutex // guards stopSaw, set in the plugin's goroutine
		stopSaw []runtime.ContainerState
	)
	p.Fail = func(kind string) error {
		mu.Lock()
		defer mu.Unlock()
		if kind == "StopPodSandbox" {
			// The pod's containers are exited, its record still there.
			for _, c := range s.containers.List() {
				stopSaw = append(stopSaw, c.State)
			}
			if _, err := s.pods.Get(p.Events()[0].PodID); err != nil {
				t.Errorf("pod not found during its StopPodSandbox: %v", err)
			}
		}
		return nil
	}
	connect(p)
	pod := readyPod(t, s, "web")
	stopped := startedContainer(t, s, pod, containerConfig("stopped"))
	exits := startedContainer(t, s, pod, containerConfig("exits"))
	never := createdContainer(t, s, pod, containerConfig("never"))
	if _, err := s.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: stopped, Timeout: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: stopped}); err != nil {
		t.Fatal(err)
	}
	// An exit of its own is a stop too, before any removal.
	f.exit(pod, exits, 1, false)
	eventually(t, "StopContainer of the container that exited", func() bool {
		return slices.Contains(p.Kinds(exits), "StopContainer")
	})
	for range 2 {
		if _, err := s.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: pod}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}

	started := []string{"CreateContainer", "PostCreateContainer", "StartContainer", "PostStartContainer", "StopContainer", "RemoveContainer"}
	for id, want := range map[string][]string{
		stopped: started,
		exits:   started,
		never:   {"CreateContainer", "PostCreateContainer", "StopContainer", "RemoveContainer"},
		pod:     {"RunPodSandbox", "StopPodSandbox", "RemovePodSandbox"},
	} {
		if got := p.Kinds(id); !slices.Equal(got, want) {
			t.Errorf("events of %s: %v, want %v", id, got, want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(stopSaw) != 2 || slices.ContainsFunc(stopSaw, func(st runtime.ContainerState) bool { return st != runtime.ContainerState_CONTAINER_EXITED }) {
		t.Errorf("containers during StopPodSandbox: %v, want 2 exited", stopSaw)
	}
	for _, e := range p.Events() {
		if e.Kind == "CreateContainer" && (e.Container.GetName() != "stopped" && e.Container.GetName() != "exits" && e.Container.GetName() != "never") {
			t.Errorf("CreateContainer names %q", e.Container.GetName())
		}
		if e.Kind == "RunPodSandbox" && (e.Pod.GetName() != "web" || e.Pod.GetNamespace() != "default" || e.Pod.GetUid() != "web-uid" || len(e.Pod.GetIps()) != 1) {
			t.Errorf("RunPodSandbox's pod: %v", e.Pod)
		}
	}
}

func TestNRIRunPodSandboxHookFails(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, f, net, connect := nriService(t)
	// Set in the plugin's goroutine: the race detector does not see
	// through the socket.
	var visible atomic.Int32
	visible.Store(-1)
	connect(&nritest.Plugin{Fail: failOnce("RunPodSandbox", func() { visible.Store(int32(len(s.pods.List()))) })})
	if _, err := s.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: podConfig("web")}); err == nil {
		t.Fatal("RunPodSandbox succeeded though its NRI hook failed")
	}
	if v := visible.Load(); v != 0 {
		t.Errorf("%d pods listed during the hook", v)
	}
	net.mu.Lock()
	active := len(net.active)
	net.mu.Unlock()
	f.mu.Lock()
	sandboxes := len(f.pods)
	f.mu.Unlock()
	if len(s.pods.List()) != 0 || active != 0 || sandboxes != 0 {
		t.Fatalf("left %d records, %d networks, %d sandboxes", len(s.pods.List()), active, sandboxes)
	}
	if dirs, _ := os.ReadDir(filepath.Join(s.opts.StateDir, "pod-files")); len(dirs) != 0 {
		t.Fatalf("left pod files %v", dirs)
	}
	readyPod(t, s, "web")
}

func TestNRICreateContainerHookFails(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, f, _, connect := nriService(t)
	var visible atomic.Int32
	visible.Store(-1)
	p := &nritest.Plugin{Fail: failOnce("CreateContainer", func() { visible.Store(int32(len(s.containers.List()))) })}
	connect(p)
	pod := readyPod(t, s, "web")
	if _, err := s.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod, Config: containerConfig("app")}); err == nil {
		t.Fatal("CreateContainer succeeded though its NRI hook failed")
	}
	if v := visible.Load(); v != 0 {
		t.Errorf("%d containers listed during the hook", v)
	}
	if len(s.containers.List()) != 0 || len(f.containersOf(pod)) != 0 {
		t.Fatalf("left %d records, guest containers %v", len(s.containers.List()), f.containersOf(pod))
	}
	if roots, _ := os.ReadDir(s.opts.Images.Root()); len(roots) != 0 {
		t.Fatalf("roots left: %v", roots)
	}
	// The plugins that were told of it are told of its end.
	failed := p.Events()[1].ContainerID
	if got, want := p.Kinds(failed), []string{"CreateContainer", "StopContainer", "RemoveContainer"}; !slices.Equal(got, want) {
		t.Errorf("events of the failed container: %v, want %v", got, want)
	}
	startedContainer(t, s, pod, containerConfig("app"))
}

func TestNRISynchronizesALatePlugin(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _, _, connect := nriService(t)
	pod := readyPod(t, s, "web")
	id := startedContainer(t, s, pod, containerConfig("app"))
	late := &nritest.Plugin{}
	connect(late)
	pods, ctrs := late.Synced()
	if len(pods) != 1 || pods[0].GetId() != pod || len(ctrs) != 1 || ctrs[0].GetId() != id || ctrs[0].GetState() != api.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("synchronized %v, %v", pods, ctrs)
	}
	if _, err := s.UpdateContainerResources(ctx, &runtime.UpdateContainerResourcesRequest{
		ContainerId: id, Linux: &runtime.LinuxContainerResources{MemoryLimitInBytes: 64 << 20},
	}); err != nil {
		t.Fatal(err)
	}
	if got, want := late.Kinds(id), []string{"UpdateContainer", "PostUpdateContainer"}; !slices.Equal(got, want) {
		t.Errorf("events of the container: %v, want %v", got, want)
	}
}

// A failing StartContainer hook fails the start before the process
// runs: the container is exited, and the plugins hear of its stop.
func TestNRIStartContainerHookFails(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, f, _, connect := nriService(t)
	p := &nritest.Plugin{Fail: failOnce("StartContainer", nil)}
	connect(p)
	pod := readyPod(t, s, "web")
	id := createdContainer(t, s, pod, containerConfig("app"))
	if _, err := s.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: id}); err == nil {
		t.Fatal("StartContainer succeeded though its NRI hook failed")
	}
	if st := containerState(t, s, id); st.State != runtime.ContainerState_CONTAINER_EXITED || st.Reason != "StartError" {
		t.Errorf("container after a failed start hook: %s, %s", st.State, st.Reason)
	}
	if st := f.containerState(pod, id); st == "running" {
		t.Errorf("guest container is %s", st)
	}
	if got, want := p.Kinds(id), []string{"CreateContainer", "PostCreateContainer", "StartContainer", "StopContainer"}; !slices.Equal(got, want) {
		t.Errorf("events of the container: %v, want %v", got, want)
	}
}
