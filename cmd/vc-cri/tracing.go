package main

import (
	"context"
	"time"

	"go.opentelemetry.io/otel"
	"k8s.io/klog/v2"

	"github.com/vc-cri/vc-cri/pkg/cri"
	"github.com/vc-cri/vc-cri/pkg/tracing"
)

// tracingShutdownTimeout bounds the flush of the spans not yet exported.
const tracingShutdownTimeout = 5 * time.Second

// startTracing installs the process's tracer provider: always, for the
// phase log lines; exporting over OTLP when cfg names an endpoint. stop
// flushes and shuts it down.
func startTracing(ctx context.Context, cfg *Config) (stop func(), err error) {
	tp, err := tracing.NewProvider(ctx, tracing.Options{OTLPEndpoint: cfg.Tracing.OTLPEndpoint, Version: cri.RuntimeVersion})
	if err != nil {
		return nil, err
	}
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { klog.ErrorS(err, "Tracing") }))
	otel.SetTracerProvider(tp)
	if cfg.Tracing.OTLPEndpoint != "" {
		klog.InfoS("Exporting traces over OTLP", "endpoint", cfg.Tracing.OTLPEndpoint)
	}
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), tracingShutdownTimeout)
		defer cancel()
		if err := tp.Shutdown(sctx); err != nil {
			klog.ErrorS(err, "Cannot flush the traces")
		}
	}, nil
}
