package runc

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// conmon's attach socket carries packets of one byte naming the stream
// and the data: stdout and stderr from conmon, stdin to it.
const (
	attachStdout = 2
	attachStderr = 3
	// attachPacket bounds a packet (conmon's buffer is 8 KiB, plus one).
	attachPacket = 64 << 10
)

// dialAttach connects to the bundle's attach socket. The path goes
// through an O_PATH descriptor of the bundle: a unix socket's path is
// limited to 108 bytes, a state root's is not.
func dialAttach(bundle string) (*net.UnixConn, error) {
	dir, err := unix.Open(bundle, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: bundle, Err: err}
	}
	defer unix.Close(dir)
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	addr := &unix.SockaddrUnix{Name: fmt.Sprintf("/proc/self/fd/%d/attach", dir)}
	if err := unix.Connect(fd, addr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("connect to %s: %w", filepath.Join(bundle, "attach"), err)
	}
	f := os.NewFile(uintptr(fd), "attach")
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		return nil, err
	}
	return c.(*net.UnixConn), nil
}

// attachStreams demultiplexes an attach connection into stdout and
// stderr and writes stdin to it. The caller reads both outputs (a packet
// for one waits until it is read) and closes them.
type attachStreams struct {
	conn           *net.UnixConn
	stdout, stderr *io.PipeReader
	outW, errW     *io.PipeWriter
	closeOnce      sync.Once
	closed         sync.WaitGroup // the two outputs
}

func newAttachStreams(conn *net.UnixConn) *attachStreams {
	a := &attachStreams{conn: conn}
	a.stdout, a.outW = io.Pipe()
	a.stderr, a.errW = io.Pipe()
	go a.demux()
	return a
}

func (a *attachStreams) demux() {
	buf := make([]byte, attachPacket)
	var err error
	for {
		var n int
		n, err = a.conn.Read(buf)
		if n > 1 {
			w := a.outW
			if buf[0] == attachStderr {
				w = a.errW
			} else if buf[0] != attachStdout {
				continue
			}
			if _, werr := w.Write(buf[1:n]); werr != nil && !errors.Is(werr, io.ErrClosedPipe) {
				err = werr
				break
			}
		}
		if err != nil || n == 0 {
			break
		}
	}
	if errors.Is(err, io.EOF) || err == nil || errors.Is(err, net.ErrClosed) {
		err = io.EOF
	}
	a.outW.CloseWithError(err)
	a.errW.CloseWithError(err)
}

// output is one of the demultiplexed streams; closing both closes the
// connection.
type output struct {
	*io.PipeReader
	a    *attachStreams
	once sync.Once
}

func (o *output) Close() error {
	o.once.Do(func() {
		o.PipeReader.Close()
		o.a.closed.Done()
	})
	return nil
}

func (a *attachStreams) outputs() (io.ReadCloser, io.ReadCloser) {
	a.closed.Add(2)
	go func() {
		a.closed.Wait()
		a.conn.Close()
	}()
	return &output{PipeReader: a.stdout, a: a}, &output{PipeReader: a.stderr, a: a}
}

// attachStdin writes to the container's stdin; Close shuts the
// connection's writing side, which has conmon close the container's stdin.
type attachStdin struct{ conn *net.UnixConn }

func (w attachStdin) Write(p []byte) (int, error) {
	// One packet each, within conmon's buffer.
	written := 0
	for len(p) > 0 {
		n := min(len(p), 8<<10)
		if _, err := w.conn.Write(p[:n]); err != nil {
			return written, err
		}
		written += n
		p = p[n:]
	}
	return written, nil
}

func (w attachStdin) Close() error { return w.conn.CloseWrite() }
