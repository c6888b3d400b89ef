package cri

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// kubeletResources are the container resources kubelet v1.37 sends on a
// host with 2 MiB and 1 GiB huge pages, for a pod that asks for none.
func kubeletResources() *runtime.LinuxContainerResources {
	return &runtime.LinuxContainerResources{
		CpuPeriod: 100000, CpuQuota: 50000, CpuShares: 512,
		MemoryLimitInBytes: 128 << 20, MemorySwapLimitInBytes: 128 << 20,
		OomScoreAdj: 1000, CpusetCpus: "0-1", CpusetMems: "0",
		HugepageLimits: []*runtime.HugepageLimit{{PageSize: "2MB", Limit: 0}, {PageSize: "1GB", Limit: 0}},
		Unified:        map[string]string{"memory.oom.group": "1", "io.weight": "default 100"},
	}
}

func TestCreateContainerWithKubeletResources(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s, _ := newTestService(t, dir)
	run, err := s.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: podConfig("kubelet")})
	if err != nil {
		t.Fatal(err)
	}
	pod := run.PodSandboxId
	t.Cleanup(func() { s.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: pod}) })

	cc := containerConfig("app")
	cc.Linux = &runtime.LinuxContainerConfig{Resources: kubeletResources()}
	created, err := s.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod, Config: cc})
	if err != nil {
		t.Fatalf("CreateContainer with kubelet's resources: %v", err)
	}
	if _, err := s.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: created.ContainerId}); err != nil {
		t.Fatalf("StartContainer: %v", err)
	}
	up := kubeletResources()
	up.MemoryLimitInBytes = 256 << 20
	if _, err := s.UpdateContainerResources(ctx, &runtime.UpdateContainerResourcesRequest{ContainerId: created.ContainerId, Linux: up}); err != nil {
		t.Fatalf("UpdateContainerResources with kubelet's resources: %v", err)
	}

	// A pod that really asks for 1 GiB pages: the guest has none.
	for _, res := range []*runtime.LinuxContainerResources{
		{HugepageLimits: []*runtime.HugepageLimit{{PageSize: "1GB", Limit: 2 << 30}}},
		{Unified: map[string]string{"hugetlb.1GB.max": "1073741824"}},
	} {
		big := containerConfig("hugepages")
		big.Linux = &runtime.LinuxContainerConfig{Resources: res}
		_, err = s.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod, Config: big})
		if code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "1GB") {
			t.Fatalf("CreateContainer asking for 1 GiB pages: %v, want InvalidArgument naming 1GB", err)
		}
		if _, err := s.UpdateContainerResources(ctx, &runtime.UpdateContainerResourcesRequest{ContainerId: created.ContainerId, Linux: res}); code(err) != codes.InvalidArgument {
			t.Fatalf("UpdateContainerResources asking for 1 GiB pages: %v, want InvalidArgument", err)
		}
	}
	// Nothing of the refused containers is left: no record, no root, and
	// the name is free.
	list, err := s.ListContainers(ctx, &runtime.ListContainersRequest{})
	if err != nil || len(list.Containers) != 1 {
		t.Fatalf("containers after the refusals: %v, %v; want only the first", list, err)
	}
	roots, _ := os.ReadDir(s.opts.Images.Root())
	if len(roots) != 1 || roots[0].Name() != created.ContainerId {
		t.Fatalf("container roots after the refusals: %v", roots)
	}
	if shared, _ := filepath.Glob(filepath.Join(sandboxRoot(dir), pod, "shared", "*")); len(shared) != 1 {
		t.Fatalf("container shares after the refusals: %v", shared)
	}
	again := containerConfig("hugepages")
	if _, err := s.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod, Config: again}); err != nil {
		t.Fatalf("the refused container's name is not free: %v", err)
	}
}

func TestCreateContainer(t *testing.T) {
	t.Parallel()
	s, f := newFakeService(t)
	pod := readyPod(t, s, "web")
	cc := containerConfig("app")
	cc.LogPath = "app/0.log"
	id := createdContainer(t, s, pod, cc)

	st := containerState(t, s, id)
	if st.State != runtime.ContainerState_CONTAINER_CREATED || st.Metadata.Name != "app" || st.ImageRef != fakeImage || st.Labels["ctr"] != "app" {
		t.Fatalf("status of the new container: %v", st)
	}
	if got := f.containerState(pod, id); got != "ready" {
		t.Fatalf("guest container is %q, want ready", got)
	}
	f.mu.Lock()
	cfg := f.pods[pod].containers[id].cfg
	f.mu.Unlock()
	if cfg.ID != id || filepath.Base(cfg.RootFs) != id {
		t.Fatalf("guest container config: ID %s, root %s", cfg.ID, cfg.RootFs)
	}
}

func TestCreateContainerRefusals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newFakeService(t)
	pod := readyPod(t, s, "web")
	createdContainer(t, s, pod, containerConfig("taken"))
	stopped := readyPod(t, s, "stopped")
	if _, err := s.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: stopped}); err != nil {
		t.Fatal(err)
	}
	noImage := containerConfig("noimage")
	noImage.Image = nil
	missing := containerConfig("missing")
	missing.Image.Image = "registry.k8s.io/none:1"
	for _, tc := range []struct {
		name   string
		pod    string
		config *runtime.ContainerConfig
		want   codes.Code
	}{
		{"no config", pod, nil, codes.InvalidArgument},
		{"no name", pod, &runtime.ContainerConfig{Image: &runtime.ImageSpec{Image: fakeImage}}, codes.InvalidArgument},
		{"no image", pod, noImage, codes.InvalidArgument},
		{"unknown pod", "nope", containerConfig("c"), codes.NotFound},
		{"image not pulled", pod, missing, codes.NotFound},
		{"stopped pod", stopped, containerConfig("late"), codes.FailedPrecondition},
		{"name taken", pod, containerConfig("taken"), codes.AlreadyExists},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: tc.pod, Config: tc.config})
			wantCode(t, "CreateContainer", err, tc.want)
		})
	}
}

// TestCreateContainerGuestFails: a container the guest refuses leaves no
// record and no root, and its name is free.
func TestCreateContainerGuestFails(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, f := newFakeService(t)
	pod := readyPod(t, s, "web")
	f.fail("CreateContainer", pod, errors.New("guest out of memory"))
	_, err := s.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod, Config: containerConfig("app")})
	wantCode(t, "CreateContainer in a failing guest", err, codes.Unknown)
	if list, _ := s.ListContainers(ctx, &runtime.ListContainersRequest{}); len(list.Containers) != 0 {
		t.Fatalf("records left: %v", list.Containers)
	}
	if roots, _ := os.ReadDir(s.opts.Images.Root()); len(roots) != 0 {
		t.Fatalf("roots left: %v", roots)
	}
	f.clearFaults()
	createdContainer(t, s, pod, containerConfig("app"))
}
