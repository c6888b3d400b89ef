package sandbox

import specs "github.com/opencontainers/runtime-spec/specs-go"

// The sandbox structures of the virtcontainers 1.0 API, with the names
// and types of the specification. Fields beyond it are marked as such.

// SandboxConfig is a Sandbox configuration.
type SandboxConfig struct {
	ID string

	Hostname string

	// Field specific to OCI specs, needed to setup all the hooks
	Hooks Hooks

	// VMConfig is the VM configuration to set for this sandbox.
	VMConfig Resources

	HypervisorType   HypervisorType
	HypervisorConfig HypervisorConfig

	AgentType   AgentType
	AgentConfig interface{}

	ProxyType   ProxyType
	ProxyConfig ProxyConfig

	ShimType   ShimType
	ShimConfig interface{}

	NetworkConfig NetworkConfig

	// Volumes is a list of shared volumes between the host and the Sandbox.
	Volumes []Volume

	// Containers describe the list of containers within a Sandbox.
	// This list can be empty and populated by adding containers
	// to the Sandbox a posteriori.
	Containers []ContainerConfig

	// Annotations keys must be unique strings and must be name-spaced
	// with e.g. reverse domain notation (org.clearlinux.key).
	Annotations map[string]string

	// Sysctls are set in the guest, for all its containers (beyond the
	// specification: Kubernetes' pod sysctls).
	Sysctls map[string]string

	// CgroupParent is the host cgroup the VM's processes run under: a
	// cgroupfs path or a systemd slice, as kubelet's cgroup_parent
	// (beyond the specification; see hypervisor.CgroupParent).
	CgroupParent string

	// HostNamespaces are the host's namespaces the sandbox's containers
	// share (beyond the specification: Kubernetes' hostNetwork, hostPID
	// and hostIPC). Only a sandbox of OS containers can; a VM sandbox
	// refuses any.
	HostNamespaces []specs.LinuxNamespaceType
}

// Resources describes VM resources configuration.
type Resources struct {
	// VCPUs is the number of available virtual CPUs.
	VCPUs uint

	// Memory is the amount of available memory in MiB.
	Memory uint
}

// HypervisorType describes an hypervisor type.
type HypervisorType string

const (
	// QemuHypervisor is the QEMU hypervisor.
	QemuHypervisor HypervisorType = "qemu"

	// MockHypervisor is a mock hypervisor for testing purposes
	MockHypervisor HypervisorType = "mock"
)

// Param is a key/value parameter: a kernel parameter ("key=value", or
// "key" alone when Value is empty) or a hypervisor argument ("key value").
type Param struct {
	Key   string
	Value string
}

// HypervisorConfig is the hypervisor configuration.
type HypervisorConfig struct {
	// KernelPath is the guest kernel host path.
	KernelPath string

	// ImagePath is the guest image host path: here the project's
	// initramfs (make guest).
	ImagePath string

	// FirmwarePath is the bios host path
	FirmwarePath string

	// MachineAccelerators are machine specific accelerators: "auto"
	// (the default), "kvm" or "tcg".
	MachineAccelerators string

	// HypervisorPath is the hypervisor executable host path.
	HypervisorPath string

	// DisableBlockDeviceUse disallows a block device from being used.
	// The guest never uses block devices for container roots (they come
	// through the shared filesystem), so this is always honoured.
	DisableBlockDeviceUse bool

	// Shared file system type:
	//   - virtio-9p (default)
	//   - virtio-fs
	SharedFS string

	// VirtioFSDaemon is the virtio-fs vhost-user daemon path
	VirtioFSDaemon string

	// VirtioFSCacheSize is the virtio-fs DAX cache size in MiB
	VirtioFSCacheSize uint32

	// VirtioFSCache cache mode for fs version cache or "none"
	VirtioFSCache string

	// KernelParams are additional guest kernel parameters.
	KernelParams []Param

	// HypervisorParams are additional hypervisor parameters.
	HypervisorParams []Param

	// HypervisorMachineType specifies the type of machine being
	// emulated.
	HypervisorMachineType string

	// Debug changes the default hypervisor and kernel parameters to
	// enable debug output where available.
	Debug bool

	// NumVCPUs specifies default number of vCPUs for the VM.
	// Sandbox configuration VMConfig.VCPUs overwrites this.
	NumVCPUs uint32

	// DefaultMem specifies default memory size in MiB for the VM.
	// Sandbox configuration VMConfig.Memory overwrites this.
	MemorySize uint32

	// DefaultMaxVCPUs is the most vCPUs the VM may grow to while it
	// runs (ResizeSandbox); at most its boot vCPUs leaves no room.
	DefaultMaxVCPUs uint32

	// DefaultMaxMemorySize is the most memory in MiB the VM may grow to
	// while it runs, through virtio-mem; at most its boot memory leaves
	// no room.
	DefaultMaxMemorySize uint32

	// DefaultBridges specifies default number of bridges for the VM.
	// Bridges can be used to hot plug devices
	DefaultBridges uint32

	// MemPrealloc specifies if the memory should be pre-allocated
	MemPrealloc bool

	// HugePages specifies if the memory should be pre-allocated from huge pages
	HugePages bool

	// Realtime Used to enable/disable realtime
	Realtime bool

	// Mlock is used to control memory locking when Realtime is enabled
	// Realtime=true and Mlock=false, allows for swapping out of VM memory
	// enabling higher density
	Mlock bool

	// DisableNestingChecks is used to override customizations performed
	// when running on top of another VMM.
	DisableNestingChecks bool
}

