package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/vc-cri/vc-cri/pkg/agent/protocol"
)

// Beyond the specification: what a container manager needs to carry a
// container's processes, their IO and exit statuses, as the later
// virtcontainers API had (IOStream, WaitProcess, SignalProcess,
// WinsizeProcess). A process is named by its Token: the container ID
// for the container's own process, EnterContainer's token for an exec.

// processAgent finds the agent of a container's process, without keeping
// the sandbox locked: streams and waits last as long as the process.
func (r *Runtime) processAgent(ctx context.Context, sandboxID, containerID, token string) (Agent, string, error) {
	ag, err := r.containerAgent(ctx, sandboxID, containerID, func(ls *lockedSandbox, _ *containerState) error {
		if ls.State.State == StateStopped {
			return fmt.Errorf("sandbox %s is stopped: %w", sandboxID, ErrInvalidState)
		}
		return nil
	})
	return ag, execID(containerID, token), err
}

// execID is the agent's name of a process: empty for the container's own.
func execID(containerID, token string) string {
	if token == containerID {
		return ""
	}
	return token
}

// IOStream returns the process's stdin, stdout and stderr. Output is
// read from the guest as it comes; closing stdin closes the process's.
// stdin is nil for a process started without Interactive; stderr is
// empty for one with a terminal, which merges it into stdout.
func (r *Runtime) IOStream(ctx context.Context, sandboxID, containerID, token string) (io.WriteCloser, io.ReadCloser, io.ReadCloser, error) {
	ag, eid, err := r.processAgent(ctx, sandboxID, containerID, token)
	if err != nil {
		return nil, nil, nil, err
	}
	stdout, err := readOutput(ctx, ag, containerID, eid, protocol.OutputStream_STDOUT)
	if err != nil {
		return nil, nil, nil, err
	}
	stderr, err := readOutput(ctx, ag, containerID, eid, protocol.OutputStream_STDERR)
	if err != nil {
		stdout.Close()
		return nil, nil, nil, err
	}
	stdin := &stdinWriter{ctx: ctx, ag: ag, containerID: containerID, execID: eid}
	return stdin, stdout, stderr, nil
}

func readOutput(ctx context.Context, ag Agent, cid, eid string, which protocol.OutputStream) (io.ReadCloser, error) {
	ctx, cancel := context.WithCancel(ctx)
	stream, err := ag.ReadOutput(ctx, &protocol.ReadOutputRequest{ContainerId: cid, ExecId: eid, Stream: which})
	if err != nil {
		cancel()
		return nil, err
	}
	// The agent answers with headers once it holds the output: only then
	// may the process be waited for (and an exec be forgotten).
	if _, err := stream.Header(); err != nil {
		cancel()
		return nil, err
	}
	return &outputReader{stream: stream, cancel: cancel}, nil
}

// outputReader reads a process's output stream.
type outputReader struct {
	stream interface {
		Recv() (*protocol.Data, error)
	}
	cancel context.CancelFunc
	buf    []byte
}

func (r *outputReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		d, err := r.stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return 0, io.EOF
			}
			return 0, err
		}
		r.buf = d.Data
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func (r *outputReader) Close() error {
	r.cancel()
	return nil
}

// stdinWriter writes to a process's stdin, opening the stream at the
// first write so that a stdin never written to costs nothing.
type stdinWriter struct {
	ctx                 context.Context // the IOStream call's: the stream's lifetime
	ag                  Agent
	containerID, execID string
	stream              protocol.Agent_WriteStdinClient
}

