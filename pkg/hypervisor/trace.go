package hypervisor

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
)

// tracer traces the steps of a VM's launch, from the global provider: a
// no-op until the process installs one.
var tracer = otel.Tracer("github.com/vc-cri/vc-cri/pkg/hypervisor")

// startStep starts the span of one step of a launch, only under the
// span of the caller's (a traced call's): a launch nobody traces makes
// no trace of its own.
func startStep(ctx context.Context, name string) (context.Context, trace.Span) {
	if !trace.SpanFromContext(ctx).IsRecording() {
		return ctx, trace.SpanFromContext(context.Background())
	}
	return tracer.Start(ctx, name)
}