// AgentType describes the type of guest agent a Sandbox should run.
type AgentType string

const (
	// NoopAgentType is the No-Op agent.
	NoopAgentType AgentType = "noop"

	// KataContainersAgent is the Kata Containers agent: here vc-agent,
	// the guest agent of this project.
	KataContainersAgent AgentType = "kata"

	// SocketTypeVSOCK is a VSOCK socket type for talking to an agent.
	SocketTypeVSOCK = "vsock"

	// SocketTypeUNIX is a UNIX socket type for talking to an agent.
	// It typically means the agent is living behind a host proxy.
	SocketTypeUNIX = "unix"
)

// KataAgentConfig configures the kata agent (vc-agent).
type KataAgentConfig struct {
	// Debug turns on the agent's verbose logs (on the VM console).
	Debug bool
}

// ProxyType describes a proxy type.
//
// The agent link here is direct: the host speaks to the agent over the
// VM's virtio-serial port, multiplexed, with no proxy process. Every
// proxy type is accepted for compatibility and means that direct link.
type ProxyType string

const (
	// NoopProxyType is the noopProxy.
	NoopProxyType ProxyType = "noopProxy"

	// NoProxyType is the noProxy.
	NoProxyType ProxyType = "noProxy"

	// KataProxyType is the kataProxy.
	KataProxyType ProxyType = "kataProxy"
)

// ProxyConfig is a structure storing information needed from any
// proxy in order to be properly initialized. It is accepted and unused:
// there is no proxy process.
type ProxyConfig struct {
	Path  string
	Debug bool
}

// ShimType describes a shim type.
//
// There is no shim process either: the caller (vc-cri) holds the
// containers' IO and exit statuses itself. Every shim type is accepted
// for compatibility and means that.
type ShimType string

const (
	// NoopShimType is the noopShim.
	NoopShimType ShimType = "noopShim"

	// KataShimType is the Kata Containers shim type.
	KataShimType ShimType = "kataShim"
)

// NetworkConfig is the network configuration related to a network.
// Every interface CNI left in the namespace at NetNSPath is connected to
// the VM with InterworkingModel, and the guest gets its addresses and
// routes. An empty NetNSPath leaves the VM without a network device.
type NetworkConfig struct {
	NetNSPath         string
	InterworkingModel NetInterworkingModel
}

// NetInterworkingModel defines the network model connecting
// the network interface to the virtual machine.
type NetInterworkingModel int

const (
	// NetXConnectDefaultModel Ask to use DefaultNetInterworkingModel
	NetXConnectDefaultModel NetInterworkingModel = iota

	// NetXConnectBridgedModel uses a linux bridge to interconnect
	// the container interface to the VM. This is the
	// safe default that works for most cases except
	// macvlan and ipvlan
	NetXConnectBridgedModel

	// NetXConnectMacVtapModel can be used when the Container network
	// interface can be bridged using macvtap
	NetXConnectMacVtapModel

	// NetXConnectEnlightenedModel can be used when the Network plugins
	// are enlightened to create VM native interfaces
	// when requested by the runtime
	// This will be used for vethtap, macvtap, ipvtap
	NetXConnectEnlightenedModel

	// NetXConnectInvalidModel is the last item to check valid values by IsValid()
	NetXConnectInvalidModel

	// NetXConnectTCFilterModel mirrors the interface's traffic to and
	// from a tap device with tc filters, the model Kata uses today
	// (beyond the specification; it sorts after Invalid to keep the
	// specification's values).
	NetXConnectTCFilterModel NetInterworkingModel = 100
)

// DefaultNetInterworkingModel is the model NetXConnectDefaultModel
// stands for: the tc filter model, which needs no bridge and keeps the
// interface's MAC and addresses as CNI made them.
const DefaultNetInterworkingModel = NetXConnectTCFilterModel

// IsValid tells whether the model is one this package can use.
func (m NetInterworkingModel) IsValid() bool {
	return (m >= NetXConnectDefaultModel && m < NetXConnectInvalidModel) || m == NetXConnectTCFilterModel
}

func (m NetInterworkingModel) String() string {
	switch m {
	case NetXConnectDefaultModel:
		return "default"
	case NetXConnectBridgedModel:
		return "bridged"
	case NetXConnectMacVtapModel:
		return "macvtap"
	case NetXConnectEnlightenedModel:
		return "enlightened"
	case NetXConnectTCFilterModel:
		return "tcfilter"
	}
	return "invalid"
}

// Volume is a shared volume between the host and the VM,
// defined by its mount tag and its host path.
type Volume struct {
	// MountTag is a label used as a hint to the guest.
	MountTag string

	// HostPath is the host filesystem path for this volume.
	HostPath string
}

// Hooks are the OCI hooks run on the host around the sandbox's life.
type Hooks struct {
	// PreStartHooks run after the VM is up, before containers start.
	PreStartHooks []Hook
	// PostStartHooks run after the sandbox started.
	PostStartHooks []Hook
	// PostStopHooks run after the sandbox stopped.
	PostStopHooks []Hook
}

// Hook is one OCI hook: a host program given the sandbox's OCI state on
// its stdin.
type Hook struct {
	Path    string
	Args    []string
	Env     []string
	Timeout int // seconds; 0 means no limit beyond the caller's context
}
