package sandbox

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

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

// TestTemplatesMakeRoom: with maxTemplates kept, the one used least
// lately goes; one being built, or not yet whole, stays.
func TestTemplatesMakeRoom(t *testing.T) {
	dir := t.TempDir()
	tm := templates{dir: dir, building: map[string]bool{"building": true}}
	base := time.Now().Add(-time.Hour)
	for i, key := range []string{"used-2nd", "used-1st", "building", "used-3rd"} {
		if err := os.MkdirAll(filepath.Join(dir, key), 0o700); err != nil {
			t.Fatal(err)
		}
		ready := filepath.Join(dir, key, templateReadyFile)
		if err := os.WriteFile(ready, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		use := base.Add(time.Duration([]int{2, 1, 0, 3}[i]) * time.Minute)
		if err := os.Chtimes(ready, use, use); err != nil {
			t.Fatal(err)
		}
	}
	if !tm.makeRoom() {
		t.Fatal("no room made with four templates kept")
	}
	left := func() []string {
		entries, _ := os.ReadDir(dir)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return names
	}
	if got, want := left(), []string{"building", "used-2nd", "used-3rd"}; !slices.Equal(got, want) {
		t.Fatalf("templates left %q, want %q", got, want)
	}
	// Below the bound: nothing removed.
	if !tm.makeRoom() || len(left()) != 3 {
		t.Fatalf("makeRoom below the bound: %q left", left())
	}
	// Full of templates being built or not yet whole: no room.
	for _, key := range []string{"half-a", "half-b"} {
		if err := os.MkdirAll(filepath.Join(dir, key), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	tm.building["used-2nd"], tm.building["used-3rd"] = true, true
	if tm.makeRoom() {
		t.Fatalf("room made though every template is being built or half made: %q left", left())
	}
}
