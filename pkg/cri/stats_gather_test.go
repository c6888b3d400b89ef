package cri

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync/atomic"
	"testing"
	"time"
)

// TestStatsCache: a guest that never answers is left out once its
// deadline passes, one that fails is left out, the others keep their
// order; a second call answers from the cache without waiting on any
// guest, and a stale answer is asked again in the background.
func TestStatsCache(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	items := []string{"0", "1", "2", "3", "4", "5", "6"}
	var asked atomic.Int32
	cache := newStatsCache[string]()
	stats := func(ctx context.Context, id string) (string, error) {
		asked.Add(1)
		switch id {
		case "1", "4": // silent
			<-ctx.Done()
			return "", ctx.Err()
		case "2", "5":
			return "", errors.New("exited meanwhile")
		}
		return "v" + id, nil
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
	start := time.Now()
	if got, want := okOf(cache.gather(ctx, items, stats)), []string{"v0", "v3", "v6"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("gathered %v, want %v", got, want)
	}
	if took := time.Since(start); took < statsDeadline {
		t.Fatalf("the silent guests were not waited for: %v", took)
	}
	// Answers from the cache; only those it lacks are asked, and an
	// answer older than the refresh age is asked again afterwards.
	asked.Store(0)
	slow := func(ctx context.Context, id string) (string, error) {
		asked.Add(1)
		return "new" + id, nil
	}
	cache.mu.Lock()
	e := cache.entries["0"]
	e.at = time.Now().Add(-statsRefreshAge - time.Second)
	cache.entries["0"] = e
	cache.mu.Unlock()
	if got, want := okOf(cache.gather(ctx, []string{"0", "3"}, slow)), []string{"v0", "v3"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("from the cache: %v, want %v", got, want)
	}
	eventually(t, "the stale answer asked again", func() bool {
		cache.mu.Lock()
		defer cache.mu.Unlock()
		return cache.entries["0"].stats == "new0" && !cache.refreshing
	})
	if n := asked.Load(); n != 1 {
		t.Fatalf("%d guests asked, want 1 (the stale one)", n)
	}
	// What is no longer asked for is forgotten.
	cache.gather(ctx, []string{"3"}, slow)
	cache.mu.Lock()
	defer cache.mu.Unlock()
	if len(cache.entries) != 1 {
		t.Fatalf("cache keeps %d entries, want 1", len(cache.entries))
	}
}

// TestAskAll: each answer in its item's place.
func TestAskAll(t *testing.T) {
	t.Parallel()
	got := askAll(context.Background(), []int{1, 2, 3}, func(_ context.Context, i int) (string, error) {
		if i == 2 {
			return "", errors.New("no")
		}
		return fmt.Sprint(i), nil
	})
	if !got[0].ok || got[0].stats != "1" || got[1].ok || !got[2].ok || got[2].stats != "3" {
		t.Fatalf("answers %+v", got)
	}
}
