package cri

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/vc-cri/vc-cri/internal/exitcode"
	"github.com/vc-cri/vc-cri/pkg/cri/crilog"
)

// A container's states, as this package records them (containerRecord),
// and who moves it between them:
//
//	           CreateContainer            StartContainer
//	(none) ─────────────────► CREATED ─────────────────► RUNNING
//	                             │                          │
//	                             │ its pod stopped          │ its monitor, alone
//	                             ▼                          ▼
//	                           EXITED ◄─────────────────────┘
//
// StartContainer moves CREATED to RUNNING inside one update of the
// record, which also registers the container's containerIO: a second
// StartContainer finds it RUNNING and fails, and whoever sees a running
// container finds its monitor. From then on the monitor is the only
// writer of the container's exit. It records the first of: the guest's
// report that the process exited, or an exit forced on it (forceExit)
// because the start failed, a kill went unreported, or the pod's VM
// ended or was stopped. It then closes exited, which stop and attach
// wait on.

// containerIO is a started container's monitor: it carries the
// container's output to its log and to attached clients, and records
// its exit.
type containerIO struct {
	log    *crilog.File // nil without a log path or when the runtime writes it; set at creation
	ctx    context.Context
	cancel context.CancelFunc // ends the wait and the output copies

	// forced carries an exit forced on the monitor; the first one sent
	// wins, and only until the guest's report comes.
	forced chan containerExit
	// exited is closed once the exit is recorded.
	exited chan struct{}
	// outputDone is closed when the output copies have ended, or when
	// there were none to start.
	outputDone chan struct{}

	// mu guards stdin and attached.
	mu       sync.Mutex
	stdin    io.WriteCloser // nil without stdin, or before the output is attached
	attached map[*attachment]struct{}
}

