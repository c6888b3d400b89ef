package runc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/vc-cri/vc-cri/internal/exitcode"
	"github.com/vc-cri/vc-cri/pkg/sandbox"
)

// A process is named by its token: the container's ID for its own
// process, which conmon carries, EnterContainer's token for an exec.

// IOStream returns the process's stdin, stdout and stderr. For the
// container's own process they are a connection to conmon's attach
// socket, made again at each call (after a daemon restart too): output
// comes from the moment of the call (conmon writes the log itself), and
// closing stdin closes the container's, as closing the connection does
// (conmon runs without --leave-stdin-open). They end when ctx does. The
// stdin of a process started without Interactive refuses writes; stderr
// is empty for a terminal's. The caller reads both outputs (a packet for
// one waits until it is read) and closes them.
func (r *Runtime) IOStream(ctx context.Context, podID, id, token string) (io.WriteCloser, io.ReadCloser, io.ReadCloser, error) {
	if token != id {
		e, err := r.exec(podID, id, token)
		if err != nil {
			return nil, nil, nil, err
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		if e.ioTaken {
			return nil, nil, nil, fmt.Errorf("the IO of process %s is taken: %w", token, sandbox.ErrInvalidState)
		}
		e.ioTaken = true
		if e.waited {
			defer r.release(e)
		}
		return e.stdin, e.stdout, e.stderr, nil
	}
	rec, st, err := r.containerState(podID, id)
	if err != nil {
		return nil, nil, nil, err
	}
	if st.State.State == sandbox.StateStopped {
		return nil, nil, nil, fmt.Errorf("container %s is stopped: %w", id, sandbox.ErrInvalidState)
	}
	conn, err := dialAttach(r.bundle(podID, id))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("attach to container %s: %w", id, err)
	}
	// The streams last as long as the call's context, as the VM's do.
	context.AfterFunc(ctx, func() { conn.Close() })
	a := newAttachStreams(conn)
	stdout, stderr := a.outputs()
	var stdin io.WriteCloser = noStdin{}
	if rec.Config.Cmd.Interactive {
		stdin = attachStdin{conn}
	}
	return stdin, stdout, stderr, nil
}

func (r *Runtime) containerState(podID, id string) (*containerRecord, sandbox.ContainerStatus, error) {
	if _, err := r.loadPod(podID); err != nil {
		return nil, sandbox.ContainerStatus{}, err
	}
	rec, err := r.loadContainer(podID, id)
	if err != nil {
		return nil, sandbox.ContainerStatus{}, err
	}
	return rec, r.containerStatus(podID, rec), nil
}

// WaitProcess waits until the process exits and returns its exit code,
// 128 plus the signal's number when a signal ended it. For the
// container's own process it waits for its conmon, whoever its parent is,
// and reads conmon's exit file: a container that has exited already is
// answered at once.
func (r *Runtime) WaitProcess(ctx context.Context, podID, id, token string) (int32, error) {
	if token != id {
		e, err := r.exec(podID, id, token)
		if err != nil {
			return 0, err
		}
		select {
		case <-e.done:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		e.mu.Lock()
		e.waited = true
		taken := e.ioTaken
		e.mu.Unlock()
		if taken {
			r.release(e)
		}
		return e.code, nil
	}
	if _, _, err := r.containerState(podID, id); err != nil {
		return 0, err
	}
	bundle := r.bundle(podID, id)
	if err := waitMonitor(ctx, bundle); err != nil {
		return 0, err
	}
	exit, err := readExit(bundle)
	if errors.Is(err, os.ErrNotExist) {
		return exitcode.Unknown, nil
	}
	if err != nil {
		return 0, err
	}
	return exit.code, nil
}

// SignalProcess sends a signal to the process; for the container's own
// with all, to every process of the container.
func (r *Runtime) SignalProcess(ctx context.Context, podID, id, token string, signal syscall.Signal, all bool) error {
	if token != id {
		e, err := r.exec(podID, id, token)
		if err != nil {
			return err
		}
		pid, err := e.pid(ctx)
		if err != nil {
			return err
		}
		select {
		case <-e.done:
			return fmt.Errorf("process %s has exited: %w", token, sandbox.ErrInvalidState)
		default:
		}
		return unix.Kill(pid, signal)
	}
	_, st, err := r.containerState(podID, id)
	if err != nil {
		return err
	}
	if st.State.State == sandbox.StateStopped {
		return fmt.Errorf("container %s is stopped: %w", id, sandbox.ErrInvalidState)
	}
	args := []string{"kill"}
	if all {
		args = append(args, "--all")
	}
	_, err = r.runc(ctx, nil, append(args, id, strconv.Itoa(int(signal)))...)
	return err
}

// WinsizeProcess resizes the process's terminal.
func (r *Runtime) WinsizeProcess(ctx context.Context, podID, id, token string, height, width uint32) error {
	if height > 0xffff || width > 0xffff {
		return fmt.Errorf("terminal size %dx%d: %w", width, height, sandbox.ErrInvalidConfig)
	}
	if token != id {
		e, err := r.exec(podID, id, token)
		if err != nil {
			return err
		}
		if e.pty == nil {
			return fmt.Errorf("process %s has no terminal: %w", token, sandbox.ErrInvalidState)
		}
		return ptyControl(e.pty, func(fd int) error {
			return unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, &unix.Winsize{Row: uint16(height), Col: uint16(width)})
		})
	}
	rec, st, err := r.containerState(podID, id)
	if err != nil {
		return err
	}
	if !rec.Terminal {
		return fmt.Errorf("container %s has no terminal: %w", id, sandbox.ErrInvalidState)
	}
	if st.State.State == sandbox.StateStopped {
		return fmt.Errorf("container %s is stopped: %w", id, sandbox.ErrInvalidState)
	}
	return control(ctx, r.bundle(podID, id), fmt.Sprintf("1 %d %d", height, width))
}

// noStdin is the stdin of a process that has none.
type noStdin struct{}

func (noStdin) Write([]byte) (int, error) {
	return 0, fmt.Errorf("the process has no stdin: %w", sandbox.ErrInvalidState)
}

func (noStdin) Close() error { return nil }
