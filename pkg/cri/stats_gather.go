package cri

import (
	"context"
	"sync"
	"time"

	"k8s.io/klog/v2"
)

const (
	// statsDeadline bounds each pod's answer to a list of stats: one
	// slow or silent guest leaves only its own pod out of the answer.
	statsDeadline = 2 * time.Second
	// statsParallelism bounds the guests asked at once. Each asker only
	// waits: with enough of them, a call that asks every guest takes one
	// statsDeadline at worst, not one per round of askers.
	statsParallelism = 64
	// statsMaxAge is the oldest answer a list of stats gives from its
	// cache: kubelet asks every 10 s. Each answer carries the time it was
	// taken, from which kubelet computes its rates.
	statsMaxAge = 10 * time.Second
	// statsRefreshAge is the age from which a list call has the cache
	// asked again in the background, for the next call.
	statsRefreshAge = statsMaxAge / 2
)

// A list of stats asks every guest of the node, and under TCG the
// guests' answers cost CPU time that 2 cores spread thin: 50 idle pods
// took 1.1-1.3 s. So a list call answers from a cache of each pod's or
// container's last answer, asks only for those it lacks or that are
// older than statsMaxAge, and then has every answer older than
// statsRefreshAge asked again in the background: the guests are asked
// once per call, as before, but nobody waits on them.

// listStats answers for items in their order: those that live (a running
// container, a ready pod) from the cache, the others, which need no
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

// statsCache is the last answer of each pod or container, by ID.
type statsCache[R any] struct {
	// mu guards entries and refreshing.
	mu         sync.Mutex
	entries    map[string]cachedStats[R]
	refreshing bool
}

type cachedStats[R any] struct {
	stats R
	at    time.Time
}

func newStatsCache[R any]() *statsCache[R] {
	return &statsCache[R]{entries: map[string]cachedStats[R]{}}
}

// gather answers for items, in their order, from the cache where it has
// a recent answer and from the guests where not; an item with no answer
// (a silent guest) is not ok.
func (c *statsCache[R]) gather(ctx context.Context, items []string, stats func(context.Context, string) (R, error)) []answer[R] {
	now := time.Now()
	var missing, stale []string
	c.mu.Lock()
	for _, id := range items {
		e, ok := c.entries[id]
		switch {
		case !ok || now.Sub(e.at) > statsMaxAge:
			missing = append(missing, id)
		case now.Sub(e.at) > statsRefreshAge:
			stale = append(stale, id)
		}
	}
	c.mu.Unlock()
	c.store(missing, askAll(ctx, missing, stats))
	c.refresh(stale, stats)

	c.mu.Lock()
	defer c.mu.Unlock()
	// Keep only what was asked for: removed pods and containers go.
	kept := make(map[string]cachedStats[R], len(items))
	out := make([]answer[R], len(items))
	for i, id := range items {
		if e, ok := c.entries[id]; ok && time.Since(e.at) <= statsMaxAge {
			out[i] = answer[R]{stats: e.stats, at: e.at, ok: true}
			kept[id] = e
		}
	}
	c.entries = kept
	return out
}

// refresh asks again for ids in the background, unless a refresh runs.
func (c *statsCache[R]) refresh(ids []string, stats func(context.Context, string) (R, error)) {
	if len(ids) == 0 {
		return
	}
	c.mu.Lock()
	if c.refreshing {
		c.mu.Unlock()
		return
	}
	c.refreshing = true
	c.mu.Unlock()
	go func() {
		defer func() {
			c.mu.Lock()
			c.refreshing = false
			c.mu.Unlock()
		}()
		defer logPanic("Stats refresh failed")
		c.store(ids, askAll(context.Background(), ids, stats))
	}()
}

// store keeps the answers that came.
func (c *statsCache[R]) store(ids []string, answers []answer[R]) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, a := range answers {
		if a.ok {
			c.entries[ids[i]] = cachedStats[R]{stats: a.stats, at: a.at}
		}
	}
}

// answer is one guest's answer to askAll.
type answer[R any] struct {
	stats R
	at    time.Time
	ok    bool
}

// askAll calls stats for every item, statsParallelism at a time, each
// call under its own deadline.
func askAll[T, R any](ctx context.Context, items []T, stats func(context.Context, T) (R, error)) []answer[R] {
	answers := make([]answer[R], len(items))
	slots := make(chan struct{}, statsParallelism)
	var wg sync.WaitGroup
	for i, item := range items {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer func() { <-slots; wg.Done() }()
			defer logPanic("Stats of a pod or container failed")
			ctx, cancel := context.WithTimeout(ctx, statsDeadline)
			defer cancel()
			r, err := stats(ctx, item)
			if err != nil {
				klog.V(4).InfoS("No stats", "id", item, "err", err)
				return
			}
			answers[i] = answer[R]{stats: r, at: time.Now(), ok: true}
		}()
	}
	wg.Wait()
	return answers
}
