package cri

import (
	"math"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/vc-cri/vc-cri/pkg/image"
)

// User namespaces (KEP-127): a pod with hostUsers: false asks for
// NamespaceMode_POD with kubelet's mappings, one range of uids and one of
// gids starting at 0. Its containers share one user namespace with those
// mappings: in a VM, the guest's, which the agent makes once per pod
// (see cmd/vc-agent/userns.go); their root filesystems are the image's
// layers seen through the mapping (image.IDMap), and their bind mounts'
// sources are idmapped by the host (pkg/sandbox's shareMount). Only a
// handler whose features say UserNamespaces takes such a pod.

// podUserns validates the pod's user namespace options and returns its
// mappings: the zero IDMap for the host's users (mode NODE, or none).
func podUserns(config *runtime.PodSandboxConfig) (image.IDMap, error) {
	opts := config.GetLinux().GetSecurityContext().GetNamespaceOptions().GetUsernsOptions()
	if opts == nil {
		return image.IDMap{}, nil // no options: the host's users (POD is mode 0)
	}
	switch mode := opts.GetMode(); mode {
	case runtime.NamespaceMode_NODE:
		if len(opts.GetUids())+len(opts.GetGids()) > 0 {
			return image.IDMap{}, invalidArgument("user namespace mode NODE takes no mappings")
		}
		return image.IDMap{}, nil
	case runtime.NamespaceMode_POD:
	default:
		return image.IDMap{}, invalidArgument("user namespace mode %s is not supported: only POD or NODE", mode)
	}
	uids, err := idMapping("uid", opts.GetUids())
	if err != nil {
		return image.IDMap{}, err
	}
	gids, err := idMapping("gid", opts.GetGids())
	if err != nil {
		return image.IDMap{}, err
	}
	return image.IDMap{UIDs: uids, GIDs: gids}, nil
}

// idMapping checks a user namespace's mapping as kubelet makes it, and
// as containerd takes it: a single range, from container ID 0, that
// overflows neither side.
func idMapping(kind string, ms []*runtime.IDMapping) ([]specs.LinuxIDMapping, error) {
	if len(ms) != 1 {
		return nil, invalidArgument("user namespace: %d %s mappings, want exactly one", len(ms), kind)
	}
	m := ms[0]
	switch {
	case m.ContainerId != 0:
		return nil, invalidArgument("user namespace: the %s mapping starts at container ID %d: ID 0 must be mapped", kind, m.ContainerId)
	case m.Length == 0:
		return nil, invalidArgument("user namespace: the %s mapping is empty", kind)
	case uint64(m.HostId)+uint64(m.Length) > math.MaxUint32:
		return nil, invalidArgument("user namespace: the %s mapping %d+%d overflows", kind, m.HostId, m.Length)
	}
	return []specs.LinuxIDMapping{{ContainerID: m.ContainerId, HostID: m.HostId, Size: m.Length}}, nil
}

// usernsEnabled tells whether ids maps the container's IDs.
func usernsEnabled(ids image.IDMap) bool { return len(ids.UIDs) > 0 }

// setUserNamespace puts the container in the pod's user namespace of
// mappings ids, a namespace of its own in the spec (the sandbox layer
// makes it the pod's); the container's own options, if any, must ask
// for the pod's.
func setUserNamespace(spec *specs.Spec, ids image.IDMap, container *runtime.UserNamespace) error {
	if container != nil {
		want := runtime.NamespaceMode_NODE
		if usernsEnabled(ids) {
			want = runtime.NamespaceMode_POD
		}
		if container.Mode != want {
			return invalidArgument("the container's user namespace mode %s is not its pod's, %s", container.Mode, want)
		}
	}
	if !usernsEnabled(ids) {
		return nil
	}
	spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
	spec.Linux.UIDMappings, spec.Linux.GIDMappings = ids.UIDs, ids.GIDs
	return nil
}
