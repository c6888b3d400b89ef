package hypervisor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"slices"
	"sync"
	"time"

	"github.com/kata-containers/govmm/qemu"
	"github.com/opencontainers/cgroups"
	"k8s.io/klog/v2"
)

// QEMU runs each VM as a qemu-system-x86_64 process. The zero value is
// ready to use; it keeps no state, so any QEMU value attaches to VMs
// started by another.
type QEMU struct{}

var (
	_ Hypervisor = (*QEMU)(nil)
	_ VM         = (*qemuVM)(nil)
)

const (
	stopTimeout = 10 * time.Second // for a Stop whose ctx has no deadline
	killTimeout = 5 * time.Second  // for a SIGKILLed process to be gone
)

// Launch implements Hypervisor.
func (*QEMU) Launch(ctx context.Context, cfg Config) (_ VM, retErr error) {
	c := cfg.withDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	// A probe of KVM, when no verdict is kept, is most of a first launch.
	accelCtx, span := startStep(ctx, "accel_choice")
	accel, reason, err := ChooseAccelerator(accelCtx, c.Path, c.KernelPath, c.Accelerator, c.AccelVerdictFile)
	span.End()
	if err != nil {
		return nil, err
	}
	if err := prepareStateDir(c); err != nil {
		return nil, err
	}
	vm := &qemuVM{cfg: c}
	defer func() {
		if retErr == nil {
			return
		}
		// Under a fresh context: ctx may be why Launch fails.
		sctx, cancel := context.WithTimeout(context.Background(), killTimeout)
		defer cancel()
		if err := vm.Stop(sctx); err != nil {
			klog.ErrorS(err, "Cleaning up after a failed launch", "vm", c.ID)
		}
	}()

	if vm.cgroup, err = cgroupManager(c); err != nil {
		return nil, err
	}
	if c.SharedFS == SharedFSVirtioFS {
		if vm.virtiofsd, err = startVirtiofsd(ctx, c); err != nil {
			return nil, err
		}
		if err := joinCgroup(vm.cgroup, vm.virtiofsd.pid); err != nil {
			return nil, fmt.Errorf("virtiofsd: %w", err)
		}
	}
	logf, err := os.Create(c.path(qemuLogName))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	_, vhostErr := os.Stat("/dev/vhost-net")
	args := qemuArgs(c, accel, hostCaps{vhostNet: vhostErr == nil})
	// Not CommandContext: the VM must outlive the request that made it.
	cmd := exec.Command(c.Path, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = netFiles(c)
	klog.V(2).InfoS("Starting QEMU", "vm", c.ID, "args", args)
	if vm.proc, err = startProc(cmd, c.NetNSPath, c.maxQEMUFileSize()); err != nil {
		return nil, fmt.Errorf("start %s: %w", c.Path, err)
	}
	// Before the guest has run for long: memory charged elsewhere first
	// stays charged there.
	if err := joinCgroup(vm.cgroup, vm.proc.pid); err != nil {
		return nil, fmt.Errorf("QEMU: %w", err)
	}
	if err := vm.waitQMP(ctx); err != nil {
		return nil, err
	}
	if c.TemplateRole == FromTemplate {
		if err := vm.restore(ctx); err != nil {
			return nil, err
		}
	}
	klog.InfoS("VM started", "template", c.TemplateRole == FromTemplate, "vm", c.ID, "pid", vm.proc.pid, "accel", accel, "reason", reason)
	return vm, nil
}

// prepareStateDir creates c.StateDir, refusing to replace a running VM
// and cleaning up after one that died without Stop.
func prepareStateDir(c Config) error {
	if pid, err := readPidFile(c.path(qemuPidName)); err == nil {
		if p := findProc(pid, isQEMUOf(c)); !p.exited() {
			return fmt.Errorf("state dir %s: QEMU pid %d: %w", c.StateDir, pid, ErrAlreadyExists)
		}
	}
	if p := findVirtiofsd(c); p != nil {
		_ = p.kill()
	}
	if err := os.RemoveAll(c.StateDir); err != nil {
		return err
	}
	return os.MkdirAll(c.StateDir, 0o700)
}

// isQEMUOf matches the command line of c's QEMU: its QMP socket path
// is unique to the VM.
func isQEMUOf(c Config) func([]string) bool {
	want := qmpArg(c)
	return func(argv []string) bool { return slices.Contains(argv, want) }
}

func qmpArg(c Config) string { return "unix:" + c.path(qmpSocketName) + ",server=on,wait=off" }

// Attach implements Hypervisor.
func (*QEMU) Attach(ctx context.Context, cfg Config) (VM, error) {
	c := cfg.withDefaults()
	if err := c.validateIdentity(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(c.StateDir); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("state dir %s: %w", c.StateDir, ErrNotFound)
	}
	cg, err := cgroupManager(c)
	if err != nil {
		return nil, err
	}
	vm := &qemuVM{cfg: c, virtiofsd: findVirtiofsd(c), cgroup: cg}
	pid, err := readPidFile(c.path(qemuPidName))
	if err != nil {
		// QEMU writes its pidfile before Launch returns: this one died
		// during its launch. Hand back an exited VM for Stop to clean.
		klog.InfoS("No QEMU pidfile, treating VM as exited", "vm", c.ID, "err", err)
		vm.proc = &proc{done: make(chan struct{}), kill: func() error { return nil }}
		close(vm.proc.done)
		return vm, nil
	}
	vm.proc = findProc(pid, isQEMUOf(c))
	if vm.proc.exited() {
		klog.InfoS("Attached to an exited VM", "vm", c.ID, "pid", pid)
		return vm, nil
	}
	if err := withQMP(ctx, c.ID, c.path(qmpSocketName), func(*qemu.QMP) error { return nil }); err != nil {
		// Still returned: Stop can kill a QEMU whose monitor hangs.
		klog.ErrorS(err, "Attached VM's QMP does not answer", "vm", c.ID, "pid", pid)
	}
	return vm, nil
}

// qemuVM is one QEMU process and the files and helpers around it.
type qemuVM struct {
	cfg       Config
	proc      *proc // QEMU; nil only while Launch has not started it
	virtiofsd *proc // nil without virtio-fs
	// cgroup is the VM's own host cgroup, nil without a CgroupParent.
	cgroup cgroups.Manager

	mu      sync.Mutex // serialises Stop
	stopped bool       // guarded by mu; true once the state dir is gone
}

func (v *qemuVM) Pid() int            { return v.proc.pid }
func (v *qemuVM) AgentSocket() string { return v.cfg.path(agentSocketName) }

// waitQMP waits until QMP answers, QEMU exits or ctx ends.
func (v *qemuVM) waitQMP(ctx context.Context) error {
	sock := v.cfg.path(qmpSocketName)
	if err := waitForFile(ctx, sock, v.proc); err != nil {
		return fmt.Errorf("QEMU: %w: %s", err, tail(v.cfg.path(qemuLogName)))
	}
	for {
		err := withQMP(ctx, v.cfg.ID, sock, func(*qemu.QMP) error { return nil })
		if err == nil {
			return nil
		}
		select {
		case <-v.proc.done:
			return fmt.Errorf("QEMU exited: %s", tail(v.cfg.path(qemuLogName)))
		case <-ctx.Done():
			return fmt.Errorf("waiting for QMP: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (v *qemuVM) qmp(ctx context.Context, what string, fn func(*qemu.QMP) error) error {
	if v.proc.exited() {
		return fmt.Errorf("%s: %w", what, ErrNotRunning)
	}
	if err := withQMP(ctx, v.cfg.ID, v.cfg.path(qmpSocketName), fn); err != nil {
		return fmt.Errorf("%s VM %s: %w", what, v.cfg.ID, err)
	}
	return nil
}

// Pause implements VM.
func (v *qemuVM) Pause(ctx context.Context) error {
	return v.qmp(ctx, "pause", func(q *qemu.QMP) error { return q.ExecuteStop(ctx) })
}

// Resume implements VM.
func (v *qemuVM) Resume(ctx context.Context) error {
	return v.qmp(ctx, "resume", func(q *qemu.QMP) error { return q.ExecuteCont(ctx) })
}

// Wait implements VM.
func (v *qemuVM) Wait(ctx context.Context) error {
	// An exit comes first, even with ctx ended: a caller may ask with
	// an ended ctx whether the process has exited.
	select {
	case <-v.proc.done:
		return nil
	default:
	}
	select {
	case <-v.proc.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stop implements VM.
func (v *qemuVM) Stop(ctx context.Context) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.stopped {
		return nil
	}
	if v.proc != nil && !v.proc.exited() {
		if err := v.terminate(ctx); err != nil {
			return err
		}
	}
	// virtiofsd exits by itself once QEMU has gone; a moment's grace.
	if v.virtiofsd != nil && !waitDone(v.virtiofsd, time.Second) {
		_ = v.virtiofsd.kill()
		if !waitDone(v.virtiofsd, killTimeout) {
			return fmt.Errorf("virtiofsd pid %d of VM %s survives SIGKILL", v.virtiofsd.pid, v.cfg.ID)
		}
	}
	if err := removeCgroup(v.cgroup); err != nil {
		return fmt.Errorf("remove cgroup of VM %s: %w", v.cfg.ID, err)
	}
	if err := os.RemoveAll(v.cfg.StateDir); err != nil {
		return fmt.Errorf("remove state of VM %s: %w", v.cfg.ID, err)
	}
	v.stopped = true
	klog.InfoS("VM stopped", "vm", v.cfg.ID)
	return nil
}

// terminate asks QEMU to quit, waits until ctx ends, then kills it.
func (v *qemuVM) terminate(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, stopTimeout)
		defer cancel()
	}
	if ctx.Err() == nil {
		err := withQMP(ctx, v.cfg.ID, v.cfg.path(qmpSocketName), func(q *qemu.QMP) error { return q.ExecuteQuit(ctx) })
		if err == nil {
			select {
			case <-v.proc.done:
				return nil
			case <-ctx.Done():
			}
		} else if waitDone(v.proc, time.Second) {
			// QEMU may close the socket before its reply reaches us.
			return nil
		} else {
			klog.InfoS("QMP quit failed", "vm", v.cfg.ID, "err", err)
		}
	}
	klog.InfoS("Killing QEMU", "vm", v.cfg.ID, "pid", v.proc.pid)
	if err := v.proc.kill(); err != nil {
		return fmt.Errorf("kill QEMU pid %d of VM %s: %w", v.proc.pid, v.cfg.ID, err)
	}
	if !waitDone(v.proc, killTimeout) {
		return fmt.Errorf("QEMU pid %d of VM %s survives SIGKILL", v.proc.pid, v.cfg.ID)
	}
	return nil
}

// tail returns the end of a log file, for error messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	const max = 2048
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

// sleepCtx waits d, or less when ctx ends first (its error then).
func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
