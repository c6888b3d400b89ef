package main

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/vc-cri/vc-cri/pkg/cri"
	"github.com/vc-cri/vc-cri/pkg/runc"
	"github.com/vc-cri/vc-cri/pkg/sandbox"
)

// Handler types of [runtimes.NAME].
const (
	handlerVM   = "vm"
	handlerRunc = "runc"
)

// refuseHostNamespacePods is host_namespace_pods' value that refuses them.
const refuseHostNamespacePods = "refuse"

// handlers makes the runtime handlers the configuration names: every
// "vm" one on vms, the VM template tmpl; every "runc" one on a runtime
// of OS containers of its own, under state. The default handler, "", is
// default_runtime's.
func handlers(cfg *Config, vms *sandbox.Runtime, tmpl sandbox.SandboxConfig, state string) (map[string]cri.Handler, string, error) {
	hs := map[string]cri.Handler{}
	for _, name := range slices.Sorted(maps.Keys(cfg.Runtimes)) {
		if name == "" {
			return nil, "", fmt.Errorf("runtimes: a handler needs a name")
		}
		rc := cfg.Runtimes[name]
		switch rc.Type {
		case handlerVM:
			hs[name] = cri.Handler{
				Runtime: vms, Sandbox: tmpl,
				// runc's "rro" in the guest, and the host's bind
				// read-only with its submounts.
				Features: &runtime.RuntimeHandlerFeatures{RecursiveReadOnlyMounts: true},
			}
		case handlerRunc:
			pause := rc.PausePath
			if pause == "" {
				exe, err := os.Executable()
				if err != nil {
					return nil, "", err
				}
				pause = filepath.Join(filepath.Dir(exe), "vc-pause")
			}
			rt, err := runc.New(runc.Config{
				StateRoot: filepath.Join(state, "runc", name),
				Runc:      rc.RuntimePath,
				Conmon:    rc.ConmonPath,
				Pause:     pause,
			})
			if err != nil {
				return nil, "", fmt.Errorf("runtime handler %q: %w", name, err)
			}
			// Debian's runc 1.1 has no "rro" mount option.
			hs[name] = cri.Handler{Runtime: rt, HostNamespaces: true, Features: &runtime.RuntimeHandlerFeatures{}}
		default:
			return nil, "", fmt.Errorf("runtime handler %q: type %q: want %q or %q", name, rc.Type, handlerVM, handlerRunc)
		}
	}
	def, ok := hs[cfg.DefaultRuntime]
	if !ok {
		return nil, "", fmt.Errorf("default_runtime %q names no [runtimes] handler", cfg.DefaultRuntime)
	}
	hs[""] = def
	hostPods := cfg.HostNamespacePods
	switch h, ok := hs[hostPods]; {
	case hostPods == refuseHostNamespacePods:
		hostPods = ""
	case !ok || hostPods == "" || !h.HostNamespaces:
		return nil, "", fmt.Errorf("host_namespace_pods %q: want %q or the name of a %q handler", hostPods, refuseHostNamespacePods, handlerRunc)
	}
	return hs, hostPods, nil
}
