package store

import (
	"errors"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	s, err := Open[record](t.TempDir(), "pod sandbox")
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{
		"abc1" + strings.Repeat("0", 60),
		"abc2" + strings.Repeat("0", 60),
		"def0" + strings.Repeat("0", 60),
		"def0" + strings.Repeat("0", 59), // a record whose ID is a prefix of another's
	}
	for _, id := range ids {
		if err := s.Add(id, record{Name: id}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		in   string
		want string
		err  error
	}{
		{in: ids[0], want: ids[0]},
		{in: "abc1", want: ids[0]},
		{in: "abc2000", want: ids[1]},
		{in: "abc", err: ErrAmbiguous},
		{in: "a", err: ErrAmbiguous},
		{in: ids[3], want: ids[3]}, // exact beats prefix
		{in: "def00", err: ErrAmbiguous},
		{in: "0123", err: ErrNotFound},
		{in: ids[0] + "0", err: ErrNotFound},
		{in: "", err: ErrNotFound},
	} {
		got, err := s.Resolve(tc.in)
		if !errors.Is(err, tc.err) || got != tc.want {
			t.Errorf("Resolve(%q) = %q, %v; want %q, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
	_, err = s.Resolve("abc")
	if !strings.Contains(err.Error(), ids[0]) || !strings.Contains(err.Error(), ids[1]) {
		t.Errorf("ambiguity error names no candidates: %v", err)
	}
	if err := s.Delete(ids[1]); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Resolve("abc"); err != nil || got != ids[0] {
		t.Errorf("Resolve(abc) after removing the other: %q, %v", got, err)
	}
}

func TestResolveNamesAtMostFiveCandidates(t *testing.T) {
	s, err := Open[record](t.TempDir(), "container")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range "0123456" {
		_ = s.Add("f"+string(c)+strings.Repeat("0", 62), record{})
	}
	_, err = s.Resolve("f")
	if !errors.Is(err, ErrAmbiguous) || !strings.Contains(err.Error(), "matches 7") || !strings.Contains(err.Error(), "and 2 more") {
		t.Fatalf("Resolve(f): %v", err)
	}
}

func TestIsShortID(t *testing.T) {
	for id, want := range map[string]bool{
		"":                                     false,
		"a":                                    true,
		"0123456789abcdef":                     true,
		strings.Repeat("a", 63):                true,
		strings.Repeat("a", 64):                false,
		"ABCDEF":                               false,
		"5f0c1a3e-7a0c-4d34-9f0e-4b7d1f3b9e2a": false, // critest's unknown IDs
		"my-pod":                               false,
	} {
		if got := IsShortID(id); got != want {
			t.Errorf("IsShortID(%q) = %v, want %v", id, got, want)
		}
	}
}
