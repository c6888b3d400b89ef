package sandbox

import "fmt"

// StateString is the name of a sandbox or container state.
type StateString string

// The states of sandboxes and containers:
//
//	sandbox:   CreateSandbox -> ready -StartSandbox-> running <-Pause/Resume-> paused
//	           ready, running, paused -StopSandbox-> stopped -DeleteSandbox-> (gone)
//	container: CreateContainer -> ready -StartContainer-> running
//	           ready, running -StopContainer (or its process exits)-> stopped
//	           ready, stopped -DeleteContainer-> (gone)
const (
	StateReady   StateString = "ready"
	StateRunning StateString = "running"
	StatePaused  StateString = "paused"
	StateStopped StateString = "stopped"
)

// State is a sandbox or container state.
type State struct {
	State StateString `json:"state"`
}

var sandboxTransitions = map[StateString][]StateString{
	StateReady:   {StateRunning, StateStopped},
	StateRunning: {StatePaused, StateStopped},
	StatePaused:  {StateRunning, StateStopped},
	StateStopped: {},
}

var containerTransitions = map[StateString][]StateString{
	StateReady:   {StateRunning, StateStopped},
	StateRunning: {StateStopped},
	StateStopped: {},
}

func checkTransition(table map[StateString][]StateString, kind, id string, from, to StateString) error {
	for _, s := range table[from] {
		if s == to {
			return nil
		}
	}
	return fmt.Errorf("%s %s is %s, cannot become %s: %w", kind, id, from, to, ErrInvalidState)
}
