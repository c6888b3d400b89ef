package sandbox

import (
	"context"
	"slices"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/vc-cri/vc-cri/pkg/tracing/tracingtest"
)

// testSpans records every span of the test binary: the provider is
// global, so it is installed once, and each test finds its own spans by
// the trace of a root span it starts.
var testSpans = tracingtest.InstallRecorder()

// traced runs fn under a root span of its own and returns the names of
// the spans made under it, each once, in the order they ended.
func traced(t *testing.T, fn func(ctx context.Context)) []string {
	t.Helper()
	ctx, root := otel.Tracer("test").Start(context.Background(), t.Name())
	fn(ctx)
	root.End()
	return tracingtest.NamesUnder(testSpans, root)
}

func wantSpans(t *testing.T, call string, got []string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("%s: no span %q among %q", call, w, got)
		}
	}
}

// TestPhaseSpans: the steps of a sandbox's start, a container's create
// and start and an exec are spans under the caller's.
func TestPhaseSpans(t *testing.T) {
	t.Parallel()
	r := testRuntime(t)
	got := traced(t, func(ctx context.Context) {
		if _, err := r.RunSandbox(ctx, mockConfig("spans")); err != nil {
			t.Fatal(err)
		}
	})
	wantSpans(t, "RunSandbox", got, "share_setup", "host_network", "vm_start", "agent_dial", "guest_details", "guest_network", "state_save")

	got = traced(t, func(ctx context.Context) {
		if _, _, err := r.CreateContainer(ctx, "spans", testContainer(t, "c")); err != nil {
			t.Fatal(err)
		}
	})
	wantSpans(t, "CreateContainer", got, "rootfs_share", "guest_create", "state_save")

	got = traced(t, func(ctx context.Context) {
		if _, err := r.StartContainer(ctx, "spans", "c"); err != nil {
			t.Fatal(err)
		}
	})
	wantSpans(t, "StartContainer", got, "guest_start", "state_save")

	got = traced(t, func(ctx context.Context) {
		if _, _, _, err := r.EnterContainer(ctx, "spans", "c", Cmd{Args: []string{"true"}}); err != nil {
			t.Fatal(err)
		}
	})
	wantSpans(t, "EnterContainer", got, "exec_start")
}

// TestNoRootSpans: a step that no traced call runs makes no trace of its
// own.
func TestNoRootSpans(t *testing.T) {
	t.Parallel()
	ctx, r := context.Background(), testRuntime(t)
	if _, err := r.RunSandbox(ctx, mockConfig("untraced")); err != nil {
		t.Fatal(err)
	}
	if _, err := r.StopSandbox(ctx, "untraced"); err != nil {
		t.Fatal(err)
	}
	for _, s := range testSpans.Ended() {
		if s.InstrumentationScope().Name == "github.com/vc-cri/vc-cri/pkg/sandbox" && !s.Parent().IsValid() {
			t.Errorf("span %q is a trace of its own", s.Name())
		}
	}
	if ctx, span := startPhase(ctx, "x"); span.IsRecording() || trace.SpanFromContext(ctx).IsRecording() {
		t.Error("startPhase without a traced call gives a recording span")
	}
}
