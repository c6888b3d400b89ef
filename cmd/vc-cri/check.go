package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// checkResult is one line of `vc-cri check`.
type checkResult struct {
	what   string
	detail string
	ok     bool
	// fix is what to run (or change) so that the check passes; printed
	// under a failing line.
	fix string
}

// checkHost reports whether this host can run pod VMs with cfg.
func checkHost(ctx context.Context, cfg *Config, configPath string) []checkResult {
	return judge(gatherFacts(ctx, cfg, factOptions{}), cfg, configPath)
}

// judge turns the host's facts into check lines, each failing one with
// its fix.
func judge(f hostFacts, cfg *Config, configPath string) []checkResult {
	var results []checkResult
	add := func(what string, ok bool, fix, format string, args ...any) {
		r := checkResult{what: what, detail: fmt.Sprintf(format, args...), ok: ok}
		if !ok {
			r.fix = fix
		}
		results = append(results, r)
	}

	if f.QEMUErr != nil {
		add("qemu", false, "apt-get install -y qemu-system-x86 (or `make deps` in vc-cri's source tree)", "%v", f.QEMUErr)
	} else {
		add("qemu", true, "", "%s", f.QEMUVersion)
	}
	guestFix := fmt.Sprintf("`make guest install` in vc-cri's source tree, or set vm.kernel and vm.image in %s", configPath)
	add("guest kernel", f.Kernel.Err == nil, guestFix, "%s%s", cfg.VM.Kernel, errSuffix(f.Kernel.Err))
	add("guest image", f.Image.Err == nil, guestFix, "%s%s", cfg.VM.Image, errSuffix(f.Image.Err))

	if f.AccelProbed {
		if f.AccelErr != nil {
			add("accelerator", false, fmt.Sprintf(`set vm.accelerator = "auto" (KVM when a guest boots under it, else TCG) or "tcg" in %s`, configPath),
				"%s: %v", cfg.VM.Accelerator, f.AccelErr)
		} else {
			add("accelerator", true, "", "%s (%s)", f.Accel, f.AccelReason)
		}
	}

	add("cni plugins", len(f.CNIMissing) == 0,
		fmt.Sprintf("apt-get install -y containernetworking-plugins, or set cni.bin_dirs in %s to where they are", configPath),
		"in %s%s", strings.Join(cfg.CNI.BinDirs, ", "), errSuffix(errIf(len(f.CNIMissing) > 0, "missing "+strings.Join(f.CNIMissing, ", "))))
	var nets int
	for _, n := range f.CNINetworks {
		if n.Error == "" {
			nets++
		}
	}
	confErr := f.CNIConfErr
	if confErr == nil && nets == 0 {
		confErr = errIf(true, "no network configuration")
	}
	installCNI := "vc-cri config install-cni"
	if configPath != defaultConfigPath {
		installCNI += " --config " + configPath
	}
	add("cni config", confErr == nil, installCNI+" (a bridge network with host-local addresses and portmap)",
		"%s: %d network(s)%s", cfg.CNI.ConfDir, nets, errSuffix(confErr))

	if f.QEMUErr == nil {
		add("qemu sandbox", f.QEMUSandboxErr == nil, "apt-get install -y qemu-system-x86 (Debian's QEMU is built with seccomp)",
			"-sandbox for every VM%s", errSuffix(f.QEMUSandboxErr))
	}
	add("mount api", f.MountAPIErr == nil, "a host kernel of Linux 5.12 or later",
		"openat2 and mount_setattr for the shared filesystem%s", errSuffix(f.MountAPIErr))
	add("overlay", f.Overlay, "modprobe overlay", "overlayfs for container roots%s", errSuffix(errIf(!f.Overlay, "not in /proc/filesystems")))
	add("tap", f.TunErr == nil, "modprobe tun (or: mkdir -p /dev/net && mknod /dev/net/tun c 10 200)", "/dev/net/tun%s", errSuffix(f.TunErr))
	for _, name := range slices.Sorted(maps.Keys(f.RuncHandlers)) {
		rf := f.RuncHandlers[name]
		add("runc handler "+name, rf.Err == nil, "apt-get install -y runc conmon (or `make deps`), or set runtime_path and conmon_path of [runtimes."+name+"] in "+configPath,
			"%s; %s%s", rf.Runc, rf.Conmon, errSuffix(rf.Err))
	}
	// VM containers' cgroups live in their guest; the host's only matter
	// to whoever confines QEMU and the runc handler's containers.
	add("cgroups", true, "", "containers use their guest's cgroup v2; host: %s", f.Cgroup)
	return results
}

// printChecks writes the report, each failing line followed by its fix,
// and tells whether every check passed.
func printChecks(w io.Writer, results []checkResult) bool {
	all := true
	for _, r := range results {
		mark := "ok  "
		if !r.ok {
			mark, all = "FAIL", false
		}
		fmt.Fprintf(w, "%s %-13s %s\n", mark, r.what, r.detail)
		if !r.ok && r.fix != "" {
			fmt.Fprintf(w, "     %-13s %s\n", "fix:", r.fix)
		}
	}
	return all
}

func errIf(cond bool, msg string) error {
	if cond {
		return fmt.Errorf("%s", msg)
	}
	return nil
}

func errSuffix(err error) string {
	if err == nil {
		return ""
	}
	return ": " + err.Error()
}