// containerExit is how a container's process ended.
type containerExit struct {
	code      int32
	at        time.Time
	oomKilled bool
	reason    string // empty: the reason its code gives (exitReason)
	message   string
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

// newContainerIO opens the container's log, unless its runtime writes it
// (logKeeper), and makes its monitor, which the caller registers (addIO)
// and starts (monitor).
func (s *Service) newContainerIO(c containerRecord) (*containerIO, error) {
	ctx, cancel := context.WithCancel(context.Background())
	cio := &containerIO{
		ctx: ctx, cancel: cancel,
		forced:     make(chan containerExit, 1),
		exited:     make(chan struct{}),
		outputDone: make(chan struct{}),
		attached:   map[*attachment]struct{}{},
	}
	if c.LogPath != "" && !s.keepsLogs(c.Runtime) {
		var err error
		if cio.log, err = crilog.Open(c.LogPath); err != nil {
			cancel()
			return nil, err
		}
	}
	return cio, nil
}

// attachOutput opens the container's streams in its guest and starts
// copying its output; the outputs end with the process, or when the
// monitor finishes. The streams live as long as the monitor: ctx, the
// caller's, bounds only the wait for them to open. Streams lost with the
// agent's link while the process runs (a session the guest dropped) are
// opened again.
func (s *Service) attachOutput(ctx context.Context, c containerRecord, cio *containerIO) error {
	st, err := s.openOutput(ctx, c, cio)
	if err != nil {
		close(cio.outputDone)
		return err
	}
	go func() {
		defer close(cio.outputDone)
		for s.copyOutput(c, cio, st) {
			klog.InfoS("Container output lost with the agent's link; attaching again", "pod", c.PodID, "container", c.ID)
			for {
				select {
				case <-cio.ctx.Done():
					return
				case <-time.After(time.Second):
				}
				ctx, cancel := context.WithTimeout(cio.ctx, reattachTimeout)
				st, err = s.openOutput(ctx, c, cio)
				cancel()
				if err == nil {
					break
				}
				klog.V(2).InfoS("Cannot attach to the container's output yet", "pod", c.PodID, "container", c.ID, "err", err)
			}
		}
	}()
	return nil
}

// reattachTimeout bounds each attempt to open lost output streams again.
const reattachTimeout = 30 * time.Second

// outputStreams are a container's streams in its guest.
type outputStreams struct {
	stdin          io.WriteCloser
	stdout, stderr io.ReadCloser
}

// openOutput opens the container's streams, which live until the monitor
// finishes, waiting for them until ctx ends; it hands stdin to attach.
func (s *Service) openOutput(ctx context.Context, c containerRecord, cio *containerIO) (outputStreams, error) {
	type opening struct {
		outputStreams
		err error
	}
	opened := make(chan opening, 1)
	go func() {
		var o opening
		o.stdin, o.stdout, o.stderr, o.err = s.runtimeOf(c.Runtime).IOStream(cio.ctx, c.PodID, c.ID, c.ID)
		opened <- o
	}()
	var o opening
	select {
	case o = <-opened:
	case <-ctx.Done():
		o.err = ctx.Err()
		// Streams that open late are closed: nobody reads them.
		go func() {
			if late := <-opened; late.err == nil {
				late.stdin.Close()
				late.stdout.Close()
				late.stderr.Close()
			}
		}()
	}
	if o.err != nil {
		return outputStreams{}, o.err
	}
	if c.Config.Stdin {
		cio.mu.Lock()
		cio.stdin = o.stdin
		cio.mu.Unlock()
	}
	return o.outputStreams, nil
}

// copyOutput copies the container's output to its log and to attached
// clients until both streams end; it tells whether one was lost (ended
// by an error while the monitor runs) rather than ended with the process.
func (s *Service) copyOutput(c containerRecord, cio *containerIO, st outputStreams) (lost bool) {
	var copies sync.WaitGroup
	var mu sync.Mutex
	for _, out := range []struct {
		r      io.Reader
		stream string
	}{{st.stdout, crilog.Stdout}, {st.stderr, crilog.Stderr}} {
		copies.Add(1)
		go func() {
			defer copies.Done()
			defer logPanic("Container output failed", "pod", c.PodID, "container", c.ID)
			r := io.TeeReader(out.r, fanout{cio, out.stream == crilog.Stderr})
			var w io.Writer = io.Discard
			if cio.log != nil {
				w = cio.log
			}
			if err := crilog.Copy(w, r, out.stream); err != nil && !errors.Is(err, context.Canceled) && cio.ctx.Err() == nil {
				klog.V(2).InfoS("Container output ended", "container", c.ID, "stream", out.stream, "err", err)
				mu.Lock()
				lost = true
				mu.Unlock()
			}
		}()
	}
	copies.Wait()
	return lost && cio.ctx.Err() == nil
}

// outputDrainTimeout bounds the wait for the output of a process that
// exited: what it wrote last is still on its way.
const outputDrainTimeout = 2 * time.Second

// monitor waits for the container's exit and records it: the guest's
// report, or an exit forced on it first. It is the only writer of the
// container's exit.
func (s *Service) monitor(c containerRecord, cio *containerIO) {
	defer func() {
		// Guest data passes here: a fault in handling it ends this
		// container's monitor, never the daemon.
		if p := recover(); p != nil {
			klog.ErrorS(fmt.Errorf("%v", p), "Container monitor failed", "pod", c.PodID, "container", c.ID)
			s.finish(c, cio, containerExit{code: exitcode.Unknown, at: time.Now(), reason: reasonError, message: "the runtime lost the container's exit"})
		}
	}()
	reported := make(chan containerExit, 1)
	go func() {
		defer logPanic("Wait for a container's exit failed", "pod", c.PodID, "container", c.ID)
		if exit, ok := s.waitForExit(cio.ctx, c); ok {
			reported <- exit
		}
	}()
	var exit containerExit
	select {
	case <-cio.ctx.Done():
		// The service closes (Close): the container runs on, and the
		// next run records its exit.
		if cio.log != nil {
			cio.log.Close()
		}
		return
	case exit = <-reported:
		drain := time.NewTimer(outputDrainTimeout)
		select {
		case <-cio.outputDone:
		case <-drain.C:
		}
		drain.Stop()
		ctx, cancel := context.WithTimeout(cio.ctx, statusTimeout)
		if st, err := s.runtimeOf(c.Runtime).StatusContainer(ctx, c.PodID, c.ID); err == nil {
			exit.oomKilled = st.OOMKilled
		}
		cancel()
	case exit = <-cio.forced:
	}
	s.finish(c, cio, exit)
}

// statusTimeout bounds a monitor's question about an exited container.
const statusTimeout = 2 * time.Second

// waitForExit asks the guest for the process's exit until it answers, or
// ctx ends (false): a link that dropped is made again meanwhile, and a
// VM that ended is the pod watcher's to report (forceExit).
func (s *Service) waitForExit(ctx context.Context, c containerRecord) (containerExit, bool) {
	delay := 100 * time.Millisecond
	for {
		code, err := s.runtimeOf(c.Runtime).WaitProcess(ctx, c.PodID, c.ID, c.ID)
		if err == nil {
			return containerExit{code: code, at: time.Now()}, true
		}
		if ctx.Err() != nil {
			return containerExit{}, false
		}
		klog.V(2).InfoS("Waiting again for the container's exit", "pod", c.PodID, "container", c.ID, "err", err)
		select {
		case <-ctx.Done():
			return containerExit{}, false
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// finish records the exit, stops the output, and tells the waiters.
func (s *Service) finish(c containerRecord, cio *containerIO, exit containerExit) {
	cio.cancel()
	s.recordExit(c.ID, exit)
	s.ioMu.Lock()
	if s.io[c.ID] == cio {
		delete(s.io, c.ID)
	}
	s.ioMu.Unlock()
	if cio.log != nil {
		cio.log.Close()
	}
	close(cio.exited)
}

// forceExit has the container's monitor record exit, unless the guest's
// report or another forced exit came first, and waits until its exit is
// recorded. A container with no monitor has no process to end: its exit
// is recorded, or it never started.
func (s *Service) forceExit(ctx context.Context, id string, exit containerExit) error {
	cio, ok := s.containerIO(id)
	if !ok {
		return nil
	}
	select {
	case cio.forced <- exit:
	default:
	}
	select {
	case <-cio.exited:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("container %q: waiting for its exit to be recorded: %w", id, ctx.Err())
	}
}

// waitExited waits up to d for the monitor to record the exit; it tells
// whether it did.
func waitExited(ctx context.Context, cio *containerIO, d time.Duration) (bool, error) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-cio.exited:
		return true, nil
	case <-t.C:
		return false, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// addIO registers a container's monitor. StartContainer does it inside
// the update that makes the container RUNNING: the store's lock is held,
// then ioMu.
func (s *Service) addIO(id string, cio *containerIO) {
	s.ioMu.Lock()
	defer s.ioMu.Unlock()
	s.io[id] = cio
}

func (s *Service) containerIO(id string) (*containerIO, bool) {
	s.ioMu.Lock()
	defer s.ioMu.Unlock()
	cio, ok := s.io[id]
	return cio, ok
}

// recordExit marks a running container exited, once: the monitor's
// update.
func (s *Service) recordExit(id string, exit containerExit) {
	c, err := s.containers.Update(id, func(r *containerRecord) error {
		if r.State != runtime.ContainerState_CONTAINER_RUNNING {
			return errNotRunning
		}
		setExited(r, exit)
		return nil
	})
	if err != nil {
		return
	}
	klog.InfoS("Container exited", "pod", c.PodID, "container", id, "exitCode", exit.code, "reason", c.Reason)
	// Before the waiters are told (finish): a stop returns after it.
	s.nriStopContainer(c)
	if pod, err := s.pods.Get(c.PodID); err == nil {
		s.events.publish(runtime.ContainerEventType_CONTAINER_STOPPED_EVENT, c, pod)
	}
}

// setExited writes an exit into a record.
func setExited(r *containerRecord, exit containerExit) {
	r.State, r.ExitCode, r.FinishedAt = runtime.ContainerState_CONTAINER_EXITED, exit.code, exit.at
	r.Reason, r.Message = exit.reason, exit.message
	if r.Reason == "" {
		r.Reason = exitReason(exit.code)
	}
	if exit.oomKilled {
		r.Reason = reasonOOMKilled
	}
	if r.StartedAt.IsZero() {
		r.StartedAt = exit.at
	}
}

var errNotRunning = errors.New("not running")
