package hypervisor

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/kata-containers/govmm/qemu"
	"golang.org/x/sys/unix"
)

// Kernel parameters before Config.KernelParams: panic=1 and reboot=k
// with -no-reboot make a guest panic, reboot or poweroff end QEMU.
var baseKernelParams = []string{"console=ttyS0", "panic=1", "reboot=k"}

// fastBootParams shorten boot under TCG (measured with Debian's kernel:
// about 4.3 s to 2.5 s from start to the agent's first byte):
// tsc=reliable and no_timer_check skip clock calibration and checks, the
// i8042 options skip probing the q35 keyboard controller,
// cryptomgr.notests skips crypto self-tests, rcu_expedited speeds up RCU
// grace periods, 8250.nr_uarts=1 and audit=0 drop unused setup.
var fastBootParams = []string{
	"tsc=reliable", "no_timer_check",
	"i8042.noaux", "i8042.nomux", "i8042.nopnp", "i8042.dumbkbd",
	"cryptomgr.notests", "rcupdate.rcu_expedited=1",
	"8250.nr_uarts=1", "audit=0",
}

// Device and object IDs on the QEMU command line.
const (
	consoleID       = "console0"
	serialID        = "serial0"
	agentChardevID  = "agent0"
	fsID            = "fs0"
	virtiofsChardev = "virtiofs0"
	memBackendID    = "mem0"
	// The virtio-mem device and its memory: the room to grow.
	hotplugMemID     = "vmem0"
	hotplugBackendID = "vmem0-mem"
)

// hostCaps are the facts of the host that change the command line.
type hostCaps struct {
	vhostNet bool // /dev/vhost-net exists
}

// qemuArgs renders the QEMU command line of a validated Config whose
// accelerator is resolved (kvm or tcg). Devices come from govmm; the
// machine-wide options are written here, as govmm only renders those
// inside its blocking LaunchQemu.
func qemuArgs(c Config, accel Accelerator, host hostCaps) []string {
	gc := &qemu.Config{} // govmm's device renderers read the machine type only
	gc.Machine.Type = c.MachineType

	machine := c.MachineType
	var memObject string
	if memObject = memoryBackend(c); memObject != "" {
		machine += ",memory-backend=" + memBackendID
	}
	args := []string{
		"-name", "vc-" + c.ID,
		"-machine", machine,
	}
	if accel == AccelKVM {
		args = append(args, "-accel", "kvm", "-cpu", "host")
	} else {
		// 64 MiB of translation cache instead of QEMU's 1 GiB default.
		// Measured (BenchmarkExecInVM, alternating, same load): 32 MiB
		// thrashes, QEMU flushing the whole cache as each exec runs runc's
		// 20 MB init, and an exec takes 570-930 ms; 64 MiB takes 320-450 ms
		// for 38 MiB more of an idle VM's memory; 128 and 256 MiB gain
		// little more.
		args = append(args, "-accel", "tcg,tb-size=64")
	}
	smp, mem, hotplug := hotplugArgs(c)
	args = append(args, "-smp", smp, "-m", mem)
	if memObject != "" {
		args = append(args, "-object", memObject)
	}
	args = append(args, hotplug...)
	if c.Mlock && c.Realtime {
		args = append(args, "-overcommit", "mem-lock=on")
	}
	args = append(args,
		"-nographic", "-nodefaults", "-no-user-config", "-no-reboot",
		// QEMU's own seccomp filter: no exec, no setuid, no scheduler or
		// affinity changes, no obsolete calls.
		"-sandbox", sandboxOpts,
		// No iPXE option ROM on NICs: the guest boots its kernel directly,
		// and loading the ROM costs boot time.
		"-global", "virtio-net-pci.romfile=",
		"-qmp", "unix:"+c.path(qmpSocketName)+",server=on,wait=off",
		"-pidfile", c.path(qemuPidName),
		"-kernel", c.KernelPath,
	)
	if c.InitrdPath != "" {
		args = append(args, "-initrd", c.InitrdPath)
	}
	args = append(args, "-append", strings.Join(kernelParams(c), " "))
	if c.FirmwarePath != "" {
		args = append(args, "-bios", c.FirmwarePath)
	}

	args = append(args, consoleArgs(c)...)
	for _, d := range devices(c, host) {
		args = append(args, d.QemuParams(gc)...)
	}
	args = append(args, fdNetArgs(c, host)...)
	if c.TemplateRole == FromTemplate {
		args = append(args, "-incoming", "defer")
	}
	// The guest hands the pages it frees back to the host: boot leaves
	// tens of MiB behind (the initramfs, the kernel's init sections).
	args = append(args, "-device", "virtio-balloon-pci,id=balloon0,free-page-reporting=on,disable-modern=false")
	return append(args, c.ExtraArgs...)
}

