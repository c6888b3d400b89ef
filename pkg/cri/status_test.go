package cri

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/vc-cri/vc-cri/pkg/sandbox"
)

func TestStatus(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name             string
		qemu, netBroken  bool
		runtime, network bool
	}{
		{"ready", false, false, true, true},
		{"network plugin not ready", false, true, true, false},
		{"guest image missing", true, false, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, net := newTestServiceOn(t, t.TempDir(), newFakeSandboxes())
			if tc.netBroken {
				net.statusErr = errors.New("no CNI configuration")
			}
			if tc.qemu {
				h := s.opts.Handlers["vc-cri"]
				h.Sandbox.HypervisorType = sandbox.QemuHypervisor
				h.Sandbox.HypervisorConfig.KernelPath = filepath.Join(t.TempDir(), "vmlinuz")
				s.opts.Handlers = map[string]Handler{"": s.opts.Handlers[""], "vc-cri": h}
			}
			resp, err := s.Status(ctx, &runtime.StatusRequest{Verbose: true})
			if err != nil {
				t.Fatalf("Status: %v", err)
			}
			got := map[string]*runtime.RuntimeCondition{}
			for _, c := range resp.Status.Conditions {
				got[c.Type] = c
			}
			for typ, want := range map[string]bool{runtime.RuntimeReady: tc.runtime, runtime.NetworkReady: tc.network} {
				c := got[typ]
				if c == nil || c.Status != want || (!want && (c.Reason == "" || c.Message == "")) {
					t.Fatalf("condition %s: %v, want status %v (with a reason when false)", typ, c, want)
				}
			}
			if resp.Info["hypervisor"] == "" || len(resp.RuntimeHandlers) != 2 || resp.RuntimeHandlers[1].Name != "vc-cri" {
				t.Fatalf("info %v, handlers %v", resp.Info, resp.RuntimeHandlers)
			}
			// The features critest and kubelet look for: recursive
			// read-only mounts on every handler, no user namespaces; the
			// SupplementalGroupsPolicy for the runtime.
			for _, h := range resp.RuntimeHandlers {
				if f := h.GetFeatures(); !f.GetRecursiveReadOnlyMounts() || f.GetUserNamespaces() {
					t.Fatalf("handler %q features %v", h.Name, f)
				}
			}
			if !resp.GetFeatures().GetSupplementalGroupsPolicy() {
				t.Fatalf("runtime features %v", resp.Features)
			}
		})
	}
}

func TestRuntimeConfig(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newFakeService(t)
	rc, err := s.RuntimeConfig(ctx, &runtime.RuntimeConfigRequest{})
	if err != nil || rc.Linux.CgroupDriver != runtime.CgroupDriver_CGROUPFS {
		t.Fatalf("RuntimeConfig: %v, %v", rc, err)
	}
	req := &runtime.UpdateRuntimeConfigRequest{RuntimeConfig: &runtime.RuntimeConfig{NetworkConfig: &runtime.NetworkConfig{PodCidr: "10.244.0.0/24"}}}
	if _, err := s.UpdateRuntimeConfig(ctx, req); err != nil {
		t.Fatalf("UpdateRuntimeConfig: %v", err)
	}
	s.cidrMu.Lock()
	cidr := s.podCIDR
	s.cidrMu.Unlock()
	if cidr != "10.244.0.0/24" {
		t.Fatalf("pod CIDR %q", cidr)
	}
	if _, err := s.UpdateRuntimeConfig(ctx, &runtime.UpdateRuntimeConfigRequest{}); err != nil {
		t.Fatalf("UpdateRuntimeConfig without a config: %v", err)
	}
}
