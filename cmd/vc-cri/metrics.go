package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/vc-cri/vc-cri/pkg/cni"
	"github.com/vc-cri/vc-cri/pkg/metrics"
)

// criLister is what the metrics need of the runtime service.
type criLister interface {
	ListPodSandbox(context.Context, *runtime.ListPodSandboxRequest) (*runtime.ListPodSandboxResponse, error)
	ListContainers(context.Context, *runtime.ListContainersRequest) (*runtime.ListContainersResponse, error)
}

// metricsSource counts the daemon's pods and containers through its own
// CRI lists, and its VMs among the host's processes: a QEMU whose
// command line names a path under the sandboxes' state directory. The
// process table, not the sandbox records, so that a VM that died shows.
type metricsSource struct {
	svc        criLister
	sandboxDir string // the sandbox runtime's StateRoot
	procDir    string // /proc
}

var _ metrics.Source = metricsSource{}

func (m metricsSource) Counts(ctx context.Context) (metrics.Counts, error) {
	c := metrics.Counts{Pods: map[string]int{}, Containers: map[string]int{}}
	pods, err := m.svc.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
	if err != nil {
		return c, err
	}
	for _, p := range pods.Items {
		c.Pods[stateLabel(p.State.String(), "SANDBOX_")]++
	}
	ctrs, err := m.svc.ListContainers(ctx, &runtime.ListContainersRequest{})
	if err != nil {
		return c, err
	}
	for _, ct := range ctrs.Containers {
		c.Containers[stateLabel(ct.State.String(), "CONTAINER_")]++
	}
	c.VMsRunning = countVMs(m.procDir, m.sandboxDir)
	return c, nil
}

// stateLabel is "ready" for SANDBOX_READY, "running" for CONTAINER_RUNNING.
func stateLabel(state, prefix string) string {
	return strings.ToLower(strings.TrimPrefix(state, prefix))
}

// countVMs counts the QEMU processes of sandboxes under dir.
func countVMs(procDir, dir string) int {
	entries, err := os.ReadDir(procDir)
	if err != nil {
		return 0
	}
	want := []byte(filepath.Clean(dir) + "/")
	n := 0
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join(procDir, e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		argv0, _, _ := bytes.Cut(cmd, []byte{0})
		if strings.HasPrefix(filepath.Base(string(argv0)), "qemu-system") && bytes.Contains(cmd, want) {
			n++
		}
	}
	return n
}

// timedNetwork is the pod network, its setup time recorded as the pod
// start's network phase.
type timedNetwork struct {
	*cni.Manager
}

func (n timedNetwork) Setup(ctx context.Context, pod cni.PodNetwork) (*cni.Result, error) {
	start := time.Now()
	res, err := n.Manager.Setup(ctx, pod)
	metrics.RecordPhase(ctx, metrics.PhaseNetwork, time.Since(start))
	return res, err
}
