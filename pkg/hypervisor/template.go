package hypervisor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/kata-containers/govmm/qemu"
)

// A Template is a VM saved once its guest had booted, from which VMs of
// the same shape start in a fraction of a boot: QEMU loads its device
// state (a few hundred KiB) and maps its RAM file copy-on-write, so that
// the pages no guest writes are shared by all of them.
//
// The template VM's RAM is a shared file mapping; QEMU's x-ignore-shared
// migration capability then leaves RAM out of the saved state. A VM
// started from it maps the same file privately: each guest reads the
// template's pages and writes its own copies.
type Template struct {
	MemPath   string // the template's guest RAM
	StatePath string // its device state
}

// TemplateRole says what a VM has to do with Config.Template.
type TemplateRole int

const (
	// NoTemplate boots the VM cold.
	NoTemplate TemplateRole = iota
	// BuildTemplate boots a VM to be saved as Config.Template by
	// SaveTemplate: its RAM is the file MemPath (created), shared, and
	// its NICs are unconnected hub ports.
	BuildTemplate
	// FromTemplate starts the VM from Config.Template: Launch returns
	// once the restored guest runs. Every other field must be those the
	// template was built with, except the VM's own (ID, StateDir,
	// SharedDir, NetDevices' taps and MACs, NetNSPath, CgroupParent):
	// QEMU refuses a state its devices do not match.
	FromTemplate
)

// TemplateMAC is the MAC address of a template VM's NIC i, which a VM
// started from the template has too until its guest is given its own.
func TemplateMAC(i int) string { return fmt.Sprintf("02:76:63:00:00:%02x", i) }

// maxTemplateState bounds a saved device state: a guest of ours leaves
// under 1 MiB, and the saving VM is ours, but a disk is not to fill up.
const maxTemplateState = 32 << 20

// Sockets of a template's migration, in the VM's StateDir.
const (
	outgoingSocketName = "outgoing.sock"
	incomingSocketName = "incoming.sock"
)

var ignoreShared = []map[string]any{{"capability": "x-ignore-shared", "state": true}}

// TemplateSaver is a VM that can be saved as a template: the QEMU VMs
// booted with BuildTemplate.
type TemplateSaver interface {
	// SaveTemplate pauses the guest and writes its device state to the
	// Config's Template.StatePath. The caller then stops the VM; the
	// RAM file stays behind it.
	SaveTemplate(ctx context.Context) error
}

var _ TemplateSaver = (*qemuVM)(nil)

// SaveTemplate implements TemplateSaver.
func (v *qemuVM) SaveTemplate(ctx context.Context) (retErr error) {
	if v.cfg.TemplateRole != BuildTemplate {
		return fmt.Errorf("VM %s did not boot as a template: %w", v.cfg.ID, ErrInvalidState)
	}
	sock := v.cfg.path(outgoingSocketName)
	l, err := net.Listen("unix", sock)
	if err != nil {
		return err
	}
	defer l.Close()
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()

	tmp := v.cfg.Template.StatePath + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer func() {
		f.Close()
		if retErr != nil {
			os.Remove(tmp)
		}
	}()
	copied := make(chan error, 1)
	go func() { copied <- receiveState(l, f) }()

	err = v.qmp(ctx, "save template", func(q *qemu.QMP) error {
		if err := q.ExecuteStop(ctx); err != nil {
			return err
		}
		if err := q.ExecSetMigrationCaps(ctx, ignoreShared); err != nil {
			return err
		}
		return q.ExecSetMigrateArguments(ctx, "unix:"+sock)
	})
	if err != nil {
		return err
	}
	select {
	case err = <-copied:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("save template of VM %s: %w", v.cfg.ID, err)
	}
	if err := v.waitMigration(ctx); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, v.cfg.Template.StatePath)
}

// receiveState copies the one connection QEMU's migration makes to l
// into f, up to maxTemplateState bytes.
func receiveState(l net.Listener, f *os.File) error {
	c, err := l.Accept()
	if err != nil {
		return err
	}
	defer c.Close()
	n, err := io.Copy(f, io.LimitReader(c, maxTemplateState+1))
	if err != nil {
		return err
	}
	if n > maxTemplateState {
		return fmt.Errorf("device state over %d bytes", maxTemplateState)
	}
	return nil
}

