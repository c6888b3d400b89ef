package sandbox

import (
	"context"
	"time"

	"k8s.io/klog/v2"
)

// cleanupTimeout bounds a rollback. It runs under a fresh context: the
// caller's may be what failed.
const cleanupTimeout = time.Minute

// cleanups is a stack of described rollback steps, run newest first when
// an operation fails half way.
type cleanups struct {
	steps []cleanupStep
}

type cleanupStep struct {
	what string
	fn   func(context.Context) error
}

func (c *cleanups) add(what string, fn func(context.Context) error) {
	c.steps = append(c.steps, cleanupStep{what, fn})
}

// run undoes every step, logging what fails, and forgets them.
func (c *cleanups) run(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	for i := len(c.steps) - 1; i >= 0; i-- {
		if err := c.steps[i].fn(ctx); err != nil {
			klog.ErrorS(err, "Rollback step failed", "sandbox", id, "step", c.steps[i].what)
		}
	}
	c.steps = nil
}
