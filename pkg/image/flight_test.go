package image

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// Work whose callers gave up runs on until it sees the cancellation;
// stop waits for it, so that the store is shut down after it (the image
// service test's store once stayed mounted behind a pull cut at 1 ms).
func TestFlightStopWaitsForAbandonedWork(t *testing.T) {
	var g flightGroup
	var finished atomic.Bool
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, err := g.do(ctx, "ref", func(ctx context.Context) (string, error) {
		<-ctx.Done()
		time.Sleep(50 * time.Millisecond) // the store's cleanup, after the cancellation
		finished.Store(true)
		return "", ctx.Err()
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("do = %v, want the caller's deadline", err)
	}
	if finished.Load() {
		t.Fatal("the work finished before its caller returned: the test proves nothing")
	}
	g.stop()
	if !finished.Load() {
		t.Fatal("stop returned while the work ran")
	}
}

func TestFlightStopCancelsWorkInFlight(t *testing.T) {
	var g flightGroup
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := g.do(context.Background(), "ref", func(ctx context.Context) (string, error) {
			close(started)
			<-ctx.Done()
			return "", ctx.Err()
		})
		done <- err
	}()
	<-started
	g.stop()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("the waiting caller got %v, want the work's cancellation", err)
	}
}
