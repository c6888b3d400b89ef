package metrics

import (
	"context"
	"sync"
	"time"
)

// Pod start phases. RunPodSandbox's interceptor puts a recorder in the
// call's context; the parts of the daemon that a phase runs in (the pod
// network, wrapped in cmd/vc-cri) record their time in it; once the call
// succeeded, each phase is observed, and the rest of the call's time as
// PhaseSandbox.
const (
	// PhaseNetwork is the pod network's setup: CNI ADD in a new netns.
	PhaseNetwork = "network"
	// PhaseSandbox is the rest: the VM's boot, the agent's answer, the
	// guest's network and the pod's files.
	PhaseSandbox = "sandbox"
)

type phaseKey struct{}

// phases collects one call's phase times.
type phases struct {
	mu sync.Mutex
	d  map[string]time.Duration // guarded by mu
}

// RecordPhase adds d to the phase of the pod start ctx belongs to; it
// does nothing outside a RunPodSandbox call served with metrics.
func RecordPhase(ctx context.Context, phase string, d time.Duration) {
	p, ok := ctx.Value(phaseKey{}).(*phases)
	if !ok {
		return
	}
	p.mu.Lock()
	p.d[phase] += d
	p.mu.Unlock()
}

func withPhases(ctx context.Context) (context.Context, *phases) {
	p := &phases{d: map[string]time.Duration{}}
	return context.WithValue(ctx, phaseKey{}, p), p
}

// observePhases records a successful pod start's phases, the time no
// phase claimed as PhaseSandbox.
func (m *Metrics) observePhases(p *phases, total time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	rest := total
	for phase, d := range p.d {
		m.podPhase.WithLabelValues(phase).Observe(d.Seconds())
		rest -= d
	}
	m.podPhase.WithLabelValues(PhaseSandbox).Observe(max(rest, 0).Seconds())
}
