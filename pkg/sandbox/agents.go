package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"google.golang.org/grpc"

	"github.com/vc-cri/vc-cri/pkg/agent"
	"github.com/vc-cri/vc-cri/pkg/agent/protocol"
	"github.com/vc-cri/vc-cri/pkg/hypervisor"
)

// agentDialTimeout bounds the wait for a guest agent to answer: the guest
// boots in about two seconds under TCG, much longer on a loaded host.
const agentDialTimeout = 2 * time.Minute

// Agent is the host's side of a guest agent: *agent.Client for the kata
// agent, the noop agent in unit tests.
type Agent interface {
	protocol.AgentClient
	Close() error
}

// AgentDialer connects to the agent in a sandbox's VM.
type AgentDialer interface {
	Dial(ctx context.Context, vm hypervisor.VM) (Agent, error)
}

var (
	_ Agent       = (*agent.Client)(nil)
	_ AgentDialer = kataDialer{}
	_ AgentDialer = noopDialer{}
)

// kataDialer reaches vc-agent over the VM's agent socket.
type kataDialer struct {
	opts []grpc.DialOption
}

// KataDialer is the dialer of the kata agent (vc-agent), with opts added
// to its link's gRPC options: the daemon's interceptors that time each
// agent call, say.
func KataDialer(opts ...grpc.DialOption) AgentDialer { return kataDialer{opts: opts} }

func (d kataDialer) Dial(ctx context.Context, vm hypervisor.VM) (Agent, error) {
	ctx, cancel := context.WithTimeout(ctx, agentDialTimeout)
	defer cancel()
	c, err := agent.Dial(ctx, vm.AgentSocket(), d.opts...)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// noopDialer gives each sandbox a noop agent. A VM that can exit by
// itself (hypervisor.MockVM) does when the agent destroys the sandbox, as
// a guest powers itself off then.
type noopDialer struct{}

func (noopDialer) Dial(_ context.Context, vm hypervisor.VM) (Agent, error) {
	a := newNoopAgent()
	a.vm = vm
	if e, ok := vm.(interface{ Exit() }); ok {
		a.poweredOff = e.Exit
	}
	return a, nil
}

// agent returns the link to the sandbox's agent, connecting first if
// this process has none. The dial, which waits for the guest to boot, is
// made without the cache's mutex: the sandbox's lock, which the caller
// holds, keeps a second dial of the same sandbox from starting meanwhile.
func (ls *lockedSandbox) agent(ctx context.Context) (Agent, error) {
	id := ls.Config.ID
	if a, ok := ls.r.agents.get(id); ok {
		return a, nil
	}
	dialer, err := ls.r.dialerFor(ls.Config.AgentType)
	if err != nil {
		return nil, err
	}
	vm, err := ls.vm(ctx)
	if err != nil {
		return nil, err
	}
	dialCtx, span := startPhase(ctx, "agent_dial")
	a, err := dialer.Dial(dialCtx, vm)
	endPhase(span, err)
	if err != nil {
		return nil, fmt.Errorf("agent of sandbox %q: %w", id, err)
	}
	kept, ours := ls.r.agents.keep(id, a)
	if !ours {
		_ = a.Close()
	}
	return kept, nil
}

// dropAgent closes and forgets the sandbox's agent link.
func (r *Runtime) dropAgent(id string) {
	if a, ok := r.agents.take(id); ok {
		_ = a.Close()
	}
}

// kataConfig reads the agent configuration however it was given: as a
// value, a pointer, or as decoded from the persisted state.
func kataConfig(cfg interface{}) KataAgentConfig {
	switch c := cfg.(type) {
	case KataAgentConfig:
		return c
	case *KataAgentConfig:
		if c != nil {
			return *c
		}
	case map[string]interface{}:
		var k KataAgentConfig
		if b, err := json.Marshal(c); err == nil && json.Unmarshal(b, &k) == nil {
			return k
		}
	}
	return KataAgentConfig{}
}
