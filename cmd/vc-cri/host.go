package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vc-cri/vc-cri/pkg/hypervisor"
)

// requiredPlugins are the CNI plugins of the default network.
var requiredPlugins = []string{"bridge", "host-local", "loopback", "portmap"}

// hostFacts is what `vc-cri check` judges and `vc-cri env` reports.
type hostFacts struct {
	QEMUVersion string
	QEMUErr     error

	// Accel is the accelerator that cfg's vm.accelerator resolves to, and
	// AccelReason why; AccelErr when it cannot be resolved. AccelProbed
	// is false when QEMU or the kernel is missing (nothing to probe with).
	Accel       string
	AccelReason string
	AccelErr    error
	AccelProbed bool

	Kernel, Image fileFact

	CNIPlugins  map[string]string // plugin name to the path found
	CNIMissing  []string          // required plugins found in no bin dir
	CNINetworks []cniNetwork
	CNIConfErr  error

	Overlay bool
	TunErr  error
	Cgroup  string

	// RuncHandlers are the runc handlers' programs, by handler name.
	RuncHandlers map[string]runcFact

	// QEMUSandboxErr: QEMU lacks -sandbox (built without seccomp), which
	// vc-cri starts every VM under.
	QEMUSandboxErr error
	// MountAPIErr: the host kernel lacks openat2 or mount_setattr (Linux
	// 5.12), which the host's side of the shared filesystem relies on.
	MountAPIErr error
}

// fileFact is a file the daemon needs, with its hash when asked.
// runcFact is what a runc handler runs: runc's version, conmon's, and
// whether vc-pause is there; Err names what is missing.
type runcFact struct {
	Runc, Conmon string
	Err          error
}

type fileFact struct {
	Path   string
	Size   int64
	SHA256 string
	Err    error
}

// cniNetwork is one network configuration file of the CNI conf dir.
type cniNetwork struct {
	File       string   `toml:"file" json:"file"`
	Name       string   `toml:"name" json:"name"`
	CNIVersion string   `toml:"cni_version" json:"cni_version"`
	Plugins    []string `toml:"plugins" json:"plugins"`
	Error      string   `toml:"error,omitempty" json:"error,omitempty"`
}

// factOptions choose the costly parts of gatherFacts.
type factOptions struct {
	// Hash computes the kernel's and image's sha256.
	Hash bool
}

// accelProbeTimeout bounds the accelerator's choice: with /dev/kvm,
// "auto" boots a probe guest.
const accelProbeTimeout = 2 * time.Minute

// gatherFacts looks at the host as cfg would use it.
func gatherFacts(ctx context.Context, cfg *Config, opts factOptions) hostFacts {
	var f hostFacts
	f.QEMUVersion, f.QEMUErr = hypervisor.Version(ctx, cfg.VM.HypervisorPath)
	f.Kernel = statFile(cfg.VM.Kernel, opts.Hash)
	f.Image = statFile(cfg.VM.Image, opts.Hash)
	if f.QEMUErr == nil && f.Kernel.Err == nil {
		probeCtx, cancel := context.WithTimeout(ctx, accelProbeTimeout)
		accel, reason, err := hypervisor.ChooseAccelerator(probeCtx, cfg.VM.HypervisorPath, cfg.VM.Kernel, hypervisor.Accelerator(cfg.VM.Accelerator), filepath.Join(cfg.State, hypervisor.AccelVerdictFileName))
		cancel()
		f.Accel, f.AccelReason, f.AccelErr, f.AccelProbed = string(accel), reason, err, true
	}

	f.CNIPlugins = map[string]string{}
	for _, d := range cfg.CNI.BinDirs {
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			if _, seen := f.CNIPlugins[e.Name()]; !seen && !e.IsDir() {
				f.CNIPlugins[e.Name()] = filepath.Join(d, e.Name())
			}
		}
	}
	for _, p := range requiredPlugins {
		if _, ok := f.CNIPlugins[p]; !ok {
			f.CNIMissing = append(f.CNIMissing, p)
		}
	}
	f.CNINetworks, f.CNIConfErr = cniNetworks(cfg.CNI.ConfDir)

	fs, _ := os.ReadFile("/proc/filesystems")
	f.Overlay = strings.Contains(string(fs), "\toverlay\n")
	_, f.TunErr = os.Stat("/dev/net/tun")
	if f.QEMUErr == nil {
		f.QEMUSandboxErr = qemuHasSandbox(ctx, cfg.VM.HypervisorPath)
	}
	f.MountAPIErr = mountAPI()
	f.Cgroup = hostCgroups()
	f.RuncHandlers = map[string]runcFact{}
	for name, rc := range cfg.Runtimes {
		if rc.Type == handlerRunc {
			f.RuncHandlers[name] = runcHandlerFact(ctx, rc)
		}
	}
	return f
}

