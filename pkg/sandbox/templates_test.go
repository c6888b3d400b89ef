package sandbox

import "testing"

// TestTemplateGuestFailures: restored guests that fail to answer are
// counted in a row, and an answer starts the count again.
func TestTemplateGuestFailures(t *testing.T) {
	var tm templates
	for i, step := range []struct {
		ok   bool
		want int
	}{{false, 1}, {false, 2}, {true, 0}, {false, 1}, {false, 2}, {false, 3}} {
		if got := tm.guestAnswered("k", step.ok); got != step.want {
			t.Fatalf("step %d (answered %v): %d failures in a row, want %d", i, step.ok, got, step.want)
		}
	}
	if got := tm.guestAnswered("other", false); got != 1 {
		t.Fatalf("another template's count: %d, want 1", got)
	}
}