// fdNetArgs renders the net devices QEMU gets as open descriptors. They
// follow stdin, stdout and stderr in the order of netFiles. With a
// template it renders every NIC, in the same place whatever its
// backend, so that a template and the VMs started from it have the same
// devices at the same PCI addresses: a template's NICs are unconnected
// hub ports, and every NIC has the template's MAC until its guest is
// given its own.
func fdNetArgs(c Config, host hostCaps) []string {
	var args []string
	fd := 3
	for i, n := range c.NetDevices {
		id := fmt.Sprintf("net%d", i)
		mac := n.MAC
		if c.TemplateRole != NoTemplate {
			mac = TemplateMAC(i)
		}
		var netdev string
		switch {
		case c.TemplateRole == BuildTemplate:
			netdev = fmt.Sprintf("hubport,id=%s,hubid=%d", id, i)
		case n.File != nil:
			netdev = fmt.Sprintf("tap,id=%s,fd=%d", id, fd)
			fd++
		case c.TemplateRole == FromTemplate:
			netdev = fmt.Sprintf("tap,id=%s,ifname=%s,script=no,downscript=no", id, n.TapName)
			if host.vhostNet {
				netdev += ",vhost=on"
			}
		default:
			continue // a device of devices()
		}
		args = append(args,
			"-netdev", netdev,
			"-device", fmt.Sprintf("virtio-net-pci,netdev=%s,mac=%s,disable-modern=false", id, mac),
		)
	}
	return args
}

// netFiles are the descriptors fdNetArgs refers to, in its order.
func netFiles(c Config) []*os.File {
	var files []*os.File
	for _, n := range c.NetDevices {
		if n.File != nil {
			files = append(files, n.File)
		}
	}
	return files
}

// memoryBackend returns the -object backing guest RAM, or "" for
// QEMU's default anonymous RAM.
func memoryBackend(c Config) string {
	if c.TemplateRole != NoTemplate {
		// Shared while the template boots, so that its RAM is the file;
		// private, copy-on-write, in a VM started from it.
		share := "off"
		if c.TemplateRole == BuildTemplate {
			share = "on"
		}
		return fmt.Sprintf("memory-backend-file,id=%s,size=%dM,mem-path=%s,share=%s", memBackendID, c.MemoryMiB, c.Template.MemPath, share)
	}
	if !c.HugePages && !sharesMemory(c) && !c.MemPrealloc {
		return ""
	}
	return backendObject(c, memBackendID, c.MemoryMiB, c.HugePages || c.MemPrealloc)
}

// hotplugMemoryBackend returns the -object of the virtio-mem region, or
// "" when the VM has no room to grow: memory of the kind of guest RAM's,
// never preallocated as a whole (the device preallocates what it plugs).
func hotplugMemoryBackend(c Config) string {
	if c.hotplugMemoryMiB() == 0 {
		return ""
	}
	return backendObject(c, hotplugBackendID, c.hotplugMemoryMiB(), false)
}

// sharesMemory tells whether guest memory must be shared: virtiofsd maps it.
func sharesMemory(c Config) bool { return c.SharedFS == SharedFSVirtioFS && c.SharedDir != "" }

func backendObject(c Config, id string, sizeMiB uint32, prealloc bool) string {
	size := fmt.Sprintf("size=%dM", sizeMiB)
	var obj string
	switch {
	case c.HugePages:
		obj = "memory-backend-file,id=" + id + "," + size + ",mem-path=" + hugePagesDir
		if prealloc {
			obj += ",prealloc=on"
		}
		if sharesMemory(c) {
			obj += ",share=on"
		}
		return obj
	case sharesMemory(c):
		obj = "memory-backend-memfd,id=" + id + "," + size + ",share=on"
	default:
		obj = "memory-backend-ram,id=" + id + "," + size
	}
	if prealloc {
		obj += ",prealloc=on"
	}
	return obj
}

// hotplugArgs render the room to grow: -smp with maxcpus for vCPU
// hot-plug, -m with maxmem and a virtio-mem device of the difference,
// which plugs nothing at boot.
func hotplugArgs(c Config) (smp, mem string, devices []string) {
	smp, mem = fmt.Sprint(c.VCPUs), fmt.Sprintf("%dM", c.MemoryMiB)
	if c.MaxVCPUs > c.VCPUs {
		smp += fmt.Sprintf(",maxcpus=%d", c.MaxVCPUs)
	}
	obj := hotplugMemoryBackend(c)
	if obj == "" {
		return smp, mem, nil
	}
	mem += fmt.Sprintf(",maxmem=%dM", c.MemoryMiB+c.hotplugMemoryMiB())
	dev := fmt.Sprintf("virtio-mem-pci,id=%s,memdev=%s,block-size=%dM,requested-size=0", hotplugMemID, hotplugBackendID, hotplugBlockMiB)
	if c.HugePages || c.MemPrealloc {
		dev += ",prealloc=on"
	}
	return smp, mem, []string{"-object", obj, "-device", dev}
}

