package ids

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestDirs(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"b2", "a1", ".hidden", "-x"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "c3"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := Dirs(dir)
	if err != nil || !slices.Equal(got, []string{"a1", "b2"}) {
		t.Fatalf("Dirs = %v, %v; want [a1 b2]", got, err)
	}
	if got, err := Dirs(filepath.Join(dir, "none")); err != nil || got != nil {
		t.Fatalf("Dirs of a missing dir = %v, %v", got, err)
	}
	for id, want := range map[string]bool{"abc": true, "a.b-c_d": true, "": false, "../x": false, "a/b": false, string(make([]byte, 129)): false} {
		if Valid(id) != want {
			t.Errorf("Valid(%q) = %v", id, !want)
		}
	}
}
