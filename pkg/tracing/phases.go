package tracing

import (
	"context"
	"math"
	"sync"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"k8s.io/klog/v2"
)

// Call is one call whose phases are summed for its log line: the spans
// started under its span, while the call runs, each by name.
type Call struct {
	span  trace.Span
	start time.Time

	// mu guards the fields below: spans end in the goroutines of the call.
	mu    sync.Mutex
	names []string                 // the phases, in the order they started
	took  map[string]time.Duration // by phase; a phase run twice is summed
	// top are the phases that are children of the call's span: they do
	// not overlap, and what they leave of the total is other_ms.
	top map[string]bool
}

type callKey struct{}

// StartCall starts the span of a call, name, with tracer, and the
// collection of its phases: every span started under it, at any depth,
// by any package, is a phase, whose time End logs. Without a provider
// that has PhaseProcessor (as in tests that install none), End logs the
// total alone.
func StartCall(ctx context.Context, tracer trace.Tracer, name string) (context.Context, *Call) {
	ctx, span := tracer.Start(ctx, name)
	c := &Call{span: span, start: time.Now(), took: map[string]time.Duration{}, top: map[string]bool{}}
	return context.WithValue(ctx, callKey{}, c), c
}

func callOf(ctx context.Context) *Call {
	c, _ := ctx.Value(callKey{}).(*Call)
	return c
}

// End ends the call's span, failed with err if it is not nil, and logs
// msg at V(2) with the call's total and each phase's time in
// milliseconds, in the order the phases started: total_ms, then
// NAME_ms for each phase, then other_ms, the time no phase directly
// under the call's span took; and err when the call failed.
func (c *Call) End(log klog.Logger, msg string, err error) {
	if err != nil {
		c.span.RecordError(err)
		c.span.SetStatus(codes.Error, err.Error())
	}
	c.span.End()
	total := time.Since(c.start)
	c.mu.Lock()
	kv := make([]any, 0, 2*len(c.names)+6)
	kv = append(kv, "total_ms", millis(total))
	rest := total
	for _, n := range c.names {
		kv = append(kv, n+"_ms", millis(c.took[n]))
		if c.top[n] {
			rest -= c.took[n]
		}
	}
	c.mu.Unlock()
	kv = append(kv, "other_ms", millis(max(rest, 0)))
	if err != nil {
		kv = append(kv, "err", err)
	}
	log.WithCallDepth(1).V(2).Info(msg, kv...)
}

// millis is d in milliseconds, to a tenth.
func millis(d time.Duration) float64 {
	return math.Round(float64(d)/float64(100*time.Microsecond)) / 10
}

func (c *Call) started(name string, top bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.took[name]; !ok {
		c.names = append(c.names, name)
		c.took[name] = 0
	}
	if top {
		c.top[name] = true
	}
}

func (c *Call) ended(name string, d time.Duration) {
	c.mu.Lock()
	c.took[name] += d
	c.mu.Unlock()
}

// PhaseProcessor is the span processor that gives each Call its phases:
// a span started under a Call's span is added, once it ends, to that
// Call. It costs a map entry per span of a call while the span runs, and
// nothing for other spans.
type PhaseProcessor struct {
	running sync.Map // trace.SpanID -> *Call: spans of calls, until they end
}

var _ sdktrace.SpanProcessor = (*PhaseProcessor)(nil)

// NewPhaseProcessor returns a processor for the provider's spans.
func NewPhaseProcessor() *PhaseProcessor { return &PhaseProcessor{} }

// OnStart implements sdktrace.SpanProcessor.
func (p *PhaseProcessor) OnStart(parent context.Context, s sdktrace.ReadWriteSpan) {
	c := callOf(parent)
	if c == nil {
		return
	}
	top := s.Parent().SpanID() == c.span.SpanContext().SpanID()
	c.started(s.Name(), top)
	p.running.Store(s.SpanContext().SpanID(), c)
}

// OnEnd implements sdktrace.SpanProcessor.
func (p *PhaseProcessor) OnEnd(s sdktrace.ReadOnlySpan) {
	v, ok := p.running.LoadAndDelete(s.SpanContext().SpanID())
	if !ok {
		return
	}
	v.(*Call).ended(s.Name(), s.EndTime().Sub(s.StartTime()))
}

// Shutdown implements sdktrace.SpanProcessor.
func (*PhaseProcessor) Shutdown(context.Context) error { return nil }

// ForceFlush implements sdktrace.SpanProcessor.
func (*PhaseProcessor) ForceFlush(context.Context) error { return nil }
