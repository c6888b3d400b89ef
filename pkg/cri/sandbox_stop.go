package cri

import (
	"context"
	"errors"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/vc-cri/vc-cri/internal/exitcode"
	"github.com/vc-cri/vc-cri/pkg/cri/store"
	"github.com/vc-cri/vc-cri/pkg/sandbox"
)

// StopPodSandbox ends the pod's containers and VM and tears its network
// down. Stopping a stopped or unknown pod does nothing: the call is
// idempotent, as CRI asks.
func (s *Service) StopPodSandbox(ctx context.Context, req *runtime.StopPodSandboxRequest) (*runtime.StopPodSandboxResponse, error) {
	pod, err := s.pods.Get(req.GetPodSandboxId())
	if errors.Is(err, store.ErrNotFound) {
		return &runtime.StopPodSandboxResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	if err := s.stopPod(ctx, pod); err != nil {
		return nil, err
	}
	return &runtime.StopPodSandboxResponse{}, nil
}

func (s *Service) stopPod(ctx context.Context, pod podRecord) error {
	// Stopping the VM ends it: the watch must not report that.
	s.unwatchPod(pod.ID)
	// NRI plugins hear of a pod's stop once, its first (pkg/nri keeps
	// concurrent stops to one too).
	stopped := func(ctx context.Context) {
		if pod.TornDown {
			return
		}
		if err := s.opts.NRI.StopPodSandbox(ctx, nriPod(pod)); err != nil {
			klog.FromContext(ctx).Error(err, "NRI plugins failed the pod's stop")
		}
	}
	if err := s.teardownPod(ctx, s.runtimeOf(pod.Runtime), pod.ID, pod.NetNSPath, pod.hostNetwork(), stopped); err != nil {
		return err
	}
	_, err := s.pods.Update(pod.ID, func(p *podRecord) error {
		p.State, p.TornDown = runtime.PodSandboxState_SANDBOX_NOTREADY, true
		return nil
	})
	klog.FromContext(ctx).Info("Pod sandbox stopped")
	return err
}

// recordStoppedContainers marks every container of a stopped pod exited:
// a running one with the exit its sandbox recorded (its monitor does),
// one never started as it is.
func (s *Service) recordStoppedContainers(ctx context.Context, rt sandboxes, podID string) {
	st, _ := rt.StatusSandbox(ctx, podID)
	exits := map[string]sandbox.ContainerStatus{}
	for _, c := range st.ContainersStatus {
		exits[c.ID] = c
	}
	for _, c := range s.containers.List() {
		if c.PodID != podID {
			continue
		}
		exit := containerExit{code: exitcode.Killed, at: time.Now()}
		if e, ok := exits[c.ID]; ok && !e.FinishedAt.IsZero() {
			exit.code, exit.at = e.ExitCode, e.FinishedAt
		}
		switch c.State {
		case runtime.ContainerState_CONTAINER_RUNNING:
			if err := s.forceExit(ctx, c.ID, exit); err != nil {
				klog.ErrorS(err, "Cannot record the container's exit", "pod", podID, "container", c.ID)
			}
		case runtime.ContainerState_CONTAINER_CREATED:
			c, err := s.containers.Update(c.ID, func(r *containerRecord) error {
				if r.State != runtime.ContainerState_CONTAINER_CREATED {
					return errNotRunning
				}
				setExited(r, exit)
				return nil
			})
			if err == nil {
				s.nriStopContainer(c)
			}
		}
	}
}
