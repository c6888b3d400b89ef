package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/vc-cri/vc-cri/pkg/agent/protocol"
)

// PortForward carries stream to and from a TCP port on the loopback of
// the sandbox's guest (beyond the specification), until the port closes
// or ctx ends. The connection is made inside the VM, where the pod's
// network is.
func (r *Runtime) PortForward(ctx context.Context, sandboxID string, port uint32, stream io.ReadWriter) error {
	var ag Agent
	err := r.withSandbox(ctx, sandboxID, func(ls *lockedSandbox) error {
		if ls.State.State != StateRunning {
			return fmt.Errorf("sandbox %s is %s, not running: %w", sandboxID, ls.State.State, ErrInvalidState)
		}
		var err error
		ag, err = ls.agent(ctx)
		return err
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pf, err := ag.PortForward(ctx)
	if err != nil {
		return err
	}
	if err := pf.Send(&protocol.PortForwardRequest{Port: port}); err != nil {
		return err
	}
	go func() {
		buf := make([]byte, 32<<10)
		for {
			n, err := stream.Read(buf)
			if n > 0 {
				if pf.Send(&protocol.PortForwardRequest{Data: append([]byte(nil), buf[:n]...)}) != nil {
					return
				}
			}
			if err != nil {
				_ = pf.CloseSend()
				return
			}
		}
	}()
	for {
		d, err := pf.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("port %d of sandbox %s: %w", port, sandboxID, err)
		}
		if _, err := stream.Write(d.Data); err != nil {
			return err
		}
	}
}
