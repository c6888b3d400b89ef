package runc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/vc-cri/vc-cri/internal/exitcode"
	"github.com/vc-cri/vc-cri/pkg/sandbox"
)

// execProcess is an exec: `runc exec` run as the daemon's child, with
// pipes or a terminal. Its fields are set before it is registered and
// never changed, but for those mu guards.
type execProcess struct {
	token, podID, containerID string
	dir                       string // its files: process.json, pid
	stdin                     io.WriteCloser
	stdout, stderr            io.ReadCloser
	pty                       *os.File // the terminal's master, or nil
	done                      chan struct{}
	code                      int32 // set before done is closed

	mu       sync.Mutex
	ioTaken  bool // IOStream returned the streams
	waited   bool
	released bool
}

func newToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// EnterContainer runs cmd in a running container: the container's
// process with cmd's arguments, environment, directory and user, a
// terminal when cmd.Console is set. The Process's Token names it.
func (r *Runtime) EnterContainer(ctx context.Context, podID, id string, cmd sandbox.Cmd) (sandbox.VCSandbox, sandbox.VCContainer, *sandbox.Process, error) {
	var (
		c    *Container
		proc *specs.Process
	)
	err := r.withContainer(ctx, podID, id, func(pod *podRecord, rec *containerRecord) error {
		c = r.containerSnapshot(pod, rec)
		if s := c.status.State.State; s != sandbox.StateRunning {
			return fmt.Errorf("container %s is %s: %w", id, s, sandbox.ErrInvalidState)
		}
		var err error
		proc, err = execSpecProcess(&rec.Config, cmd)
		return err
	})
	if err != nil {
		return nil, nil, nil, err
	}
	e, err := r.startExec(ctx, podID, id, proc, cmd.Interactive)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("exec in container %s: %w", id, err)
	}
	klog.FromContext(ctx).V(2).Info("Exec started", "pod", podID, "container", id, "token", e.token)
	return c.pod, c, &sandbox.Process{Token: e.token, Pid: c.status.PID, StartTime: time.Now()}, nil
}

func (r *Runtime) startExec(ctx context.Context, podID, id string, proc *specs.Process, interactive bool) (_ *execProcess, retErr error) {
	e := &execProcess{token: newToken(), podID: podID, containerID: id, done: make(chan struct{})}
	dir, err := os.MkdirTemp(r.bundle(podID, id), "exec-")
	if err != nil {
		return nil, err
	}
	e.dir = dir
	var closers []io.Closer
	defer func() {
		if retErr != nil {
			for _, c := range closers {
				c.Close()
			}
			os.RemoveAll(dir)
		}
	}()
	b, err := json.Marshal(proc)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "process.json"), b, 0o600); err != nil {
		return nil, err
	}
	args := []string{"--root", r.runcRoot, "exec", "--pid-file", filepath.Join(dir, "pid"), "--process", filepath.Join(dir, "process.json")}
	cmd := exec.Command(r.cfg.Runc)
	if proc.Terminal {
		// runc makes the process's terminal and, not detached, carries it
		// to and from its own: a terminal of ours, raw, whose size runc
		// copies onto the process's when it gets SIGWINCH (ours is runc's
		// controlling terminal, so resizing it sends that).
		master, slave, err := openPty()
		if err != nil {
			return nil, err
		}
		closers = append(closers, master)
		defer slave.Close()
		cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
		cmd.SysProcAttr = &unix.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
		e.pty = master
		e.stdout = &ptyReader{f: master}
		e.stderr = io.NopCloser(eofReader{})
		e.stdin = ptyStdin{master}
	} else {
		outR, outW, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		errR, errW, err := os.Pipe()
		if err != nil {
			outR.Close()
			outW.Close()
			return nil, err
		}
		closers = append(closers, outR, errR)
		defer outW.Close()
		defer errW.Close()
		cmd.Stdout, cmd.Stderr = outW, errW
		e.stdout, e.stderr = outR, errR
		e.stdin = noStdin{}
		if interactive {
			inR, inW, err := os.Pipe()
			if err != nil {
				return nil, err
			}
			closers = append(closers, inW)
			defer inR.Close()
			cmd.Stdin = inR
			e.stdin = inW
		}
	}
	cmd.Args = append([]string{r.cfg.Runc}, append(args, id)...)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	go func() {
		err := <-exited
		e.code = execExitCode(cmd.ProcessState, err)
		close(e.done)
	}()
	r.mu.Lock()
	r.execs[e.token] = e
	r.mu.Unlock()
	return e, nil
}

// execExitCode is the exec's exit code: runc exec's, which is its
// process's (128 plus the signal's number when a signal ended it).
func execExitCode(ps *os.ProcessState, err error) int32 {
	if ps == nil {
		return exitcode.Unknown
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return exitcode.Signaled(ws.Signal())
	}
	if code := ps.ExitCode(); code >= 0 && code <= 255 {
		return int32(code)
	}
	return exitcode.Unknown
}

// ptyReader reads a terminal's master: EIO once the process's side has
// closed is its end, which closes the master (stdin too, then).
type ptyReader struct {
	f    *os.File
	once sync.Once
}

func (p *ptyReader) Read(b []byte) (int, error) {
	n, err := p.f.Read(b)
	if errors.Is(err, unix.EIO) {
		err = io.EOF
	}
	if err != nil {
		p.Close()
	}
	return n, err
}

func (p *ptyReader) Close() error {
	p.once.Do(func() { p.f.Close() })
	return nil
}

// ptyStdin writes to a terminal; closing it sends end-of-file (^D), as a
// terminal has no stdin of its own to close.
type ptyStdin struct{ f *os.File }

func (p ptyStdin) Write(b []byte) (int, error) { return p.f.Write(b) }
func (p ptyStdin) Close() error {
	_, err := p.f.Write([]byte{4})
	return err
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// exec finds an exec of the container by token.
func (r *Runtime) exec(podID, id, token string) (*execProcess, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.execs[token]
	if !ok || e.podID != podID || e.containerID != id {
		return nil, fmt.Errorf("process %s of container %s: %w", token, id, sandbox.ErrNotFound)
	}
	return e, nil
}

// release forgets the exec once it is waited for and its IO taken (or
// when its container goes): its files, its terminal.
func (r *Runtime) release(e *execProcess) {
	e.mu.Lock()
	if e.released {
		e.mu.Unlock()
		return
	}
	e.released = true
	e.mu.Unlock()
	r.mu.Lock()
	delete(r.execs, e.token)
	r.mu.Unlock()
	go func() {
		// The exec's output is the reader's until its end: its terminal is
		// closed only after the process is gone, once read.
		<-e.done
		os.RemoveAll(e.dir)
		if e.pty != nil {
			// Left to its reader, which sees its end; unless none reads.
			time.AfterFunc(time.Minute, func() { e.stdout.Close() })
		}
	}()
}

// dropExecs forgets the execs of the pod, or of one of its containers.
func (r *Runtime) dropExecs(podID, id string) {
	r.mu.Lock()
	var drop []*execProcess
	for _, e := range r.execs {
		if e.podID == podID && (id == "" || e.containerID == id) {
			drop = append(drop, e)
		}
	}
	r.mu.Unlock()
	for _, e := range drop {
		r.release(e)
	}
}

func (e *execProcess) pid(ctx context.Context) (int, error) {
	for {
		pid, err := readPidFile(filepath.Join(e.dir, "pid"))
		if err == nil {
			return pid, nil
		}
		select {
		case <-e.done:
			return 0, fmt.Errorf("process %s has exited: %w", e.token, sandbox.ErrInvalidState)
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
