// Command vc-pause is the infra process of a pod of OS containers (the
// runc handler, pkg/runc): it holds the pod's namespaces open. As PID 1
// of the pod's PID namespace it reaps the orphans reparented to it; it
// exits 0 on SIGINT or SIGTERM and otherwise sleeps forever.
//
// Build it static, as it runs in an empty root: CGO_ENABLED=0 go build.
package main

import (
	"os"
	"os/signal"

	"golang.org/x/sys/unix"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, unix.SIGCHLD, unix.SIGINT, unix.SIGTERM)
	for sig := range sigs {
		if sig != unix.SIGCHLD {
			os.Exit(0)
		}
		// Signals coalesce: reap every child that has exited.
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
