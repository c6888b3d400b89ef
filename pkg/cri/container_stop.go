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

// killReportTimeout bounds the wait for the guest to report the exit of
// a container it was told to kill.
const killReportTimeout = 5 * time.Second

// stopContainer ends a running container and returns once its monitor
// has recorded the exit.
func (s *Service) stopContainer(ctx context.Context, c containerRecord, timeout time.Duration) error {
	cio, ok := s.containerIO(c.ID)
	if !ok {
		// No monitor: the exit is recorded, or it never started.
		return nil
	}
	if timeout > 0 {
		if err := s.runtimeOf(c.Runtime).SignalProcess(ctx, c.PodID, c.ID, c.ID, syscall.SIGTERM, false); err != nil {
			klog.V(2).InfoS("Cannot send SIGTERM", "container", c.ID, "err", err)
		}
		if exited, err := waitExited(ctx, cio, timeout); exited || err != nil {
			return err
		}
	}
	if _, err := s.runtimeOf(c.Runtime).StopContainer(ctx, c.PodID, c.ID); err != nil && !errors.Is(err, sandbox.ErrInvalidState) {
		return fmt.Errorf("kill container %q: %w", c.ID, err)
	}
	if exited, err := waitExited(ctx, cio, killReportTimeout); exited || err != nil {
		return err
	}
	// Killed, and the report of it lost on the way: the sandbox's record
	// has the exit, else the kill is what ended it.
	exit := containerExit{code: exitcode.Killed, at: time.Now()}
	if st, err := s.runtimeOf(c.Runtime).StatusContainer(ctx, c.PodID, c.ID); err == nil && st.State.State == sandbox.StateStopped {
		exit.code = st.ExitCode
	}
	return s.forceExit(ctx, c.ID, exit)
}
