package cri

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
)

// TestGatherStats: a guest that never answers is left out once its
// deadline passes, one that fails is left out, the others keep their order.
func TestGatherStats(t *testing.T) {
	t.Parallel()
	items := []int{0, 1, 2, 3, 4, 5, 6}
	got := gatherStats(context.Background(), items, func(ctx context.Context, i int) (string, error) {
		switch i % 3 {
		case 1: // silent
			<-ctx.Done()
			return "", ctx.Err()
		case 2:
			return "", errors.New("exited meanwhile")
		}
		return fmt.Sprint(i), nil
	})
	if want := []string{"0", "3", "6"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("gathered %v, want %v", got, want)
	}
}
