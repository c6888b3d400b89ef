package hypervisor

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// values returns the value after each occurrence of flag.
func values(args []string, flag string) []string {
	var vs []string
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			vs = append(vs, args[i+1])
		}
	}
	return vs
}

func TestQemuArgsDefaults(t *testing.T) {
	c := validConfig(t)
	args := qemuArgs(c, AccelTCG, hostCaps{})
	sd := c.StateDir
	for flag, want := range map[string][]string{
		"-machine": {"q35"},
		"-accel":   {"tcg,tb-size=64"},
		"-m":       {"256M"},
		"-smp":     {"1"},
		"-qmp":     {"unix:" + sd + "/qmp.sock,server=on,wait=off"},
		"-pidfile": {sd + "/qemu.pid"},
		"-kernel":  {c.KernelPath},
		"-serial":  {"chardev:console0"},
		"-fsdev":   {"local,id=fs0,path=" + c.SharedDir + ",security_model=none,multidevs=remap"},
	} {
		if got := values(args, flag); !slices.Equal(got, want) {
			t.Errorf("%s = %q, want %q", flag, got, want)
		}
	}
	for _, flag := range []string{"-nographic", "-nodefaults", "-no-user-config", "-no-reboot"} {
		if !slices.Contains(args, flag) {
			t.Errorf("no %s", flag)
		}
	}
	for _, absent := range []string{"-initrd", "-bios", "-object", "-overcommit", "-netdev", "-cpu"} {
		if slices.Contains(args, absent) {
			t.Errorf("unexpected %s", absent)
		}
	}
	wantDevices := []string{
		"virtio-serial-pci,disable-modern=false,id=serial0",
		"virtserialport,bus=serial0.0,chardev=agent0,id=channel0,name=agent.0",
		"virtio-9p-pci,disable-modern=false,fsdev=fs0,mount_tag=vcshared",
		"virtio-balloon-pci,id=balloon0,free-page-reporting=on,disable-modern=false",
	}
	if got := values(args, "-device"); !slices.Equal(got, wantDevices) {
		t.Errorf("-device = %q, want %q", got, wantDevices)
	}
	wantChardevs := []string{
		"ringbuf,id=console0,size=65536",
		"socket,id=agent0,path=" + sd + "/agent.sock,server=on,wait=off",
	}
	if got := values(args, "-chardev"); !slices.Equal(got, wantChardevs) {
		t.Errorf("-chardev = %q, want %q", got, wantChardevs)
	}
	cmdline := values(args, "-append")[0]
	for _, p := range []string{"console=ttyS0", "panic=1", "reboot=k", "quiet", "pci=lastbus=0", "tsc=reliable"} {
		if !slices.Contains(strings.Fields(cmdline), p) {
			t.Errorf("kernel command line %q lacks %s", cmdline, p)
		}
	}
}

func TestQemuArgsOptions(t *testing.T) {
	c := validConfig(t)
	c.InitrdPath = "/guest/initrd"
	c.FirmwarePath = "/guest/bios.bin"
	c.KernelParams = []string{"agent.debug=1"}
	c.ExtraArgs = []string{"-rtc", "base=utc"}
	c.VCPUs, c.MemoryMiB = 2, 512
	c.Debug = true
	c.MemPrealloc = true
	c.Mlock, c.Realtime = true, true
	c.DefaultBridges = 2
	c.NetDevices = []NetDevice{{TapName: "tap0", MAC: "02:00:00:00:00:01"}, {TapName: "tap1", MAC: "02:00:00:00:00:02"}}
	args := qemuArgs(c, AccelKVM, hostCaps{})

	for flag, want := range map[string][]string{
		"-machine":    {"q35,memory-backend=mem0"},
		"-accel":      {"kvm"},
		"-cpu":        {"host"},
		"-smp":        {"2"},
		"-m":          {"512M"},
		"-object":     {"memory-backend-ram,id=mem0,size=512M,prealloc=on"},
		"-overcommit": {"mem-lock=on"},
		"-initrd":     {"/guest/initrd"},
		"-bios":       {"/guest/bios.bin"},
		"-netdev": {
			"tap,id=net0,ifname=tap0,downscript=no,script=no",
			"tap,id=net1,ifname=tap1,downscript=no,script=no",
		},
	} {
		if got := values(args, flag); !slices.Equal(got, want) {
			t.Errorf("%s = %q, want %q", flag, got, want)
		}
	}
	devices := values(args, "-device")
	for _, want := range []string{
		"pci-bridge,bus=pcie.0,id=pci-bridge-0,chassis_nr=1,shpc=off",
		"pci-bridge,bus=pcie.0,id=pci-bridge-1,chassis_nr=2,shpc=off",
		"driver=virtio-net-pci,netdev=net0,mac=02:00:00:00:00:01,disable-modern=false",
		"driver=virtio-net-pci,netdev=net1,mac=02:00:00:00:00:02,disable-modern=false",
	} {
		if !slices.Contains(devices, want) {
			t.Errorf("no -device %s in %q", want, devices)
		}
	}
	cmdline := strings.Fields(values(args, "-append")[0])
	if slices.Contains(cmdline, "quiet") || slices.Contains(cmdline, "pci=lastbus=0") {
		t.Errorf("debug with bridges: kernel command line %q", cmdline)
	}
	if cmdline[len(cmdline)-1] != "agent.debug=1" {
		t.Errorf("KernelParams not last: %q", cmdline)
	}
	if !slices.Equal(args[len(args)-2:], c.ExtraArgs) {
		t.Errorf("ExtraArgs not last: %q", args[len(args)-2:])
	}
}

