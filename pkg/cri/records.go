package cri

import (
	"maps"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// podRecord is what the CRI server keeps of a pod beyond its sandbox.
type podRecord struct {
	ID        string
	Name      string // kubelet's unique name: name_namespace_uid_attempt
	Config    *runtime.PodSandboxConfig
	State     runtime.PodSandboxState
	CreatedAt time.Time
	NetNSPath string
	IPs       []string
	Handler   string // the runtime handler kubelet asked for
	Runtime   string // the handler that runs it (handlers.go)
	// TornDown: the pod's VM and network were taken down (stopPod). A pod
	// whose VM ended by itself is NOTREADY with its network still up.
	TornDown bool
}

// annotations are the pod's, and the handler that runs it when that is
// not the one kubelet asked for (runtimeAnnotation).
func (p podRecord) annotations() map[string]string {
	if p.Runtime == p.Handler {
		return p.Config.Annotations
	}
	a := maps.Clone(p.Config.Annotations)
	if a == nil {
		a = map[string]string{}
	}
	a[runtimeAnnotation] = p.Runtime
	return a
}

// hostNetwork tells whether the pod is in the host's network, with no
// namespace or CNI network of its own.
func (p podRecord) hostNetwork() bool {
	return p.Config.GetLinux().GetSecurityContext().GetNamespaceOptions().GetNetwork() == runtime.NamespaceMode_NODE
}

// containerRecord is what the CRI server keeps of a container.
type containerRecord struct {
	ID         string
	PodID      string
	Runtime    string // its pod's handler
	Name       string // unique: name_podname_namespace_uid_attempt
	Config     *runtime.ContainerConfig
	ImageID    string
	ImageRef   string // the image as the config named it, resolved
	LogPath    string // absolute; empty when the pod has no log directory
	State      runtime.ContainerState
	CreatedAt  time.Time
	StartedAt  time.Time
	FinishedAt time.Time
	ExitCode   int32
	Reason     string
	Message    string
	// ImageVolumes are the image store's containers of its image volumes.
	ImageVolumes []string

	// User is the user and groups resolved at create, in force in every
	// process of the container; nil in a record of an earlier vc-cri.
	User *runtime.LinuxContainerUser
}

// The reasons ContainerStatus gives for an exited container.
const (
	reasonCompleted = "Completed"
	reasonError     = "Error"
	reasonOOMKilled = "OOMKilled"
)

func exitReason(code int32) string {
	if code == 0 {
		return reasonCompleted
	}
	return reasonError
}

// intentRecord says that a call began to make a pod or a container: it
// is written before the call's first step that leaves anything on the
// host, and removed once the object's own record is written or the call
// has undone its steps. One found at start names what a daemon killed
// midway was making, for reconcile to take apart.
type intentRecord struct {
	Kind  intentKind
	ID    string
	PodID string // a container's pod
	At    time.Time
	// ImageVolumes are a container's image volumes in the image store,
	// written before they are mounted.
	ImageVolumes []string
}

type intentKind string

const (
	intentPod       intentKind = "pod"
	intentContainer intentKind = "container"
)
