package cri

import (
	"context"
	"reflect"
	"sync"
	"testing"
	"time"
)

// TestStatsCache: a list of stats gives what the guests answer at once,
// fresh each call; one that is slow is waited for only statsPatience,
// and given its last answer meanwhile, once it has one; a guest still
// thinking is not asked twice; what is no longer asked for is forgotten.
func TestStatsCache(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var mu sync.Mutex
	asked := map[string]int{}
	version := 1
	slow := make(chan struct{}) // the slow guest answers once it is closed
	stats := func(ctx context.Context, id string) (string, error) {
		mu.Lock()
		asked[id]++
		v := version
		mu.Unlock()
		if id == "slow" {
			select {
			case <-slow:
			case <-ctx.Done():
				return "", ctx.Err()
			}
		}
		return id + "@" + string(rune('0'+v)), nil
	}
	okOf := func(answers []answer[string]) []string {
		var out []string
		for _, a := range answers {
			if a.ok {
				out = append(out, a.stats)
			}
		}
		return out
	}
	cache := newStatsCache[string]()
	start := time.Now()
	if got, want := okOf(cache.gather(ctx, []string{"a", "slow", "b"}, stats)), []string{"a@1", "b@1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("first call: %v, want %v", got, want)
	}
	if took := time.Since(start); took >= statsDeadline {
		t.Fatalf("the first call waited %v for the slow guest", took)
	}
	// The slow guest is still being asked: not again.
	mu.Lock()
	version = 2
	mu.Unlock()
	if got, want := okOf(cache.gather(ctx, []string{"a", "slow", "b"}, stats)), []string{"a@2", "b@2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("second call: %v, want fresh answers %v", got, want)
	}
	close(slow)
	eventually(t, "the late answer kept", func() bool {
		cache.mu.Lock()
		defer cache.mu.Unlock()
		_, ok := cache.entries["slow"]
		return ok
	})
	mu.Lock()
	if asked["slow"] != 1 {
		t.Fatalf("the slow guest was asked %d times while it thought, want 1", asked["slow"])
	}
	mu.Unlock()
	if got := okOf(cache.gather(ctx, []string{"slow"}, stats)); len(got) != 1 {
		t.Fatalf("after its late answer: %v", got)
	}
	cache.mu.Lock()
	defer cache.mu.Unlock()
	if len(cache.entries) != 1 {
		t.Fatalf("cache keeps %d entries, want only the one asked for", len(cache.entries))
	}
}
