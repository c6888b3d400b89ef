// Package tracingtest is what the tests of the traced packages share: a
// span recorder under the global provider, and a logger that keeps the
// lines it is given.
package tracingtest

import (
	"encoding/json"
	"slices"
	"sync"
	"testing"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// InstallRecorder makes the global tracer provider one that records
// every span, with processors before the recorder (the daemon's phase
// processor, say). The provider is global: a test binary installs it
// once, and each test finds its spans by its root span's trace.
func InstallRecorder(processors ...sdktrace.SpanProcessor) *tracetest.SpanRecorder {
	rec := tracetest.NewSpanRecorder()
	var opts []sdktrace.TracerProviderOption
	for _, p := range append(processors, rec) {
		opts = append(opts, sdktrace.WithSpanProcessor(p))
	}
	otel.SetTracerProvider(sdktrace.NewTracerProvider(opts...))
	return rec
}

// LogLines keeps a logger's lines at V(2) and below, each decoded from
// JSON.
type LogLines struct {
	mu    sync.Mutex
	lines []map[string]any
}

// Logger logs into l.
func (l *LogLines) Logger() logr.Logger {
	return funcr.NewJSON(func(obj string) {
		m := map[string]any{}
		if err := json.Unmarshal([]byte(obj), &m); err != nil {
			panic(err)
		}
		l.mu.Lock()
		l.lines = append(l.lines, m)
		l.mu.Unlock()
	}, funcr.Options{Verbosity: 2})
}

// Only is the one line logged with msg; another number of them fails t.
func (l *LogLines) Only(t *testing.T, msg string) map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var found []map[string]any
	for _, m := range l.lines {
		if m["msg"] == msg {
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d lines %q, want 1: %v", len(found), msg, l.lines)
	}
	return found[0]
}

// NamesUnder are the names of the spans rec recorded under root, root's
// own left out, each once, in the order they ended.
func NamesUnder(rec *tracetest.SpanRecorder, root trace.Span) []string {
	var names []string
	for _, s := range rec.Ended() {
		if s.SpanContext().TraceID() == root.SpanContext().TraceID() && s.SpanContext().SpanID() != root.SpanContext().SpanID() && !slices.Contains(names, s.Name()) {
			names = append(names, s.Name())
		}
	}
	return names
}
