package rollback

import (
	"context"
	"errors"
	"testing"
)

func TestRunsNewestFirstUnderALiveContext(t *testing.T) {
	var s Stack
	var order []string
	for _, name := range []string{"first", "second", "third"} {
		s.Add(name, func(ctx context.Context) error {
			if ctx.Err() != nil {
				t.Errorf("step %s ran under a dead context", name)
			}
			order = append(order, name)
			if name == "second" {
				return errors.New("failed step")
			}
			return nil
		})
	}
	s.Run("test", t.Name())
	if got := order; len(got) != 3 || got[0] != "third" || got[2] != "first" {
		t.Fatalf("steps ran in order %v, want third, second, first", got)
	}
	order = nil
	s.Run()
	if len(order) != 0 {
		t.Fatalf("a second Run repeated steps: %v", order)
	}
}
