package runc

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vc-cri/vc-cri/internal/exitcode"
)

// monitorOptions is how a container's conmon is started.
type monitorOptions struct {
	id, name, bundle string
	logPath          string // the CRI log; "" for none
	exitDir          string
	stdin, terminal  bool
}

// startMonitor starts conmon, which runs `runc create` for the container
// and monitors it from then on, and returns the container's PID as
// conmon reports it on the sync pipe. conmon forks away: the process
// started here exits at once, the monitor lives on, re-parented.
func (r *Runtime) startMonitor(ctx context.Context, o monitorOptions) (int, error) {
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	logPath := o.logPath
	if logPath == "" {
		logPath = os.DevNull
	}
	args := []string{
		"--api-version", "1",
		"-c", o.id, "-u", o.id, "-n", o.name,
		"-r", r.cfg.Runc, "-b", o.bundle,
		"-p", filepath.Join(o.bundle, "pidfile"),
		"-P", filepath.Join(o.bundle, "conmon.pid"),
		"-l", "k8s-file:" + logPath,
		"--exit-dir", o.exitDir,
		"--persist-dir", o.bundle,
		"--full-attach",
		"--socket-dir-path", o.exitDir,
		"--runtime-arg", "--root=" + r.runcRoot,
		"--log-level", "info",
	}
	if o.stdin {
		args = append(args, "--stdin")
	}
	if o.terminal {
		args = append(args, "-t")
	}
	syncR, syncW, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer syncR.Close()
	// conmon's own messages: kept in the bundle, their tail in errors. A
	// file, not a pipe, as the forked monitor keeps it open.
	logf, err := os.OpenFile(filepath.Join(o.bundle, "conmon.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		syncW.Close()
		return 0, err
	}
	defer logf.Close()
	cmd := exec.Command(r.cfg.Conmon, args...)
	cmd.Dir = o.bundle
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{syncW}
	cmd.Env = append(os.Environ(), "_OCI_SYNCPIPE=3")
	// Its own session: the monitor must not get the daemon's signals.
	cmd.SysProcAttr = &unix.SysProcAttr{Setsid: true}
	err = cmd.Start()
	syncW.Close()
	if err != nil {
		return 0, fmt.Errorf("start conmon: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	pid, err := readSync(ctx, syncR)
	if err != nil {
		// The monitor may be stuck before runc create returned: it is
		// ours to end.
		if p, perr := readPidFile(filepath.Join(o.bundle, "conmon.pid")); perr == nil {
			_ = unix.Kill(p, unix.SIGKILL)
		}
		_ = cmd.Process.Kill()
		<-done
		return 0, fmt.Errorf("conmon for %s: %w; %s", o.id, err, tail(filepath.Join(o.bundle, "conmon.log")))
	}
	select {
	case <-done:
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-done
	}
	return pid, nil
}

// syncMessage is what conmon writes on the sync pipe.
type syncMessage struct {
	Data    int    `json:"data"`
	Message string `json:"message,omitempty"`
}

// readSync reads conmon's report of `runc create` before ctx ends.
func readSync(ctx context.Context, f *os.File) (int, error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = f.SetReadDeadline(dl)
	}
	line, err := bufio.NewReader(f).ReadBytes('\n')
	if err != nil && len(line) == 0 {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = ctx.Err()
		}
		return 0, fmt.Errorf("no report from conmon: %w", err)
	}
	var m syncMessage
	if err := json.Unmarshal(line, &m); err != nil {
		return 0, fmt.Errorf("conmon's report %q: %w", line, err)
	}
	if m.Data <= 0 {
		return 0, fmt.Errorf("runc create failed: %s", m.Message)
	}
	return m.Data, nil
}

// tail is the end of a small file, for errors.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if len(b) > maxStderr {
		b = b[len(b)-maxStderr:]
	}
	return strings.TrimSpace(string(b))
}

// maxPid bounds the PIDs read from files (the kernel's PID_MAX_LIMIT).
const maxPid = 1 << 22

// readPidFile reads a PID file written by runc or conmon.
func readPidFile(path string) (int, error) {
	b, err := readSmall(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 || pid > maxPid {
		return 0, fmt.Errorf("pid file %s: %q is not a PID", path, b)
	}
	return pid, nil
}

// readSmall reads a file of conmon's or runc's, of a few bytes.
func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, 64)
	n, err := f.Read(b)
	if err != nil && n == 0 {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return b[:n], nil
}

// exitRecord is how a container ended, from conmon's files.
type exitRecord struct {
	code int32
	at   time.Time
	oom  bool
}

// readExit reads the bundle's exit file, conmon's record of the
// container's end: os.ErrNotExist while it runs.
func readExit(bundle string) (exitRecord, error) {
	path := filepath.Join(bundle, "exit")
	st, err := os.Stat(path)
	if err != nil {
		return exitRecord{}, err
	}
	b, err := readSmall(path)
	if err != nil {
		return exitRecord{}, err
	}
	code, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || code < -1 || code > 255 {
		code = int(exitcode.Unknown)
	}
	if code == -1 {
		// conmon's word for an exit it could not learn.
		code = int(exitcode.Unknown)
	}
	_, oomErr := os.Stat(filepath.Join(bundle, "oom"))
	return exitRecord{code: int32(code), at: st.ModTime(), oom: oomErr == nil}, nil
}

// monitorAlive tells whether the bundle's conmon still runs.
func monitorAlive(bundle string) bool {
	pid, err := readPidFile(filepath.Join(bundle, "conmon.pid"))
	if err != nil {
		return false
	}
	return isConmon(pid)
}

// isConmon tells whether pid is a live conmon process (not a zombie, not
// a PID reused by another program).
func isConmon(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// "pid (comm) state ..."
	s := string(b)
	open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || closing < open || len(s) < closing+3 {
		return false
	}
	return s[open+1:closing] == "conmon" && s[closing+2] != 'Z'
}

// waitMonitor waits until the bundle's conmon has exited, or ctx ends.
func waitMonitor(ctx context.Context, bundle string) error {
	pid, err := readPidFile(filepath.Join(bundle, "conmon.pid"))
	if err != nil {
		return nil // no monitor: nothing to wait for
	}
	if !isConmon(pid) {
		return nil
	}
	// A pidfd tells of the exit of a process that is not our child.
	if fd, err := unix.PidfdOpen(pid, 0); err == nil {
		defer unix.Close(fd)
		if isConmon(pid) { // the PID was not reused before the open
			return waitFd(ctx, fd)
		}
		return nil
	}
	for isConmon(pid) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

// waitFd waits until fd is readable (a pidfd: its process exited), or ctx
// ends; it polls in slices so that ctx is seen.
func waitFd(ctx context.Context, fd int) error {
	for {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 200)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return err
		}
		if n > 0 {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// control writes a message to conmon's control fifo: "1 H W" resizes
// the terminal, "2 0 0" reopens the log.
func control(ctx context.Context, bundle, msg string) error {
	// Non-blocking: a fifo no monitor reads fails at once (ENXIO).
	f, err := os.OpenFile(filepath.Join(bundle, "ctl"), os.O_WRONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("conmon control: %w", err)
	}
	defer f.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = f.SetWriteDeadline(dl)
	}
	_, err = f.WriteString(msg + "\n")
	return err
}
