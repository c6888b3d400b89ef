package main

import (
	"strings"
	"testing"

	"github.com/vc-cri/vc-cri/pkg/sandbox"
)

func TestHandlers(t *testing.T) {
	vms := sandbox.NewRuntime(sandbox.WithStateRoot(t.TempDir()))
	for _, tc := range []struct {
		name     string
		edit     func(*Config)
		want     []string // handler names, "" first
		hostPods string
		err      string
	}{
		{name: "defaults", want: []string{"", "runc", "vc-cri"}, hostPods: "runc"},
		{name: "refuse", edit: func(c *Config) { c.HostNamespacePods = "refuse" }, want: []string{"", "runc", "vc-cri"}},
		{name: "runc by default", edit: func(c *Config) { c.DefaultRuntime = "runc" }, want: []string{"", "runc", "vc-cri"}, hostPods: "runc"},
		{name: "unknown default", edit: func(c *Config) { c.DefaultRuntime = "kata" }, err: `default_runtime "kata"`},
		{name: "host pods on a VM", edit: func(c *Config) { c.HostNamespacePods = "vc-cri" }, err: `host_namespace_pods "vc-cri"`},
		{name: "unknown type", edit: func(c *Config) { c.Runtimes["gvisor"] = RuntimeConfig{Type: "runsc"} }, err: `type "runsc"`},
		{name: "missing conmon", edit: func(c *Config) {
			rc := c.Runtimes["runc"]
			rc.ConmonPath = "/nonexistent/conmon"
			c.Runtimes["runc"] = rc
		}, err: "conmon"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := loadConfig("/nonexistent/config.toml", false)
			if err != nil {
				t.Fatal(err)
			}
			// Any executables will do: runc.New checks they are there.
			rc := cfg.Runtimes["runc"]
			rc.RuntimePath, rc.ConmonPath, rc.PausePath = "/bin/true", "/bin/true", "/bin/true"
			cfg.Runtimes["runc"] = rc
			if tc.edit != nil {
				tc.edit(cfg)
			}
			hs, hostPods, err := handlers(cfg, vms, sandbox.SandboxConfig{HypervisorType: sandbox.MockHypervisor}, t.TempDir(), true)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("handlers = %v, want an error with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, n := range []string{"", "runc", "vc-cri"} {
				if _, ok := hs[n]; ok {
					names = append(names, n)
				}
			}
			if strings.Join(names, ",") != strings.Join(tc.want, ",") || len(hs) != len(tc.want) || hostPods != tc.hostPods {
				t.Fatalf("handlers %v, host pods %q; want %v, %q", names, hostPods, tc.want, tc.hostPods)
			}
			if def, named := hs[""], hs[cfg.DefaultRuntime]; def.Runtime != named.Runtime || def.HostNamespaces != named.HostNamespaces {
				t.Errorf("the default handler is not %q", cfg.DefaultRuntime)
			}
			// User namespaces as the host allows them (true here) on
			// VM pods; never on runc's.
			if !hs["runc"].HostNamespaces || hs["vc-cri"].HostNamespaces || !hs["vc-cri"].Features.RecursiveReadOnlyMounts ||
				hs["runc"].Features.GetUserNamespaces() || hs["vc-cri"].Features != nil && !hs["vc-cri"].Features.UserNamespaces {
				t.Errorf("features: runc %+v, vc-cri %+v", hs["runc"], hs["vc-cri"])
			}
		})
	}
}
