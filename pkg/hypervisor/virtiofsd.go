package hypervisor

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// virtiofsdArgs renders the command line of Debian 12's virtiofsd (the C
// one shipped with QEMU 7.2). It exits by itself when QEMU disconnects.
func virtiofsdArgs(c Config) []string {
	return []string{
		"--socket-path=" + c.path(virtiofsdSock),
		"-o", "source=" + c.SharedDir,
		"-o", "cache=" + c.VirtioFSCache,
		// It keeps no CAP_MKNOD (see virtiofsdCaps): it must not try to.
		"-o", "modcaps=-mknod",
	}
}

// virtiofsdCaps are the capabilities virtiofsd keeps, measured with
// Debian 12's: it refuses to start without the ones it keeps for its
// file operations (CHOWN, DAC_OVERRIDE, FOWNER, FSETID, SETUID, SETGID,
// SETFCAP; MKNOD is dropped with modcaps), its own sandbox (mount
// namespace, pivot_root) needs SYS_ADMIN and its capability drop
// SETPCAP. DAC_READ_SEARCH is not needed.
var virtiofsdCaps = []uintptr{
	unix.CAP_CHOWN, unix.CAP_DAC_OVERRIDE, unix.CAP_FOWNER, unix.CAP_FSETID,
	unix.CAP_SETUID, unix.CAP_SETGID, unix.CAP_SETFCAP, unix.CAP_SYS_ADMIN, unix.CAP_SETPCAP,
}

// startVirtiofsd starts virtiofsd for c and returns once its socket is
// there for QEMU to connect to.
func startVirtiofsd(ctx context.Context, c Config) (*proc, error) {
	logf, err := os.Create(c.path(virtiofsdLog))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(c.VirtioFSDaemon, virtiofsdArgs(c)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	p, err := startConfined(cmd, "", virtiofsdCaps, c.maxLogSize())
	if err != nil {
		return nil, fmt.Errorf("start virtiofsd: %w", err)
	}
	// Attach in a later daemon finds it through this file.
	if err := os.WriteFile(c.path(virtiofsdPid), []byte(strconv.Itoa(p.pid)), 0o644); err != nil {
		_ = p.kill()
		return nil, err
	}
	if err := waitForFile(ctx, c.path(virtiofsdSock), p); err != nil {
		_ = p.kill()
		return nil, fmt.Errorf("virtiofsd: %w (log: %s)", err, tail(c.path(virtiofsdLog)))
	}
	return p, nil
}

// findVirtiofsd finds the virtiofsd of an attached VM, if it still runs.
func findVirtiofsd(c Config) *proc {
	pid, err := readPidFile(c.path(virtiofsdPid))
	if err != nil {
		return nil
	}
	sock := "--socket-path=" + c.path(virtiofsdSock)
	return findProc(pid, func(argv []string) bool { return slices.Contains(argv, sock) })
}

// waitForFile waits until path exists, p exits or ctx ends.
func waitForFile(ctx context.Context, path string, p *proc) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("exited before creating %s", path)
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", path, ctx.Err())
		case <-t.C:
		}
	}
}