// TestQemuArgsHotplug: room to grow is maxcpus, maxmem and a virtio-mem
// device of the difference (rounded down to its 2 MiB block), plugging
// nothing at boot, of the kind of memory the guest's RAM is.
func TestQemuArgsHotplug(t *testing.T) {
	for _, tc := range []struct {
		name           string
		modify         func(*Config)
		smp, m, object string
		device         string // "" for none
	}{
		{"none", func(*Config) {}, "1", "256M", "", ""},
		{"vCPUs only", func(c *Config) { c.MaxVCPUs = 4 }, "1,maxcpus=4", "256M", "", ""},
		{
			"memory", func(c *Config) { c.VCPUs, c.MaxVCPUs, c.MaxMemoryMiB = 2, 2, 1281 }, "2", "256M,maxmem=1280M",
			"memory-backend-ram,id=vmem0-mem,size=1024M", "virtio-mem-pci,id=vmem0,memdev=vmem0-mem,block-size=2M,requested-size=0",
		},
		{
			"shared memory", func(c *Config) { c.SharedFS, c.MaxMemoryMiB = SharedFSVirtioFS, 512 }, "1", "256M,maxmem=512M",
			"memory-backend-memfd,id=vmem0-mem,size=256M,share=on", "virtio-mem-pci,id=vmem0,memdev=vmem0-mem,block-size=2M,requested-size=0",
		},
		{
			"preallocated", func(c *Config) { c.MemPrealloc, c.MaxMemoryMiB = true, 512 }, "1", "256M,maxmem=512M",
			"memory-backend-ram,id=vmem0-mem,size=256M", "virtio-mem-pci,id=vmem0,memdev=vmem0-mem,block-size=2M,requested-size=0,prealloc=on",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig(t)
			tc.modify(&c)
			c = c.withDefaults()
			if err := c.validate(); err != nil {
				t.Fatal(err)
			}
			args := qemuArgs(c, AccelTCG, hostCaps{})
			if got := values(args, "-smp"); !slices.Equal(got, []string{tc.smp}) {
				t.Errorf("-smp = %q, want %s", got, tc.smp)
			}
			if got := values(args, "-m"); !slices.Equal(got, []string{tc.m}) {
				t.Errorf("-m = %q, want %s", got, tc.m)
			}
			objects, devices := values(args, "-object"), values(args, "-device")
			hasMem := slices.ContainsFunc(devices, func(d string) bool { return strings.HasPrefix(d, "virtio-mem-pci") })
			if tc.device == "" {
				if hasMem || slices.ContainsFunc(objects, func(o string) bool { return strings.Contains(o, "vmem0") }) {
					t.Errorf("virtio-mem without room to grow: %q %q", objects, devices)
				}
				return
			}
			if !slices.Contains(objects, tc.object) {
				t.Errorf("-object = %q, want %s among them", objects, tc.object)
			}
			if !slices.Contains(devices, tc.device) {
				t.Errorf("-device = %q, want %s among them", devices, tc.device)
			}
		})
	}
}

func TestQemuArgsVhostNet(t *testing.T) {
	c := validConfig(t)
	c.NetDevices = []NetDevice{{TapName: "tap0", MAC: "02:00:00:00:00:01"}}
	got := values(qemuArgs(c, AccelTCG, hostCaps{vhostNet: true}), "-netdev")
	if want := []string{"tap,id=net0,vhost=on,ifname=tap0,downscript=no,script=no"}; !slices.Equal(got, want) {
		t.Errorf("-netdev = %q, want %q", got, want)
	}
}

