package cri

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/vc-cri/vc-cri/internal/exitcode"
	"github.com/vc-cri/vc-cri/pkg/cri/store"
	"github.com/vc-cri/vc-cri/pkg/sandbox"
)

// StopContainer sends SIGTERM, waits up to the timeout for the container
// to exit, then kills what is left. Stopping a stopped or unknown
// container does nothing.
func (s *Service) StopContainer(ctx context.Context, req *runtime.StopContainerRequest) (*runtime.StopContainerResponse, error) {
	c, err := s.containers.Get(req.GetContainerId())
	if errors.Is(err, store.ErrNotFound) {
		return &runtime.StopContainerResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	if err := s.stopContainer(ctx, c, time.Duration(req.GetTimeout())*time.Second); err != nil {
		return nil, err
	}
	return &runtime.StopContainerResponse{}, nil
}

func (s *Service) stopContainer(ctx context.Context, c containerRecord, timeout time.Duration) error {
	if c.State != runtime.ContainerState_CONTAINER_RUNNING {
		return nil
	}
	if timeout > 0 {
		if err := s.opts.Sandboxes.SignalProcess(ctx, c.PodID, c.ID, c.ID, syscall.SIGTERM, false); err != nil {
			klog.V(2).InfoS("Cannot send SIGTERM", "container", c.ID, "err", err)
		}
		if s.waitExited(ctx, c.ID, timeout) {
			return nil
		}
	}
	if _, err := s.opts.Sandboxes.StopContainer(ctx, c.PodID, c.ID); err != nil && !errors.Is(err, sandbox.ErrInvalidState) {
		return fmt.Errorf("kill container %q: %w", c.ID, err)
	}
	if !s.waitExited(ctx, c.ID, 5*time.Second) {
		st, err := s.opts.Sandboxes.StatusContainer(ctx, c.PodID, c.ID)
		code := exitcode.Killed
		if err == nil && st.State.State == sandbox.StateStopped {
			code = st.ExitCode
		}
		s.stopIO(c.ID)
		s.recordExit(c.ID, code, time.Now())
	}
	return nil
}

// waitExited polls the container's record until it exited or the time
// is up; it tells whether it exited.
func (s *Service) waitExited(ctx context.Context, id string, timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		c, err := s.containers.Get(id)
		if err != nil || c.State == runtime.ContainerState_CONTAINER_EXITED {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-deadline.C:
			return false
		case <-tick.C:
		}
	}
}