// runcHandlerFact runs the handler's runc and conmon for their versions.
func runcHandlerFact(ctx context.Context, rc RuntimeConfig) runcFact {
	var rf runcFact
	version := func(path string) (string, error) {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		out, err := osexec.CommandContext(ctx, path, "--version").Output()
		if err != nil {
			return "", fmt.Errorf("%s --version: %w", path, err)
		}
		first, _, _ := strings.Cut(string(out), "\n")
		return first, nil
	}
	var errs []error
	var err error
	if rf.Runc, err = version(rc.RuntimePath); err != nil {
		errs = append(errs, err)
	}
	if rf.Conmon, err = version(rc.ConmonPath); err != nil {
		errs = append(errs, err)
	}
	if rc.PausePath != "" {
		if _, err := os.Stat(rc.PausePath); err != nil {
			errs = append(errs, err)
		}
	}
	rf.Err = errors.Join(errs...)
	return rf
}

// statFile describes path, with its sha256 if hash.
func statFile(path string, hash bool) fileFact {
	ff := fileFact{Path: path}
	st, err := os.Stat(path)
	if err != nil {
		ff.Err = err
		return ff
	}
	if st.IsDir() {
		ff.Err = fmt.Errorf("%s is a directory", path)
		return ff
	}
	ff.Size = st.Size()
	if hash {
		ff.SHA256, ff.Err = sha256File(path)
	}
	return ff
}

func sha256File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// cniNetworks reads the network configurations of dir as libcni finds
// them (*.conflist, *.conf, *.json), in the order it tries them.
func cniNetworks(dir string) ([]cniNetwork, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []cniNetwork
	for _, e := range entries {
		switch filepath.Ext(e.Name()) {
		case ".conflist", ".conf", ".json":
		default:
			continue
		}
		n := cniNetwork{File: filepath.Join(dir, e.Name())}
		var conf struct {
			Name       string `json:"name"`
			CNIVersion string `json:"cniVersion"`
			Type       string `json:"type"`
			Plugins    []struct {
				Type string `json:"type"`
			} `json:"plugins"`
		}
		b, err := os.ReadFile(n.File)
		if err == nil {
			err = json.Unmarshal(b, &conf)
		}
		if err != nil {
			n.Error = err.Error()
		}
		n.Name, n.CNIVersion = conf.Name, conf.CNIVersion
		if conf.Type != "" {
			n.Plugins = append(n.Plugins, conf.Type)
		}
		for _, p := range conf.Plugins {
			n.Plugins = append(n.Plugins, p.Type)
		}
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].File < out[j].File })
	return out, nil
}

func hostCgroups() string {
	switch {
	case fileExists("/sys/fs/cgroup/cgroup.controllers"):
		return "cgroup v2"
	case fileExists("/sys/fs/cgroup/memory"):
		return "cgroup v1"
	}
	return "none mounted"
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// qemuHasSandbox tells whether QEMU offers -sandbox: its help lists the
// option only when it was built with seccomp.
func qemuHasSandbox(ctx context.Context, qemuPath string) error {
	if qemuPath == "" {
		qemuPath = "qemu-system-x86_64"
	}
	out, err := osexec.CommandContext(ctx, qemuPath, "-help").Output()
	if err != nil {
		return fmt.Errorf("%s -help: %w", qemuPath, err)
	}
	if !bytes.Contains(out, []byte("\n-sandbox ")) {
		return errors.New("QEMU was built without seccomp: no -sandbox")
	}
	return nil
}

// mountAPI tells whether the kernel has the calls the shared filesystem's
// host side is made of: openat2 (5.6) and mount_setattr (5.12). Each is
// called so that it fails on its arguments if it exists, with ENOSYS if
// it does not.
func mountAPI() error {
	if fd, err := unix.Openat2(unix.AT_FDCWD, "/", &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_BENEATH}); err == nil {
		unix.Close(fd)
	} else if errors.Is(err, unix.ENOSYS) {
		return errors.New("no openat2 (Linux 5.6)")
	}
	if err := unix.MountSetattr(-1, "", 0, &unix.MountAttr{}); errors.Is(err, unix.ENOSYS) {
		return errors.New("no mount_setattr (Linux 5.12)")
	}
	return nil
}