func TestQemuArgsVirtioFS(t *testing.T) {
	c := validConfig(t)
	c.SharedFS = SharedFSVirtioFS
	c.SharedTag = "myfs"
	args := qemuArgs(c, AccelTCG, hostCaps{})
	if slices.Contains(args, "-fsdev") {
		t.Error("virtio-fs with a 9p -fsdev")
	}
	for flag, want := range map[string]string{
		"-machine": "q35,memory-backend=mem0",
		"-object":  "memory-backend-memfd,id=mem0,size=256M,share=on",
		"-device":  "vhost-user-fs-pci,chardev=virtiofs0,tag=myfs",
		"-chardev": "socket,id=virtiofs0,path=" + c.StateDir + "/virtiofsd.sock",
	} {
		if got := values(args, flag); !slices.Contains(got, want) {
			t.Errorf("%s = %q, want %s among them", flag, got, want)
		}
	}
	wantd := []string{"--socket-path=" + c.StateDir + "/virtiofsd.sock", "-o", "source=" + c.SharedDir, "-o", "cache=auto", "-o", "modcaps=-mknod"}
	if got := virtiofsdArgs(c); !slices.Equal(got, wantd) {
		t.Errorf("virtiofsd args %q, want %q", got, wantd)
	}
}

func TestQemuArgsHugePages(t *testing.T) {
	c := validConfig(t)
	c.HugePages = true
	c.SharedFS = SharedFSVirtioFS
	got := values(qemuArgs(c, AccelTCG, hostCaps{}), "-object")
	want := []string{"memory-backend-file,id=mem0,size=256M,mem-path=/dev/hugepages,prealloc=on,share=on"}
	if !slices.Equal(got, want) {
		t.Errorf("-object = %q, want %q", got, want)
	}
}

func TestQemuArgsNoSharedDir(t *testing.T) {
	c := validConfig(t)
	c.SharedDir = ""
	args := qemuArgs(c, AccelTCG, hostCaps{})
	for _, d := range values(args, "-device") {
		if strings.Contains(d, "9p") {
			t.Errorf("shared device %s without SharedDir", d)
		}
	}
}

func TestFDNetDevices(t *testing.T) {
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := Config{NetDevices: []NetDevice{
		{TapName: "tap0_vc", MAC: "02:00:00:00:00:01"},
		{MAC: "02:00:00:00:00:02", File: f},
	}}
	args := strings.Join(fdNetArgs(c, hostCaps{}), " ")
	want := "-netdev tap,id=net1,fd=3 -device virtio-net-pci,netdev=net1,mac=02:00:00:00:00:02,disable-modern=false"
	if args != want {
		t.Fatalf("fd net args %q, want %q", args, want)
	}
	if files := netFiles(c); len(files) != 1 || files[0] != f {
		t.Fatalf("netFiles %v, want the one file", files)
	}
}

func TestQemuArgsConfined(t *testing.T) {
	c := validConfig(t)
	args := qemuArgs(c, AccelTCG, hostCaps{})
	if got := values(args, "-sandbox"); !slices.Equal(got, []string{"on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"}) {
		t.Errorf("-sandbox = %q", got)
	}
	caps := qemuCaps(args)
	if slices.Contains(caps, unix.CAP_SYS_ADMIN) || slices.Contains(caps, unix.CAP_MKNOD) ||
		slices.Contains(caps, unix.CAP_NET_ADMIN) || slices.Contains(caps, unix.CAP_IPC_LOCK) || len(caps) != 4 {
		t.Errorf("QEMU keeps %v", caps)
	}
	c.Mlock, c.Realtime = true, true
	c.NetDevices = []NetDevice{{TapName: "tap0", MAC: "02:00:00:00:00:01"}}
	caps = qemuCaps(qemuArgs(c, AccelTCG, hostCaps{}))
	if !slices.Contains(caps, unix.CAP_IPC_LOCK) || !slices.Contains(caps, unix.CAP_NET_ADMIN) {
		t.Errorf("with mem-lock and a tap by name, QEMU keeps %v", caps)
	}
	// Debug: the console in a file; otherwise a bounded ring.
	c.Debug = true
	if got := values(qemuArgs(c, AccelTCG, hostCaps{}), "-chardev"); !slices.Contains(got, "file,id=console0,path="+c.StateDir+"/console.log") {
		t.Errorf("debug console: %q", got)
	}
}

