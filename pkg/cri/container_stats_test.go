package cri

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestContainerStats(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, f := newFakeService(t)
	f.stats.CPUUsageNanos, f.stats.MemoryWorkingSetBytes, f.stats.MemoryLimitBytes, f.stats.PageFaults = 5000, 1<<20, 4<<20, 7
	pod := readyPod(t, s, "web")
	running := startedContainer(t, s, pod, containerConfig("app"))
	created := createdContainer(t, s, pod, containerConfig("idle"))

	resp, err := s.ContainerStats(ctx, &runtime.ContainerStatsRequest{ContainerId: running})
	if err != nil {
		t.Fatalf("ContainerStats: %v", err)
	}
	st := resp.Stats
	if st.Attributes.Id != running || st.Cpu.UsageCoreNanoSeconds.Value != 5000 || st.Memory.WorkingSetBytes.Value != 1<<20 ||
		st.Memory.AvailableBytes.GetValue() != 3<<20 || st.Memory.PageFaults.Value != 7 || st.WritableLayer == nil {
		t.Fatalf("stats of a running container: %v", st)
	}
	// A container that does not run has attributes, no usage.
	resp, err = s.ContainerStats(ctx, &runtime.ContainerStatsRequest{ContainerId: created})
	if err != nil || resp.Stats.Attributes.Id != created || resp.Stats.Cpu != nil {
		t.Fatalf("stats of a created container: %v, %v", resp, err)
	}
	_, err = s.ContainerStats(ctx, &runtime.ContainerStatsRequest{ContainerId: "nope"})
	wantCode(t, "ContainerStats of an unknown container", err, codes.NotFound)
	f.fail("StatsContainer", running, errors.New("cgroup gone"))
	_, err = s.ContainerStats(ctx, &runtime.ContainerStatsRequest{ContainerId: running})
	wantCode(t, "ContainerStats in a failing guest", err, codes.Unknown)
}

// TestListContainerStats: filters, and a container whose guest never
// answers is left out once the stats deadline passed.
func TestListContainerStats(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, f := newFakeService(t)
	p1, p2 := readyPod(t, s, "p1"), readyPod(t, s, "p2")
	a := startedContainer(t, s, p1, containerConfig("a"))
	b := startedContainer(t, s, p2, containerConfig("b"))
	for _, tc := range []struct {
		name   string
		filter *runtime.ContainerStatsFilter
		want   []string
	}{
		{"all", nil, []string{a, b}},
		{"by ID", &runtime.ContainerStatsFilter{Id: a}, []string{a}},
		{"by pod", &runtime.ContainerStatsFilter{PodSandboxId: p2}, []string{b}},
		{"by label", &runtime.ContainerStatsFilter{LabelSelector: map[string]string{"ctr": "a"}}, []string{a}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := s.ListContainerStats(ctx, &runtime.ListContainerStatsRequest{Filter: tc.filter})
			if err != nil {
				t.Fatal(err)
			}
			if got := idsOf(resp.Stats, func(st *runtime.ContainerStats) string { return st.Attributes.Id }); !sameIDs(got, tc.want) {
				t.Fatalf("stats of %v, want %v", got, tc.want)
			}
		})
	}

	f.hang("StatsContainer", p2)
	start := time.Now()
	resp, err := s.ListContainerStats(ctx, &runtime.ListContainerStatsRequest{})
	if took := time.Since(start); took > statsDeadline+time.Second {
		t.Fatalf("took %v, the deadline is %v", took, statsDeadline)
	}
	if err != nil || len(resp.Stats) != 1 || resp.Stats[0].Attributes.Id != a {
		t.Fatalf("stats with a silent guest: %v, %v; want only %s", resp, err, a)
	}
}
