package cri

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// PodSandboxStats reports a pod's usage: the sum of its containers'.
func (s *Service) PodSandboxStats(ctx context.Context, req *runtime.PodSandboxStatsRequest) (*runtime.PodSandboxStatsResponse, error) {
	pod, err := s.pods.Get(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	st, err := s.podStats(ctx, pod)
	if err != nil {
		return nil, err
	}
	return &runtime.PodSandboxStatsResponse{Stats: st}, nil
}

// podStats sums the pod's containers' usage; it fails only when ctx
// ended before the guest answered.
func (s *Service) podStats(ctx context.Context, pod podRecord) (*runtime.PodSandboxStats, error) {
	linux := &runtime.LinuxPodSandboxStats{}
	var cpu, mem, rss, pids uint64
	var ts int64
	for _, c := range s.containers.List() {
		if c.PodID != pod.ID {
			continue
		}
		st, err := s.containerStats(ctx, c)
		if err != nil {
			continue
		}
		linux.Containers = append(linux.Containers, st)
		if st.Cpu != nil {
			cpu += st.Cpu.UsageCoreNanoSeconds.GetValue()
			ts = max(ts, st.Cpu.Timestamp)
		}
		if st.Memory != nil {
			mem += st.Memory.WorkingSetBytes.GetValue()
			rss += st.Memory.RssBytes.GetValue()
		}
	}
	linux.Cpu = &runtime.CpuUsage{Timestamp: ts, UsageCoreNanoSeconds: &runtime.UInt64Value{Value: cpu}}
	linux.Memory = &runtime.MemoryUsage{Timestamp: ts, WorkingSetBytes: &runtime.UInt64Value{Value: mem}, RssBytes: &runtime.UInt64Value{Value: rss}}
	linux.Process = &runtime.ProcessUsage{Timestamp: ts, ProcessCount: &runtime.UInt64Value{Value: pids}}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return &runtime.PodSandboxStats{
		Attributes: &runtime.PodSandboxAttributes{
			Id: pod.ID, Metadata: pod.Config.Metadata, Labels: pod.Config.Labels, Annotations: pod.Config.Annotations,
		},
		Linux: linux,
	}, nil
}

// ListPodSandboxStats reports the usage of the pods that pass the filter,
// from the stats cache for ready pods (stats_gather.go); a pod whose
// guest does not answer in time is left out.
func (s *Service) ListPodSandboxStats(ctx context.Context, req *runtime.ListPodSandboxStatsRequest) (*runtime.ListPodSandboxStatsResponse, error) {
	f := req.GetFilter()
	var match []podRecord
	for _, p := range s.pods.List() {
		if f != nil && ((f.Id != "" && p.ID != f.Id) || !matchLabels(f.LabelSelector, p.Config.Labels)) {
			continue
		}
		match = append(match, p)
	}
	return &runtime.ListPodSandboxStatsResponse{Stats: listStats(ctx, s.podStatsCache, match,
		func(p podRecord) (string, bool) { return p.ID, p.State == runtime.PodSandboxState_SANDBOX_READY },
		s.podStats)}, nil
}
