// Command vc-agent is PID 1 of a vc-cri pod VM. It prepares the guest,
// serves the agent protocol (pkg/agent/protocol) to the host over the
// virtio-serial port, and runs the pod's containers with runc's
// libcontainer.
//
// One binary plays three parts, chosen at start:
//   - PID 1 (the kernel runs /init): boots the guest, starts the server as
//     its child, reaps orphans and powers the guest off when the server
//     ends;
//   - "serve": the agent server;
//   - "init": libcontainer's container init ("runc init");
//   - "userns": the holder of a pod's user and PID namespaces (userns.go).
//
// PID 1 and the server are separate processes so that PID 1 can reap
// every orphan with wait4(-1) while the server waits for its own
// children (container and exec processes) without racing it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"github.com/opencontainers/runc/libcontainer"
	_ "github.com/opencontainers/runc/libcontainer/nsenter" // setns for exec, in C before the Go runtime starts
	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/vc-cri/vc-cri/pkg/agent/protocol"
)

// version is set at build time.
var version = "dev"

func init() {
	if len(os.Args) > 1 && os.Args[1] == "init" {
		// libcontainer's container init: never returns.
		libcontainer.Init()
	}
}

func main() {
	klog.InitFlags(nil)
	_ = flag.Set("logtostderr", "true")
	if kernelParams()[protocol.ParamDebug] == "1" {
		_ = flag.Set("v", "4")
	}

	var err error
	switch {
	case len(os.Args) > 1 && os.Args[1] == usernsHolderArg:
		holdUserns()
	case len(os.Args) > 1 && os.Args[1] == "serve":
		ctx, stop := signal.NotifyContext(context.Background(), unix.SIGTERM)
		defer stop()
		err = serve(ctx)
	case os.Getpid() == 1:
		err = runInit()
	default:
		err = fmt.Errorf("vc-agent runs as PID 1 of a vc-cri guest; usage: %s [serve]", os.Args[0])
	}
	if err != nil {
		klog.ErrorS(err, "vc-agent failed")
		klog.Flush()
		if os.Getpid() == 1 {
			powerOff()
		}
		os.Exit(1)
	}
}
