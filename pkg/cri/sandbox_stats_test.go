package cri

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestPodSandboxStats(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, f := newFakeService(t)
	f.stats.CPUUsageNanos, f.stats.MemoryWorkingSetBytes, f.stats.MemoryRSSBytes = 1000, 4096, 2048
	pod := readyPod(t, s, "web")
	startedContainer(t, s, pod, containerConfig("a"))
	startedContainer(t, s, pod, containerConfig("b"))
	createdContainer(t, s, pod, containerConfig("idle"))

	resp, err := s.PodSandboxStats(ctx, &runtime.PodSandboxStatsRequest{PodSandboxId: pod})
	if err != nil {
		t.Fatalf("PodSandboxStats: %v", err)
	}
	linux := resp.Stats.Linux
	if resp.Stats.Attributes.Id != pod || len(linux.Containers) != 3 {
		t.Fatalf("stats of %s with %d containers, want %s with 3", resp.Stats.Attributes.Id, len(linux.Containers), pod)
	}
	// The sum of the two running containers'.
	if linux.Cpu.UsageCoreNanoSeconds.Value != 2000 || linux.Memory.WorkingSetBytes.Value != 8192 || linux.Memory.RssBytes.Value != 4096 {
		t.Fatalf("pod usage: cpu %v, memory %v", linux.Cpu, linux.Memory)
	}
	_, err = s.PodSandboxStats(ctx, &runtime.PodSandboxStatsRequest{PodSandboxId: "nope"})
	wantCode(t, "PodSandboxStats of an unknown pod", err, codes.NotFound)
}

// TestListPodSandboxStatsSilentGuest: a guest that never answers leaves
// its own pod out, once the stats deadline passes, and no other.
func TestListPodSandboxStatsSilentGuest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, f := newFakeService(t)
	talkative, silent := readyPod(t, s, "talkative"), readyPod(t, s, "silent")
	startedContainer(t, s, talkative, containerConfig("c"))
	startedContainer(t, s, silent, containerConfig("c"))
	f.hang("StatsContainer", silent)

	start := time.Now()
	resp, err := s.ListPodSandboxStats(ctx, &runtime.ListPodSandboxStatsRequest{})
	if err != nil {
		t.Fatalf("ListPodSandboxStats: %v", err)
	}
	if took := time.Since(start); took > statsDeadline+time.Second {
		t.Fatalf("took %v, the deadline is %v", took, statsDeadline)
	}
	if len(resp.Stats) != 1 || resp.Stats[0].Attributes.Id != talkative {
		t.Fatalf("stats of %d pods, want only %s", len(resp.Stats), talkative)
	}
	resp, err = s.ListPodSandboxStats(ctx, &runtime.ListPodSandboxStatsRequest{Filter: &runtime.PodSandboxStatsFilter{LabelSelector: map[string]string{"app": "talkative"}}})
	if err != nil || len(resp.Stats) != 1 {
		t.Fatalf("ListPodSandboxStats by label: %v, %v", resp, err)
	}
}
