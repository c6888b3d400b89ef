package protocol

import (
	"io"
	"time"

	"github.com/hashicorp/yamux"
)

// Facts both ends of the VM link agree on.
const (
	// PortName names the virtio-serial port that carries the agent link
	// (/sys/class/virtio-ports/*/name in the guest).
	PortName = "agent.0"
	// VsockPort is the agent's port where the host has vsock.
	VsockPort = 1024
	// SharedDir is where the guest mounts the filesystem the host shares
	// with it; container roots and bind-mount sources live below it.
	SharedDir = "/run/vc-agent/shared"
	// SharedTag is the default mount tag of the shared filesystem.
	SharedTag = "vcshared"

	// Kernel command line parameters the host uses to tell the agent how
	// the VM was built. The dot keeps the kernel from handing them to init
	// as arguments or environment.
	ParamSharedFS  = "vc_agent.shared_fs"  // "virtio-9p" or "virtio-fs"
	ParamSharedTag = "vc_agent.shared_tag" // mount tag
	ParamDebug     = "vc_agent.debug"      // "1": verbose agent logs
	// ParamTemplate "1" boots a template VM: the shared filesystem is
	// mounted only when a pod restored from it calls Restore, as QEMU
	// refuses to migrate a VM whose 9p export is mounted.
	ParamTemplate = "vc_agent.template"
)

// YamuxConfig is the multiplexer configuration of both ends. Keepalives
// are off: a paused VM cannot answer them, and the host learns that a VM
// died from its hypervisor, the guest that the host left from EOF.
func YamuxConfig() *yamux.Config {
	cfg := yamux.DefaultConfig()
	cfg.EnableKeepAlive = false
	cfg.ConnectionWriteTimeout = 30 * time.Second
	cfg.LogOutput = io.Discard
	return cfg
}
