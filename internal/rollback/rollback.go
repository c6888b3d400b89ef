// Package rollback undoes, newest first, what a failed operation had
// already done.
package rollback

import (
	"context"
	"time"

	"k8s.io/klog/v2"
)

// timeout bounds a rollback. It runs under a fresh context: the caller's
// may be what failed, and may already be cancelled.
const timeout = 2 * time.Minute

// Stack is a stack of described undo steps. The zero value is empty.
type Stack struct {
	steps []step
}

type step struct {
	what string
	fn   func(context.Context) error
}

// Add registers the undo of something just done.
func (s *Stack) Add(what string, fn func(context.Context) error) {
	s.steps = append(s.steps, step{what, fn})
}

// Run undoes every step, newest first, logging those that fail with
// keysAndValues, and forgets them.
func (s *Stack) Run(keysAndValues ...any) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for i := len(s.steps) - 1; i >= 0; i-- {
		if err := s.steps[i].fn(ctx); err != nil {
			klog.ErrorS(err, "Rollback step failed", append([]any{"step", s.steps[i].what}, keysAndValues...)...)
		}
	}
	s.steps = nil
}
