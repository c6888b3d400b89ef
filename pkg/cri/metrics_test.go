package cri

import (
	"context"
	"errors"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/vc-cri/vc-cri/pkg/sandbox"
)

func TestMetrics(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, f := newFakeService(t)
	f.stats.Interfaces = []sandbox.InterfaceStats{{Name: "eth0", RxBytes: 10}}
	pod, id := runningContainer(t, s, "metrics")
	createdContainer(t, s, pod, containerConfig("idle"))
	descs, err := s.ListMetricDescriptors(ctx, &runtime.ListMetricDescriptorsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]int{}
	for _, d := range descs.Descriptors {
		keys[d.Name] = len(d.LabelKeys)
	}
	metrics, err := s.ListPodSandboxMetrics(ctx, &runtime.ListPodSandboxMetricsRequest{})
	// The running container only.
	if err != nil || len(metrics.PodMetrics) != 1 || len(metrics.PodMetrics[0].ContainerMetrics) != 1 || metrics.PodMetrics[0].ContainerMetrics[0].ContainerId != id {
		t.Fatalf("ListPodSandboxMetrics: %v, %v", metrics, err)
	}
	if got := len(metrics.PodMetrics[0].Metrics); got != len(networkMetrics) {
		t.Fatalf("%d network metrics of one interface, want %d", got, len(networkMetrics))
	}
	seen := map[string]bool{}
	for _, m := range metrics.PodMetrics[0].ContainerMetrics[0].Metrics {
		n, ok := keys[m.Name]
		if !ok || n != len(m.LabelValues) {
			t.Fatalf("metric %s: %d label values, described with %d keys (described: %v)", m.Name, len(m.LabelValues), n, ok)
		}
		seen[m.Name] = true
	}
	for _, d := range containerMetrics {
		if !seen[d.name] {
			t.Errorf("described metric %s has no value", d.name)
		}
	}

	// A container whose guest fails is left out; its pod stays.
	f.fail("StatsContainer", id, errors.New("exited meanwhile"))
	metrics, err = s.ListPodSandboxMetrics(ctx, &runtime.ListPodSandboxMetricsRequest{})
	if err != nil || len(metrics.PodMetrics) != 1 || len(metrics.PodMetrics[0].ContainerMetrics) != 0 {
		t.Fatalf("ListPodSandboxMetrics with a failing guest: %v, %v", metrics, err)
	}
}
