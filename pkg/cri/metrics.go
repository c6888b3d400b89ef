package cri

import (
	"context"
	"time"

	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/vc-cri/vc-cri/pkg/sandbox"
)

// CRI metrics, named and labelled as cAdvisor's, from the guest's cgroups
// and processes (per container), the guest's interfaces (per pod), the
// host filesystem that holds container roots, and the CRI configuration.

// baseLabels label every metric: the container (or, for the pod's network,
// the pod) it is about.
var baseLabels = []string{"id", "name", "image"}

// metricInput is what a container's metrics are computed from.
type metricInput struct {
	c     containerRecord
	stats sandbox.ContainerStats
	fs    unix.Statfs_t
	now   time.Time
}

// sample is one value of a metric, with the labels beyond baseLabels.
type sample struct {
	labels []string
	value  uint64
}

type metricDef struct {
	name, help string
	kind       runtime.MetricType
	labels     []string // beyond baseLabels
	values     func(*metricInput) []sample
}

func one(v uint64) []sample { return []sample{{value: v}} }

func seconds(nanos uint64) uint64 { return nanos / uint64(time.Second) }

var (
	counter = runtime.MetricType_COUNTER
	gauge   = runtime.MetricType_GAUGE
)

// containerMetrics are the per-container metrics.
var containerMetrics = []metricDef{
	{"container_cpu_usage_seconds_total", "Cumulative CPU time consumed in seconds.", counter, nil, func(m *metricInput) []sample { return one(seconds(m.stats.CPUUsageNanos)) }},
	{"container_cpu_user_seconds_total", "Cumulative user CPU time consumed in seconds.", counter, nil, func(m *metricInput) []sample { return one(seconds(m.stats.CPUUserNanos)) }},
	{"container_cpu_system_seconds_total", "Cumulative system CPU time consumed in seconds.", counter, nil, func(m *metricInput) []sample { return one(seconds(m.stats.CPUSystemNanos)) }},
	{"container_cpu_cfs_periods_total", "Number of elapsed enforcement period intervals.", counter, nil, func(m *metricInput) []sample { return one(m.stats.CPUPeriods) }},
	{"container_cpu_cfs_throttled_periods_total", "Number of throttled period intervals.", counter, nil, func(m *metricInput) []sample { return one(m.stats.CPUThrottledPeriods) }},
	{"container_cpu_cfs_throttled_seconds_total", "Total time duration the container has been throttled.", counter, nil, func(m *metricInput) []sample { return one(seconds(m.stats.CPUThrottledNanos)) }},
	{"container_memory_usage_bytes", "Current memory usage in bytes, including all memory regardless of when it was accessed.", gauge, nil, func(m *metricInput) []sample { return one(m.stats.MemoryUsageBytes) }},
	{"container_memory_max_usage_bytes", "Maximum memory usage recorded in bytes.", gauge, nil, func(m *metricInput) []sample { return one(m.stats.MemoryMaxUsageBytes) }},
	{"container_memory_working_set_bytes", "Current working set in bytes.", gauge, nil, func(m *metricInput) []sample { return one(m.stats.MemoryWorkingSetBytes) }},
	{"container_memory_rss", "Size of RSS in bytes.", gauge, nil, func(m *metricInput) []sample { return one(m.stats.MemoryRSSBytes) }},
	{"container_memory_cache", "Number of bytes of page cache memory.", gauge, nil, func(m *metricInput) []sample { return one(m.stats.MemoryCacheBytes) }},
	{"container_memory_mapped_file", "Size of memory mapped files in bytes.", gauge, nil, func(m *metricInput) []sample { return one(m.stats.MemoryMappedFileBytes) }},
	{"container_memory_kernel_usage", "Size of kernel memory allocated in bytes.", gauge, nil, func(m *metricInput) []sample { return one(m.stats.MemoryKernelBytes) }},
	{"container_memory_swap", "Container swap usage in bytes.", gauge, nil, func(m *metricInput) []sample { return one(m.stats.MemorySwapBytes) }},
	{"container_memory_failcnt", "Number of memory usage hits limits.", counter, nil, func(m *metricInput) []sample { return one(m.stats.MemoryFailcnt) }},
	{"container_memory_failures_total", "Cumulative count of memory allocation failures.", counter, []string{"failure_type", "scope"}, func(m *metricInput) []sample {
		return []sample{{[]string{"pgfault", "container"}, m.stats.PageFaults}, {[]string{"pgmajfault", "container"}, m.stats.MajorPageFaults}}
	}},
	{"container_oom_events_total", "Count of out of memory events observed for the container.", counter, nil, func(m *metricInput) []sample { return one(m.stats.OOMEvents) }},
	{"container_processes", "Number of processes running inside the container.", gauge, nil, func(m *metricInput) []sample { return one(m.stats.Pids) }},
	{"container_threads", "Number of threads running inside the container.", gauge, nil, func(m *metricInput) []sample { return one(m.stats.Threads) }},
	{"container_threads_max", "Maximum number of threads allowed inside the container, 0 for no limit.", gauge, nil, func(m *metricInput) []sample { return one(m.stats.ThreadsMax) }},
	{"container_file_descriptors", "Number of open file descriptors for the container.", gauge, nil, func(m *metricInput) []sample { return one(m.stats.FileDescriptors) }},
	{"container_sockets", "Number of open sockets for the container.", gauge, nil, func(m *metricInput) []sample { return one(m.stats.Sockets) }},
	{"container_ulimits_soft", "Soft ulimit values for the container root process.", gauge, []string{"ulimit"}, func(m *metricInput) []sample {
		return []sample{{[]string{"max_open_files"}, m.stats.UlimitNofileSoft}}
	}},
	{"container_fs_limit_bytes", "Number of bytes that can be consumed by the container on this filesystem.", gauge, []string{"device"}, func(m *metricInput) []sample {
		return []sample{{[]string{"rootfs"}, m.fs.Blocks * uint64(m.fs.Bsize)}}
	}},
	{"container_fs_usage_bytes", "Number of bytes that are consumed by the container on this filesystem.", gauge, []string{"device"}, func(m *metricInput) []sample {
		return []sample{{[]string{"rootfs"}, (m.fs.Blocks - m.fs.Bfree) * uint64(m.fs.Bsize)}}
	}},
	{"container_fs_inodes_total", "Number of available inodes.", gauge, []string{"device"}, func(m *metricInput) []sample {
		return []sample{{[]string{"rootfs"}, m.fs.Files}}
	}},
	{"container_fs_inodes_free", "Number of available inodes.", gauge, []string{"device"}, func(m *metricInput) []sample {
		return []sample{{[]string{"rootfs"}, m.fs.Ffree}}
	}},
	{"container_spec_cpu_period", "CPU period of the container.", gauge, nil, func(m *metricInput) []sample {
		return one(uint64(m.c.Config.GetLinux().GetResources().GetCpuPeriod()))
	}},
	{"container_spec_cpu_quota", "CPU quota of the container.", gauge, nil, func(m *metricInput) []sample {
		return one(uint64(max(m.c.Config.GetLinux().GetResources().GetCpuQuota(), 0)))
	}},
	{"container_spec_cpu_shares", "CPU share of the container.", gauge, nil, func(m *metricInput) []sample {
		return one(uint64(m.c.Config.GetLinux().GetResources().GetCpuShares()))
	}},
	{"container_spec_memory_limit_bytes", "Memory limit for the container.", gauge, nil, func(m *metricInput) []sample {
		return one(uint64(m.c.Config.GetLinux().GetResources().GetMemoryLimitInBytes()))
	}},
	{"container_spec_memory_swap_limit_bytes", "Memory swap limit for the container.", gauge, nil, func(m *metricInput) []sample {
		return one(uint64(m.c.Config.GetLinux().GetResources().GetMemorySwapLimitInBytes()))
	}},
	{"container_start_time_seconds", "Start time of the container since unix epoch in seconds.", gauge, nil, func(m *metricInput) []sample {
		return one(uint64(m.c.StartedAt.Unix()))
	}},
	{"container_last_seen", "Last time a container was seen by the exporter.", gauge, nil, func(m *metricInput) []sample {
		return one(uint64(m.now.Unix()))
	}},
}