// TestConfine checks a confined child's capabilities and no_new_privs.
func TestConfine(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	cmd := exec.Command("grep", "-E", "^(CapBnd|CapPrm|CapEff|CapInh|CapAmb|NoNewPrivs)", "/proc/self/status")
	var out strings.Builder
	cmd.Stdout = &out
	p, err := startConfined(cmd, "", []uintptr{unix.CAP_CHOWN, unix.CAP_FOWNER}, maxLogSize)
	if err != nil {
		t.Fatal(err)
	}
	<-p.done
	want := fmt.Sprintf("%016x", 1<<unix.CAP_CHOWN|1<<unix.CAP_FOWNER)
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		k, v, _ := strings.Cut(l, ":")
		v = strings.TrimSpace(v)
		switch k {
		case "CapBnd", "CapPrm", "CapEff":
			if v != want {
				t.Errorf("%s = %s, want %s", k, v, want)
			}
		case "CapInh", "CapAmb":
			if strings.Trim(v, "0") != "" {
				t.Errorf("%s = %s, want none", k, v)
			}
		case "NoNewPrivs":
			if v != "1" {
				t.Errorf("NoNewPrivs = %s", v)
			}
		}
	}
}

// TestConfineFileSize: a confined child's files are capped, and one
// that writes past the cap is ended by the kernel.
func TestConfineFileSize(t *testing.T) {
	dir := t.TempDir()
	// The sleep: the cap is set once the child runs.
	cmd := exec.Command("sh", "-c", "sleep 0.5; grep 'Max file size' /proc/self/limits; head -c 8192 /dev/zero >"+dir+"/log && echo survived")
	var out strings.Builder
	cmd.Stdout = &out
	p, err := startConfined(cmd, "", []uintptr{unix.CAP_CHOWN}, 4096)
	if err != nil {
		t.Fatal(err)
	}
	<-p.done
	if f := strings.Fields(out.String()); len(f) < 5 || f[3] != "4096" || f[4] != "4096" {
		t.Errorf("limits of the child: %q, want a file size cap of 4096", out.String())
	}
	if strings.Contains(out.String(), "survived") {
		t.Errorf("a write past the cap went on: %q", out.String())
	}
	if fi, err := os.Stat(dir + "/log"); err != nil || fi.Size() != 4096 {
		t.Errorf("the file written past the cap: %v, %v; want 4096 bytes", fi, err)
	}
}

// TestQemuArgsTemplate: a template boots with its RAM a shared file and
// unconnected NICs; a VM from it maps that file privately, has the same
// devices in the same places (its NICs on its taps, with the template's
// MAC) and waits for the state; validation refuses what cannot be one.
func TestQemuArgsTemplate(t *testing.T) {
	c := validConfig(t)
	c.NetDevices = []NetDevice{{TapName: "tap0_vc", MAC: "02:00:00:00:00:01"}}
	tmpl := Template{MemPath: "/run/t/mem", StatePath: "/run/t/state"}
	build, from := c, c
	build.TemplateRole, build.Template = BuildTemplate, tmpl
	from.TemplateRole, from.Template = FromTemplate, tmpl
	b, f := qemuArgs(build, AccelTCG, hostCaps{}), qemuArgs(from, AccelTCG, hostCaps{})
	for _, tc := range []struct {
		args       []string
		flag, want string
	}{
		{b, "-object", "memory-backend-file,id=mem0,size=256M,mem-path=/run/t/mem,share=on"},
		{f, "-object", "memory-backend-file,id=mem0,size=256M,mem-path=/run/t/mem,share=off"},
		{b, "-netdev", "hubport,id=net0,hubid=0"},
		{f, "-netdev", "tap,id=net0,ifname=tap0_vc,script=no,downscript=no"},
		{f, "-incoming", "defer"},
	} {
		if got := values(tc.args, tc.flag); !slices.Contains(got, tc.want) {
			t.Errorf("%s %v, want %q", tc.flag, got, tc.want)
		}
	}
	nic := "virtio-net-pci,netdev=net0,mac=" + TemplateMAC(0) + ",disable-modern=false"
	if !slices.Contains(values(b, "-device"), nic) || !slices.Contains(values(f, "-device"), nic) {
		t.Errorf("NIC %q missing: template %v, from it %v", nic, values(b, "-device"), values(f, "-device"))
	}
	if got := values(b, "-incoming"); len(got) != 0 {
		t.Errorf("a template boots with -incoming %v", got)
	}
	// The same devices in the same order: QEMU refuses a state whose
	// devices differ.
	devs := func(args []string) []string {
		var ds []string
		for _, d := range values(args, "-device") {
			ds = append(ds, strings.Split(d, ",")[0])
		}
		return ds
	}
	if !slices.Equal(devs(b), devs(f)) {
		t.Errorf("devices differ: template %v, from it %v", devs(b), devs(f))
	}

	hp := build
	hp.HugePages = true
	if CanTemplate(hp) || hp.validateTemplate() == nil {
		t.Error("a hugepage-backed VM is accepted as a template")
	}
	missing := from
	missing.Template.StatePath = filepath.Join(t.TempDir(), "gone")
	if err := missing.validateTemplate(); err == nil {
		t.Error("a VM from a template without its files is accepted")
	}
}
