package hypervisor

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// fakeQMP is a scripted QMP peer on a unix socket: it greets like QEMU
// 7.2, records each command and answers it; "quit" runs onQuit.
type fakeQMP struct {
	mu       sync.Mutex
	commands []string
	status   string
	onQuit   func()
}

func startFakeQMP(t *testing.T, socket string, onQuit func()) *fakeQMP {
	t.Helper()
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	f := &fakeQMP{status: "running", onQuit: onQuit}
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			f.serve(conn)
		}
	}()
	return f
}

func (f *fakeQMP) serve(conn net.Conn) {
	defer conn.Close()
	enc, dec := json.NewEncoder(conn), json.NewDecoder(conn)
	_ = enc.Encode(map[string]any{"QMP": map[string]any{
		"version":      map[string]any{"qemu": map[string]int{"major": 7, "minor": 2, "micro": 0}, "package": ""},
		"capabilities": []string{},
	}})
	for {
		var cmd struct {
			Execute string `json:"execute"`
		}
		if err := dec.Decode(&cmd); err != nil {
			return
		}
		f.mu.Lock()
		f.commands = append(f.commands, cmd.Execute)
		var ret any = map[string]any{}
		switch cmd.Execute {
		case "stop":
			f.status = "paused"
		case "cont":
			f.status = "running"
		case "query-status":
			ret = map[string]any{"status": f.status, "running": f.status == "running", "singlestep": false}
		}
		f.mu.Unlock()
		_ = enc.Encode(map[string]any{"return": ret})
		if cmd.Execute == "quit" && f.onQuit != nil {
			f.onQuit()
			return
		}
	}
}

func (f *fakeQMP) seen(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.commands {
		if c == name {
			return true
		}
	}
	return false
}

// sleepVM is a qemuVM whose "QEMU" is a sleep child process; its QMP is
// whatever the test serves on its qmp.sock.
func sleepVM(t *testing.T) *qemuVM {
	t.Helper()
	// Short path: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "hv")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p, err := startProc(exec.Command("sleep", "60"), "", maxLogSize)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.kill() })
	return &qemuVM{cfg: Config{ID: "fake", StateDir: filepath.Join(dir, "state")}, proc: p}
}

func TestQMPPauseResumeStop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	vm := sleepVM(t)
	if err := os.Mkdir(vm.cfg.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	qmp := startFakeQMP(t, vm.cfg.path(qmpSocketName), func() { _ = vm.proc.kill() })

	if err := vm.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	if s, err := queryStatus(ctx, "fake", vm.cfg.path(qmpSocketName)); err != nil || s != "paused" {
		t.Fatalf("status after Pause = %q, %v", s, err)
	}
	if err := vm.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	if s, err := queryStatus(ctx, "fake", vm.cfg.path(qmpSocketName)); err != nil || s != "running" {
		t.Fatalf("status after Resume = %q, %v", s, err)
	}
	start := time.Now()
	if err := vm.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if !qmp.seen("quit") || !qmp.seen("qmp_capabilities") {
		t.Errorf("QMP commands %v: no quit", qmp.commands)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Stop after a honoured quit took %s", d)
	}
	if _, err := os.Stat(vm.cfg.StateDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state dir left: %v", err)
	}
	if err := vm.Stop(ctx); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if err := vm.Pause(ctx); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Pause after Stop = %v, want ErrNotRunning", err)
	}
}

// A QEMU whose QMP does not answer is killed when ctx ends.
func TestStopKillsWhenQMPHangs(t *testing.T) {
	vm := sleepVM(t)
	if err := os.Mkdir(vm.cfg.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	// A listener that accepts and never greets.
	l, err := net.Listen("unix", vm.cfg.path(qmpSocketName))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := vm.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if !vm.proc.exited() {
		t.Fatal("process still running after Stop")
	}
}

// Stop with a cancelled context still kills and cleans up.
func TestStopCancelledContext(t *testing.T) {
	vm := sleepVM(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := vm.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := vm.Wait(context.Background()); err != nil || !vm.proc.exited() {
		t.Fatalf("Wait = %v", err)
	}
}

func TestFindProc(t *testing.T) {
	// The shell keeps running (the ":" after sleep) with the marker as $0.
	cmd := exec.Command("sh", "-c", "sleep 60; :", "marker-arg")
	p, err := startProc(cmd, "", maxLogSize)
	if err != nil {
		t.Fatal(err)
	}
	defer p.kill()
	// Until the child has exec'd, its command line is still the test's.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if argv, err := cmdline(p.pid); err == nil && len(argv) == 4 && argv[3] == "marker-arg" {
			break
		}
	}
	other := findProc(p.pid, func(argv []string) bool { return len(argv) == 4 && argv[3] == "someone-else" })
	if !other.exited() {
		t.Fatal("a process with another command line was accepted")
	}
	found := findProc(p.pid, func(argv []string) bool { return len(argv) == 4 && argv[3] == "marker-arg" })
	if found.exited() {
		argv, err := cmdline(p.pid)
		t.Fatalf("own process not found: its command line is %q (%v)", argv, err)
	}
	if err := found.kill(); err != nil {
		t.Fatal(err)
	}
	if !waitDone(found, 2*time.Second) || !waitDone(p, 2*time.Second) {
		t.Fatal("killed process not seen exiting")
	}
}
