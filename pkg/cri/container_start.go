package cri

import (
	"context"
	"fmt"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// StartContainer starts the container's process in the guest and starts
// forwarding its output to its log.
func (s *Service) StartContainer(ctx context.Context, req *runtime.StartContainerRequest) (*runtime.StartContainerResponse, error) {
	c, err := s.containers.Get(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	if c.State != runtime.ContainerState_CONTAINER_CREATED {
		return nil, failedPrecondition("container %q is %s, not created", c.ID, c.State)
	}
	// Running before the process runs, so that an exit recorded at once
	// finds it so; output readers are attached first, so that nothing
	// the process writes at once is lost.
	c, err = s.containers.Update(c.ID, func(r *containerRecord) error {
		r.State, r.StartedAt = runtime.ContainerState_CONTAINER_RUNNING, time.Now()
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := s.startIO(context.WithoutCancel(ctx), c); err != nil {
		s.failStart(c.ID, err)
		return nil, err
	}
	if _, err := s.opts.Sandboxes.StartContainer(ctx, c.PodID, c.ID); err != nil {
		s.stopIO(c.ID)
		s.failStart(c.ID, err)
		return nil, fmt.Errorf("start container %q: %w", c.ID, err)
	}
	if pod, err := s.pods.Get(c.PodID); err == nil {
		s.events.publish(runtime.ContainerEventType_CONTAINER_STARTED_EVENT, c, pod)
	}
	klog.FromContext(ctx).Info("Container started", "pod", c.PodID)
	return &runtime.StartContainerResponse{}, nil
}

// failStart records a container that could not start as exited.
func (s *Service) failStart(id string, err error) {
	s.recordExit(id, 128, time.Now())
	_, _ = s.containers.Update(id, func(r *containerRecord) error {
		r.Reason, r.Message = "StartError", err.Error()
		return nil
	})
}
