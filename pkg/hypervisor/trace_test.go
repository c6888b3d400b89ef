package hypervisor

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel"

	"github.com/vc-cri/vc-cri/pkg/tracing/tracingtest"
)

// testSpans records the test binary's spans: the provider is global.
var testSpans = tracingtest.InstallRecorder()

func TestStepsOnlyUnderACallersSpan(t *testing.T) {
	if _, span := startStep(context.Background(), "alone"); span.IsRecording() {
		t.Error("a step with no caller's span records a span")
	}
	ctx, root := otel.Tracer("test").Start(context.Background(), "caller")
	_, span := startStep(ctx, "accel_choice")
	span.End()
	root.End()
	for _, s := range testSpans.Ended() {
		if s.Name() == "accel_choice" && s.Parent().SpanID() == root.SpanContext().SpanID() {
			return
		}
	}
	t.Errorf("no span accel_choice under the caller's among %d", len(testSpans.Ended()))
}
