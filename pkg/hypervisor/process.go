package hypervisor

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// proc is a process this package watches: a child it started, reaped by
// cmd.Wait, or one found by pid (started by an earlier daemon), watched
// through a pidfd. PID 1 of these machines reaps no orphans, so a child
// must always be waited for by its parent.
type proc struct {
	pid  int
	done chan struct{} // closed once the process has exited
	kill func() error  // SIGKILL; never reaches another process that reuses the pid
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// startProc starts cmd (QEMU) in its own session (so it survives the
// daemon and its process group's signals), inside the network namespace
// at netnsPath when set, confined (see confine) to the capabilities its
// command line needs, and reaps it when it exits.
func startProc(cmd *exec.Cmd, netnsPath string, maxFileSize uint64) (*proc, error) {
	return startConfined(cmd, netnsPath, qemuCaps(cmd.Args), maxFileSize)
}

// startConfined starts cmd as startProc does, with the capability
// bounding set cut to keep, and every file it writes capped at
// maxFileSize bytes (RLIMIT_FSIZE): its log is on the host's tmpfs, and a
// guest may make it write without end. A process that goes past the cap
// is ended by the kernel (SIGXFSZ): its VM dies, the host's memory stays.
func startConfined(cmd *exec.Cmd, netnsPath string, keep []uintptr, maxFileSize uint64) (*proc, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setsid = true
	if err := startOnThread(cmd, netnsPath, keep); err != nil {
		return nil, err
	}
	// rlimits are per process, not per thread: set on the child once it
	// runs, before QEMU has done more than start.
	err := unix.Prlimit(cmd.Process.Pid, unix.RLIMIT_FSIZE, &unix.Rlimit{Cur: maxFileSize, Max: maxFileSize}, nil)
	if err != nil && err != unix.ESRCH { // ESRCH: it has exited already
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("cap the file size of %s: %w", cmd.Path, err)
	}
	p := &proc{pid: cmd.Process.Pid, done: make(chan struct{})}
	p.kill = func() error {
		if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return err
		}
		return nil
	}
	go func() {
		_ = cmd.Wait() // the exit status tells nothing qemu.log does not
		close(p.done)
	}()
	return p, nil
}

// startOnThread forks cmd from an OS thread of its own, switched into
// the network namespace at path (a child inherits its parent thread's)
// and confined: capabilities and no_new_privs are per thread too. The
// thread is never given back to the runtime: its goroutine exits
// locked, which ends the thread.
func startOnThread(cmd *exec.Cmd, path string, keep []uintptr) error {
	var target netns.NsHandle = -1
	if path != "" {
		var err error
		if target, err = netns.GetFromPath(path); err != nil {
			return fmt.Errorf("open netns %s: %w", path, err)
		}
		defer target.Close()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if target != -1 {
			if err := netns.Set(target); err != nil {
				errc <- fmt.Errorf("enter netns %s: %w", path, err)
				return
			}
		}
		if err := confine(keep); err != nil {
			errc <- err
			return
		}
		errc <- cmd.Start()
	}()
	return <-errc
}

// confine cuts the calling thread's capability bounding set (and its
// inheritable and ambient sets) to keep and sets no_new_privs, so that
// the process it starts next, though root, holds only keep and can
// never gain more (no setuid binary, no file capability).
func confine(keep []uintptr) error {
	keepSet := map[uintptr]bool{}
	for _, c := range keep {
		keepSet[c] = true
	}
	for c := uintptr(0); c <= unix.CAP_LAST_CAP; c++ {
		if keepSet[c] {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, c, 0, 0, 0); err != nil && err != unix.EINVAL {
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && err != unix.EINVAL {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	var inh [2]uint32
	for _, c := range keep {
		inh[c/32] |= 1 << (c % 32)
	}
	data[0].Inheritable &= inh[0]
	data[1].Inheritable &= inh[1]
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	return nil
}

// findProc watches the running process pid if match accepts its command
// line; otherwise (gone, a zombie, or the pid reused by a stranger) it
// returns a proc that has already exited.
func findProc(pid int, match func(argv []string) bool) *proc {
	p := &proc{pid: pid, done: make(chan struct{}), kill: func() error { return nil }}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		close(p.done)
		return p
	}
	// The pidfd pins the process: checked after the command line, it
	// proves the command line read was that of the same process.
	if argv, err := cmdline(pid); err != nil || !match(argv) || pidfdExited(fd) {
		unix.Close(fd)
		close(p.done)
		return p
	}
	var mu sync.Mutex // guards fd against its close once the process exits
	p.kill = func() error {
		mu.Lock()
		defer mu.Unlock()
		if fd < 0 {
			return nil
		}
		if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil && err != unix.ESRCH {
			return err
		}
		return nil
	}
	// Polling rather than a blocking poll(2): no thread is held per VM.
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for range t.C {
			if pidfdExited(fd) {
				mu.Lock()
				unix.Close(fd)
				fd = -1
				mu.Unlock()
				close(p.done)
				return
			}
		}
	}()
	return p
}

// pidfdExited reports whether the process has exited (a zombie counts).
func pidfdExited(fd int) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n > 0
}

func cmdline(pid int) ([]string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return nil, err
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00"), nil
}

// readPidFile returns the pid in a pidfile written by QEMU or by us.
func readPidFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pidfile %s: bad pid %q", path, b)
	}
	return pid, nil
}

// waitDone waits for p to exit, up to timeout.
func waitDone(p *proc, timeout time.Duration) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
		return true
	case <-t.C:
		return false
	}
}
