package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/yamux"
	"google.golang.org/grpc"
	"k8s.io/klog/v2"

	"github.com/vc-cri/vc-cri/pkg/agent/protocol"
)

// containerStateDir is libcontainer's state root in the guest.
const containerStateDir = "/run/vc-agent/containers"

// serve runs the agent server until the host destroys the sandbox or ctx
// ends.
func serve(ctx context.Context) error {
	a := newAgent(containerStateDir)
	gs := grpc.NewServer()
	protocol.RegisterAgentServer(gs, a)

	port, err := findVirtioPort(protocol.PortName)
	if err != nil {
		return err
	}
	go serveVirtioSerial(gs, port)
	klog.InfoS("Agent serving", "port", port, "version", version, "uptime", guestUptime())

	// Returning ends the process, and with it every stream. No gs.Stop:
	// it would wait for the yamux session, which waits for a read of the
	// port that only the host's leaving ends.
	select {
	case <-ctx.Done():
	case <-a.destroyed:
	}
	return nil
}

// findVirtioPort returns the device of the virtio-serial port named name.
func findVirtioPort(name string) (string, error) {
	names, err := filepath.Glob("/sys/class/virtio-ports/*/name")
	if err != nil {
		return "", err
	}
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err == nil && strings.TrimSpace(string(b)) == name {
			return filepath.Join("/dev", filepath.Base(filepath.Dir(n))), nil
		}
	}
	return "", fmt.Errorf("no virtio-serial port named %q", name)
}

// serveVirtioSerial serves gRPC over yamux sessions on the port, one
// session at a time. While no host is connected, reads on the port return
// EOF; when the host (re)connects, data flows again on the same open file.
// So every session ends with the host leaving, and the next one starts
// when it returns.
func serveVirtioSerial(gs *grpc.Server, port string) {
	f, err := os.OpenFile(port, os.O_RDWR, 0)
	if err != nil {
		klog.ErrorS(err, "Cannot open agent port", "port", port)
		return
	}
	const idle = 20 * time.Millisecond
	for {
		session, err := yamux.Server(keepOpen{f}, protocol.YamuxConfig())
		if err != nil {
			klog.ErrorS(err, "Cannot start yamux session")
			return
		}
		start := time.Now()
		if err := gs.Serve(session); errors.Is(err, grpc.ErrServerStopped) {
			return
		}
		_ = session.Close()
		if time.Since(start) > time.Second {
			klog.V(2).InfoS("Host left the agent link")
		}
		time.Sleep(idle)
	}
}

// keepOpen keeps the port open across yamux sessions.
type keepOpen struct{ *os.File }

func (keepOpen) Close() error { return nil }

var _ io.ReadWriteCloser = keepOpen{}

// guestUptime is how long the guest has run, to tell the boot's cost.
func guestUptime() string {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return "?"
	}
	up, _, _ := strings.Cut(string(b), " ")
	return up + "s"
}
