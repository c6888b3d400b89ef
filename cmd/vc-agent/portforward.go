package main

import (
	"errors"
	"io"
	"net"
	"strconv"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vc-cri/vc-cri/pkg/agent/protocol"
)

// PortForward dials the port inside the guest, where the pod's network
// is, not in the host's network namespace.
func (a *agent) PortForward(stream protocol.Agent_PortForwardServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	if first.Port == 0 || first.Port > 65535 {
		return status.Errorf(codes.InvalidArgument, "invalid port %d", first.Port)
	}
	conn, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(first.Port))))
	if err != nil {
		return status.Errorf(codes.Unavailable, "connect to port %d: %v", first.Port, err)
	}
	defer conn.Close()

	// Host to guest: until the host ends its side.
	go func() {
		for msg := first; ; {
			if len(msg.Data) > 0 {
				if _, err := conn.Write(msg.Data); err != nil {
					return
				}
			}
			if msg, err = stream.Recv(); err != nil {
				_ = conn.(*net.TCPConn).CloseWrite()
				return
			}
		}
	}()
	// Guest to host: until the port closes.
	buf := make([]byte, 32<<10)
	for {
		n, err := conn.Read(buf)
		if n > 0 {
			if err := stream.Send(&protocol.Data{Data: buf[:n]}); err != nil {
				return err
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return status.Errorf(codes.Unavailable, "port %d: %v", first.Port, err)
		}
	}
}
