package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/configs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/vc-cri/vc-cri/internal/exitcode"
	"github.com/vc-cri/vc-cri/pkg/agent/protocol"
)

// process is a container's init or exec process and the agent's ends of
// its stdio. Output is read through pipes (or the terminal) by whoever
// streams it to the host; until then the pipe buffers and, once full,
// holds the process back, so nothing written is lost.
type process struct {
	lp *libcontainer.Process
	// running is the started process: lp, or the process of a direct
	// exec (exec_direct.go). Set before the process is shared.
	running runningProcess

	stdin  io.WriteCloser // nil without stdin
	stdout io.ReadCloser
	stderr io.ReadCloser // nil with a terminal: it is merged into stdout
	tty    *os.File      // the terminal's master side, nil without one

	// childEnds are the process's ends of its pipes, closed here once it
	// started; consoleSocket receives the terminal from the container.
	childEnds     []*os.File
	consoleSocket *os.File

	// cgroupDir, set for a container's init, is where its exit looks for
	// an OOM kill.
	cgroupDir string

	stdinOnce sync.Once
	// exited is closed once the process has exited; exitCode, exitedAt
	// and oomKilled are set before.
	exited    chan struct{}
	exitCode  int32
	exitedAt  time.Time
	oomKilled bool
}

// newProcess prepares a process from an OCI process; start runs it.
func newProcess(sp *specs.Process, terminal, withStdin bool) (_ *process, retErr error) {
	p := &process{
		lp: &libcontainer.Process{
			Args:            sp.Args,
			Env:             sp.Env,
			Cwd:             sp.Cwd,
			UID:             int(sp.User.UID),
			GID:             int(sp.User.GID),
			NoNewPrivileges: &sp.NoNewPrivileges,
		},
		exited: make(chan struct{}),
	}
	for _, g := range sp.User.AdditionalGids {
		p.lp.AdditionalGroups = append(p.lp.AdditionalGroups, int(g))
	}
	if c := sp.Capabilities; c != nil {
		p.lp.Capabilities = &configs.Capabilities{
			Bounding: c.Bounding, Effective: c.Effective, Inheritable: c.Inheritable,
			Permitted: c.Permitted, Ambient: c.Ambient,
		}
	}
	defer func() {
		if retErr != nil {
			p.closeIO()
			closeAll(p.childEnds)
		}
	}()
	if terminal {
		parent, child, err := socketPair()
		if err != nil {
			return nil, err
		}
		p.consoleSocket, p.lp.ConsoleSocket = parent, child
		p.childEnds = append(p.childEnds, child)
		if sp.ConsoleSize != nil {
			p.lp.ConsoleWidth, p.lp.ConsoleHeight = uint16(sp.ConsoleSize.Width), uint16(sp.ConsoleSize.Height)
		}
		return p, nil
	}
	if withStdin {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		p.lp.Stdin, p.stdin = r, w
		p.childEnds = append(p.childEnds, r)
	}
	for _, out := range []struct {
		child *io.Writer
		ours  *io.ReadCloser
	}{{&p.lp.Stdout, &p.stdout}, {&p.lp.Stderr, &p.stderr}} {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		*out.child, *out.ours = w, r
		p.childEnds = append(p.childEnds, w)
	}
	return p, nil
}

// runningProcess is a started process, libcontainer's or the agent's own.
type runningProcess interface {
	Wait() (*os.ProcessState, error)
	Signal(os.Signal) error
}

// A starter starts the process lp describes.
type starter func(lp *libcontainer.Process) (runningProcess, error)

// byLibcontainer starts with run, a container's Start or Run.
func byLibcontainer(run func(*libcontainer.Process) error) starter {
	return func(lp *libcontainer.Process) (runningProcess, error) { return lp, run(lp) }
}

// start runs the process with start and then watches for its exit.
func (p *process) start(start starter) error {
	running, err := start(p.lp)
	closeAll(p.childEnds)
	p.childEnds = nil
	if err != nil {
		p.closeIO()
		return err
	}
	p.running = running
	if p.consoleSocket != nil {
		tty, err := receiveFile(p.consoleSocket)
		p.consoleSocket.Close()
		p.consoleSocket = nil
		if err != nil {
			_ = p.lp.Signal(unix.SIGKILL)
			return fmt.Errorf("receive terminal: %w", err)
		}
		p.tty, p.stdout = tty, tty
		p.stdin = tty
	}
	go p.wait()
	return nil
}

func (p *process) wait() {
	state, err := p.running.Wait()
	code := exitcode.Unknown
	if state != nil {
		ws := state.Sys().(syscall.WaitStatus)
		switch {
		case ws.Signaled():
			code = exitcode.Signaled(ws.Signal())
		default:
			code = int32(ws.ExitStatus())
		}
	} else {
		klog.ErrorS(err, "Cannot wait for process")
	}
	p.exitCode, p.exitedAt = code, time.Now()
	p.oomKilled = p.cgroupDir != "" && oomKills(p.cgroupDir) > 0
	close(p.exited)
}

// exitStatus is valid once exited is closed.
func (p *process) exitStatus() *protocol.WaitProcessResponse {
	return &protocol.WaitProcessResponse{ExitCode: p.exitCode, ExitedAtUnixNano: p.exitedAt.UnixNano(), OomKilled: p.oomKilled}
}

// closeStdin closes the process's stdin, which it reads as EOF. With a
// terminal, it sends the terminal's EOF character instead.
func (p *process) closeStdin() {
	p.stdinOnce.Do(func() {
		switch {
		case p.tty != nil:
			_, _ = p.tty.Write([]byte{4}) // ^D
		case p.stdin != nil:
			_ = p.stdin.Close()
		}
	})
}

func (p *process) closeIO() {
	for _, c := range []io.Closer{p.stdin, p.stdout, p.stderr} {
		if c != nil {
			_ = c.Close()
		}
	}
}

func closeAll(files []*os.File) {
	for _, f := range files {
		_ = f.Close()
	}
}

func socketPair() (parent, child *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("console socket pair: %w", err)
	}
	return os.NewFile(uintptr(fds[1]), "console-parent"), os.NewFile(uintptr(fds[0]), "console-child"), nil
}

// receiveFile receives one file descriptor sent with SCM_RIGHTS, as the
// container's init sends its terminal.
func receiveFile(socket *os.File) (*os.File, error) {
	name := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := unix.Recvmsg(int(socket.Fd()), name, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return nil, err
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, err
	}
	if len(msgs) != 1 {
		return nil, errors.New("expected one control message")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil {
		return nil, err
	}
	if len(fds) != 1 {
		return nil, errors.New("expected one file descriptor")
	}
	return os.NewFile(uintptr(fds[0]), string(name[:n])), nil
}

// oomKills reads how many processes the kernel's OOM killer ended in a
// cgroup (v2).
func oomKills(cgroupDir string) int {
	b, err := os.ReadFile(filepath.Join(cgroupDir, "memory.events"))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}
