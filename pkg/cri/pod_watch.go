package cri

import (
	"context"
	"errors"
	"fmt"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/vc-cri/vc-cri/internal/exitcode"
	"github.com/vc-cri/vc-cri/pkg/runc"
	"github.com/vc-cri/vc-cri/pkg/sandbox"
)

// A ready pod's VM is watched from RunPodSandbox (or the daemon's start)
// until stopPod: a VM that ends by itself, or whose agent is lost, turns
// the pod NOTREADY and has its running containers' monitors record them
// EXITED, so that kubelet sees it and makes the pod again. StopPodSandbox
// and RemovePodSandbox then clean up as for any pod.

// podWatch is the watch of one pod's VM.
type podWatch struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when the watch has ended
}

// watchPod starts watching the pod's VM (or infra), unless it is watched
// already.
func (s *Service) watchPod(podID, handler string) {
	ctx, cancel := context.WithCancel(context.Background())
	w := &podWatch{cancel: cancel, done: make(chan struct{})}
	s.watchMu.Lock()
	if _, ok := s.watches[podID]; ok {
		s.watchMu.Unlock()
		cancel()
		return
	}
	s.watches[podID] = w
	s.watchMu.Unlock()
	go func() {
		defer close(w.done)
		defer logPanic("Watch of a pod's VM failed", "pod", podID)
		end, err := s.runtimeOf(handler).WatchSandbox(ctx, podID)
		if err != nil {
			if ctx.Err() == nil {
				klog.ErrorS(err, "Cannot watch the pod's VM", "pod", podID)
			}
			return
		}
		s.podEnded(ctx, podID, end)
	}()
}

// unwatchPod ends the watch of the pod's VM and waits until it has
// ended: a pod that is being stopped must not be reported as ended.
func (s *Service) unwatchPod(podID string) {
	s.watchMu.Lock()
	w, ok := s.watches[podID]
	delete(s.watches, podID)
	s.watchMu.Unlock()
	if ok {
		w.cancel()
		<-w.done
	}
}

// podEnded records a pod whose VM ended by itself: the pod NOTREADY, its
// running containers exited with exitcode.Unknown and the reason.
func (s *Service) podEnded(ctx context.Context, podID string, end sandbox.SandboxEnd) {
	klog.InfoS("Pod sandbox ended by itself", "pod", podID, "reason", end.Reason)
	// The containers' exits are recorded first: whoever sees the pod
	// NOTREADY sees its containers exited too.
	exit := containerExit{code: exitcode.Unknown, at: end.At, reason: end.Reason, message: endMessage(end.Reason)}
	for _, c := range s.containers.List() {
		if c.PodID == podID && c.State == runtime.ContainerState_CONTAINER_RUNNING {
			if err := s.forceExit(ctx, c.ID, exit); err != nil {
				klog.ErrorS(err, "Cannot record the container's exit", "pod", podID, "container", c.ID)
			}
		}
	}
	pod, err := s.pods.Update(podID, func(p *podRecord) error {
		if p.State != runtime.PodSandboxState_SANDBOX_READY {
			return errNotReady
		}
		p.State = runtime.PodSandboxState_SANDBOX_NOTREADY
		return nil
	})
	if err == nil {
		// As containerd does, the pod's own end is a CONTAINER_STOPPED
		// event that names the pod.
		s.events.publish(runtime.ContainerEventType_CONTAINER_STOPPED_EVENT, containerRecord{ID: pod.ID}, pod)
	}
}

func endMessage(reason string) string {
	switch reason {
	case sandbox.EndVMExited:
		return "the pod's VM exited"
	case sandbox.EndAgentLost:
		return "the pod's guest agent stopped answering"
	case runc.EndInfraExited:
		return "the pod's infra container exited"
	}
	return fmt.Sprintf("the pod's VM ended (%s)", reason)
}

var errNotReady = errors.New("not ready")
