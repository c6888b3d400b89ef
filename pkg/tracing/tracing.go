// Package tracing is the daemon's OpenTelemetry tracing: where the time
// of a pod's, a container's or an exec's start goes. The calls that start
// them (pkg/cri) open a Call; every step under it, in pkg/cri and
// pkg/sandbox (CNI, the VM's launch, the agent's answer, the guest's
// setup, the container's root...), is a span from the global tracer
// provider, a phase of the call. The provider NewProvider makes always
// sums each call's phases into the one log line Call.End writes, and
// exports the spans over OTLP only when an endpoint is configured.
//
// The library packages know nothing of this one beyond Call: they use
// otel.Tracer, which is a no-op until the daemon installs a provider.
package tracing

import (
	"context"
	"fmt"
	"net/url"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// Options configure NewProvider.
type Options struct {
	// OTLPEndpoint is the URL of an OTLP/gRPC collector, where the spans
	// are exported: http://HOST:PORT in plaintext, https://HOST:PORT over
	// TLS. Empty: they are not exported, only summed into log lines.
	OTLPEndpoint string
	// Version is the daemon's, the service.version of its spans.
	Version string
}

// NewProvider returns a tracer provider whose spans feed the log lines of
// Calls and, with Options.OTLPEndpoint, are batched to that collector.
// Its Shutdown flushes them.
func NewProvider(ctx context.Context, opts Options) (*sdktrace.TracerProvider, error) {
	procs, err := spanProcessors(ctx, opts)
	if err != nil {
		return nil, err
	}
	res := resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName("vc-cri"), semconv.ServiceVersion(opts.Version))
	po := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	for _, p := range procs {
		po = append(po, sdktrace.WithSpanProcessor(p))
	}
	return sdktrace.NewTracerProvider(po...), nil
}

// spanProcessors are the phases' processor and, with an endpoint, the
// OTLP exporter's.
func spanProcessors(ctx context.Context, opts Options) ([]sdktrace.SpanProcessor, error) {
	procs := []sdktrace.SpanProcessor{NewPhaseProcessor()}
	if opts.OTLPEndpoint == "" {
		return procs, nil
	}
	u, err := url.Parse(opts.OTLPEndpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("OTLP endpoint %q: want http://HOST:PORT or https://HOST:PORT", opts.OTLPEndpoint)
	}
	// The exporter connects when it first exports: a collector that is
	// down costs dropped spans, never a call's time.
	exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpointURL(opts.OTLPEndpoint))
	if err != nil {
		return nil, fmt.Errorf("OTLP exporter: %w", err)
	}
	return append(procs, sdktrace.NewBatchSpanProcessor(exp)), nil
}
