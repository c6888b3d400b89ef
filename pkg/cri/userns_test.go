package cri

import (
	"context"
	"slices"
	"testing"

	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/grpc/codes"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// kubeletMapping is the mapping kubelet gives a pod of hostUsers: false.
var kubeletMapping = []*runtime.IDMapping{{ContainerId: 0, HostId: 65536, Length: 65536}}

func usernsPod(name string, opts *runtime.UserNamespace) *runtime.PodSandboxConfig {
	cfg := podConfig(name)
	cfg.Linux = &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{
		NamespaceOptions: &runtime.NamespaceOption{UsernsOptions: opts},
	}}
	return cfg
}

// TestPodUserns: POD with one range from 0, or NODE without mappings;
// anything else is refused, as critest's specs ask.
func TestPodUserns(t *testing.T) {
	t.Parallel()
	two := []*runtime.IDMapping{kubeletMapping[0], {ContainerId: 0, HostId: 200000, Length: 65536}}
	for _, tc := range []struct {
		name    string
		opts    *runtime.UserNamespace
		want    []specs.LinuxIDMapping
		invalid bool
	}{
		{"none", nil, nil, false},
		{"node", &runtime.UserNamespace{Mode: runtime.NamespaceMode_NODE}, nil, false},
		{"pod", &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: kubeletMapping, Gids: kubeletMapping},
			[]specs.LinuxIDMapping{{ContainerID: 0, HostID: 65536, Size: 65536}}, false},
		{"node with mappings", &runtime.UserNamespace{Mode: runtime.NamespaceMode_NODE, Uids: kubeletMapping, Gids: kubeletMapping}, nil, true},
		{"two mappings", &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: two, Gids: two}, nil, true},
		{"no gids", &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: kubeletMapping}, nil, true},
		{"0 unmapped", &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD,
			Uids: []*runtime.IDMapping{{ContainerId: 1, HostId: 1000, Length: 100}}, Gids: kubeletMapping}, nil, true},
		{"empty", &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD,
			Uids: []*runtime.IDMapping{{HostId: 1000}}, Gids: kubeletMapping}, nil, true},
		{"overflow", &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD,
			Uids: []*runtime.IDMapping{{HostId: 1 << 31, Length: 1 << 31}}, Gids: kubeletMapping}, nil, true},
		{"container", &runtime.UserNamespace{Mode: runtime.NamespaceMode_CONTAINER}, nil, true},
		{"target", &runtime.UserNamespace{Mode: runtime.NamespaceMode_TARGET}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ids, err := podUserns(usernsPod("p", tc.opts))
			if tc.invalid {
				if code(err) != codes.InvalidArgument {
					t.Fatalf("podUserns = %v, want InvalidArgument", err)
				}
				return
			}
			if err != nil || !slices.Equal(ids.UIDs, tc.want) || !slices.Equal(ids.GIDs, tc.want) {
				t.Fatalf("podUserns = %+v, %v; want %v", ids, err, tc.want)
			}
		})
	}
}

// TestUsernsPodNeedsTheFeature: a pod of hostUsers: false runs only on a
// handler whose features say UserNamespaces; the runc handler, and the
// pods it takes for the host's namespaces, are refused.
func TestUsernsPodNeedsTheFeature(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	opts := &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: kubeletMapping, Gids: kubeletMapping}
	hostNet := usernsPod("h", opts)
	hostNet.Linux.SecurityContext.NamespaceOptions.Network = runtime.NamespaceMode_NODE
	for _, tc := range []struct {
		name     string
		handler  string
		feature  bool
		config   *runtime.PodSandboxConfig
		wantCode codes.Code
	}{
		{"VM handler without the feature", "", false, usernsPod("a", opts), codes.InvalidArgument},
		{"VM handler with it", "", true, usernsPod("b", opts), codes.OK},
		{"runc handler", "runc", true, usernsPod("c", opts), codes.InvalidArgument},
		{"host network on runc", "", true, hostNet, codes.InvalidArgument},
		{"invalid options", "", true, usernsPod("d", &runtime.UserNamespace{Mode: runtime.NamespaceMode_CONTAINER}), codes.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, vm, _, _ := newTwoHandlerService(t)
			for _, name := range []string{"", "vc-cri"} {
				h := s.opts.Handlers[name]
				h.Features = &runtime.RuntimeHandlerFeatures{UserNamespaces: tc.feature}
				s.opts.Handlers[name] = h
			}
			run, err := s.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: tc.config, RuntimeHandler: tc.handler})
			if got := code(err); got != tc.wantCode {
				t.Fatalf("RunPodSandbox = %v, want %v", err, tc.wantCode)
			}
			if err != nil {
				return
			}
			ctr, err := s.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: run.PodSandboxId, Config: containerConfig("app"), SandboxConfig: tc.config})
			if err != nil {
				t.Fatalf("CreateContainer: %v", err)
			}
			vm.mu.Lock()
			defer vm.mu.Unlock()
			spec := vm.pods[run.PodSandboxId].containers[ctr.ContainerId].cfg.CustomSpec
			want := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 65536, Size: 65536}}
			if !slices.Contains(spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace}) ||
				!slices.Equal(spec.Linux.UIDMappings, want) || !slices.Equal(spec.Linux.GIDMappings, want) {
				t.Fatalf("spec namespaces %v, mappings %v/%v; want a user namespace of %v", spec.Linux.Namespaces, spec.Linux.UIDMappings, spec.Linux.GIDMappings, want)
			}
		})
	}
}

// TestContainerUsernsMode: a container's own user namespace options, if
// any, must be its pod's; without a user namespace the spec has none.
func TestContainerUsernsMode(t *testing.T) {
	t.Parallel()
	s, _ := newTestService(t, t.TempDir())
	podOpts := &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: kubeletMapping, Gids: kubeletMapping}
	for _, tc := range []struct {
		name       string
		pod, ctr   *runtime.UserNamespace
		wantUserNS bool
		invalid    bool
	}{
		{"host users", nil, nil, false, false},
		{"host users, container NODE", &runtime.UserNamespace{Mode: runtime.NamespaceMode_NODE}, &runtime.UserNamespace{Mode: runtime.NamespaceMode_NODE}, false, false},
		{"pod's", podOpts, podOpts, true, false},
		{"pod's, container silent", podOpts, nil, true, false},
		{"container NODE in a userns pod", podOpts, &runtime.UserNamespace{Mode: runtime.NamespaceMode_NODE}, false, true},
		{"container POD in a host pod", nil, podOpts, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc := containerConfig("app")
			cc.Linux = &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{
				NamespaceOptions: &runtime.NamespaceOption{UsernsOptions: tc.ctr},
			}}
			cfg, err := s.containerConfig("c1", userRootfs(t), podRecord{ID: "p1", Config: usernsPod("p", tc.pod)}, cc, &imgspecv1.ImageConfig{Cmd: []string{"sh"}})
			if tc.invalid {
				if code(err) != codes.InvalidArgument {
					t.Fatalf("containerConfig = %v, want InvalidArgument", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			has := slices.ContainsFunc(cfg.CustomSpec.Linux.Namespaces, func(ns specs.LinuxNamespace) bool { return ns.Type == specs.UserNamespace })
			if has != tc.wantUserNS || has != (len(cfg.CustomSpec.Linux.UIDMappings) > 0) {
				t.Fatalf("user namespace %v, mappings %v: want %v", has, cfg.CustomSpec.Linux.UIDMappings, tc.wantUserNS)
			}
		})
	}
}
