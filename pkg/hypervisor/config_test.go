package hypervisor

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// validConfig returns a Config that passes validate, with real files.
func validConfig(t *testing.T) Config {
	t.Helper()
	dir := t.TempDir()
	kernel := filepath.Join(dir, "vmlinux")
	if err := os.WriteFile(kernel, []byte("ELF"), 0o644); err != nil {
		t.Fatal(err)
	}
	shared := filepath.Join(dir, "shared")
	if err := os.Mkdir(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	return Config{
		ID: "vm1", StateDir: filepath.Join(dir, "state"), KernelPath: kernel,
		MemoryMiB: 256, SharedDir: shared, AgentPortName: "agent.0",
	}.withDefaults()
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		modify func(*Config)
		field  string // "" when valid
	}{
		{"valid", func(*Config) {}, ""},
		{"no ID", func(c *Config) { c.ID = "" }, "ID"},
		{"relative state dir", func(c *Config) { c.StateDir = "state" }, "StateDir"},
		{"comma in state dir", func(c *Config) { c.StateDir = "/run/a,b" }, "StateDir"},
		{"state dir too long for sockets", func(c *Config) { c.StateDir = "/run/" + strings.Repeat("d", 100) }, "StateDir"},
		{"no kernel", func(c *Config) { c.KernelPath = "" }, "KernelPath"},
		{"no agent port", func(c *Config) { c.AgentPortName = "" }, "AgentPortName"},
		{"comma in agent port", func(c *Config) { c.AgentPortName = "agent,0" }, "AgentPortName"},
		{"missing kernel", func(c *Config) { c.KernelPath = "/nonexistent/vmlinux" }, "KernelPath"},
		{"kernel is a dir", func(c *Config) { c.KernelPath = c.SharedDir }, "KernelPath"},
		{"missing initrd", func(c *Config) { c.InitrdPath = "/nonexistent/initrd" }, "InitrdPath"},
		{"missing firmware", func(c *Config) { c.FirmwarePath = "/nonexistent/bios" }, "FirmwarePath"},
		{"zero memory", func(c *Config) { c.MemoryMiB = 0 }, "MemoryMiB"},
		{"unknown accel", func(c *Config) { c.Accelerator = "hvf" }, "Accelerator"},
		{"unknown shared fs", func(c *Config) { c.SharedFS = "nfs" }, "SharedFS"},
		{"virtio-fs without dir", func(c *Config) { c.SharedFS = SharedFSVirtioFS; c.SharedDir = "" }, "SharedDir"},
		{"missing shared dir", func(c *Config) { c.SharedDir = "/nonexistent" }, "SharedDir"},
		{"bad tag", func(c *Config) { c.SharedTag = "a,b" }, "SharedTag"},
		{"unknown cache", func(c *Config) { c.VirtioFSCache = "sometimes" }, "VirtioFSCache"},
		{"bad tap", func(c *Config) { c.NetDevices = []NetDevice{{TapName: "", MAC: "02:00:00:00:00:01"}} }, "NetDevices[0].TapName"},
		{"bad mac", func(c *Config) { c.NetDevices = []NetDevice{{TapName: "tap0", MAC: "nope"}} }, "NetDevices[0].MAC"},
		{"missing netns", func(c *Config) { c.NetNSPath = "/nonexistent/ns" }, "NetNSPath"},
		{"mlock alone", func(c *Config) { c.Mlock = true }, "Mlock"},
		{"realtime alone", func(c *Config) { c.Realtime = true }, "Mlock"},
		{"too many bridges", func(c *Config) { c.DefaultBridges = 6 }, "DefaultBridges"},
		{"room to grow", func(c *Config) { c.MaxVCPUs, c.MaxMemoryMiB = 4, 1024 }, ""},
		{"max vCPUs below vCPUs", func(c *Config) { c.VCPUs, c.MaxVCPUs = 2, 1 }, "MaxVCPUs"},
		{"max vCPUs beyond q35", func(c *Config) { c.MaxVCPUs = 289 }, "MaxVCPUs"},
		{"max memory below memory", func(c *Config) { c.MaxMemoryMiB = 128 }, "MaxMemoryMiB"},
		{"memory hot-plug with mlock", func(c *Config) { c.MaxMemoryMiB, c.Mlock, c.Realtime = 512, true, true }, "MaxMemoryMiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig(t)
			tc.modify(&c)
			err := c.validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("validate: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("validate = %v, want ErrInvalidConfig", err)
			}
			if !strings.HasPrefix(err.Error(), tc.field+":") {
				t.Errorf("error %q does not name field %s", err, tc.field)
			}
		})
	}
}

func TestValidateHugePages(t *testing.T) {
	c := validConfig(t)
	c.HugePages = true
	ok, _ := isHugetlbfs(hugePagesDir)
	if err := c.validate(); ok != (err == nil) {
		t.Fatalf("hugetlbfs mounted: %t, validate: %v", ok, err)
	}
}
