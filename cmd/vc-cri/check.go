package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vc-cri/vc-cri/pkg/hypervisor"
)

// checkResult is one line of `vc-cri check`.
type checkResult struct {
	what   string
	detail string
	ok     bool
}

// checkHost reports whether this host can run pod VMs with cfg.
func checkHost(ctx context.Context, cfg *Config) []checkResult {
	var results []checkResult
	add := func(what string, ok bool, format string, args ...any) {
		results = append(results, checkResult{what, fmt.Sprintf(format, args...), ok})
	}

	version, err := hypervisor.Version(ctx, cfg.VM.HypervisorPath)
	if err != nil {
		add("qemu", false, "%v (install qemu-system-x86)", err)
	} else {
		add("qemu", true, "%s", version)
	}

	kernelErr := fileCheck(cfg.VM.Kernel)
	add("guest kernel", kernelErr == nil, "%s%s", cfg.VM.Kernel, errSuffix(kernelErr, " (make guest install)"))
	add("guest image", fileCheck(cfg.VM.Image) == nil, "%s%s", cfg.VM.Image, errSuffix(fileCheck(cfg.VM.Image), " (make guest install)"))

	if err == nil && kernelErr == nil {
		probeCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		accel, reason, err := hypervisor.ChooseAccelerator(probeCtx, cfg.VM.HypervisorPath, cfg.VM.Kernel, hypervisor.Accelerator(cfg.VM.Accelerator))
		cancel()
		if err != nil {
			add("accelerator", false, "%s: %v", cfg.VM.Accelerator, err)
		} else {
			add("accelerator", true, "%s (%s)", accel, reason)
		}
	}

	var plugins []string
	for _, p := range []string{"bridge", "host-local", "loopback", "portmap"} {
		if !inAnyDir(cfg.CNI.BinDirs, p) {
			plugins = append(plugins, p)
		}
	}
	add("cni plugins", len(plugins) == 0, "in %s%s", strings.Join(cfg.CNI.BinDirs, ", "),
		errSuffix(errIf(len(plugins) > 0, "missing "+strings.Join(plugins, ", ")), " (install containernetworking-plugins)"))
	confs, _ := filepath.Glob(filepath.Join(cfg.CNI.ConfDir, "*.conflist"))
	add("cni config", len(confs) > 0, "%s: %d conflist(s)%s", cfg.CNI.ConfDir, len(confs), errSuffix(errIf(len(confs) == 0, "none"), " (make run installs one)"))

	fs, _ := os.ReadFile("/proc/filesystems")
	add("overlay", strings.Contains(string(fs), "\toverlay\n"), "overlayfs for container roots%s", errSuffix(errIf(!strings.Contains(string(fs), "\toverlay\n"), "not in /proc/filesystems"), " (modprobe overlay)"))
	tunErr := fileCheck("/dev/net/tun")
	add("tap", tunErr == nil, "/dev/net/tun%s", errSuffix(tunErr, ""))
	// Containers' cgroups live in their guest; the host's only matter to
	// whoever confines QEMU itself.
	add("cgroups", true, "containers use their guest's cgroup v2; host: %s", hostCgroups())
	return results
}

// printChecks writes the report and tells whether every check passed.
func printChecks(w io.Writer, results []checkResult) bool {
	all := true
	for _, r := range results {
		mark := "ok  "
		if !r.ok {
			mark, all = "FAIL", false
		}
		fmt.Fprintf(w, "%s %-13s %s\n", mark, r.what, r.detail)
	}
	return all
}

func fileCheck(path string) error {
	_, err := os.Stat(path)
	return err
}

func inAnyDir(dirs []string, name string) bool {
	for _, d := range dirs {
		if fileCheck(filepath.Join(d, name)) == nil {
			return true
		}
	}
	return false
}

func errIf(cond bool, msg string) error {
	if cond {
		return fmt.Errorf("%s", msg)
	}
	return nil
}

func errSuffix(err error, hint string) string {
	if err == nil {
		return ""
	}
	return ": " + err.Error() + hint
}

func hostCgroups() string {
	switch {
	case fileCheck("/sys/fs/cgroup/cgroup.controllers") == nil:
		return "cgroup v2"
	case fileCheck("/sys/fs/cgroup/memory") == nil:
		return "cgroup v1"
	}
	return "none mounted"
}