// networkMetrics are per pod: its containers share the guest's network.
var networkMetrics = []struct {
	name, help string
	value      func(sandbox.InterfaceStats) uint64
}{
	{"container_network_receive_bytes_total", "Cumulative count of bytes received.", func(i sandbox.InterfaceStats) uint64 { return i.RxBytes }},
	{"container_network_receive_packets_total", "Cumulative count of packets received.", func(i sandbox.InterfaceStats) uint64 { return i.RxPackets }},
	{"container_network_receive_errors_total", "Cumulative count of errors encountered while receiving.", func(i sandbox.InterfaceStats) uint64 { return i.RxErrors }},
	{"container_network_receive_packets_dropped_total", "Cumulative count of packets dropped while receiving.", func(i sandbox.InterfaceStats) uint64 { return i.RxDropped }},
	{"container_network_transmit_bytes_total", "Cumulative count of bytes transmitted.", func(i sandbox.InterfaceStats) uint64 { return i.TxBytes }},
	{"container_network_transmit_packets_total", "Cumulative count of packets transmitted.", func(i sandbox.InterfaceStats) uint64 { return i.TxPackets }},
	{"container_network_transmit_errors_total", "Cumulative count of errors encountered while transmitting.", func(i sandbox.InterfaceStats) uint64 { return i.TxErrors }},
	{"container_network_transmit_packets_dropped_total", "Cumulative count of packets dropped while transmitting.", func(i sandbox.InterfaceStats) uint64 { return i.TxDropped }},
}

