package hypervisor

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

// kvmProbeTimeout bounds the probe boot. A kernel without a root fs
// panics after its banner within about 3 s even under TCG; under a
// broken nested KVM it hangs after the bootloader forever.
const kvmProbeTimeout = 15 * time.Second

const kernelBanner = "Linux version"

// accelDecisions caches ChooseAccelerator's auto decisions for the
// process's lifetime, by verdict key: the probe costs seconds.
var accelDecisions = struct {
	sync.Mutex
	m map[string]accelDecision
}{m: map[string]accelDecision{}}

type accelDecision struct {
	Accel  Accelerator `json:"accel"`
	Reason string      `json:"reason"`
}

// ChooseAccelerator resolves want to kvm or tcg and says why. "auto"
// picks KVM only if a guest provably boots under it: where /dev/kvm
// exists but nested virtualisation is broken, QEMU starts and QMP
// query-kvm says enabled, yet the guest hangs after the bootloader. So
// the probe boots kernelPath (no initrd, no root fs) under KVM and
// requires the kernel banner and the panic that ends QEMU in time.
//
// The verdict holds for one QEMU binary, guest kernel and host kernel.
// With verdictFile set, verdicts are also kept there, so that a daemon
// restart does not probe again; a file that cannot be read or written
// only costs a probe.
func ChooseAccelerator(ctx context.Context, qemuPath, kernelPath string, want Accelerator, verdictFile string) (Accelerator, string, error) {
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

	key, err := verdictKey(qemuPath, kernelPath)
	if err != nil {
		return "", "", err
	}
	accelDecisions.Lock()
	defer accelDecisions.Unlock() // one probe at a time: concurrent Launches wait for it
	if d, ok := accelDecisions.m[key]; ok {
		return d.Accel, d.Reason, nil
	}
	verdicts := readVerdicts(verdictFile)
	if d, ok := verdicts[key]; ok && (d.Accel == AccelKVM || d.Accel == AccelTCG) {
		accelDecisions.m[key] = d
		return d.Accel, d.Reason + " (verdict kept in " + verdictFile + ")", nil
	}
	d := accelDecision{Accel: AccelKVM, Reason: "a guest boots under KVM"}
	if err := probeBoot(ctx, qemuPath, kernelPath, "kvm", kvmProbeTimeout); err != nil {
		if ctx.Err() != nil {
			return "", "", fmt.Errorf("probing KVM: %w", ctx.Err()) // not cached: no verdict
		}
		d = accelDecision{Accel: AccelTCG, Reason: "KVM probe: " + err.Error()}
	}
	accelDecisions.m[key] = d
	if verdictFile != "" {
		verdicts[key] = d
		if err := writeVerdicts(verdictFile, verdicts); err != nil {
			klog.ErrorS(err, "Cannot keep the KVM probe's verdict", "file", verdictFile)
		}
	}
	return d.Accel, d.Reason, nil
}

// verdictKey names what a probe's verdict depends on: the QEMU binary
// and the guest kernel (path, size and modification time: a package
// upgrade changes them) and the host kernel.
func verdictKey(qemuPath, kernelPath string) (string, error) {
	if !filepath.IsAbs(qemuPath) {
		p, err := exec.LookPath(qemuPath)
		if err != nil {
			return "", fmt.Errorf("QEMU %s: %w: %w", qemuPath, err, ErrInvalidConfig)
		}
		qemuPath = p
	}
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return "", err
	}
	key := unix.ByteSliceToString(uts.Release[:])
	for _, p := range []string{qemuPath, kernelPath} {
		fi, err := os.Stat(p)
		if err != nil {
			return "", fmt.Errorf("%w: %w", err, ErrInvalidConfig)
		}
		key += fmt.Sprintf("|%s:%d:%d", p, fi.Size(), fi.ModTime().UnixNano())
	}
	return key, nil
}

// AccelVerdictFileName is the usual name of a verdict file: in a
// daemon's state directory, so that its tools find the daemon's verdicts.
const AccelVerdictFileName = "kvm-verdicts.json"

// maxVerdictFile bounds what is read back: a handful of keys.
const maxVerdictFile = 64 << 10

func readVerdicts(file string) map[string]accelDecision {
	verdicts := map[string]accelDecision{}
	if file == "" {
		return verdicts
	}
	f, err := os.Open(file)
	if err != nil {
		return verdicts
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxVerdictFile))
	if err == nil && json.Unmarshal(b, &verdicts) != nil {
		klog.InfoS("Ignoring an unreadable file of KVM probe verdicts", "file", file)
		return map[string]accelDecision{}
	}
	return verdicts
}

func writeVerdicts(file string, verdicts map[string]accelDecision) error {
	b, err := json.Marshal(verdicts)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, file)
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
