package nri_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/containerd/nri/pkg/api"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/vc-cri/vc-cri/pkg/nri"
	"github.com/vc-cri/vc-cri/pkg/nri/nritest"
)

type fakeRuntime struct {
	pods []nri.Pod
	ctrs []nri.Container
}

func (f fakeRuntime) NRIPods(context.Context) []nri.Pod             { return f.pods }
func (f fakeRuntime) NRIContainers(context.Context) []nri.Container { return f.ctrs }

// started is an NRI on a socket of its own, with plugin connected.
func started(t *testing.T, rt nri.Runtime, plugin *nritest.Plugin) *nri.NRI {
	t.Helper()
	dir := t.TempDir()
	socket := filepath.Join(dir, "nri.sock")
	n, err := nri.New(nri.Config{Enable: true, SocketPath: socket, PluginPath: filepath.Join(dir, "plugins"), PluginConfigPath: filepath.Join(dir, "conf.d")})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(rt); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Stop)
	nritest.Connect(t, socket, plugin, func() { n.BlockSync()() })
	return n
}

func testSpec() *specs.Spec {
	return &specs.Spec{
		Process:     &specs.Process{Args: []string{"sleep", "1"}, Env: []string{"PATH=/bin"}},
		Mounts:      []specs.Mount{{Destination: "/etc/hosts", Type: "bind", Source: "/pod/hosts", Options: []string{"rbind"}}},
		Annotations: map[string]string{"io.kubernetes.cri.container-name": "app"},
		Linux:       &specs.Linux{Resources: &specs.LinuxResources{}},
	}
}

func TestDisabledDoesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	off, err := nri.New(nri.Config{SocketPath: filepath.Join(t.TempDir(), "nri.sock")})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []*nri.NRI{nil, off} {
		if n.Enabled() {
			t.Fatal("disabled NRI says it is enabled")
		}
		if err := n.Start(fakeRuntime{}); err != nil {
			t.Fatal(err)
		}
		n.BlockSync()()
		pod, spec := nri.Pod{ID: "p"}, testSpec()
		ctr := nri.Container{ID: "c", PodID: "p", Spec: spec}
		errs := []error{
			n.RunPodSandbox(ctx, pod), n.CreateContainer(ctx, pod, ctr), n.PostCreateContainer(ctx, pod, ctr),
			n.StartContainer(ctx, pod, ctr), n.PostStartContainer(ctx, pod, ctr), n.PostUpdateContainer(ctx, pod, ctr),
			n.StopContainer(ctx, pod, ctr), n.RemoveContainer(ctx, pod, ctr), n.StopPodSandbox(ctx, pod), n.RemovePodSandbox(ctx, pod),
		}
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		limit := int64(1 << 20)
		res, err := n.UpdateContainer(ctx, pod, ctr, specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit}})
		if err != nil || *res.Memory.Limit != limit {
			t.Fatalf("UpdateContainer: %v, %v", res, err)
		}
		if !slices.Equal(spec.Process.Env, []string{"PATH=/bin"}) || len(spec.Mounts) != 1 {
			t.Fatalf("a disabled NRI changed the spec: %+v", spec)
		}
		n.Stop()
	}
}

func TestSynchronizeListsPodsAndContainers(t *testing.T) {
	t.Parallel()
	rt := fakeRuntime{
		pods: []nri.Pod{{ID: "p1", Name: "web", Namespace: "default", UID: "u1", IPs: []string{"10.0.0.2"}}},
		ctrs: []nri.Container{{ID: "c1", PodID: "p1", Name: "app", State: nri.StateRunning, Args: []string{"sleep", "9"}}},
	}
	p := &nritest.Plugin{}
	started(t, rt, p)
	pods, ctrs := p.Synced()
	if len(pods) != 1 || pods[0].GetId() != "p1" || pods[0].GetName() != "web" || pods[0].GetUid() != "u1" || !slices.Equal(pods[0].GetIps(), []string{"10.0.0.2"}) {
		t.Fatalf("synchronized pods: %v", pods)
	}
	if len(ctrs) != 1 || ctrs[0].GetId() != "c1" || ctrs[0].GetState() != api.ContainerState_CONTAINER_RUNNING || !slices.Equal(ctrs[0].GetArgs(), []string{"sleep", "9"}) {
		t.Fatalf("synchronized containers: %v", ctrs)
	}
}

