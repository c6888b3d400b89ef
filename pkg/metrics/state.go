package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/klog/v2"
)

// scrapeTimeout bounds the Source's answer to one scrape.
const scrapeTimeout = 10 * time.Second

// stateCollector turns a Source's counts into gauges at each scrape.
type stateCollector struct {
	source     Source
	pods       *prometheus.Desc
	containers *prometheus.Desc
	vms        *prometheus.Desc
}

var _ prometheus.Collector = (*stateCollector)(nil)

func newStateCollector(src Source) *stateCollector {
	return &stateCollector{
		source: src,
		pods: prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", "pods"),
			"Pod sandboxes the daemon holds, by CRI state (ready, notready).", []string{"state"}, nil),
		containers: prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", "containers"),
			"Containers the daemon holds, by CRI state (created, running, exited, unknown).", []string{"state"}, nil),
		vms: prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", "vms_running"),
			"Pod VMs running.", nil, nil),
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pods
	ch <- c.containers
	ch <- c.vms
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	counts, err := c.source.Counts(ctx)
	if err != nil {
		klog.V(2).InfoS("Metrics: cannot count pods and containers", "err", err)
		ch <- prometheus.NewInvalidMetric(c.pods, err)
		return
	}
	for _, s := range []string{"ready", "notready"} {
		ch <- prometheus.MustNewConstMetric(c.pods, prometheus.GaugeValue, float64(counts.Pods[s]), s)
	}
	for _, s := range []string{"created", "running", "exited", "unknown"} {
		ch <- prometheus.MustNewConstMetric(c.containers, prometheus.GaugeValue, float64(counts.Containers[s]), s)
	}
	ch <- prometheus.MustNewConstMetric(c.vms, prometheus.GaugeValue, float64(counts.VMsRunning))
}
