package cri

import (
	"context"
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/vc-cri/vc-cri/pkg/nri"
	"github.com/vc-cri/vc-cri/pkg/sandbox"
)

// NRI plugins hear of each pod and container at the points containerd
// tells them, each call in the file of its CRI call: RunPodSandbox and
// CreateContainer before the record is visible (with plugin sync
// blocked until it is), StartContainer before the process starts, a
// container's stop once its exit is recorded (recordExit, or with its
// pod), a pod's stop once its VM and containers stopped and before its
// network goes (stopPod). Only the hooks before a call's effect can fail
// it; the others' errors are logged. This file converts the records to
// pkg/nri's values and answers its Synchronize.

// nriRuntime is the service as pkg/nri's Synchronize sees it.
type nriRuntime struct{ s *Service }

var _ nri.Runtime = nriRuntime{}

func (r nriRuntime) NRIPods(context.Context) []nri.Pod {
	var pods []nri.Pod
	for _, p := range r.s.pods.List() {
		pods = append(pods, nriPod(p))
	}
	return pods
}

func (r nriRuntime) NRIContainers(context.Context) []nri.Container {
	var ctrs []nri.Container
	for _, c := range r.s.containers.List() {
		ctrs = append(ctrs, nriContainer(c))
	}
	return ctrs
}

// nriPodOf is the pod of a container, or only its ID once the pod is
// gone.
func (s *Service) nriPodOf(id string) nri.Pod {
	p, err := s.pods.Get(id)
	if err != nil {
		return nri.Pod{ID: id}
	}
	return nriPod(p)
}

func nriPod(p podRecord) nri.Pod {
	md := p.Config.GetMetadata()
	pod := nri.Pod{
		ID: p.ID, Name: md.GetName(), Namespace: md.GetNamespace(), UID: md.GetUid(),
		Labels: p.Config.GetLabels(), Annotations: p.Config.GetAnnotations(),
		RuntimeHandler: p.Handler, CgroupParent: p.Config.GetLinux().GetCgroupParent(), IPs: p.IPs,
	}
	if p.NetNSPath != "" {
		pod.Namespaces = []specs.LinuxNamespace{{Type: specs.NetworkNamespace, Path: p.NetNSPath}}
	}
	return pod
}

// nriContainer is a container as its record has it: its config's
// command, environment and mounts, not the spec it was created with,
// which no record keeps.
func nriContainer(c containerRecord) nri.Container {
	ctr := nri.Container{
		ID: c.ID, PodID: c.PodID, Name: c.Config.GetMetadata().GetName(), State: nriState(c.State),
		Labels: c.Config.GetLabels(), Annotations: c.Config.GetAnnotations(),
		Args:      append(append([]string{}, c.Config.GetCommand()...), c.Config.GetArgs()...),
		CreatedAt: c.CreatedAt, StartedAt: c.StartedAt, FinishedAt: c.FinishedAt,
		ExitCode: c.ExitCode, Reason: c.Reason, Message: c.Message,
	}
	for _, kv := range c.Config.GetEnvs() {
		ctr.Env = append(ctr.Env, kv.Key+"="+string(kv.Value))
	}
	for _, m := range c.Config.GetMounts() {
		ctr.Mounts = append(ctr.Mounts, bindMount(m.HostPath, m.ContainerPath, m.Readonly, m.RecursiveReadOnly))
	}
	return ctr
}

func nriState(s runtime.ContainerState) nri.State {
	switch s {
	case runtime.ContainerState_CONTAINER_CREATED:
		return nri.StateCreated
	case runtime.ContainerState_CONTAINER_RUNNING:
		return nri.StateRunning
	case runtime.ContainerState_CONTAINER_EXITED:
		return nri.StateExited
	}
	return nri.StateUnknown
}

// nriCreateContainer has plugins adjust the spec of a container about
// to be created. They see its resources in the spec, where they adjust
// them too; cfg.Resources, which the runtimes apply, then takes them
// back. The device rules stay the spec's alone, as without NRI.
func (s *Service) nriCreateContainer(ctx context.Context, pod podRecord, ctr nri.Container, cfg *sandbox.ContainerConfig) error {
	if !s.opts.NRI.Enabled() {
		return nil
	}
	spec := cfg.CustomSpec
	var devices []specs.LinuxDeviceCgroup
	if spec.Linux.Resources != nil {
		devices = spec.Linux.Resources.Devices
	}
	res := cfg.Resources
	res.Devices = devices
	spec.Linux.Resources = &res
	ctr.Spec = spec
	if err := s.opts.NRI.CreateContainer(ctx, nriPod(pod), ctr); err != nil {
		return fmt.Errorf("container %q: %w", ctr.Name, err)
	}
	cfg.Resources = *spec.Linux.Resources
	cfg.Resources.Devices = nil
	return nil
}

// nriStopContainer tells plugins of a container whose exit is recorded;
// the monitor and the pod's stop call it, with no caller's context.
func (s *Service) nriStopContainer(c containerRecord) {
	if !s.opts.NRI.Enabled() {
		return
	}
	if err := s.opts.NRI.StopContainer(context.Background(), s.nriPodOf(c.PodID), nriContainer(c)); err != nil {
		klog.ErrorS(err, "NRI plugins failed the container's stop", "pod", c.PodID, "container", c.ID)
	}
}
