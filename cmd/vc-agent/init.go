package main

import (
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/opencontainers/runc/libcontainer/exeseal"
	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/vc-cri/vc-cri/pkg/agent/protocol"
)

// runInit is PID 1. It returns only on failure.
func runInit() error {
	if !exeseal.IsSelfExeCloned() {
		return bootStage1() // re-executes this binary, sealed, on success
	}
	params := kernelParams()
	if err := bootStage2(params); err != nil {
		return err
	}
	code, err := superviseServer()
	if err != nil {
		return err
	}
	klog.InfoS("Agent server ended, powering off", "exitCode", code)
	shutdownGuest()
	return nil
}

// superviseServer starts the agent server and reaps every child until the
// server exits, returning its exit code.
func superviseServer() (int, error) {
	sigchld := make(chan os.Signal, 1)
	signal.Notify(sigchld, unix.SIGCHLD)

	server, err := os.StartProcess("/proc/self/exe", []string{os.Args[0], "serve"}, &os.ProcAttr{
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
		Env:   []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"},
	})
	if err != nil {
		return 0, fmt.Errorf("start agent server: %w", err)
	}
	for {
		<-sigchld
		for {
			var status unix.WaitStatus
			pid, err := unix.Wait4(-1, &status, unix.WNOHANG, nil)
			if err != nil || pid <= 0 {
				break
			}
			if pid == server.Pid {
				return status.ExitStatus(), nil
			}
		}
	}
}

// shutdownGuest ends every process, flushes and powers the VM off, which
// ends QEMU (it runs with -no-reboot).
func shutdownGuest() {
	_ = unix.Kill(-1, unix.SIGTERM)
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := unix.Wait4(-1, nil, unix.WNOHANG, nil); err == unix.ECHILD {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = unix.Kill(-1, unix.SIGKILL)
	unix.Sync()
	_ = unix.Unmount(protocol.SharedDir, unix.MNT_DETACH)
	powerOff()
}

func powerOff() {
	klog.Flush()
	unix.Sync()
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	// Without ACPI the power-off may not take: a reboot ends QEMU too.
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	select {}
}
