package nri

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/containerd/nri/pkg/api"
	"k8s.io/klog/v2"
)

func toPod(p Pod) *api.PodSandbox {
	return &api.PodSandbox{
		Id:             p.ID,
		Name:           p.Name,
		Uid:            p.UID,
		Namespace:      p.Namespace,
		Labels:         maps.Clone(p.Labels),
		Annotations:    maps.Clone(p.Annotations),
		RuntimeHandler: p.RuntimeHandler,
		Linux: &api.LinuxPodSandbox{
			CgroupParent: p.CgroupParent,
			Namespaces:   api.FromOCILinuxNamespaces(p.Namespaces),
		},
		Ips: slices.Clone(p.IPs),
	}
}

func toContainer(c Container) *api.Container {
	out := &api.Container{
		Id:            c.ID,
		PodSandboxId:  c.PodID,
		Name:          c.Name,
		State:         toState(c.State),
		Labels:        maps.Clone(c.Labels),
		Annotations:   maps.Clone(c.Annotations),
		Args:          slices.Clone(c.Args),
		Env:           slices.Clone(c.Env),
		Mounts:        api.FromOCIMounts(c.Mounts),
		CreatedAt:     unixNano(c.CreatedAt),
		StartedAt:     unixNano(c.StartedAt),
		FinishedAt:    unixNano(c.FinishedAt),
		ExitCode:      c.ExitCode,
		StatusReason:  c.Reason,
		StatusMessage: c.Message,
	}
	s := c.Spec
	if s == nil {
		return out
	}
	// The spec's annotations are the config's and the runtime's own.
	if s.Annotations != nil {
		out.Annotations = maps.Clone(s.Annotations)
	}
	if p := s.Process; p != nil {
		out.Args, out.Env = slices.Clone(p.Args), slices.Clone(p.Env)
		for _, l := range p.Rlimits {
			out.Rlimits = append(out.Rlimits, &api.POSIXRlimit{Type: l.Type, Hard: l.Hard, Soft: l.Soft})
		}
	}
	out.Mounts = api.FromOCIMounts(s.Mounts)
	out.Hooks = api.FromOCIHooks(s.Hooks)
	if l := s.Linux; l != nil {
		out.Linux = &api.LinuxContainer{
			Namespaces:  api.FromOCILinuxNamespaces(l.Namespaces),
			Resources:   api.FromOCILinuxResources(l.Resources, s.Annotations),
			CgroupsPath: l.CgroupsPath,
			Sysctl:      maps.Clone(l.Sysctl),
		}
		if p := s.Process; p != nil && p.OOMScoreAdj != nil {
			out.Linux.OomScoreAdj = api.Int(p.OOMScoreAdj)
		}
	}
	return out
}

// unixNano is t in nanoseconds, 0 for a time not set.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func toState(s State) api.ContainerState {
	switch s {
	case StateCreated:
		return api.ContainerState_CONTAINER_CREATED
	case StateRunning:
		return api.ContainerState_CONTAINER_RUNNING
	case StateExited:
		return api.ContainerState_CONTAINER_STOPPED
	}
	return api.ContainerState_CONTAINER_UNKNOWN
}

// klogLogger carries nri's log lines to klog: its debug lines at V(4).
type klogLogger struct{}

func (klogLogger) Debugf(_ context.Context, format string, args ...any) {
	klog.V(4).InfoS(fmt.Sprintf(format, args...), "component", "nri")
}

func (klogLogger) Infof(_ context.Context, format string, args ...any) {
	klog.InfoS(fmt.Sprintf(format, args...), "component", "nri")
}

func (klogLogger) Warnf(_ context.Context, format string, args ...any) {
	klog.InfoS(fmt.Sprintf(format, args...), "component", "nri", "level", "warning")
}

func (klogLogger) Errorf(_ context.Context, format string, args ...any) {
	klog.ErrorS(nil, fmt.Sprintf(format, args...), "component", "nri")
}
