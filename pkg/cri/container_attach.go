package cri

import (
	"context"
	"io"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
)

// Attach returns the URL where the client attaches to the container's
// own process.
func (s *Service) Attach(_ context.Context, req *runtime.AttachRequest) (*runtime.AttachResponse, error) {
	if err := s.checkRunning(req.GetContainerId()); err != nil {
		return nil, err
	}
	return s.streaming.server.GetAttach(req)
}

// attach joins a client to the container's output, which also goes on to
// its log, and to its stdin, until the container exits or the client
// leaves.
func (s *Service) attach(ctx context.Context, containerID string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	c, err := s.containers.Get(containerID)
	if err != nil {
		return err
	}
	cio, ok := s.containerIO(containerID)
	if !ok {
		return failedPrecondition("container %q is not running", containerID)
	}
	a := &attachment{stdout: writerOrNil(out), stderr: writerOrNil(errw)}
	cio.mu.Lock()
	cio.attached[a] = struct{}{}
	cio.mu.Unlock()
	defer func() {
		cio.mu.Lock()
		delete(cio.attached, a)
		cio.mu.Unlock()
	}()

	if tty && resize != nil {
		go func() {
			for size := range resize {
				_ = s.runtimeOf(c.Runtime).WinsizeProcess(ctx, c.PodID, c.ID, c.ID, uint32(size.Height), uint32(size.Width))
			}
		}()
	}
	stdinDone := make(chan struct{})
	cio.mu.Lock()
	stdin := cio.stdin
	cio.mu.Unlock()
	if in != nil && stdin != nil {
		go func() {
			defer close(stdinDone)
			_, _ = io.Copy(stdin, in)
			if c.Config.StdinOnce {
				_ = stdin.Close()
			}
		}()
	}
	// Until the container exits or the client goes away.
	select {
	case <-cio.exited:
	case <-ctx.Done():
	case <-stdinDone:
		if c.Config.StdinOnce {
			<-cio.exited
		} else {
			select {
			case <-cio.exited:
			case <-ctx.Done():
			}
		}
	}
	return nil
}
