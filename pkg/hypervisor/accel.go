package hypervisor

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// kvmProbeTimeout bounds the probe boot. A kernel without a root fs
// panics after its banner within about 3 s even under TCG; under a
// broken nested KVM it hangs after the bootloader forever.
const kvmProbeTimeout = 15 * time.Second

const kernelBanner = "Linux version"

// accelDecisions caches ChooseAccelerator's auto decisions for the
// process's lifetime, by QEMU and kernel path: the probe costs seconds.
var accelDecisions = struct {
	sync.Mutex
	m map[[2]string]accelDecision
}{m: map[[2]string]accelDecision{}}

type accelDecision struct {
	accel  Accelerator
	reason string
}

// ChooseAccelerator resolves want to kvm or tcg and says why. "auto"
// picks KVM only if a guest provably boots under it: where /dev/kvm
// exists but nested virtualisation is broken, QEMU starts and QMP
// query-kvm says enabled, yet the guest hangs after the bootloader. So
// the probe boots kernelPath (no initrd, no root fs) under KVM and
// requires the kernel banner and the panic that ends QEMU in time.
func ChooseAccelerator(ctx context.Context, qemuPath, kernelPath string, want Accelerator) (Accelerator, string, error) {
	if qemuPath == "" {
		qemuPath = defaultPath
	}
	_, kvmErr := os.Stat("/dev/kvm")
	switch want {
	case AccelTCG:
		return AccelTCG, "configured", nil
	case AccelKVM:
		if kvmErr != nil {
			return "", "", fmt.Errorf("accelerator kvm: %w: %w", kvmErr, ErrNoKVM)
		}
		return AccelKVM, "configured", nil
	case AccelAuto, "":
	default:
		return "", "", fmt.Errorf("Accelerator: unknown %q: %w", want, ErrInvalidConfig)
	}
	if kvmErr != nil {
		return AccelTCG, "no /dev/kvm", nil
	}

	key := [2]string{qemuPath, kernelPath}
	accelDecisions.Lock()
	defer accelDecisions.Unlock() // one probe at a time: concurrent Launches wait for it
	if d, ok := accelDecisions.m[key]; ok {
		return d.accel, d.reason, nil
	}
	d := accelDecision{accel: AccelKVM, reason: "a guest boots under KVM"}
	if err := probeBoot(ctx, qemuPath, kernelPath, "kvm", kvmProbeTimeout); err != nil {
		if ctx.Err() != nil {
			return "", "", fmt.Errorf("probing KVM: %w", ctx.Err()) // not cached: no verdict
		}
		d = accelDecision{accel: AccelTCG, reason: "KVM probe: " + err.Error()}
	}
	accelDecisions.m[key] = d
	return d.accel, d.reason, nil
}

// probeBoot boots kernelPath under the given -accel argument with no
// root fs: the kernel prints its banner, panics, and panic=-1 with
// -no-reboot ends QEMU. Nil when all of that happens within timeout.
func probeBoot(ctx context.Context, qemuPath, kernelPath, accel string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, qemuPath,
		"-machine", "q35", "-accel", accel, "-m", "256M", "-smp", "1",
		"-nographic", "-nodefaults", "-no-user-config", "-no-reboot",
		"-serial", "stdio",
		"-kernel", kernelPath,
		"-append", "console=ttyS0 panic=-1 root=/dev/nonexistent "+strings.Join(fastBootParams, " "),
	)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("guest still running after %s (banner printed: %t)", timeout, bytes.Contains(out.Bytes(), []byte(kernelBanner)))
	case err != nil:
		return fmt.Errorf("%w: %s", err, lastLine(out.Bytes()))
	case !bytes.Contains(out.Bytes(), []byte(kernelBanner)):
		return fmt.Errorf("QEMU exited without a kernel banner: %s", lastLine(out.Bytes()))
	}
	return nil
}

// Version returns QEMU's version, e.g. "7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)".
func Version(ctx context.Context, qemuPath string) (string, error) {
	if qemuPath == "" {
		qemuPath = defaultPath
	}
	out, err := exec.CommandContext(ctx, qemuPath, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w", qemuPath, err)
	}
	first, _, _ := strings.Cut(string(out), "\n")
	_, v, ok := strings.Cut(first, "version ")
	if !ok {
		return "", fmt.Errorf("%s --version: unexpected output %q", qemuPath, first)
	}
	return strings.TrimSpace(v), nil
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
