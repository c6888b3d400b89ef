package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/vc-cri/vc-cri/internal/exitcode"
	"github.com/vc-cri/vc-cri/pkg/agent/protocol"
	"github.com/vc-cri/vc-cri/pkg/hypervisor"
)

// noopAgent is the agent of NoopAgentType, for unit tests: it runs
// nothing, but keeps enough state to behave like an agent. A container's
// init process runs until it is signalled; exec processes exit at once
// with status 0; output is empty.
type noopAgent struct {
	// poweredOff is called when the sandbox is destroyed, as a guest
	// powers itself off then; nil does nothing.
	poweredOff func()
	// vm is the sandbox's VM, whose size the guest sees.
	vm hypervisor.VM

	mu     sync.Mutex
	procs  map[[2]string]*noopProcess // by container ID and exec ID; guarded by mu
	online uint32                     // CPUs online, 0 for all; guarded by mu
	// usedMiB is the memory the guest uses, of what its VM has; guarded by mu.
	usedMiB uint64
}

// noopGuestUsedMiB is the memory a noop guest uses at first.
const noopGuestUsedMiB = 96

type noopProcess struct {
	exited chan struct{}
	code   int32
}

var _ Agent = (*noopAgent)(nil)

func newNoopAgent() *noopAgent {
	return &noopAgent{procs: map[[2]string]*noopProcess{}, usedMiB: noopGuestUsedMiB}
}

func (a *noopAgent) proc(cid, eid string) (*noopProcess, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p, ok := a.procs[[2]string{cid, eid}]
	if !ok {
		return nil, fmt.Errorf("process %q of container %q: %w", eid, cid, errdefs.ErrNotFound)
	}
	return p, nil
}

func (a *noopAgent) add(cid, eid string, exited bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := &noopProcess{exited: make(chan struct{})}
	if exited {
		close(p.exited)
	}
	a.procs[[2]string{cid, eid}] = p
}

func (a *noopAgent) Close() error { return nil }

func (a *noopAgent) Check(context.Context, *protocol.CheckRequest, ...grpc.CallOption) (*protocol.CheckResponse, error) {
	return &protocol.CheckResponse{Version: "noop"}, nil
}

func (a *noopAgent) GuestDetails(context.Context, *protocol.GuestDetailsRequest, ...grpc.CallOption) (*protocol.GuestDetailsResponse, error) {
	return &protocol.GuestDetailsResponse{AgentVersion: "noop", HugepageSizes: []uint64{2 << 20}}, nil
}

func (a *noopAgent) SetupNetwork(context.Context, *protocol.SetupNetworkRequest, ...grpc.CallOption) (*protocol.Empty, error) {
	return &protocol.Empty{}, nil
}

func (a *noopAgent) DestroySandbox(context.Context, *protocol.DestroySandboxRequest, ...grpc.CallOption) (*protocol.Empty, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range a.procs {
		p.exit(exitcode.Killed)
	}
	if a.poweredOff != nil {
		a.poweredOff()
	}
	return &protocol.Empty{}, nil
}

func (a *noopAgent) CreateContainer(_ context.Context, req *protocol.CreateContainerRequest, _ ...grpc.CallOption) (*protocol.Empty, error) {
	a.add(req.ContainerId, "", false)
	return &protocol.Empty{}, nil
}

func (a *noopAgent) StartContainer(_ context.Context, req *protocol.ContainerRequest, _ ...grpc.CallOption) (*protocol.Empty, error) {
	_, err := a.proc(req.ContainerId, "")
	return &protocol.Empty{}, err
}

func (a *noopAgent) RemoveContainer(_ context.Context, req *protocol.ContainerRequest, _ ...grpc.CallOption) (*protocol.Empty, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k := range a.procs {
		if k[0] == req.ContainerId {
			delete(a.procs, k)
		}
	}
	return &protocol.Empty{}, nil
}

func (a *noopAgent) PauseContainer(context.Context, *protocol.ContainerRequest, ...grpc.CallOption) (*protocol.Empty, error) {
	return &protocol.Empty{}, nil
}

func (a *noopAgent) ResumeContainer(context.Context, *protocol.ContainerRequest, ...grpc.CallOption) (*protocol.Empty, error) {
	return &protocol.Empty{}, nil
}

func (a *noopAgent) StatsContainer(context.Context, *protocol.ContainerRequest, ...grpc.CallOption) (*protocol.StatsContainerResponse, error) {
	return &protocol.StatsContainerResponse{TimestampUnixNano: time.Now().UnixNano()}, nil
}

// Restore succeeds: a noop guest has nothing of a template's to undo.
func (a *noopAgent) Restore(context.Context, *protocol.RestoreRequest, ...grpc.CallOption) (*protocol.Empty, error) {
	return &protocol.Empty{}, nil
}