func kernelParams(c Config) []string {
	p := slices.Concat(baseKernelParams, fastBootParams)
	if !c.Debug {
		p = append(p, "quiet")
	}
	if c.DefaultBridges == 0 {
		// No bus behind a bridge: stop the PCI scan after bus 0.
		p = append(p, "pci=lastbus=0")
	}
	if c.hotplugMemoryMiB() > 0 {
		// Memory virtio-mem plugs is onlined by the kernel, movable as
		// long as the kernel keeps enough of its own (auto-movable), so
		// that it can be unplugged again.
		p = append(p, "memhp_default_state=online", "memory_hotplug.online_policy=auto-movable")
	}
	return append(p, c.KernelParams...)
}

// sandboxOpts is QEMU's -sandbox: its seccomp filter on, and every
// optional group of system calls denied.
const sandboxOpts = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"

// consoleRingSize bounds the serial console kept in QEMU's memory.
const consoleRingSize = 64 << 10

// consoleArgs renders the serial console. The guest writes it as fast as
// it likes: it goes to a ring buffer in QEMU's memory, of
// consoleRingSize bytes, unless Debug asks for it in console.log (then
// unbounded: a debugging aid only, never for untrusted pods).
func consoleArgs(c Config) []string {
	chardev := fmt.Sprintf("ringbuf,id=%s,size=%d", consoleID, consoleRingSize)
	if c.Debug {
		chardev = "file,id=" + consoleID + ",path=" + c.path(consoleLogName)
	}
	return []string{"-chardev", chardev, "-serial", "chardev:" + consoleID}
}

// qemuCaps are the capabilities QEMU keeps, for the command line
// qemuArgs rendered (measured with 9p security_model=none as root: the
// file operations on the guest's behalf need no more). Taps come as
// descriptors; a tap named by ifname needs CAP_NET_ADMIN to attach, and
// mem-lock CAP_IPC_LOCK. CAP_MKNOD is not kept: the guest cannot create
// device nodes on host filesystems.
func qemuCaps(args []string) []uintptr {
	caps := []uintptr{unix.CAP_CHOWN, unix.CAP_DAC_OVERRIDE, unix.CAP_FOWNER, unix.CAP_FSETID}
	for i, a := range args {
		if i == 0 {
			continue
		}
		switch prev := args[i-1]; {
		case prev == "-overcommit" && strings.Contains(a, "mem-lock=on"):
			caps = append(caps, unix.CAP_IPC_LOCK)
		case prev == "-netdev" && strings.HasPrefix(a, "tap,") && strings.Contains(a, "ifname="):
			caps = append(caps, unix.CAP_NET_ADMIN)
		}
	}
	return caps
}

func devices(c Config, host hostCaps) []qemu.Device {
	ds := []qemu.Device{
		// The agent's port: QEMU listens on agent.sock, the host
		// daemon connects, and connects again after a restart.
		qemu.SerialDevice{Driver: qemu.VirtioSerial, ID: serialID},
		qemu.CharDevice{
			Backend: qemu.Socket, Driver: qemu.VirtioSerialPort, Bus: serialID + ".0",
			DeviceID: "channel0", ID: agentChardevID, Path: c.path(agentSocketName), Name: c.AgentPortName,
		},
	}
	for i := range c.DefaultBridges {
		ds = append(ds, qemu.BridgeDevice{
			Type: qemu.PCIBridge, Bus: "pcie.0", ID: fmt.Sprintf("pci-bridge-%d", i), Chassis: int(i) + 1,
		})
	}
	if c.SharedDir != "" {
		switch c.SharedFS {
		case SharedFS9p:
			ds = append(ds, qemu.FSDevice{
				Driver: qemu.Virtio9P, FSDriver: qemu.Local, ID: fsID, Path: c.SharedDir,
				MountTag: c.SharedTag, SecurityModel: qemu.None, Multidev: qemu.Remap,
			})
		case SharedFSVirtioFS:
			ds = append(ds, qemu.VhostUserDevice{
				SocketPath: c.path(virtiofsdSock), CharDevID: virtiofsChardev,
				Tag: c.SharedTag, VhostUserType: qemu.VhostUserFS,
			})
		}
	}
	for i, n := range c.NetDevices {
		if n.File != nil || c.TemplateRole != NoTemplate {
			continue // see fdNetArgs
		}
		// vhost=on only where /dev/vhost-net exists; QEMU's default is off.
		ds = append(ds, qemu.NetDevice{
			Type: qemu.TAP, ID: fmt.Sprintf("net%d", i), IFName: n.TapName,
			Script: "no", DownScript: "no", VHost: host.vhostNet, MACAddress: n.MAC,
		})
	}
	return ds
}
