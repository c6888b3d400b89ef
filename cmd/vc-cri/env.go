package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	goruntime "runtime"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"golang.org/x/sys/unix"

	"github.com/vc-cri/vc-cri/pkg/cri"
)

// envFormatVersion changes when a key of `vc-cri env` changes meaning
// or goes away.
const envFormatVersion = 1

// envReport is `vc-cri env`: what a bug report needs, as Kata's
// `kata-runtime env` gives it. Its keys are its contract (env_test.go).
type envReport struct {
	Meta       envMeta       `toml:"meta"`
	Runtime    envRuntime    `toml:"runtime"`
	Config     *Config       `toml:"config"`
	Hypervisor envHypervisor `toml:"hypervisor"`
	Guest      envGuest      `toml:"guest"`
	Network    envNetwork    `toml:"network"`
	Host       envHost       `toml:"host"`
	Tools      envTools      `toml:"tools"`
}

type envMeta struct {
	FormatVersion int    `toml:"format_version"`
	Generated     string `toml:"generated"`
}

type envRuntime struct {
	Name          string `toml:"name"`
	Version       string `toml:"version"`
	CRIAPIVersion string `toml:"cri_api_version"`
	GoVersion     string `toml:"go_version"`
	Binary        string `toml:"binary"`
	// ConfigFile is the file read over the embedded defaults;
	// ConfigFileFound false: only defaults and flags apply.
	ConfigFile      string `toml:"config_file"`
	ConfigFileFound bool   `toml:"config_file_found"`
}

type envHypervisor struct {
	Path    string `toml:"path"`
	Version string `toml:"version"`
	Error   string `toml:"error,omitempty"`
	// AcceleratorConfigured is vm.accelerator; Accelerator what it
	// resolves to on this host, AcceleratorReason why.
	AcceleratorConfigured string `toml:"accelerator_configured"`
	Accelerator           string `toml:"accelerator"`
	AcceleratorReason     string `toml:"accelerator_reason"`
	AcceleratorError      string `toml:"accelerator_error,omitempty"`
	KVMDevice             bool   `toml:"kvm_device"`
}

type envGuest struct {
	Kernel envFile `toml:"kernel"`
	Image  envFile `toml:"image"`
}

type envFile struct {
	Path   string `toml:"path"`
	Size   int64  `toml:"size"`
	SHA256 string `toml:"sha256"`
	Error  string `toml:"error,omitempty"`
}

type envNetwork struct {
	ConfDir        string            `toml:"conf_dir"`
	BinDirs        []string          `toml:"bin_dirs"`
	Plugins        map[string]string `toml:"plugins"`
	MissingPlugins []string          `toml:"missing_plugins"`
	Networks       []cniNetwork      `toml:"networks"`
	Error          string            `toml:"error,omitempty"`
}

type envHost struct {
	OS         string `toml:"os"`
	Kernel     string `toml:"kernel"`
	Arch       string `toml:"arch"`
	CPUs       int    `toml:"cpus"`
	MemoryMiB  uint64 `toml:"memory_mib"`
	Cgroup     string `toml:"cgroup"`
	Overlay    bool   `toml:"overlay"`
	Tun        bool   `toml:"tun"`
	Systemd    bool   `toml:"systemd"`
	ReportedBy string `toml:"reported_by"`
}

type envTools struct {
	// Crictl is `crictl --version` of the crictl in PATH; empty: none.
	Crictl string `toml:"crictl"`
}

// buildEnv gathers the report of cfg, read from configPath.
func buildEnv(ctx context.Context, cfg *Config, configPath string) envReport {
	f := gatherFacts(ctx, cfg, factOptions{Hash: true})
	r := envReport{
		Meta: envMeta{FormatVersion: envFormatVersion, Generated: time.Now().UTC().Format(time.RFC3339)},
		Runtime: envRuntime{
			Name: cri.RuntimeName, Version: cri.RuntimeVersion, CRIAPIVersion: moduleVersion("k8s.io/cri-api"),
			GoVersion: goruntime.Version(), ConfigFile: configPath, ConfigFileFound: fileExists(configPath),
		},
		Config: cfg,
		Hypervisor: envHypervisor{
			Path: cfg.VM.HypervisorPath, Version: f.QEMUVersion, Error: errString(f.QEMUErr),
			AcceleratorConfigured: cfg.VM.Accelerator, Accelerator: f.Accel, AcceleratorReason: f.AccelReason,
			AcceleratorError: errString(f.AccelErr), KVMDevice: fileExists("/dev/kvm"),
		},
		Guest: envGuest{Kernel: toEnvFile(f.Kernel), Image: toEnvFile(f.Image)},
		Network: envNetwork{
			ConfDir: cfg.CNI.ConfDir, BinDirs: cfg.CNI.BinDirs, Plugins: f.CNIPlugins,
			MissingPlugins: nonNil(f.CNIMissing), Networks: f.CNINetworks, Error: errString(f.CNIConfErr),
		},
		Host: envHost{
			OS: osRelease(), Kernel: kernelRelease(), Arch: goruntime.GOARCH, CPUs: goruntime.NumCPU(),
			MemoryMiB: memoryMiB(), Cgroup: f.Cgroup, Overlay: f.Overlay, Tun: f.TunErr == nil,
			Systemd: fileExists("/run/systemd/system"), ReportedBy: "vc-cri env",
		},
		Tools: envTools{Crictl: toolVersion(ctx, "crictl", "--version")},
	}
	if !f.AccelProbed {
		r.Hypervisor.AcceleratorReason = "not probed: QEMU or the guest kernel is missing"
	}
	if r.Network.Networks == nil {
		r.Network.Networks = []cniNetwork{}
	}
	if exe, err := os.Executable(); err == nil {
		r.Runtime.Binary = exe
	}
	return r
}

// writeEnv writes the report as TOML, or as JSON with the same keys.
func writeEnv(w io.Writer, r envReport, format string) error {
	b, err := toml.Marshal(r)
	if err != nil {
		return err
	}
	switch format {
	case "toml", "":
		_, err = w.Write(b)
		return err
	case "json":
		// Through TOML, so that JSON has the same keys (the Config's
		// TOML names) and nothing can differ between the two.
		var m map[string]any
		if err := toml.Unmarshal(b, &m); err != nil {
			return err
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(m)
	}
	return fmt.Errorf("format %q: want toml or json", format)
}

func toEnvFile(f fileFact) envFile {
	return envFile{Path: f.Path, Size: f.Size, SHA256: f.SHA256, Error: errString(f.Err)}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	sort.Strings(s)
	return s
}

// moduleVersion is the version of a module linked into this binary.
func moduleVersion(path string) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, d := range bi.Deps {
		if d.Path == path {
			if d.Replace != nil {
				return d.Replace.Version
			}
			return d.Version
		}
	}
	return ""
}

func osRelease() string {
	b, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

func memoryMiB() uint64 {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return 0
	}
	return uint64(si.Totalram) * uint64(si.Unit) >> 20
}

// toolVersion runs name with args and returns its first line, or ""
// when name is not in PATH or fails.
func toolVersion(ctx context.Context, name string, args ...string) string {
	path, err := osexec.LookPath(name)
	if err != nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := osexec.CommandContext(ctx, path, args...).Output()
	if err != nil {
		return ""
	}
	first, _, _ := bytes.Cut(out, []byte("\n"))
	return strings.TrimSpace(string(first))
}
