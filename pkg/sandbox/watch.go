package sandbox

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"

	"github.com/vc-cri/vc-cri/pkg/agent/protocol"
	"github.com/vc-cri/vc-cri/pkg/hypervisor"
)

// Why a sandbox stopped serving its containers without being asked to.
const (
	// EndVMExited: the hypervisor process ended (a guest panic or
	// poweroff, QEMU killed).
	EndVMExited = "VMExited"
	// EndAgentLost: the VM runs, but its agent dropped the link and did
	// not answer again within agentLostAfter.
	EndAgentLost = "AgentLost"
)

// SandboxEnd is what WatchSandbox reports.
type SandboxEnd struct {
	Reason string // EndVMExited or EndAgentLost
	At     time.Time
}

// agentLostAfter is how long a guest whose link dropped has to answer
// again before its sandbox is given up: a guest that dropped a session
// while it was busy answers at once on the next.
var agentLostAfter = 10 * time.Second

// linkWatcher is the part of an Agent that tells when its link drops
// (*agent.Client); the noop agent has no link to lose.
type linkWatcher interface {
	LinkDown() <-chan struct{}
}

// WatchSandbox blocks until the sandbox's VM stops serving it by itself
// or ctx ends (ctx.Err()). It reports at once a hypervisor process that
// exits (the hypervisor watches it through a pidfd), and an agent link
// that drops and cannot be made again while the VM runs; a link that can
// is made again, and watching goes on. It holds the sandbox's lock only
// to find the VM: a StopSandbox meanwhile ends the VM, which this then
// reports, so a caller that stops a sandbox stops watching it first.
func (r *Runtime) WatchSandbox(ctx context.Context, sandboxID string) (SandboxEnd, error) {
	var vm hypervisor.VM
	err := r.withSandbox(ctx, sandboxID, func(ls *lockedSandbox) error {
		switch ls.State.State {
		case StateRunning, StatePaused:
		default:
			return fmt.Errorf("sandbox %s is %s, not running: %w", sandboxID, ls.State.State, ErrInvalidState)
		}
		var err error
		vm, err = ls.vm(ctx)
		return err
	})
	if err != nil {
		return SandboxEnd{}, err
	}
	exited := make(chan error, 1)
	go func() { exited <- vm.Wait(ctx) }()
	for {
		// The link is the one this process keeps, made by whichever call
		// needed the agent first; until there is one, there is only the VM
		// to watch.
		var linkDown <-chan struct{}
		ag, linked := r.agents.get(sandboxID)
		if lw, ok := ag.(linkWatcher); linked && ok {
			linkDown = lw.LinkDown()
		}
		select {
		case err := <-exited:
			if err != nil {
				return SandboxEnd{}, err
			}
			return SandboxEnd{Reason: EndVMExited, At: time.Now()}, nil
		case <-ctx.Done():
			return SandboxEnd{}, ctx.Err()
		case <-time.After(time.Second):
			// Look for a link made meanwhile.
		case <-linkDown:
			// A VM that exits drops the link too: whichever is seen first,
			// the exit is what is reported.
			answered := make(chan bool, 1)
			go func() { answered <- answers(ctx, ag) }()
			select {
			case err := <-exited:
				if err != nil {
					return SandboxEnd{}, err
				}
				return SandboxEnd{Reason: EndVMExited, At: time.Now()}, nil
			case ok := <-answered:
				if ok {
					continue
				}
				if ctx.Err() != nil {
					return SandboxEnd{}, ctx.Err()
				}
				return SandboxEnd{Reason: EndAgentLost, At: time.Now()}, nil
			}
		}
	}
}

// answers tells whether the agent answers a Check within agentLostAfter,
// on a session made again if need be.
func answers(ctx context.Context, ag Agent) bool {
	ctx, cancel := context.WithTimeout(ctx, agentLostAfter)
	defer cancel()
	for {
		if _, err := ag.Check(ctx, &protocol.CheckRequest{}, grpc.WaitForReady(true)); err == nil {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
}
