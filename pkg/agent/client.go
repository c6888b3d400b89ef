// Package agent is the host side of the agent protocol: it connects to
// the vc-agent of a pod VM and carries process IO over the link.
package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/yamux"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/vc-cri/vc-cri/pkg/agent/protocol"
)

// Client is a connection to one guest agent. Its embedded AgentClient
// carries the protocol's calls.
type Client struct {
	protocol.AgentClient

	conn    net.Conn
	session *yamux.Session
	grpc    *grpc.ClientConn
}

// Dial connects to the agent behind the hypervisor's unix socket (the
// virtio-serial port's chardev) and returns once the agent answers, or
// when ctx ends. The socket may not exist yet while the hypervisor
// starts, and the guest may still be booting: both are waited for.
func Dial(ctx context.Context, socketPath string) (*Client, error) {
	conn, err := dialUnix(ctx, socketPath)
	if err != nil {
		return nil, err
	}
	session, err := yamux.Client(conn, protocol.YamuxConfig())
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("agent link: %w", err)
	}
	gc, err := grpc.NewClient("passthrough:///vc-agent",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(context.Context, string) (net.Conn, error) {
			return session.Open()
		}),
	)
	if err != nil {
		session.Close()
		return nil, fmt.Errorf("agent client: %w", err)
	}
	c := &Client{AgentClient: protocol.NewAgentClient(gc), conn: conn, session: session, grpc: gc}
	if _, err := c.Check(ctx, &protocol.CheckRequest{}, grpc.WaitForReady(true)); err != nil {
		c.Close()
		return nil, fmt.Errorf("agent at %s did not answer: %w", socketPath, err)
	}
	return c, nil
}

func dialUnix(ctx context.Context, path string) (net.Conn, error) {
	var d net.Dialer
	for {
		conn, err := d.DialContext(ctx, "unix", path)
		if err == nil {
			return conn, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("connect to agent socket %s: %w", path, errors.Join(ctx.Err(), err))
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Close ends the link. The guest sees the host leave and waits for the
// next connection; nothing in the guest stops.
func (c *Client) Close() error {
	err := c.grpc.Close()
	_ = c.session.Close()
	_ = c.conn.Close()
	return err
}
