package cri

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/vc-cri/vc-cri/pkg/cri/crilog"
)

// containerIO carries a started container's output to its log file and
// to attached clients, and records the container's exit.
type containerIO struct {
	stdin  io.WriteCloser // nil without stdin
	log    *crilog.File   // nil without a log path
	cancel context.CancelFunc

	// mu guards attached.
	mu       sync.Mutex
	attached map[*attachment]struct{}
}

// attachment is one attached client's output.
type attachment struct {
	stdout, stderr io.Writer
}

// fanout writes what it is given to each attached client's stream.
type fanout struct {
	cio    *containerIO
	stderr bool
}

func (f fanout) Write(p []byte) (int, error) {
	f.cio.mu.Lock()
	defer f.cio.mu.Unlock()
	for a := range f.cio.attached {
		w := a.stdout
		if f.stderr {
			w = a.stderr
		}
		if w != nil {
			if _, err := w.Write(p); err != nil {
				delete(f.cio.attached, a)
			}
		}
	}
	return len(p), nil
}

// startIO opens the container's streams and starts forwarding them, and
// waits in the background for the container's exit.
func (s *Service) startIO(ctx context.Context, c containerRecord) error {
	ctx, cancel := context.WithCancel(ctx)
	stdin, stdout, stderr, err := s.opts.Sandboxes.IOStream(ctx, c.PodID, c.ID, c.ID)
	if err != nil {
		cancel()
		return err
	}
	cio := &containerIO{cancel: cancel, attached: map[*attachment]struct{}{}}
	if c.Config.Stdin {
		cio.stdin = stdin
	}
	if c.LogPath != "" {
		if cio.log, err = crilog.Open(c.LogPath); err != nil {
			cancel()
			return err
		}
	}
	s.ioMu.Lock()
	s.io[c.ID] = cio
	s.ioMu.Unlock()

	var copies sync.WaitGroup
	for _, out := range []struct {
		r      io.Reader
		stream string
	}{{stdout, crilog.Stdout}, {stderr, crilog.Stderr}} {
		copies.Add(1)
		go func() {
			defer copies.Done()
			r := io.TeeReader(out.r, fanout{cio, out.stream == crilog.Stderr})
			var w io.Writer = io.Discard
			if cio.log != nil {
				w = cio.log
			}
			if err := crilog.Copy(w, r, out.stream); err != nil && !errors.Is(err, context.Canceled) && ctx.Err() == nil {
				klog.V(2).InfoS("Container output ended", "container", c.ID, "stream", out.stream, "err", err)
			}
		}()
	}
	go func() {
		code, err := s.opts.Sandboxes.WaitProcess(ctx, c.PodID, c.ID, c.ID)
		if err != nil {
			if ctx.Err() == nil {
				klog.ErrorS(err, "Lost the container's exit", "container", c.ID)
			}
			return
		}
		// The output ends with the process; give it a moment to drain.
		drained := make(chan struct{})
		go func() { copies.Wait(); close(drained) }()
		select {
		case <-drained:
		case <-time.After(2 * time.Second):
		}
		oom := false
		if st, err := s.opts.Sandboxes.StatusContainer(ctx, c.PodID, c.ID); err == nil {
			oom = st.OOMKilled
		}
		s.recordExitReason(c.ID, code, time.Now(), oom)
		s.stopIO(c.ID)
	}()
	return nil
}

// stopIO stops forwarding a container's output.
func (s *Service) stopIO(id string) {
	s.ioMu.Lock()
	cio, ok := s.io[id]
	delete(s.io, id)
	s.ioMu.Unlock()
	if !ok {
		return
	}
	cio.cancel()
	if cio.log != nil {
		cio.log.Close()
	}
}

func (s *Service) containerIO(id string) (*containerIO, bool) {
	s.ioMu.Lock()
	defer s.ioMu.Unlock()
	cio, ok := s.io[id]
	return cio, ok
}

// recordExit marks a container exited, once.
func (s *Service) recordExit(id string, code int32, at time.Time) {
	s.recordExitReason(id, code, at, false)
}

// recordExitReason is recordExit knowing whether the OOM killer ended it.
func (s *Service) recordExitReason(id string, code int32, at time.Time, oomKilled bool) {
	c, err := s.containers.Update(id, func(r *containerRecord) error {
		if r.State == runtime.ContainerState_CONTAINER_EXITED {
			return errAlreadyExited
		}
		r.State, r.ExitCode, r.FinishedAt = runtime.ContainerState_CONTAINER_EXITED, code, at
		r.Reason = exitReason(code)
		if oomKilled {
			r.Reason = reasonOOMKilled
		}
		if r.StartedAt.IsZero() {
			r.StartedAt = at
		}
		return nil
	})
	if err != nil {
		return
	}
	klog.InfoS("Container exited", "pod", c.PodID, "container", id, "exitCode", code)
	if pod, err := s.pods.Get(c.PodID); err == nil {
		s.events.publish(runtime.ContainerEventType_CONTAINER_STOPPED_EVENT, c, pod)
	}
}

var errAlreadyExited = errors.New("already exited")
