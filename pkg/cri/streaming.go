package cri

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"k8s.io/cri-streaming/pkg/streaming"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"k8s.io/klog/v2"

	"github.com/vc-cri/vc-cri/pkg/tracing"
)

// streamServer serves exec, attach and port-forward streams: the CRI
// calls return its URLs, and clients (kubelet, crictl) connect there.
type streamServer struct {
	server streaming.Server
}

func newStreamServer(s *Service, addr string) (*streamServer, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	cfg := streaming.DefaultConfig
	cfg.Addr = addr
	server, err := streaming.NewServer(cfg, streamRuntime{s})
	if err != nil {
		return nil, fmt.Errorf("streaming server: %w", err)
	}
	return &streamServer{server: server}, nil
}

// serve runs until ctx ends.
func (ss *streamServer) serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- ss.server.Start(true) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		_ = ss.server.Stop()
		if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
}

// streamRuntime is the streaming server's view of the service.
type streamRuntime struct{ s *Service }

var _ streaming.Runtime = streamRuntime{}

func (r streamRuntime) Exec(ctx context.Context, containerID string, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	ctx, call := tracing.StartCall(ctx, tracer, "Exec")
	code, err := r.s.exec(ctx, containerID, cmd, in, out, errw, tty, resize)
	// A command that exits non-zero is no failed exec.
	call.End(klog.LoggerWithValues(klog.FromContext(ctx), "container", containerID), "Exec phases", err)
	if err != nil {
		return err
	}
	if code != 0 {
		return exitError(code)
	}
	return nil
}

func (r streamRuntime) Attach(ctx context.Context, containerID string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	return r.s.attach(ctx, containerID, in, out, errw, tty, resize)
}

func (r streamRuntime) PortForward(ctx context.Context, podID string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	klog.V(2).InfoS("Port forward", "pod", podID, "port", port)
	return r.s.portForward(ctx, podID, port, stream)
}