// ResizeGuest onlines CPUs of the VM and reports its memory, the noop
// guest using usedMiB of it.
func (a *noopAgent) ResizeGuest(ctx context.Context, req *protocol.ResizeGuestRequest, _ ...grpc.CallOption) (*protocol.GuestResources, error) {
	if a.vm == nil {
		return nil, fmt.Errorf("noop agent without a VM: %w", errdefs.ErrFailedPrecondition)
	}
	size, err := a.vm.Size(ctx)
	if err != nil {
		return nil, err
	}
	if req.Cpus > size.VCPUs {
		return nil, fmt.Errorf("%d CPUs present, %d asked: %w", size.VCPUs, req.Cpus, errdefs.ErrFailedPrecondition)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if req.Cpus > 0 {
		a.online = req.Cpus
	}
	online := a.online
	if online == 0 {
		online = size.VCPUs
	}
	total := uint64(size.MemoryMiB) << 20
	return &protocol.GuestResources{
		OnlineCpus: online, PresentCpus: size.VCPUs,
		MemoryTotalBytes: total, MemoryAvailableBytes: total - min(total, a.usedMiB<<20),
	}, nil
}

func (a *noopAgent) UpdateContainer(context.Context, *protocol.UpdateContainerRequest, ...grpc.CallOption) (*protocol.Empty, error) {
	return &protocol.Empty{}, nil
}

func (a *noopAgent) ListProcesses(context.Context, *protocol.ListProcessesRequest, ...grpc.CallOption) (*protocol.ListProcessesResponse, error) {
	return &protocol.ListProcessesResponse{ProcessList: []byte("PID CMD\n")}, nil
}

func (a *noopAgent) ExecProcess(_ context.Context, req *protocol.ExecProcessRequest, _ ...grpc.CallOption) (*protocol.Empty, error) {
	if _, err := a.proc(req.ContainerId, ""); err != nil {
		return nil, err
	}
	a.add(req.ContainerId, req.ExecId, true)
	return &protocol.Empty{}, nil
}

func (a *noopAgent) SignalProcess(_ context.Context, req *protocol.SignalProcessRequest, _ ...grpc.CallOption) (*protocol.Empty, error) {
	p, err := a.proc(req.ContainerId, req.ExecId)
	if err != nil {
		return nil, err
	}
	p.exit(exitcode.Signaled(syscall.Signal(req.Signal)))
	return &protocol.Empty{}, nil
}

func (p *noopProcess) exit(code int32) {
	select {
	case <-p.exited:
	default:
		p.code = code
		close(p.exited)
	}
}

func (a *noopAgent) WaitProcess(ctx context.Context, req *protocol.ProcessRequest, _ ...grpc.CallOption) (*protocol.WaitProcessResponse, error) {
	p, err := a.proc(req.ContainerId, req.ExecId)
	if err != nil {
		return nil, err
	}
	select {
	case <-p.exited:
		return &protocol.WaitProcessResponse{ExitCode: p.code, ExitedAtUnixNano: time.Now().UnixNano()}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (a *noopAgent) ProcessStatus(_ context.Context, req *protocol.ProcessRequest, _ ...grpc.CallOption) (*protocol.ProcessStatusResponse, error) {
	p, err := a.proc(req.ContainerId, req.ExecId)
	if err != nil {
		return nil, err
	}
	select {
	case <-p.exited:
		return &protocol.ProcessStatusResponse{Exited: true, Exit: &protocol.WaitProcessResponse{ExitCode: p.code}}, nil
	default:
		return &protocol.ProcessStatusResponse{}, nil
	}
}

func (a *noopAgent) ReadOutput(context.Context, *protocol.ReadOutputRequest, ...grpc.CallOption) (grpc.ServerStreamingClient[protocol.Data], error) {
	return noopStream{}, nil
}

func (a *noopAgent) WriteStdin(context.Context, ...grpc.CallOption) (grpc.ClientStreamingClient[protocol.WriteStdinRequest, protocol.Empty], error) {
	return noopStream{}, nil
}

func (a *noopAgent) CloseStdin(context.Context, *protocol.ProcessRequest, ...grpc.CallOption) (*protocol.Empty, error) {
	return &protocol.Empty{}, nil
}

func (a *noopAgent) ResizeTTY(context.Context, *protocol.ResizeTTYRequest, ...grpc.CallOption) (*protocol.Empty, error) {
	return &protocol.Empty{}, nil
}

// noopStream is an empty output stream and a stdin that discards.
type noopStream struct{ grpc.ClientStream }

func (noopStream) Recv() (*protocol.Data, error)          { return nil, io.EOF }
func (noopStream) Send(*protocol.WriteStdinRequest) error { return nil }
func (noopStream) CloseAndRecv() (*protocol.Empty, error) { return &protocol.Empty{}, nil }
func (noopStream) CloseSend() error                       { return nil }
func (noopStream) Header() (metadata.MD, error)           { return metadata.MD{}, nil }

func (a *noopAgent) PortForward(context.Context, ...grpc.CallOption) (grpc.BidiStreamingClient[protocol.PortForwardRequest, protocol.Data], error) {
	return nil, errors.New("the noop agent forwards no ports")
}
