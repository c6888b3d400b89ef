package main

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/vc-cri/vc-cri/internal/safemount"
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
// default_runtime's. userns tells whether the host can make the
// idmapped mounts that VM pods in user namespaces need (usernsSupport).
func handlers(cfg *Config, vms *sandbox.Runtime, tmpl sandbox.SandboxConfig, state string, userns bool) (map[string]cri.Handler, string, error) {
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
				// read-only with its submounts; the pod's user
				// namespace in the guest, its files idmapped by the
				// host.
				Features: &runtime.RuntimeHandlerFeatures{RecursiveReadOnlyMounts: true, UserNamespaces: userns},
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
			// Debian's runc 1.1 has no "rro" mount option, and no
			// idmapped mounts for a pod's user namespace.
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

// usernsSupport tells whether binds of every dir (the image store, the
// sandboxes' shared directories) can be idmapped, as the containers of a
// VM pod in a user namespace need; if not, it logs why.
func usernsSupport(dirs ...string) bool {
	for _, dir := range dirs {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			klog.InfoS("User namespaces are not supported", "dir", dir, "err", err)
			return false
		}
		if err := safemount.CanIDMap(dir); err != nil {
			klog.InfoS("User namespaces are not supported: no idmapped mounts", "dir", dir, "err", err)
			return false
		}
	}
	return true
}
