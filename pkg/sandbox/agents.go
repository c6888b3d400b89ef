package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/vc-cri/vc-cri/pkg/agent"
	"github.com/vc-cri/vc-cri/pkg/agent/protocol"
	"github.com/vc-cri/vc-cri/pkg/hypervisor"
)

// agentDialTimeout bounds the wait for a guest agent to answer: the guest
// boots in about two seconds under TCG, much longer on a loaded host.
const agentDialTimeout = 2 * time.Minute

// guestAgent is the agent protocol's client side: *agent.Client for the
// kata agent, noopAgent in unit tests.
type guestAgent interface {
	protocol.AgentClient
	Close() error
}

// agents caches this process's agent links by sandbox ID. The link of a
// VM is a single virtio-serial port: one process at a time holds it.
var agents = struct {
	sync.Mutex
	m map[string]guestAgent
}{m: map[string]guestAgent{}}

// agentOf returns the link to the sandbox's agent, connecting first if
// this process has none.
func agentOf(ctx context.Context, s *sandboxState) (guestAgent, error) {
	agents.Lock()
	defer agents.Unlock()
	if a, ok := agents.m[s.Config.ID]; ok {
		return a, nil
	}
	var a guestAgent
	switch s.Config.AgentType {
	case NoopAgentType:
		noop := newNoopAgent()
		if vm, err := vmOf(ctx, s); err == nil {
			if mock, ok := vm.(*hypervisor.MockVM); ok {
				noop.poweredOff = mock.Exit
			}
		}
		a = noop
	case KataContainersAgent:
		vm, err := vmOf(ctx, s)
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(ctx, agentDialTimeout)
		defer cancel()
		c, err := agent.Dial(ctx, vm.AgentSocket())
		if err != nil {
			return nil, fmt.Errorf("agent of sandbox %q: %w", s.Config.ID, err)
		}
		a = c
	default:
		return nil, fmt.Errorf("unknown agent type %q: %w", s.Config.AgentType, ErrInvalidConfig)
	}
	agents.m[s.Config.ID] = a
	return a, nil
}

// dropAgent closes and forgets the sandbox's agent link.
func dropAgent(id string) {
	agents.Lock()
	defer agents.Unlock()
	if a, ok := agents.m[id]; ok {
		_ = a.Close()
		delete(agents.m, id)
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
