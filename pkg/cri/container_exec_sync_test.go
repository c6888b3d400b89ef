package cri

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/vc-cri/vc-cri/pkg/sandbox"
)

// scriptedExecs runs "echo ARGS" (its arguments on stdout), "fail" (on
// stderr, exit 3) and "sleep" (until killed); anything else exits 0.
func scriptedExecs(cmd sandbox.Cmd) fakeRun {
	switch cmd.Args[0] {
	case "echo":
		return fakeRun{Stdout: strings.Join(cmd.Args[1:], " ") + "\n"}
	case "fail":
		return fakeRun{Stderr: "failed\n", Code: 3}
	case "sleep":
		return fakeRun{Hang: true}
	}
	return fakeRun{}
}

func TestExecSync(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, f := newFakeService(t)
	f.script = scriptedExecs
	_, running, created := runningAndCreated(t, s)
	for _, tc := range []struct {
		name           string
		id             string
		cmd            []string
		want           codes.Code
		stdout, stderr string
		exit           int32
	}{
		{"output", running, []string{"echo", "hi", "there"}, codes.OK, "hi there\n", "", 0},
		{"exit code", running, []string{"fail"}, codes.OK, "", "failed\n", 3},
		{"no command", running, nil, codes.InvalidArgument, "", "", 0},
		{"unknown container", "nope", []string{"true"}, codes.NotFound, "", "", 0},
		{"created container", created, []string{"true"}, codes.FailedPrecondition, "", "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := s.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: tc.id, Cmd: tc.cmd, Timeout: 10})
			wantCode(t, "ExecSync", err, tc.want)
			if err == nil && (string(resp.Stdout) != tc.stdout || string(resp.Stderr) != tc.stderr || resp.ExitCode != tc.exit) {
				t.Fatalf("ExecSync: stdout %q, stderr %q, exit %d; want %q, %q, %d", resp.Stdout, resp.Stderr, resp.ExitCode, tc.stdout, tc.stderr, tc.exit)
			}
		})
	}
}

// TestExecSyncDeadline: a command that outlives its timeout, or a guest
// that never tells its exit, is DeadlineExceeded within the timeout, and
// the command is killed.
func TestExecSyncDeadline(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		inject func(f *fakeSandboxes, id string)
	}{
		{"command runs on", func(*fakeSandboxes, string) {}},
		{"guest never answers the wait", func(f *fakeSandboxes, id string) { f.hang("WaitProcess", id) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, f := newFakeService(t)
			f.script = scriptedExecs
			pod, id := runningContainer(t, s, "web")
			tc.inject(f, id)
			start := time.Now()
			_, err := s.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: id, Cmd: []string{"sleep"}, Timeout: 1})
			wantCode(t, "ExecSync past its timeout", err, codes.DeadlineExceeded)
			if took := time.Since(start); took > 2*time.Second {
				t.Fatalf("ExecSync with a 1s timeout took %v", took)
			}
			p, err := f.proc(pod, id, "exec-1")
			if err != nil {
				t.Fatal(err)
			}
			select {
			case <-p.exited:
				if p.code != 137 {
					t.Fatalf("command ended with %d, want 137 (SIGKILL)", p.code)
				}
			default:
				t.Fatal("the command runs on past its timeout")
			}
		})
	}
}

// TestExecSyncStartHangs: a guest that never answers the start of an
// exec (a probe against a stuck guest) holds ExecSync no longer than its
// timeout.
func TestExecSyncStartHangs(t *testing.T) {
	t.Parallel()
	s, f := newFakeService(t)
	_, id := runningContainer(t, s, "web")
	f.hang("EnterContainer", id)
	start := time.Now()
	_, err := s.ExecSync(context.Background(), &runtime.ExecSyncRequest{ContainerId: id, Cmd: []string{"true"}, Timeout: 1})
	wantCode(t, "ExecSync whose start hangs", err, codes.DeadlineExceeded)
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("ExecSync with a 1s timeout took %v", took)
	}
}

func TestExecSyncGuestFails(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, f := newFakeService(t)
	_, id := runningContainer(t, s, "web")
	boom := errors.New("agent gone")
	for _, method := range []string{"EnterContainer", "IOStream", "WaitProcess"} {
		f.clearFaults()
		f.fail(method, id, boom)
		_, err := s.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: id, Cmd: []string{"true"}, Timeout: 5})
		if !errors.Is(err, boom) {
			t.Fatalf("ExecSync with %s failing: %v, want %v", method, err, boom)
		}
	}
}

func TestCapped(t *testing.T) {
	t.Parallel()
	c := capped{max: 4}
	for _, w := range []string{"ab", "cde", "fg"} {
		if n, err := c.Write([]byte(w)); n != len(w) || err != nil {
			t.Fatalf("Write(%q): %d, %v", w, n, err)
		}
	}
	if c.String() != "abcd" {
		t.Fatalf("kept %q, want abcd", c.String())
	}
}