func (w *stdinWriter) Write(p []byte) (int, error) {
	if w.stream == nil {
		s, err := w.ag.WriteStdin(w.ctx)
		if err != nil {
			return 0, err
		}
		if err := s.Send(&protocol.WriteStdinRequest{ContainerId: w.containerID, ExecId: w.execID}); err != nil {
			return 0, err
		}
		w.stream = s
	}
	if err := w.stream.Send(&protocol.WriteStdinRequest{Data: p}); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close delivers what was written, then closes the process's stdin.
func (w *stdinWriter) Close() error {
	if w.stream != nil {
		if _, err := w.stream.CloseAndRecv(); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
	}
	_, err := w.ag.CloseStdin(w.ctx, &protocol.ProcessRequest{ContainerId: w.containerID, ExecId: w.execID})
	return err
}

// WaitProcess waits until the process exits and returns its exit code:
// 128 plus the signal number when a signal ended it. Waiting for the
// container's own process records its end in the container's state.
func (r *Runtime) WaitProcess(ctx context.Context, sandboxID, containerID, token string) (int32, error) {
	ag, eid, err := r.processAgent(ctx, sandboxID, containerID, token)
	if err != nil {
		return 0, err
	}
	exit, err := ag.WaitProcess(ctx, &protocol.ProcessRequest{ContainerId: containerID, ExecId: eid})
	if err != nil {
		return 0, err
	}
	if eid == "" {
		err = r.withContainer(ctx, sandboxID, containerID, func(ls *lockedSandbox, cs *containerState) error {
			if cs.State.State == StateRunning {
				recordExit(cs, exit)
				return ls.save(ctx)
			}
			return nil
		})
	}
	return guestExitCode(exit.GetExitCode()), err
}

// SignalProcess sends a signal to one process; with all, to every
// process of the container.
func (r *Runtime) SignalProcess(ctx context.Context, sandboxID, containerID, token string, signal syscall.Signal, all bool) error {
	ag, eid, err := r.processAgent(ctx, sandboxID, containerID, token)
	if err != nil {
		return err
	}
	_, err = ag.SignalProcess(ctx, &protocol.SignalProcessRequest{ContainerId: containerID, ExecId: eid, Signal: uint32(signal), All: all})
	return err
}

// WinsizeProcess resizes the terminal of a process that has one.
func (r *Runtime) WinsizeProcess(ctx context.Context, sandboxID, containerID, token string, height, width uint32) error {
	ag, eid, err := r.processAgent(ctx, sandboxID, containerID, token)
	if err != nil {
		return err
	}
	_, err = ag.ResizeTTY(ctx, &protocol.ResizeTTYRequest{ContainerId: containerID, ExecId: eid, Height: height, Width: width})
	return err
}

// ContainerStats are a container's resource usage, from its guest
// cgroup and processes, and the guest's network counters.
type ContainerStats struct {
	Timestamp             time.Time
	CPUUsageNanos         uint64
	CPUUserNanos          uint64
	CPUSystemNanos        uint64
	CPUPeriods            uint64
	CPUThrottledPeriods   uint64
	CPUThrottledNanos     uint64
	MemoryUsageBytes      uint64
	MemoryMaxUsageBytes   uint64
	MemoryWorkingSetBytes uint64
	MemoryRSSBytes        uint64
	MemoryCacheBytes      uint64
	MemoryMappedFileBytes uint64
	MemoryKernelBytes     uint64
	MemorySwapBytes       uint64
	MemoryLimitBytes      uint64
	MemoryFailcnt         uint64
	PageFaults            uint64
	MajorPageFaults       uint64
	OOMEvents             uint64
	Pids                  uint64
	Threads               uint64
	ThreadsMax            uint64
	FileDescriptors       uint64
	Sockets               uint64
	UlimitNofileSoft      uint64
	Interfaces            []InterfaceStats
}

// InterfaceStats are the counters of one of the guest's interfaces.
type InterfaceStats struct {
	Name                                    string
	RxBytes, RxPackets, RxErrors, RxDropped uint64
	TxBytes, TxPackets, TxErrors, TxDropped uint64
}

// StatsContainer reports a container's resource usage.
func (r *Runtime) StatsContainer(ctx context.Context, sandboxID, containerID string) (ContainerStats, error) {
	ag, _, err := r.processAgent(ctx, sandboxID, containerID, containerID)
	if err != nil {
		return ContainerStats{}, err
	}
	sent := time.Now()
	s, err := ag.StatsContainer(ctx, &protocol.ContainerRequest{ContainerId: containerID})
	if err != nil {
		return ContainerStats{}, err
	}
	st, err := guestStats(s, sent, time.Now())
	if err != nil {
		return ContainerStats{}, fmt.Errorf("stats of container %q: %w", containerID, err)
	}
	return st, nil
}

// UpdateContainer applies new cgroup limits to a container in the guest
// and keeps them in its configuration.
func (r *Runtime) UpdateContainer(ctx context.Context, sandboxID, containerID string, resources specs.LinuxResources) error {
	return r.withContainer(ctx, sandboxID, containerID, func(ls *lockedSandbox, cs *containerState) error {
		if s := cs.State.State; s != StateRunning && s != StateReady {
			return fmt.Errorf("container %s is %s: %w", containerID, s, ErrInvalidState)
		}
		resources, err := guestResources(resources, ls.GuestHugePageSizes)
		if err != nil {
			return fmt.Errorf("container %s: %w", containerID, err)
		}
		b, err := json.Marshal(resources)
		if err != nil {
			return err
		}
		ag, err := ls.agent(ctx)
		if err != nil {
			return err
		}
		if _, err := ag.UpdateContainer(ctx, &protocol.UpdateContainerRequest{ContainerId: containerID, Resources: b}); err != nil {
			return err
		}
		cs.Config.Resources = resources
		return ls.save(ctx)
	})
}
