package sandbox

import (
	"testing"
	"time"

	"github.com/vc-cri/vc-cri/internal/exitcode"
	"github.com/vc-cri/vc-cri/pkg/agent/protocol"
)

// TestRecordExit: the guest's report of an exit is checked, never trusted
// to be complete or its clock to be right.
func TestRecordExit(t *testing.T) {
	start := time.Now().Add(-time.Minute)
	for name, tc := range map[string]struct {
		exit     *protocol.WaitProcessResponse
		wantCode int32
		wantAt   func(time.Time) bool
	}{
		"no report":       {nil, exitcode.Unknown, func(at time.Time) bool { return time.Since(at) < time.Second }},
		"a normal report": {&protocol.WaitProcessResponse{ExitCode: 3, ExitedAtUnixNano: start.Add(time.Second).UnixNano()}, 3, func(at time.Time) bool { return at.Equal(start.Add(time.Second)) }},
		"no time":         {&protocol.WaitProcessResponse{ExitCode: 1}, 1, func(at time.Time) bool { return time.Since(at) < time.Second }},
		"in the future":   {&protocol.WaitProcessResponse{ExitCode: 1, ExitedAtUnixNano: time.Now().Add(time.Hour).UnixNano()}, 1, func(at time.Time) bool { return !at.After(time.Now()) }},
		"before start":    {&protocol.WaitProcessResponse{ExitCode: 1, ExitedAtUnixNano: start.Add(-time.Hour).UnixNano()}, 1, func(at time.Time) bool { return at.Equal(start) }},
	} {
		c := &containerState{State: State{StateRunning}, StartTime: start}
		recordExit(c, tc.exit)
		if c.State.State != StateStopped || c.ExitCode != tc.wantCode || !tc.wantAt(c.FinishedAt) {
			t.Errorf("%s: state %s, code %d, finished at %v", name, c.State.State, c.ExitCode, c.FinishedAt)
		}
	}
}
