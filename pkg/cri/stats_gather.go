package cri

import (
	"context"
	"sync"
	"time"

	"k8s.io/klog/v2"
)

const (
	// statsDeadline bounds each guest's answer to a list of stats: one
	// slow or silent guest leaves only its own pod out of the answer.
	statsDeadline = 2 * time.Second
	// statsPatience is how long a list of stats waits for the guests'
	// answers before it answers with the last ones of those still
	// thinking: their answers, when they come, serve the next call.
	statsPatience = 500 * time.Millisecond
	// statsMaxAge is the oldest answer a list of stats gives in place of
	// one that is late: kubelet asks every 10 s. Each answer carries the
	// time it was taken, from which rates are computed.
	statsMaxAge = 10 * time.Second
	// statsParallelism bounds the guests asked at once. Each asker only
	// waits: with enough of them, a call that asks every guest waits for
	// the slowest once, not once per round of askers.
	statsParallelism = 64
)

// A list of stats asks every guest of the node, and under TCG the
// guests' answers cost CPU time that 2 cores spread thin: 50 idle pods
// took 1.1-1.3 s. So a list call asks every guest, as before, but waits
// for them only statsPatience; for a guest that has not answered by then
// it gives the last answer it had, if recent, and the late answer, which
// is still awaited up to statsDeadline, is kept for the next call. A
// guest already asked by an earlier call is not asked twice.

// statsCache is the last answer of each pod or container, by ID, and the
// questions still waiting for theirs.
type statsCache[R any] struct {
	// mu guards entries and asking.
	mu      sync.Mutex
	entries map[string]cachedStats[R]
	asking  map[string]chan struct{} // closed when the answer came, or none
	slots   chan struct{}            // statsParallelism askers at most
}

type cachedStats[R any] struct {
	stats R
	at    time.Time
}

func newStatsCache[R any]() *statsCache[R] {
	return &statsCache[R]{
		entries: map[string]cachedStats[R]{},
		asking:  map[string]chan struct{}{},
		slots:   make(chan struct{}, statsParallelism),
	}
}

// gather asks for items and answers in their order: what the guests
// answered within statsPatience (or before ctx ended), else their last
// answer not older than statsMaxAge; an item with neither is not ok.
func (c *statsCache[R]) gather(ctx context.Context, items []string, stats func(context.Context, string) (R, error)) []answer[R] {
	waits := make([]chan struct{}, len(items))
	for i, id := range items {
		waits[i] = c.ask(id, stats)
	}
	patience := time.NewTimer(statsPatience)
	defer patience.Stop()
wait:
	for _, w := range waits {
		select {
		case <-w:
		case <-patience.C:
			break wait
		case <-ctx.Done():
			break wait
		}
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]answer[R], len(items))
	kept := make(map[string]cachedStats[R], len(items))
	for i, id := range items {
		e, ok := c.entries[id]
		if !ok {
			continue
		}
		// Removed pods and containers are forgotten.
		kept[id] = e
		if time.Since(e.at) <= statsMaxAge {
			out[i] = answer[R]{stats: e.stats, at: e.at, ok: true}
		}
	}
	c.entries = kept
	return out
}

// ask asks the guest for id's stats in the background, unless a question
// is already waiting, and returns a channel closed when it is answered
// (or given up).
func (c *statsCache[R]) ask(id string, stats func(context.Context, string) (R, error)) chan struct{} {
	c.mu.Lock()
	if w, ok := c.asking[id]; ok {
		c.mu.Unlock()
		return w
	}
	done := make(chan struct{})
	c.asking[id] = done
	c.mu.Unlock()
	go func() {
		defer func() {
			c.mu.Lock()
			delete(c.asking, id)
			c.mu.Unlock()
			close(done)
		}()
		defer logPanic("Stats of a pod or container failed", "id", id)
		c.slots <- struct{}{}
		defer func() { <-c.slots }()
		ctx, cancel := context.WithTimeout(context.Background(), statsDeadline)
		defer cancel()
		r, err := stats(ctx, id)
		if err != nil {
			klog.V(4).InfoS("No stats", "id", id, "err", err)
			return
		}
		c.mu.Lock()
		c.entries[id] = cachedStats[R]{stats: r, at: time.Now()}
		c.mu.Unlock()
	}()
	return done
}

// answer is one item's answer to gather.
type answer[R any] struct {
	stats R
	at    time.Time
	ok    bool
}

// listStats answers for items in their order: those that live (a running
// container, a ready pod) through the cache, the others, which need no
// guest, at once.
func listStats[T, R any](ctx context.Context, cache *statsCache[R], items []T, key func(T) (string, bool), stats func(context.Context, T) (R, error)) []R {
	byID := map[string]T{}
	var live []string
	for _, it := range items {
		if id, ok := key(it); ok {
			byID[id] = it
			live = append(live, id)
		}
	}
	cached := cache.gather(ctx, live, func(ctx context.Context, id string) (R, error) { return stats(ctx, byID[id]) })
	fromCache := map[string]R{}
	for i, a := range cached {
		if a.ok {
			fromCache[live[i]] = a.stats
		}
	}
	var out []R
	for _, it := range items {
		id, ok := key(it)
		if ok {
			if r, found := fromCache[id]; found {
				out = append(out, r)
			}
			continue
		}
		if r, err := stats(ctx, it); err == nil {
			out = append(out, r)
		}
	}
	return out
}
