package tracing

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"

	"github.com/go-logr/logr"

	"github.com/vc-cri/vc-cri/pkg/tracing/tracingtest"
)

func testProvider(t *testing.T) (*sdktrace.TracerProvider, *tracetest.SpanRecorder) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(NewPhaseProcessor()), sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp, rec
}

func ms(t *testing.T, line map[string]any, key string) float64 {
	t.Helper()
	v, ok := line[key].(float64)
	if !ok {
		t.Fatalf("%s = %v (%T) in %v, want a number", key, line[key], line[key], line)
	}
	return v
}

// TestCallLogsItsPhases: every span under the call is a phase, at any
// depth; a phase run twice is summed; other_ms is the total less the
// phases right under the call; spans outside the call are not counted.
func TestCallLogsItsPhases(t *testing.T) {
	tp, _ := testProvider(t)
	tr := tp.Tracer("test")
	var logs tracingtest.LogLines

	ctx, call := StartCall(context.Background(), tr, "Call")
	for range 2 {
		_, s := tr.Start(ctx, "twice")
		time.Sleep(10 * time.Millisecond)
		s.End()
	}
	outerCtx, outer := tr.Start(ctx, "outer")
	_, inner := tr.Start(outerCtx, "inner")
	time.Sleep(20 * time.Millisecond)
	inner.End()
	outer.End()
	_, elsewhere := tr.Start(context.Background(), "elsewhere")
	elsewhere.End()
	time.Sleep(15 * time.Millisecond) // none of the phases': other_ms
	call.End(logs.Logger(), "Call phases", nil)

	line := logs.Only(t, "Call phases")
	total, twice, outerMS, innerMS, other := ms(t, line, "total_ms"), ms(t, line, "twice_ms"), ms(t, line, "outer_ms"), ms(t, line, "inner_ms"), ms(t, line, "other_ms")
	if twice < 20 || innerMS < 20 || outerMS < innerMS || other < 15 {
		t.Errorf("twice %v ms (want >= 20), inner %v (>= 20), outer %v (>= inner), other %v (>= 15)", twice, innerMS, outerMS, other)
	}
	// Within rounding: inner is within outer, not counted twice.
	if d := total - (twice + outerMS + other); d < -0.2 || d > 0.2 {
		t.Errorf("total %v ms != twice %v + outer %v + other %v", total, twice, outerMS, other)
	}
	if _, ok := line["elsewhere_ms"]; ok {
		t.Errorf("a span outside the call is in its line: %v", line)
	}
	if _, ok := line["err"]; ok {
		t.Errorf("a call that succeeded logs an err: %v", line)
	}
}

func TestFailedCallLogsItsError(t *testing.T) {
	tp, rec := testProvider(t)
	var logs tracingtest.LogLines
	_, call := StartCall(context.Background(), tp.Tracer("test"), "Call")
	call.End(logs.Logger(), "Call phases", errors.New("no luck"))
	line := logs.Only(t, "Call phases")
	if line["err"] != "no luck" {
		t.Errorf("err = %v, want no luck", line["err"])
	}
	ended := rec.Ended()
	if len(ended) != 1 || ended[0].Name() != "Call" || ended[0].Status().Description != "no luck" {
		t.Fatalf("ended spans %v, want the call's, failed", ended)
	}
}

// TestNoProcessorNoPhases: under a provider without the phase processor
// the line has the total alone.
func TestNoProcessorNoPhases(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	defer tp.Shutdown(context.Background())
	var logs tracingtest.LogLines
	ctx, call := StartCall(context.Background(), tp.Tracer("test"), "Call")
	_, s := tp.Tracer("test").Start(ctx, "step")
	s.End()
	call.End(logs.Logger(), "Call phases", nil)
	line := logs.Only(t, "Call phases")
	if _, ok := line["step_ms"]; ok {
		t.Errorf("phases without the processor: %v", line)
	}
	ms(t, line, "total_ms")
}

func TestOTLPExporterOnlyWithEndpoint(t *testing.T) {
	ctx := context.Background()
	procs, err := spanProcessors(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(procs) != 1 {
		t.Fatalf("%d span processors without an endpoint, want the phases' alone", len(procs))
	}
	if _, ok := procs[0].(*PhaseProcessor); !ok {
		t.Fatalf("span processor %T without an endpoint, want *PhaseProcessor", procs[0])
	}
	procs, err = spanProcessors(ctx, Options{OTLPEndpoint: "http://127.0.0.1:4317"})
	if err != nil {
		t.Fatal(err)
	}
	if len(procs) != 2 {
		t.Fatalf("%d span processors with an endpoint, want the phases' and the exporter's", len(procs))
	}
	for _, p := range procs {
		_ = p.Shutdown(ctx)
	}
	for _, bad := range []string{"127.0.0.1:4317", "grpc://x:1", "http://", "::"} {
		if _, err := NewProvider(ctx, Options{OTLPEndpoint: bad}); err == nil {
			t.Errorf("endpoint %q: no error", bad)
		}
	}
}

// collector is an OTLP/gRPC trace collector that keeps the span names.
type collector struct {
	collectortrace.UnimplementedTraceServiceServer
	mu    sync.Mutex
	names []string
}

func (c *collector) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				c.names = append(c.names, s.Name)
			}
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func TestExportsOverOTLP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	c := &collector{}
	collectortrace.RegisterTraceServiceServer(gs, c)
	go func() { _ = gs.Serve(l) }()
	defer gs.Stop()

	ctx := context.Background()
	tp, err := NewProvider(ctx, Options{OTLPEndpoint: "http://" + l.Addr().String(), Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	cctx, call := StartCall(ctx, tp.Tracer("test"), "Call")
	_, s := tp.Tracer("test").Start(cctx, "step")
	s.End()
	call.End(logr.Discard(), "Call phases", nil)
	// Shutdown flushes the batch.
	if err := tp.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.names) != 2 || c.names[0] != "step" || c.names[1] != "Call" {
		t.Fatalf("collector got spans %v, want step and Call", c.names)
	}
}
