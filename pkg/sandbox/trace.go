package sandbox

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// tracer traces the steps of a sandbox's and a container's start, from
// the global provider: a no-op until the process installs one.
var tracer = otel.Tracer("github.com/vc-cri/vc-cri/pkg/sandbox")

// startPhase starts the span of one step, name, of the traced call ctx
// belongs to. A step is traced only under a call's span: the steps run
// by calls nobody traces (a stop, a container's exit) make no traces of
// their own.
func startPhase(ctx context.Context, name string) (context.Context, trace.Span) {
	if parent := trace.SpanFromContext(ctx); !parent.IsRecording() {
		return ctx, trace.SpanFromContext(context.Background())
	}
	return tracer.Start(ctx, name)
}

// endPhase ends a step's span, failed with err if it is not nil.
func endPhase(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