func TestEventsAndAdjustment(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := &nritest.Plugin{Adjust: func(_ *api.PodSandbox, c *api.Container) *api.ContainerAdjustment {
		adj := &api.ContainerAdjustment{}
		adj.AddEnv("FROM_NRI", "yes")
		adj.AddMount(&api.Mount{Destination: "/nri", Type: "bind", Source: "/host/nri", Options: []string{"rbind", "ro"}})
		adj.AddAnnotation("nri.example/seen", c.GetName())
		adj.AddRlimit("RLIMIT_NOFILE", 1024, 512)
		adj.SetLinuxMemoryLimit(64 << 20)
		return adj
	}}
	n := started(t, fakeRuntime{}, p)
	pod := nri.Pod{ID: "p1", Name: "web", Namespace: "default", UID: "u1"}
	if err := n.RunPodSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	spec := testSpec()
	ctr := nri.Container{ID: "c1", PodID: "p1", Name: "app", Spec: spec}
	if err := n.CreateContainer(ctx, pod, ctr); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(spec.Process.Env, "FROM_NRI=yes") || !slices.Contains(spec.Process.Env, "PATH=/bin") {
		t.Errorf("env: %v", spec.Process.Env)
	}
	if !slices.ContainsFunc(spec.Mounts, func(m specs.Mount) bool { return m.Destination == "/nri" && m.Source == "/host/nri" }) {
		t.Errorf("mounts: %v", spec.Mounts)
	}
	if spec.Annotations["nri.example/seen"] != "app" {
		t.Errorf("annotations: %v", spec.Annotations)
	}
	if len(spec.Process.Rlimits) != 1 || spec.Process.Rlimits[0].Hard != 1024 {
		t.Errorf("rlimits: %v", spec.Process.Rlimits)
	}
	if m := spec.Linux.Resources.Memory; m == nil || m.Limit == nil || *m.Limit != 64<<20 {
		t.Errorf("memory: %+v", m)
	}
	ctr.Spec = nil
	ctr.State = nri.StateRunning
	for _, err := range []error{
		n.PostCreateContainer(ctx, pod, ctr), n.StartContainer(ctx, pod, ctr), n.PostStartContainer(ctx, pod, ctr),
		// The exit and the stop both report it: the plugins hear it once.
		n.StopContainer(ctx, pod, ctr), n.StopContainer(ctx, pod, ctr),
		n.RemoveContainer(ctx, pod, ctr),
		n.StopPodSandbox(ctx, pod), n.StopPodSandbox(ctx, pod),
		n.RemovePodSandbox(ctx, pod),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"CreateContainer", "PostCreateContainer", "StartContainer", "PostStartContainer", "StopContainer", "RemoveContainer"}
	if got := p.Kinds("c1"); !slices.Equal(got, want) {
		t.Errorf("container events %v, want %v", got, want)
	}
	want = []string{"RunPodSandbox", "StopPodSandbox", "RemovePodSandbox"}
	if got := p.Kinds("p1"); !slices.Equal(got, want) {
		t.Errorf("pod events %v, want %v", got, want)
	}
}

// A container never started, or known from a record alone, is stopped
// for the plugins before its removal, unless it had exited.
func TestRemoveStopsFirst(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := &nritest.Plugin{}
	n := started(t, fakeRuntime{}, p)
	pod := nri.Pod{ID: "p1"}
	if err := n.CreateContainer(ctx, pod, nri.Container{ID: "created", PodID: "p1", Spec: testSpec()}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []nri.Container{
		{ID: "created", PodID: "p1"},
		{ID: "old-running", PodID: "p1", State: nri.StateRunning},
		{ID: "old-exited", PodID: "p1", State: nri.StateExited},
	} {
		if err := n.RemoveContainer(ctx, pod, c); err != nil {
			t.Fatal(err)
		}
	}
	for id, want := range map[string][]string{
		"created":     {"CreateContainer", "StopContainer", "RemoveContainer"},
		"old-running": {"StopContainer", "RemoveContainer"},
		"old-exited":  {"RemoveContainer"},
	} {
		if got := p.Kinds(id); !slices.Equal(got, want) {
			t.Errorf("%s: events %v, want %v", id, got, want)
		}
	}
}

func TestFailingHookFailsTheCall(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	induced := errors.New("induced")
	p := &nritest.Plugin{Fail: func(kind string) error {
		if kind == "RunPodSandbox" || kind == "CreateContainer" || kind == "StartContainer" {
			return induced
		}
		return nil
	}}
	n := started(t, fakeRuntime{}, p)
	pod := nri.Pod{ID: "p1"}
	if err := n.RunPodSandbox(ctx, pod); err == nil {
		t.Error("RunPodSandbox succeeded though its hook failed")
	}
	spec := testSpec()
	if err := n.CreateContainer(ctx, pod, nri.Container{ID: "c1", Spec: spec}); err == nil {
		t.Error("CreateContainer succeeded though its hook failed")
	}
	if err := n.StartContainer(ctx, pod, nri.Container{ID: "c1"}); err == nil {
		t.Error("StartContainer succeeded though its hook failed")
	}
	// The hooks after the fact fail nothing.
	if err := n.StopPodSandbox(ctx, pod); err != nil {
		t.Error(err)
	}
}

func TestUnsupportedAdjustmentFails(t *testing.T) {
	t.Parallel()
	p := &nritest.Plugin{Adjust: func(*api.PodSandbox, *api.Container) *api.ContainerAdjustment {
		adj := &api.ContainerAdjustment{}
		adj.AddDevice(&api.LinuxDevice{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229})
		return adj
	}}
	n := started(t, fakeRuntime{}, p)
	spec := testSpec()
	err := n.CreateContainer(context.Background(), nri.Pod{ID: "p1"}, nri.Container{ID: "c1", Spec: spec})
	if err == nil || len(spec.Linux.Devices) != 0 {
		t.Fatalf("a device adjustment: %v, devices %v", err, spec.Linux.Devices)
	}
}

// A socket that cannot be made fails Start, and the events still pass:
// the CRI server logs it and runs on.
func TestNoSocketStillRelays(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	n, err := nri.New(nri.Config{Enable: true, SocketPath: filepath.Join(file, "nri.sock"), PluginPath: filepath.Join(dir, "plugins")})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	if err := n.Start(fakeRuntime{}); err == nil {
		t.Fatal("Start made a socket below a file")
	}
	if err := n.RunPodSandbox(context.Background(), nri.Pod{ID: "p1"}); err != nil {
		t.Fatal(err)
	}
}
