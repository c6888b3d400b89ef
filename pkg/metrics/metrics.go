// Package metrics is the daemon's own Prometheus metrics: what vc-cri
// does (CRI operations, their errors and latencies, pod start times) and
// what it holds (pods, containers, VMs), served over HTTP on the
// configured metrics_address; off by default, as CRI-O's enable_metrics.
// The names follow CRI-O's crio_operations_*. (The CRI's own pod and
// container metrics, ListPodSandboxMetrics, are pkg/cri's: they describe
// the workloads, not the daemon.)
package metrics

import (
	"context"
	"errors"
	"net"
	"net/http"
	"runtime"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"
)

// Namespace prefixes every metric name.
const Namespace = "vc_cri"

// latencyBuckets span a CRI call's range on these hosts: a status call
// in a millisecond, a pod VM booting under TCG in 3 to 20 s, an image
// pull or a grace period in minutes.
var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 20, 40, 60, 120, 300}

// podStartBuckets are RunPodSandbox's: a VM boot.
var podStartBuckets = []float64{.5, 1, 2, 3, 4, 5, 7.5, 10, 15, 20, 30, 45, 60, 120}

// Counts is what the daemon holds at one moment.
type Counts struct {
	// Pods by CRI state: "ready", "notready".
	Pods map[string]int
	// Containers by CRI state: "created", "running", "exited", "unknown".
	Containers map[string]int
	// VMsRunning is the pod VMs whose sandbox runs.
	VMsRunning int
}

// Source reports the daemon's counts when the metrics are scraped.
type Source interface {
	Counts(ctx context.Context) (Counts, error)
}

// Metrics holds the daemon's metrics and serves them.
type Metrics struct {
	registry *prometheus.Registry
	ops      *prometheus.CounterVec
	errs     *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	podStart prometheus.Histogram
	podPhase *prometheus.HistogramVec
	// agentLatency and agentErrs time the host's calls to guest agents.
	agentLatency *prometheus.HistogramVec
	agentErrs    *prometheus.CounterVec
}

// Options configure New.
type Options struct {
	// Version is the daemon's version, reported by vc_cri_build_info.
	Version string
	// Source, if set, gives the pod, container and VM gauges.
	Source Source
}

// New returns the daemon's metrics, registered with Go's runtime and
// process collectors on a registry of their own.
func New(opts Options) *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "operations_total",
			Help: "CRI calls served, by operation (the gRPC method).",
		}, []string{"operation"}),
		errs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "operations_errors_total",
			Help: "CRI calls that failed, by operation and gRPC status code.",
		}, []string{"operation", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "operations_latency_seconds",
			Help:    "Time a unary CRI call took, by operation, failures included.",
			Buckets: latencyBuckets,
		}, []string{"operation"}),
		podStart: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "pod_start_seconds",
			Help:    "Time a successful RunPodSandbox took: network, VM boot, agent ready.",
			Buckets: podStartBuckets,
		}),
		podPhase: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "pod_start_phase_seconds",
			Help:    "Time each phase of a successful RunPodSandbox took: network (CNI), sandbox (VM boot, agent, guest setup).",
			Buckets: latencyBuckets,
		}, []string{"phase"}),
		agentLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "agent_call_latency_seconds",
			Help:    "Time a unary call to a guest agent took, by agent method, failures included.",
			Buckets: latencyBuckets,
		}, []string{"method"}),
		agentErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "agent_call_errors_total",
			Help: "Calls to guest agents that failed, by agent method and gRPC status code.",
		}, []string{"method", "code"}),
	}
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "build_info",
		Help: "Always 1; the labels tell the daemon's version and Go's.",
	}, []string{"version", "go_version"})
	build.WithLabelValues(opts.Version, runtime.Version()).Set(1)
	m.registry.MustRegister(m.ops, m.errs, m.latency, m.podStart, m.podPhase, m.agentLatency, m.agentErrs, build,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if opts.Source != nil {
		m.SetSource(opts.Source)
	}
	return m
}

// SetSource gives the pod, container and VM gauges their source, once:
// for a daemon whose metrics exist before the service they count.
func (m *Metrics) SetSource(src Source) {
	m.registry.MustRegister(newStateCollector(src))
}

// operation is the method name of a full gRPC method,
// "/runtime.v1.RuntimeService/RunPodSandbox" -> "RunPodSandbox".
func operation(fullMethod string) string {
	return fullMethod[strings.LastIndexByte(fullMethod, '/')+1:]
}

// observe records one finished call.
func (m *Metrics) observe(op string, err error, took time.Duration, unary bool) {
	m.ops.WithLabelValues(op).Inc()
	if err != nil {
		m.errs.WithLabelValues(op, status.Code(err).String()).Inc()
	}
	if !unary {
		return
	}
	m.latency.WithLabelValues(op).Observe(took.Seconds())
	if op == "RunPodSandbox" && err == nil {
		m.podStart.Observe(took.Seconds())
	}
}

// UnaryInterceptor counts and times each unary call. Install it first,
// before the interceptor that turns errors into gRPC statuses, so that
// it sees the codes the client sees.
func (m *Metrics) UnaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	op := operation(info.FullMethod)
	var p *phases
	if op == "RunPodSandbox" {
		ctx, p = withPhases(ctx)
	}
	start := time.Now()
	resp, err := handler(ctx, req)
	took := time.Since(start)
	m.observe(op, err, took, true)
	if p != nil && err == nil {
		m.observePhases(p, took)
	}
	return resp, err
}

// StreamInterceptor counts streaming calls (container events, the
// streamed lists); their length is the client's, so it is not timed.
func (m *Metrics) StreamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	err := handler(srv, ss)
	m.observe(operation(info.FullMethod), err, 0, false)
	return err
}

// Handler serves the metrics in Prometheus' text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}

// Serve serves /metrics on addr (host:port) until ctx ends.
func (m *Metrics) Serve(ctx context.Context, addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return m.ServeListener(ctx, l)
}

// ServeListener serves /metrics on l until ctx ends.
func (m *Metrics) ServeListener(ctx context.Context, l net.Listener) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	klog.InfoS("Serving metrics", "address", "http://"+l.Addr().String()+"/metrics")
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutCtx)
		if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
}

// AgentUnaryInterceptor times each unary call the host makes to a guest
// agent: a client interceptor for the agent link (sandbox.KataDialer).
// The method label is one of the agent protocol's few methods.
func (m *Metrics) AgentUnaryInterceptor(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	start := time.Now()
	err := invoker(ctx, method, req, reply, cc, opts...)
	op := operation(method)
	m.agentLatency.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if err != nil {
		m.agentErrs.WithLabelValues(op, status.Code(err).String()).Inc()
	}
	return err
}
