package runc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/vc-cri/vc-cri/pkg/sandbox"
)

// PortForward carries stream to and from TCP port on 127.0.0.1 in the
// pod's network namespace (the host's for a pod on the host's network),
// until the port's side closes or ctx ends. The end of stream's input
// closes the connection's writing side only.
func (r *Runtime) PortForward(ctx context.Context, podID string, port uint32, stream io.ReadWriter) error {
	rec, err := r.loadPod(podID)
	if err != nil {
		return err
	}
	if s := r.podState(rec); s != sandbox.StateRunning {
		return fmt.Errorf("pod %s is %s, not running: %w", podID, s, sandbox.ErrInvalidState)
	}
	if port == 0 || port > 65535 {
		return fmt.Errorf("port %d: %w", port, sandbox.ErrInvalidConfig)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port)))
	var conn net.Conn
	if p := rec.Config.NetworkConfig.NetNSPath; p == "" {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp4", addr)
	} else {
		conn, err = dialInNetns(ctx, p, addr)
	}
	if err != nil {
		return fmt.Errorf("port %d of pod %s: %w", port, podID, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	go func() {
		_, _ = io.Copy(conn, stream)
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}()
	_, err = io.Copy(stream, conn)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// dialInNetns connects from the network namespace at nsPath: the socket
// is made on a thread that entered it, and keeps it.
func dialInNetns(ctx context.Context, nsPath, addr string) (net.Conn, error) {
	target, err := os.Open(nsPath)
	if err != nil {
		return nil, err
	}
	defer target.Close()
	type result struct {
		c   net.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		// Without a way back to its namespace, the thread must die with
		// this goroutine: it stays locked.
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			done <- result{err: err}
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- result{err: fmt.Errorf("enter %s: %w", nsPath, err)}
			return
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp4", addr)
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		done <- result{c, err}
	}()
	res := <-done
	return res.c, res.err
}
