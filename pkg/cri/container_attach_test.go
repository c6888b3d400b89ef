package cri

import (
	"context"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestAttach(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newFakeService(t)
	_, running, created := runningAndCreated(t, s)
	for _, tc := range []struct {
		name string
		id   string
		want codes.Code
	}{
		{"running container", running, codes.OK},
		{"unknown container", "nope", codes.NotFound},
		{"created container", created, codes.FailedPrecondition},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := s.Attach(ctx, &runtime.AttachRequest{ContainerId: tc.id, Stdout: true})
			wantURL(t, "Attach", resp, err, tc.want, "/attach/")
		})
	}
}

// TestAttachStream: an attached client gets the container's output and
// its stdin reaches the process, until the container exits.
func TestAttachStream(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, f := newFakeService(t)
	pod := readyPod(t, s, "web")
	cc := containerConfig("app")
	cc.Stdin = true
	id := startedContainer(t, s, pod, cc)

	out := &syncBuilder{}
	done := make(chan error, 1)
	go func() {
		done <- streamRuntime{s}.Attach(ctx, id, strings.NewReader("typed"), nopSyncCloser{out}, nil, false, nil)
	}()
	eventually(t, "stdin delivered", func() bool { return f.stdinOf(pod, id, id) == "typed" })
	eventually(t, "attached", func() bool {
		cio, _ := s.containerIO(id)
		cio.mu.Lock()
		defer cio.mu.Unlock()
		return len(cio.attached) == 1
	})
	f.write(pod, id, 0, "hello\n")
	eventually(t, "output delivered", func() bool { return out.String() == "hello\n" })
	f.exit(pod, id, 0, false)
	if err := <-done; err != nil {
		t.Fatalf("Attach: %v", err)
	}
	err := streamRuntime{s}.Attach(ctx, id, nil, nopSyncCloser{out}, nil, false, nil)
	wantCode(t, "attach to an exited container", err, codes.FailedPrecondition)
}

// syncBuilder is a strings.Builder safe for concurrent use.
type syncBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuilder) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuilder) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type nopSyncCloser struct{ *syncBuilder }

func (nopSyncCloser) Close() error { return nil }