// waitMigration waits until QEMU reports the outgoing migration done.
func (v *qemuVM) waitMigration(ctx context.Context) error {
	for {
		var st qemu.MigrationStatus
		err := v.qmp(ctx, "query migration", func(q *qemu.QMP) error {
			var err error
			st, err = q.ExecuteQueryMigration(ctx)
			return err
		})
		if err != nil {
			return err
		}
		switch st.Status {
		case "completed":
			return nil
		case "failed", "cancelled":
			return fmt.Errorf("save template of VM %s: migration %s: %s", v.cfg.ID, st.Status, tail(v.cfg.path(qemuLogName)))
		}
		if err := sleepCtx(ctx, 5*time.Millisecond); err != nil {
			return err
		}
	}
}

// restore feeds the template's device state to a QEMU started with
// -incoming defer, and waits until the restored guest runs.
func (v *qemuVM) restore(ctx context.Context) error {
	state, err := os.Open(v.cfg.Template.StatePath)
	if err != nil {
		return fmt.Errorf("template state: %w", err)
	}
	defer state.Close()
	sock := v.cfg.path(incomingSocketName)
	err = v.qmp(ctx, "restore", func(q *qemu.QMP) error {
		if err := q.ExecSetMigrationCaps(ctx, ignoreShared); err != nil {
			return err
		}
		return q.ExecuteMigrationIncoming(ctx, "unix:"+sock)
	})
	if err != nil {
		return err
	}
	conn, err := (&net.Dialer{}).DialContext(ctx, "unix", sock)
	if err != nil {
		return fmt.Errorf("restore VM %s: %w", v.cfg.ID, err)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	_, err = io.Copy(conn, state)
	stop()
	conn.Close()
	if err != nil {
		return fmt.Errorf("restore VM %s: send state: %w", v.cfg.ID, err)
	}
	for {
		status, err := queryStatus(ctx, v.cfg.ID, v.cfg.path(qmpSocketName))
		switch {
		case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
			return err
		case err != nil && v.proc.exited():
			return fmt.Errorf("restore VM %s: QEMU exited: %s", v.cfg.ID, tail(v.cfg.path(qemuLogName)))
		case err != nil:
			return fmt.Errorf("restore VM %s: %w", v.cfg.ID, err)
		case status == "running":
			return nil
		case status == "paused":
			// The template was saved paused, and its state says so.
			if err := v.Resume(ctx); err != nil {
				return err
			}
			continue
		case status != "inmigrate":
			return fmt.Errorf("restore VM %s: VM %s after the restore: %s", v.cfg.ID, status, tail(v.cfg.path(qemuLogName)))
		}
		if err := sleepCtx(ctx, 5*time.Millisecond); err != nil {
			return err
		}
	}
}

// TemplateKey names the template a VM of cfg's shape starts from, as
// "SHAPE-INPUTS": SHAPE hashes the command line that cfg renders as a
// template, the VM's own fields left out, and INPUTS the identity (size,
// modification time, inode) of the QEMU binary, kernel, initrd and
// firmware it names. A rebuilt guest image changes INPUTS only: the
// template it makes replaces the one of the same SHAPE.
func TemplateKey(cfg Config) (string, error) {
	c := cfg.withDefaults()
	c.ID, c.StateDir, c.NetNSPath, c.CgroupParent, c.AccelVerdictFile = "template", "/vm", "", "", ""
	if c.SharedDir != "" {
		c.SharedDir = "/shared"
	}
	c.NetDevices = make([]NetDevice, len(cfg.NetDevices))
	for i := range c.NetDevices {
		c.NetDevices[i].MAC = TemplateMAC(i)
	}
	c.TemplateRole, c.Template = BuildTemplate, Template{MemPath: "/mem", StatePath: "/state"}
	shape := sha256.New()
	for _, a := range qemuArgs(c, c.Accelerator, hostCaps{}) {
		fmt.Fprintf(shape, "%q\n", a)
	}
	inputs := sha256.New()
	qemuPath, err := exec.LookPath(c.Path)
	if err != nil {
		return "", fmt.Errorf("QEMU %s: %w", c.Path, err)
	}
	for _, p := range []string{qemuPath, c.KernelPath, c.InitrdPath, c.FirmwarePath} {
		if p == "" {
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			return "", err
		}
		st, _ := fi.Sys().(*syscall.Stat_t)
		var ino uint64
		if st != nil {
			ino = st.Ino
		}
		fmt.Fprintf(inputs, "%s %d %d %d\n", p, fi.Size(), fi.ModTime().UnixNano(), ino)
	}
	return hex.EncodeToString(shape.Sum(nil))[:16] + "-" + hex.EncodeToString(inputs.Sum(nil))[:16], nil
}
