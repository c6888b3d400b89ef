package cri

import (
	"context"
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"
)

func TestExec(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newFakeService(t)
	_, running, created := runningAndCreated(t, s)
	for _, tc := range []struct {
		name string
		req  *runtime.ExecRequest
		want codes.Code
	}{
		{"stdout", &runtime.ExecRequest{ContainerId: running, Cmd: []string{"sh"}, Stdout: true}, codes.OK},
		{"no command", &runtime.ExecRequest{ContainerId: running, Stdout: true}, codes.InvalidArgument},
		{"no stream", &runtime.ExecRequest{ContainerId: running, Cmd: []string{"sh"}}, codes.InvalidArgument},
		{"unknown container", &runtime.ExecRequest{ContainerId: "nope", Cmd: []string{"sh"}, Stdout: true}, codes.NotFound},
		{"created container", &runtime.ExecRequest{ContainerId: created, Cmd: []string{"sh"}, Stdout: true}, codes.FailedPrecondition},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := s.Exec(ctx, tc.req)
			wantURL(t, "Exec", resp, err, tc.want, "/exec/")
		})
	}
}

// TestExecStream: what the streaming server runs: stdin reaches the
// process, a terminal's resizes reach the guest, and the exit code is
// the client's.
func TestExecStream(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, f := newFakeService(t)
	f.script = scriptedExecs
	pod, id := runningContainer(t, s, "web")
	rt := streamRuntime{s}

	var out strings.Builder
	stdout := nopWriteCloser{&out}
	if err := rt.Exec(ctx, id, []string{"echo", "hi"}, strings.NewReader("input"), stdout, nil, false, nil); err != nil {
		t.Fatalf("Exec: %v", err)
	}
	if out.String() != "hi\n" {
		t.Fatalf("stdout %q", out.String())
	}
	eventually(t, "stdin delivered", func() bool { return f.stdinOf(pod, id, "exec-1") == "input" })

	var exit utilexec.CodeExitError
	if err := rt.Exec(ctx, id, []string{"fail"}, nil, stdout, nil, false, nil); !errors.As(err, &exit) || exit.Code != 3 {
		t.Fatalf("Exec of a failing command: %v, want exit code 3", err)
	}

	resize := make(chan remotecommand.TerminalSize, 1)
	done := make(chan error, 1)
	go func() { done <- rt.Exec(ctx, id, []string{"sleep"}, nil, stdout, nil, true, resize) }()
	resize <- remotecommand.TerminalSize{Width: 80, Height: 24}
	eventually(t, "terminal resized", func() bool { return f.winsizeOf(pod, id, "exec-3") == [2]uint32{24, 80} })
	f.mu.Lock()
	console := f.pods[pod].containers[id].procs["exec-3"].cmd.Console
	f.mu.Unlock()
	if console == "" {
		t.Fatal("a terminal exec has no console")
	}
	if err := f.SignalProcess(ctx, pod, id, "exec-3", 9, false); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.As(err, &exit) || exit.Code != 137 {
		t.Fatalf("Exec of a killed command: %v, want exit code 137", err)
	}
	close(resize)
}

type nopWriteCloser struct{ *strings.Builder }

func (nopWriteCloser) Close() error { return nil }
