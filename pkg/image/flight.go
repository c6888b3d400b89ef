package image

import (
	"context"
	"fmt"
	"strings"
	"sync"
)

// flightGroup runs one function per key at a time and gives its result
// to every caller that asks for the key meanwhile (singleflight), with
// cancellation by reference count: the work runs under a context of its
// own, cancelled when every waiting caller has given up.
type flightGroup struct {
	mu      sync.Mutex
	flights map[string]*flight // guarded by mu
	// running counts the work in progress, which may outlive its
	// callers: stop waits for it.
	running sync.WaitGroup
}

type flight struct {
	done    chan struct{} // closed when id and err are set
	id      string
	err     error
	waiters int                // guarded by flightGroup.mu
	cancel  context.CancelFunc // cancels the work
}

// do runs fn for key, or joins the run in flight.
func (g *flightGroup) do(ctx context.Context, key string, fn func(context.Context) (string, error)) (string, error) {
	g.mu.Lock()
	if g.flights == nil {
		g.flights = map[string]*flight{}
	}
	f, ok := g.flights[key]
	if !ok {
		// The work outlives any one caller: it gets the first caller's
		// values but not its cancellation.
		wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		f = &flight{done: make(chan struct{}), cancel: cancel}
		g.flights[key] = f
		g.running.Add(1)
		go func() {
			defer g.running.Done()
			f.id, f.err = fn(wctx)
			cancel()
			g.mu.Lock()
			if g.flights[key] == f {
				delete(g.flights, key)
			}
			g.mu.Unlock()
			close(f.done)
		}()
	}
	f.waiters++
	g.mu.Unlock()

	select {
	case <-f.done:
		return f.id, f.err
	case <-ctx.Done():
		g.mu.Lock()
		f.waiters--
		if f.waiters == 0 {
			// Nobody waits: cancel, and let the next caller start afresh.
			f.cancel()
			if g.flights[key] == f {
				delete(g.flights, key)
			}
		}
		g.mu.Unlock()
		name, _, _ := strings.Cut(key, "\x00")
		return "", fmt.Errorf("pull of %s: %w", name, ctx.Err())
	}
}

// stop cancels the work in flight and waits until it has returned: work
// given up by its callers still runs until it sees the cancellation, and
// must be done with the store before the store is shut down.
func (g *flightGroup) stop() {
	g.mu.Lock()
	for _, f := range g.flights {
		f.cancel()
	}
	g.mu.Unlock()
	g.running.Wait()
}
