package cri

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// A pod runs on one runtime handler for its whole life: the one
// RunPodSandbox chose (podHandler), kept in its record (podRecord.Runtime)
// and in its containers' records, on which every later call dispatches.
// The name kubelet asked for is kept apart (podRecord.Handler): a pod that
// asks for the host's namespaces of the default VM handler runs on
// HostNamespacePods' handler instead, and says so in its status.

// runtimeAnnotation, in a pod's status, names the handler that runs it.
const runtimeAnnotation = "io.vc-cri.runtime-handler"

func checkHandlers(opts Options) error {
	if _, ok := opts.Handlers[""]; !ok {
		return errors.New("cri: no default runtime handler (Handlers[\"\"])")
	}
	for name, h := range opts.Handlers {
		if h.Runtime == nil {
			return fmt.Errorf("cri: runtime handler %q has no runtime", name)
		}
	}
	if name := opts.HostNamespacePods; name != "" {
		if h, ok := opts.Handlers[name]; !ok || !h.HostNamespaces {
			return fmt.Errorf("cri: host_namespace_pods names %q, which is no handler able to share the host's namespaces", name)
		}
	}
	return nil
}

// runtimeOf is the runtime of the handler name: one that New checked
// exists for every record.
func (s *Service) runtimeOf(name string) sandboxes { return s.opts.Handlers[name].Runtime }

// runtimes are the distinct runtimes of all handlers.
func (s *Service) runtimes() []sandboxes {
	var rts []sandboxes
	for _, name := range slices.Sorted(maps.Keys(s.opts.Handlers)) {
		if rt := s.opts.Handlers[name].Runtime; !slices.Contains(rts, rt) {
			rts = append(rts, rt)
		}
	}
	return rts
}

// keepsLogs tells whether the handler's runtime writes its containers'
// logs itself.
func (s *Service) keepsLogs(name string) bool {
	_, ok := s.runtimeOf(name).(logKeeper)
	return ok
}

// podHandler chooses the handler that runs a pod asking for handler
// (kubelet's RuntimeClass handler, "" for the default), and the host
// namespaces it shares.
func (s *Service) podHandler(config *runtime.PodSandboxConfig, handler string) (string, []specs.LinuxNamespaceType, error) {
	chosen, hostNS, err := s.podHandlerOf(config, handler)
	if err != nil {
		return "", nil, err
	}
	// A pod in a user namespace runs only where the handler says it
	// works (the runc handler's runc has no idmapped mounts).
	if ids, err := podUserns(config); err != nil {
		return "", nil, err
	} else if usernsEnabled(ids) && !s.opts.Handlers[chosen].Features.GetUserNamespaces() {
		return "", nil, invalidArgument("user namespaces (hostUsers: false) are not supported by runtime handler %q", chosen)
	}
	return chosen, hostNS, nil
}

// podHandlerOf is podHandler's choice by the host namespaces alone.
func (s *Service) podHandlerOf(config *runtime.PodSandboxConfig, handler string) (string, []specs.LinuxNamespaceType, error) {
	h, ok := s.opts.Handlers[handler]
	if !ok {
		return "", nil, invalidArgument("unknown runtime handler %q: vc-cri has %s", handler, strings.Join(handlerNames(s.opts.Handlers), ", "))
	}
	hostNS := hostNamespaces(config)
	if len(hostNS) == 0 || h.HostNamespaces {
		return handler, hostNS, nil
	}
	// A pod VM has its own kernel: it cannot share the host's network,
	// PID or IPC namespaces, and a pod that silently got private ones
	// would half-work. Such pods are trusted system pods (kube-proxy, a
	// CNI agent): they run as OS containers, or are refused.
	if s.opts.HostNamespacePods == "" || handler != "" {
		return "", nil, invalidArgument("the host's %s namespaces are not supported by runtime handler %q: its pods are VMs", namespaceNames(hostNS), handler)
	}
	return s.opts.HostNamespacePods, hostNS, nil
}

// hostNamespaces are the host namespaces a pod asks to share.
func hostNamespaces(config *runtime.PodSandboxConfig) []specs.LinuxNamespaceType {
	opts := config.GetLinux().GetSecurityContext().GetNamespaceOptions()
	var ns []specs.LinuxNamespaceType
	if opts.GetNetwork() == runtime.NamespaceMode_NODE {
		ns = append(ns, specs.NetworkNamespace)
	}
	if opts.GetPid() == runtime.NamespaceMode_NODE {
		ns = append(ns, specs.PIDNamespace)
	}
	if opts.GetIpc() == runtime.NamespaceMode_NODE {
		ns = append(ns, specs.IPCNamespace)
	}
	return ns
}

func namespaceNames(ns []specs.LinuxNamespaceType) string {
	names := make([]string, len(ns))
	for i, n := range ns {
		names[i] = string(n)
	}
	return strings.Join(names, ", ")
}

func handlerNames(hs map[string]Handler) []string {
	var names []string
	for _, name := range slices.Sorted(maps.Keys(hs)) {
		names = append(names, fmt.Sprintf("%q", name))
	}
	return names
}
