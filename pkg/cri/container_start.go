package cri

import (
	"context"
	"fmt"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/vc-cri/vc-cri/pkg/tracing"
)

// StartContainer starts the container's process in the guest and starts
// forwarding its output to its log.
func (s *Service) StartContainer(ctx context.Context, req *runtime.StartContainerRequest) (_ *runtime.StartContainerResponse, retErr error) {
	log := klog.FromContext(ctx)
	ctx, call := tracing.StartCall(ctx, tracer, "StartContainer")
	defer func() { call.End(log, "Container start phases", retErr) }()
	c, err := s.containers.Get(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	log = klog.LoggerWithValues(log, "pod", c.PodID)
	cio, err := s.newContainerIO(c)
	if err != nil {
		return nil, fmt.Errorf("log of container %q: %w", c.ID, err)
	}
	// RUNNING before the process runs, so that an exit recorded at once
	// finds it so, and with its monitor registered in the same update:
	// of two concurrent starts, one makes the change, the other fails.
	_, span := tracer.Start(ctx, "record_save")
	c, err = s.containers.Update(c.ID, func(r *containerRecord) error {
		if r.State != runtime.ContainerState_CONTAINER_CREATED {
			return failedPrecondition("container %q is %s, not created", r.ID, r.State)
		}
		r.State, r.StartedAt = runtime.ContainerState_CONTAINER_RUNNING, time.Now()
		s.addIO(r.ID, cio)
		return nil
	})
	span.End()
	if err != nil {
		cio.cancel()
		if cio.log != nil {
			cio.log.Close()
		}
		return nil, err
	}
	go s.monitor(c, cio)
	// The output readers come first, so that nothing the process writes
	// at once is lost.
	attachCtx, span := tracer.Start(ctx, "output_attach")
	err = s.attachOutput(attachCtx, c, cio)
	span.End()
	if err != nil {
		return nil, s.failStart(ctx, c.ID, fmt.Errorf("output of container %q: %w", c.ID, err))
	}
	// NRI plugins hear of the start before the process runs: its exit,
	// and their StopContainer, come after.
	np := s.nriPodOf(c.PodID)
	if err := s.opts.NRI.StartContainer(ctx, np, nriContainer(c)); err != nil {
		return nil, s.failStart(ctx, c.ID, fmt.Errorf("container %q: %w", c.ID, err))
	}
	if _, err := s.runtimeOf(c.Runtime).StartContainer(ctx, c.PodID, c.ID); err != nil {
		return nil, s.failStart(ctx, c.ID, fmt.Errorf("start container %q: %w", c.ID, err))
	}
	if err := s.opts.NRI.PostStartContainer(ctx, np, nriContainer(c)); err != nil {
		log.Error(err, "NRI plugins failed the container's post-start")
	}
	if pod, err := s.pods.Get(c.PodID); err == nil {
		s.events.publish(runtime.ContainerEventType_CONTAINER_STARTED_EVENT, c, pod)
	}
	log.Info("Container started")
	return &runtime.StartContainerResponse{}, nil
}

// failStart has the monitor record a container that could not start as
// exited, and returns err.
func (s *Service) failStart(ctx context.Context, id string, err error) error {
	exit := containerExit{code: 128, at: time.Now(), reason: "StartError", message: err.Error()}
	if ferr := s.forceExit(context.WithoutCancel(ctx), id, exit); ferr != nil {
		klog.ErrorS(ferr, "Cannot record the failed start", "container", id)
	}
	return err
}
