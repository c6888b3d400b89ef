package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
)

func TestEveryFailingCheckHasAFix(t *testing.T) {
	cfg, err := loadConfig(defaultConfigPath, false)
	if err != nil {
		t.Fatal(err)
	}
	missing := &os.PathError{Op: "stat", Path: "x", Err: os.ErrNotExist}
	bad := hostFacts{
		QEMUErr:     errors.New("qemu-system-x86_64 --version: not found"),
		Kernel:      fileFact{Path: cfg.VM.Kernel, Err: missing},
		Image:       fileFact{Path: cfg.VM.Image, Err: missing},
		AccelProbed: true,
		AccelErr:    errors.New("accelerator kvm: no /dev/kvm"),
		CNIMissing:  []string{"bridge", "portmap"},
		TunErr:      missing,
		Cgroup:      "cgroup v2",
		MountAPIErr: errors.New("no mount_setattr (Linux 5.12)"),
	}
	results := judge(bad, cfg, "/etc/vc-cri/config.toml")
	failed := 0
	for _, r := range results {
		if r.ok {
			continue
		}
		failed++
		if r.fix == "" {
			t.Errorf("check %q fails with no fix", r.what)
		}
	}
	// All but cgroups, which is informative.
	if want := len(results) - 1; failed != want {
		t.Errorf("%d checks failed, want %d: %+v", failed, want, results)
	}

	var out bytes.Buffer
	if printChecks(&out, results) {
		t.Fatal("printChecks: all passed")
	}
	text := out.String()
	for _, want := range []string{
		"FAIL qemu", "fix:          apt-get install -y qemu-system-x86",
		"FAIL guest kernel", "make guest install",
		"FAIL accelerator", `vm.accelerator = "auto"`,
		"FAIL cni plugins", "missing bridge, portmap", "apt-get install -y containernetworking-plugins",
		"FAIL cni config", "fix:          vc-cri config install-cni",
		"FAIL overlay", "modprobe overlay",
		"FAIL tap", "modprobe tun",
		"FAIL mount api", "Linux 5.12 or later",
		"ok   cgroups",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
	}
	// A fix line follows its failing line, and only failing lines.
	lines := strings.Split(strings.TrimSpace(text), "\n")
	for i, l := range lines {
		if strings.Contains(l, "fix:") && (i == 0 || !strings.HasPrefix(lines[i-1], "FAIL")) {
			t.Errorf("fix line %q does not follow a failing line", l)
		}
	}
}

func TestPassingChecksPrintNoFix(t *testing.T) {
	cfg, _ := loadConfig(defaultConfigPath, false)
	good := hostFacts{
		QEMUVersion: "7.2.22", Kernel: fileFact{Path: cfg.VM.Kernel}, Image: fileFact{Path: cfg.VM.Image},
		AccelProbed: true, Accel: "tcg", AccelReason: "no /dev/kvm",
		CNINetworks: []cniNetwork{{File: "/etc/cni/net.d/10-vc-cri.conflist", Name: "vc-cri"}},
		Overlay:     true, Cgroup: "cgroup v2",
	}
	var out bytes.Buffer
	if !printChecks(&out, judge(good, cfg, "/x.toml")) || strings.Contains(out.String(), "fix:") {
		t.Fatalf("healthy host:\n%s", out.String())
	}
}

func TestInstallCNIFixNamesTheConfig(t *testing.T) {
	cfg, _ := loadConfig(defaultConfigPath, false)
	for path, want := range map[string]string{
		defaultConfigPath: "vc-cri config install-cni (",
		"/tmp/my.toml":    "vc-cri config install-cni --config /tmp/my.toml (",
	} {
		var fix string
		for _, r := range judge(hostFacts{}, cfg, path) {
			if r.what == "cni config" {
				fix = r.fix
			}
		}
		if !strings.HasPrefix(fix, want) {
			t.Errorf("config %s: fix %q, want %q...", path, fix, want)
		}
	}
}

// TestQEMUWithoutSandbox: a QEMU that runs but has no -sandbox fails its
// own line.
func TestQEMUWithoutSandbox(t *testing.T) {
	cfg, _ := loadConfig(defaultConfigPath, false)
	f := hostFacts{QEMUVersion: "7.2.22", QEMUSandboxErr: errors.New("QEMU was built without seccomp: no -sandbox")}
	var line checkResult
	for _, r := range judge(f, cfg, defaultConfigPath) {
		if r.what == "qemu sandbox" {
			line = r
		}
	}
	if line.ok || !strings.Contains(line.detail, "without seccomp") || line.fix == "" {
		t.Fatalf("qemu sandbox line: %+v", line)
	}
}

// TestHostFactsOfThisHost: this host's QEMU has -sandbox and its kernel
// the mount API (the tests' own VMs depend on both).
func TestHostFactsOfThisHost(t *testing.T) {
	if err := mountAPI(); err != nil {
		t.Errorf("mount API: %v", err)
	}
	if err := qemuHasSandbox(context.Background(), ""); err != nil {
		t.Errorf("QEMU sandbox: %v", err)
	}
}