// blockMetrics are described but have no values: a container's files are
// on the host, reached through the shared filesystem, and its guest has no
// block device to count reads and writes on.
var blockMetrics = []metricDef{
	{"container_blkio_device_usage_total", "Blkio device bytes usage.", counter, []string{"device", "major", "minor", "operation"}, nil},
	{"container_fs_reads_bytes_total", "Cumulative count of bytes read.", counter, []string{"device"}, nil},
	{"container_fs_reads_total", "Cumulative count of reads completed.", counter, []string{"device"}, nil},
	{"container_fs_writes_bytes_total", "Cumulative count of bytes written.", counter, []string{"device"}, nil},
	{"container_fs_writes_total", "Cumulative count of writes completed.", counter, []string{"device"}, nil},
}

// ListMetricDescriptors describes every metric ListPodSandboxMetrics
// reports.
func (s *Service) ListMetricDescriptors(context.Context, *runtime.ListMetricDescriptorsRequest) (*runtime.ListMetricDescriptorsResponse, error) {
	resp := &runtime.ListMetricDescriptorsResponse{}
	for _, d := range blockMetrics {
		resp.Descriptors = append(resp.Descriptors, &runtime.MetricDescriptor{
			Name: d.name, Help: d.help, LabelKeys: append(append([]string{}, baseLabels...), d.labels...),
		})
	}
	for _, d := range containerMetrics {
		resp.Descriptors = append(resp.Descriptors, &runtime.MetricDescriptor{
			Name: d.name, Help: d.help, LabelKeys: append(append([]string{}, baseLabels...), d.labels...),
		})
	}
	for _, d := range networkMetrics {
		resp.Descriptors = append(resp.Descriptors, &runtime.MetricDescriptor{
			Name: d.name, Help: d.help, LabelKeys: append(append([]string{}, baseLabels...), "interface"),
		})
	}
	return resp, nil
}

// ListPodSandboxMetrics reports the metrics of every ready pod and its
// running containers.
func (s *Service) ListPodSandboxMetrics(ctx context.Context, _ *runtime.ListPodSandboxMetricsRequest) (*runtime.ListPodSandboxMetricsResponse, error) {
	var fs unix.Statfs_t
	if err := unix.Statfs(s.opts.Images.Root(), &fs); err != nil {
		return nil, err
	}
	now := time.Now()
	resp := &runtime.ListPodSandboxMetricsResponse{}
	for _, pod := range s.pods.List() {
		if pod.State != runtime.PodSandboxState_SANDBOX_READY {
			continue
		}
		pm := &runtime.PodSandboxMetrics{PodSandboxId: pod.ID}
		var interfaces []sandbox.InterfaceStats
		for _, c := range s.containers.List() {
			if c.PodID != pod.ID || c.State != runtime.ContainerState_CONTAINER_RUNNING {
				continue
			}
			st, err := s.runtimeOf(c.Runtime).StatsContainer(ctx, c.PodID, c.ID)
			if err != nil {
				continue // it may have exited meanwhile
			}
			interfaces = st.Interfaces
			in := &metricInput{c: c, stats: st, fs: fs, now: now}
			cm := &runtime.ContainerMetrics{ContainerId: c.ID}
			base := []string{c.ID, c.Config.Metadata.Name, c.ImageRef}
			for _, d := range containerMetrics {
				for _, v := range d.values(in) {
					cm.Metrics = append(cm.Metrics, &runtime.Metric{
						Name: d.name, Timestamp: now.UnixNano(), MetricType: d.kind,
						LabelValues: append(append([]string{}, base...), v.labels...),
						Value:       &runtime.UInt64Value{Value: v.value},
					})
				}
			}
			pm.ContainerMetrics = append(pm.ContainerMetrics, cm)
		}
		for _, i := range interfaces {
			for _, d := range networkMetrics {
				pm.Metrics = append(pm.Metrics, &runtime.Metric{
					Name: d.name, Timestamp: now.UnixNano(), MetricType: counter,
					LabelValues: []string{pod.ID, pod.Config.Metadata.Name, "", i.Name},
					Value:       &runtime.UInt64Value{Value: d.value(i)},
				})
			}
		}
		resp.PodMetrics = append(resp.PodMetrics, pm)
	}
	return resp, nil
}
