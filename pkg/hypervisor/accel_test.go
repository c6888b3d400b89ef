package hypervisor

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAccelVerdictFile: a verdict kept on disk is used without a probe,
// and a changed guest kernel is probed again, its verdict added.
func TestAccelVerdictFile(t *testing.T) {
	if _, err := os.Stat("/dev/kvm"); err != nil {
		if a, reason, err := ChooseAccelerator(context.Background(), "/bin/false", "/dev/null", AccelAuto, ""); a != AccelTCG || reason != "no /dev/kvm" || err != nil {
			t.Fatalf("no /dev/kvm: %s, %q, %v", a, reason, err)
		}
		return
	}
	dir := t.TempDir()
	qemu, kernel, file := filepath.Join(dir, "qemu"), filepath.Join(dir, "vmlinux"), filepath.Join(dir, "state", AccelVerdictFileName)
	// A "QEMU" that fails at once: a probe takes no time and says TCG.
	if err := os.WriteFile(qemu, []byte("#!/bin/sh\necho no accelerator here; exit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kernel, []byte("kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	key, err := verdictKey(qemu, kernel)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeVerdicts(file, map[string]accelDecision{key: {Accel: AccelKVM, Reason: "a guest boots under KVM"}}); err != nil {
		t.Fatal(err)
	}
	// The kept verdict says KVM; a probe with this QEMU would say TCG.
	a, reason, err := ChooseAccelerator(context.Background(), qemu, kernel, AccelAuto, file)
	if err != nil || a != AccelKVM || !strings.Contains(reason, "kept in") {
		t.Fatalf("with a kept verdict: %s, %q, %v; want kvm from the file", a, reason, err)
	}

	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(kernel, later, later); err != nil {
		t.Fatal(err)
	}
	a, reason, err = ChooseAccelerator(context.Background(), qemu, kernel, AccelAuto, file)
	if err != nil || a != AccelTCG || !strings.Contains(reason, "KVM probe") {
		t.Fatalf("with a changed kernel: %s, %q, %v; want a new probe's tcg", a, reason, err)
	}
	if v := readVerdicts(file); len(v) != 2 {
		t.Fatalf("verdicts kept after the second probe: %v, want both", v)
	}

	// A corrupt file is ignored and costs only a probe.
	if err := os.WriteFile(file, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if v := readVerdicts(file); len(v) != 0 {
		t.Fatalf("verdicts of a corrupt file: %v", v)
	}
}
