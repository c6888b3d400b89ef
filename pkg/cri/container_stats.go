package cri

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ContainerStats reports a running container's usage from its cgroup in
// the guest.
func (s *Service) ContainerStats(ctx context.Context, req *runtime.ContainerStatsRequest) (*runtime.ContainerStatsResponse, error) {
	c, err := s.containers.Get(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	st, err := s.containerStats(ctx, c)
	if err != nil {
		return nil, err
	}
	return &runtime.ContainerStatsResponse{Stats: st}, nil
}

func (s *Service) containerStats(ctx context.Context, c containerRecord) (*runtime.ContainerStats, error) {
	out := &runtime.ContainerStats{
		Attributes: &runtime.ContainerAttributes{
			Id: c.ID, Metadata: c.Config.Metadata, Labels: c.Config.Labels, Annotations: c.Config.Annotations,
		},
	}
	if c.State != runtime.ContainerState_CONTAINER_RUNNING {
		return out, nil
	}
	st, err := s.runtimeOf(c.Runtime).StatsContainer(ctx, c.PodID, c.ID)
	if err != nil {
		return nil, err
	}
	ts := st.Timestamp.UnixNano()
	out.Cpu = &runtime.CpuUsage{Timestamp: ts, UsageCoreNanoSeconds: &runtime.UInt64Value{Value: st.CPUUsageNanos}}
	out.Memory = &runtime.MemoryUsage{
		Timestamp:       ts,
		WorkingSetBytes: &runtime.UInt64Value{Value: st.MemoryWorkingSetBytes},
		UsageBytes:      &runtime.UInt64Value{Value: st.MemoryUsageBytes},
		RssBytes:        &runtime.UInt64Value{Value: st.MemoryRSSBytes},
		PageFaults:      &runtime.UInt64Value{Value: st.PageFaults},
		MajorPageFaults: &runtime.UInt64Value{Value: st.MajorPageFaults},
	}
	if st.MemoryLimitBytes > st.MemoryWorkingSetBytes && st.MemoryLimitBytes < 1<<62 {
		out.Memory.AvailableBytes = &runtime.UInt64Value{Value: st.MemoryLimitBytes - st.MemoryWorkingSetBytes}
	}
	out.WritableLayer = &runtime.FilesystemUsage{
		Timestamp: ts,
		FsId:      &runtime.FilesystemIdentifier{Mountpoint: s.opts.StateDir},
		UsedBytes: &runtime.UInt64Value{},
	}
	return out, nil
}

// ListContainerStats reports the usage of the containers that pass the
// filter, from the stats cache for running containers (stats_gather.go);
// a container whose guest does not answer in time, or that exited
// meanwhile, is left out.
func (s *Service) ListContainerStats(ctx context.Context, req *runtime.ListContainerStatsRequest) (*runtime.ListContainerStatsResponse, error) {
	f := req.GetFilter()
	var match []containerRecord
	for _, c := range s.containers.List() {
		if f != nil && ((f.Id != "" && c.ID != f.Id) || (f.PodSandboxId != "" && c.PodID != f.PodSandboxId) || !matchLabels(f.LabelSelector, c.Config.Labels)) {
			continue
		}
		match = append(match, c)
	}
	return &runtime.ListContainerStatsResponse{Stats: listStats(ctx, s.containerStatsCache, match,
		func(c containerRecord) (string, bool) {
			return c.ID, c.State == runtime.ContainerState_CONTAINER_RUNNING
		},
		s.containerStats)}, nil
}
