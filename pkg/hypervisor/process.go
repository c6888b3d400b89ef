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

// startProc starts cmd in its own session (so it survives the daemon and
// its process group's signals), inside the network namespace at netnsPath
// when set, and reaps it when it exits.
func startProc(cmd *exec.Cmd, netnsPath string) (*proc, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setsid = true
	if err := startInNetNS(cmd, netnsPath); err != nil {
		return nil, err
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

// startInNetNS forks cmd from an OS thread switched into the namespace:
// a child inherits its parent thread's network namespace.
func startInNetNS(cmd *exec.Cmd, path string) error {
	if path == "" {
		return cmd.Start()
	}
	target, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", path, err)
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		// Never unlocked unless the thread is back in its namespace: a
		// goroutine that exits locked takes its thread down with it.
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("get current netns: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(target); err != nil {
			errc <- fmt.Errorf("enter netns %s: %w", path, err)
			return
		}
		errc <- cmd.Start()
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
	}()
	return <-errc
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
