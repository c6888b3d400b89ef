package hypervisor

import (
	"bufio"
	"fmt"
	"golang.org/x/sys/unix"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// Accelerator selects how QEMU runs guest code.
type Accelerator string

const (
	// AccelAuto uses KVM when it provably boots a guest, else TCG.
	AccelAuto Accelerator = "auto"
	AccelKVM  Accelerator = "kvm"
	AccelTCG  Accelerator = "tcg"
)

// SharedFS selects how SharedDir reaches the guest.
type SharedFS string

const (
	SharedFS9p       SharedFS = "virtio-9p"
	SharedFSVirtioFS SharedFS = "virtio-fs"
)

// NetDevice is a tap device, already created by the network layer
// inside the VM's network namespace: QEMU opens it by name, or is handed
// File, an open tap character device (a macvtap's), instead.
type NetDevice struct {
	TapName string
	MAC     string
	// File, when set, is passed to QEMU as an inherited descriptor; the
	// caller keeps it open until Launch returns.
	File *os.File
}

// Config describes one VM. Every field either takes effect or makes
// Launch fail with ErrInvalidConfig.
type Config struct {
	ID string
	// StateDir is created by Launch and removed by Stop; it holds
	// qmp.sock, agent.sock, console.log, qemu.log, qemu.pid and, with
	// virtio-fs, virtiofsd.sock, virtiofsd.log and virtiofsd.pid.
	StateDir     string
	Path         string // QEMU binary; default qemu-system-x86_64 from PATH
	KernelPath   string // uncompressed vmlinux (PVH boot) or bzImage
	InitrdPath   string
	FirmwarePath string   // optional -bios
	KernelParams []string // appended after the defaults
	ExtraArgs    []string // raw extra QEMU arguments, appended last
	MachineType  string   // default q35
	Accelerator  Accelerator
	VCPUs        uint32 // default 1
	MemoryMiB    uint32
	// MaxVCPUs and MaxMemoryMiB are the room to grow while the VM runs
	// (default none: VCPUs and MemoryMiB): vCPUs are hot-plugged up to
	// MaxVCPUs, memory through a virtio-mem device of MaxMemoryMiB less
	// MemoryMiB (rounded down to hotplugBlockMiB), which plugs nothing
	// at boot.
	MaxVCPUs     uint32
	MaxMemoryMiB uint32
	SharedFS     SharedFS // default virtio-9p; no shared device without SharedDir
	SharedDir    string   // host directory shared with the guest
	SharedTag    string   // mount tag, default vcshared
	// AgentPortName names the virtio-serial port of the agent link, as
	// the guest's agent looks it up: the caller's, which speaks to that
	// agent (required).
	AgentPortName string
	// VirtioFSDaemon is virtiofsd's path, default /usr/lib/qemu/virtiofsd.
	VirtioFSDaemon string
	VirtioFSCache  string // auto (default), always or none
	NetDevices     []NetDevice
	// NetNSPath, when set, is the network namespace QEMU runs in (the
	// taps live there).
	NetNSPath string
	Debug     bool // keeps the kernel's boot messages (no "quiet")
	// MemPrealloc allocates all guest memory at start.
	MemPrealloc bool
	// HugePages backs guest memory with /dev/hugepages (preallocated).
	HugePages bool
	// Mlock and Realtime together lock guest memory in RAM
	// (-overcommit mem-lock=on); QEMU 7.2 has no other realtime knob,
	// so either one alone is refused.
	Mlock, Realtime bool
	// DefaultBridges adds that many PCI bridges (at most maxBridges).
	DefaultBridges uint32
	// CgroupParent, when set, is the host cgroup the VM's processes run
	// under; by default they stay in the caller's.
	CgroupParent CgroupParent
	// AccelVerdictFile, when set, keeps the verdicts of AccelAuto's KVM
	// probe across processes (see ChooseAccelerator).
	AccelVerdictFile string
	// TemplateRole, with Template, boots a template or starts the VM
	// from one (see Template).
	TemplateRole TemplateRole
	Template     Template
}

const (
	defaultPath      = "qemu-system-x86_64"
	defaultMachine   = "q35"
	defaultSharedTag = "vcshared"
	defaultVirtiofsd = "/usr/lib/qemu/virtiofsd"
	maxBridges       = 5
	// maxVCPUs is the most vCPUs a q35 VM has in QEMU 7.2.
	maxVCPUs = 288
	// hotplugBlockMiB is virtio-mem's block: memory grows and shrinks by
	// multiples of it (2 MiB, x86's transparent huge page).
	hotplugBlockMiB = 2
	hugePagesDir    = "/dev/hugepages"
)

// Files inside StateDir.
const (
	qmpSocketName   = "qmp.sock"
	agentSocketName = "agent.sock"
	consoleLogName  = "console.log"
	qemuLogName     = "qemu.log"
	qemuPidName     = "qemu.pid"
	virtiofsdSock   = "virtiofsd.sock"
	virtiofsdLog    = "virtiofsd.log"
	virtiofsdPid    = "virtiofsd.pid"
)

func (c Config) path(name string) string { return filepath.Join(c.StateDir, name) }

// The cap of each file a VM's processes write in StateDir: their logs,
// and with Debug the guest's whole console.
const (
	maxLogSize      = 1 << 20
	maxDebugLogSize = 64 << 20
)

func (c Config) maxLogSize() uint64 {
	if c.Debug {
		return maxDebugLogSize
	}
	return maxLogSize
}

// maxQEMUFileSize is the cap of QEMU's files: its log, and guest memory
// when that is a file (a memfd for virtio-fs, hugetlbfs), which the
// same limit counts.
func (c Config) maxQEMUFileSize() uint64 {
	if memoryBackend(c) == "" || strings.HasPrefix(memoryBackend(c), "memory-backend-ram") {
		return c.maxLogSize()
	}
	return c.maxLogSize() + uint64(c.MemoryMiB+c.hotplugMemoryMiB())<<20
}

// hotplugMemoryMiB is the size of the virtio-mem region: the memory the
// VM may grow by.
func (c Config) hotplugMemoryMiB() uint32 {
	if c.MaxMemoryMiB <= c.MemoryMiB {
		return 0
	}
	return (c.MaxMemoryMiB - c.MemoryMiB) / hotplugBlockMiB * hotplugBlockMiB
}

// withDefaults fills the fields whose zero value means "the default".
func (c Config) withDefaults() Config {
	if c.Path == "" {
		c.Path = defaultPath
	}
	if c.MachineType == "" {
		c.MachineType = defaultMachine
	}
	if c.Accelerator == "" {
		c.Accelerator = AccelAuto
	}
	if c.VCPUs == 0 {
		c.VCPUs = 1
	}
	if c.MaxVCPUs == 0 {
		c.MaxVCPUs = c.VCPUs
	}
	if c.MaxMemoryMiB == 0 {
		c.MaxMemoryMiB = c.MemoryMiB
	}
	if c.SharedFS == "" {
		c.SharedFS = SharedFS9p
	}
	if c.SharedTag == "" {
		c.SharedTag = defaultSharedTag
	}
	if c.VirtioFSDaemon == "" {
		c.VirtioFSDaemon = defaultVirtiofsd
	}
	if c.VirtioFSCache == "" {
		c.VirtioFSCache = "auto"
	}
	return c
}

func invalid(field, format string, args ...any) error {
	return fmt.Errorf("%s: %s: %w", field, fmt.Sprintf(format, args...), ErrInvalidConfig)
}

// validateIdentity checks what Attach needs as well as Launch.
func (c Config) validateIdentity() error {
	if c.ID == "" {
		return invalid("ID", "empty")
	}
	if c.StateDir == "" || !filepath.IsAbs(c.StateDir) {
		return invalid("StateDir", "%q is not an absolute path", c.StateDir)
	}
	if strings.Contains(c.StateDir, ",") {
		return invalid("StateDir", "%q contains a comma, which QEMU options cannot carry", c.StateDir)
	}
	// The longest socket in it must fit a unix socket address.
	if n := len(c.path(virtiofsdSock)); n >= len(unix.RawSockaddrUnix{}.Path) {
		return invalid("StateDir", "%q is too long: its sockets' paths would take %d bytes, unix sockets allow %d", c.StateDir, n, len(unix.RawSockaddrUnix{}.Path)-1)
	}
	return nil
}

// validate checks a Config with its defaults filled, including the host
// files it names, so that Launch fails before starting anything.
func (c Config) validate() error {
	if err := c.validateIdentity(); err != nil {
		return err
	}
	if c.KernelPath == "" {
		return invalid("KernelPath", "empty")
	}
	for field, p := range map[string]string{"KernelPath": c.KernelPath, "InitrdPath": c.InitrdPath, "FirmwarePath": c.FirmwarePath} {
		if p == "" {
			continue
		}
		if fi, err := os.Stat(p); err != nil {
			return fmt.Errorf("%s: %w: %w", field, err, ErrInvalidConfig)
		} else if !fi.Mode().IsRegular() {
			return invalid(field, "%s is not a regular file", p)
		}
	}
	if c.MemoryMiB == 0 {
		return invalid("MemoryMiB", "zero")
	}
	if c.MaxVCPUs < c.VCPUs || c.MaxVCPUs > maxVCPUs {
		return invalid("MaxVCPUs", "%d, want from VCPUs (%d) to %d", c.MaxVCPUs, c.VCPUs, maxVCPUs)
	}
	if c.MaxMemoryMiB < c.MemoryMiB {
		return invalid("MaxMemoryMiB", "%d, less than MemoryMiB (%d)", c.MaxMemoryMiB, c.MemoryMiB)
	}
	if c.hotplugMemoryMiB() > 0 && c.Mlock {
		// mem-lock=on would lock the whole virtio-mem region.
		return invalid("MaxMemoryMiB", "memory hot-plug (MaxMemoryMiB above MemoryMiB) cannot be had with Mlock")
	}
	if c.AgentPortName == "" || strings.ContainsAny(c.AgentPortName, ",=") {
		return invalid("AgentPortName", "%q is not a virtio-serial port name", c.AgentPortName)
	}
	switch c.Accelerator {
	case AccelAuto, AccelKVM, AccelTCG:
	default:
		return invalid("Accelerator", "unknown %q (want auto, kvm or tcg)", c.Accelerator)
	}
	switch c.SharedFS {
	case SharedFS9p:
	case SharedFSVirtioFS:
		if c.SharedDir == "" {
			return invalid("SharedDir", "empty, virtio-fs needs a directory")
		}
	default:
		return invalid("SharedFS", "unknown %q (want virtio-9p or virtio-fs)", c.SharedFS)
	}
	if c.SharedDir != "" {
		if fi, err := os.Stat(c.SharedDir); err != nil {
			return fmt.Errorf("SharedDir: %w: %w", err, ErrInvalidConfig)
		} else if !fi.IsDir() {
			return invalid("SharedDir", "%s is not a directory", c.SharedDir)
		}
		// QEMU's option syntax has no escape for these.
		if strings.Contains(c.SharedDir, ",") {
			return invalid("SharedDir", "%q contains a comma", c.SharedDir)
		}
		if strings.ContainsAny(c.SharedTag, ", ") {
			return invalid("SharedTag", "%q contains a comma or a space", c.SharedTag)
		}
	}
	switch c.VirtioFSCache {
	case "auto", "always", "none":
	default:
		return invalid("VirtioFSCache", "unknown %q (want auto, always or none)", c.VirtioFSCache)
	}
	for i, n := range c.NetDevices {
		if c.TemplateRole != BuildTemplate && n.File == nil && (n.TapName == "" || len(n.TapName) > 15 || strings.ContainsAny(n.TapName, ", /")) {
			return invalid(fmt.Sprintf("NetDevices[%d].TapName", i), "%q is not an interface name", n.TapName)
		}
		if _, err := net.ParseMAC(n.MAC); err != nil {
			return fmt.Errorf("NetDevices[%d].MAC: %w: %w", i, err, ErrInvalidConfig)
		}
	}
	if c.NetNSPath != "" {
		if _, err := os.Stat(c.NetNSPath); err != nil {
			return fmt.Errorf("NetNSPath: %w: %w", err, ErrInvalidConfig)
		}
	}
	if c.HugePages {
		if ok, err := isHugetlbfs(hugePagesDir); err != nil || !ok {
			return invalid("HugePages", "%s is not a mounted hugetlbfs", hugePagesDir)
		}
	}
	if c.Mlock != c.Realtime {
		return invalid("Mlock", "Mlock and Realtime only take effect together (-overcommit mem-lock=on)")
	}
	if err := c.CgroupParent.validate(); err != nil {
		return err
	}
	if c.DefaultBridges > maxBridges {
		return invalid("DefaultBridges", "%d, at most %d", c.DefaultBridges, maxBridges)
	}
	return c.validateTemplate()
}

// CanTemplate tells whether VMs of c's kind can have a template: a
// template's RAM is a file of its own, which hugepages, preallocation and
// virtio-fs's shared memory each want otherwise.
func CanTemplate(c Config) bool { return !c.HugePages && !c.MemPrealloc && !sharesMemory(c) }

// validateTemplate checks the template fields.
func (c Config) validateTemplate() error {
	switch c.TemplateRole {
	case NoTemplate:
		return nil
	case BuildTemplate, FromTemplate:
	default:
		return invalid("TemplateRole", "unknown %d", c.TemplateRole)
	}
	if !CanTemplate(c) {
		return invalid("TemplateRole", "templates need plain guest RAM: no HugePages, MemPrealloc or virtio-fs")
	}
	for field, p := range map[string]string{"Template.MemPath": c.Template.MemPath, "Template.StatePath": c.Template.StatePath} {
		if !filepath.IsAbs(p) || strings.Contains(p, ",") {
			return invalid(field, "%q is not an absolute path without commas", p)
		}
		if c.TemplateRole == FromTemplate {
			if _, err := os.Stat(p); err != nil {
				return fmt.Errorf("%s: %w: %w", field, err, ErrInvalidConfig)
			}
		}
	}
	return nil
}

func isHugetlbfs(dir string) (bool, error) {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return false, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) >= 3 && fields[1] == dir && fields[2] == "hugetlbfs" {
			return true, nil
		}
	}
	return false, s.Err()
}
