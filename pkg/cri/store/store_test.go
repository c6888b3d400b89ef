package store

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

type record struct {
	Name  string
	Count int
}

func TestStorePersistsAndReloads(t *testing.T) {
	dir := t.TempDir()
	s, err := Open[record](dir, "record")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Add("a", record{Name: "first"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Add("a", record{}); !errors.Is(err, ErrAlreadyExists) {
		t.Fatalf("second Add: %v, want ErrAlreadyExists", err)
	}
	if _, err := s.Update("a", func(r *record) error { r.Count = 2; return nil }); err != nil {
		t.Fatal(err)
	}
	failing := errors.New("refused")
	if _, err := s.Update("a", func(r *record) error { r.Count = 99; return failing }); !errors.Is(err, failing) {
		t.Fatalf("failing Update: %v", err)
	}
	if _, err := s.Update("none", func(*record) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Update of a missing record: %v, want ErrNotFound", err)
	}
	// A restart reads what was saved, without the failed update.
	s2, err := Open[record](dir, "record")
	if err != nil {
		t.Fatal(err)
	}
	r, err := s2.Get("a")
	if err != nil || r.Name != "first" || r.Count != 2 {
		t.Fatalf("reloaded %+v, %v; want first with count 2", r, err)
	}
	if err := s2.Delete("a"); err != nil {
		t.Fatal(err)
	}
	if err := s2.Delete("a"); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
	if _, err := s2.Get("a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Delete: %v, want ErrNotFound", err)
	}
	if len(s2.List()) != 0 {
		t.Fatal("List after Delete is not empty")
	}
}

func TestGetReturnsCopies(t *testing.T) {
	s, err := Open[record](t.TempDir(), "record")
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Add("a", record{Name: "x"})
	r, _ := s.Get("a")
	r.Name = "changed"
	if r2, _ := s.Get("a"); r2.Name != "x" {
		t.Fatal("a caller's copy changed the stored record")
	}
}

func TestNames(t *testing.T) {
	n := NewNames()
	if err := n.Reserve("pod_ns_uid_0", "id1"); err != nil {
		t.Fatal(err)
	}
	if err := n.Reserve("pod_ns_uid_0", "id1"); err != nil {
		t.Fatalf("reserving again for the same ID: %v", err)
	}
	if err := n.Reserve("pod_ns_uid_0", "id2"); !errors.Is(err, ErrAlreadyExists) {
		t.Fatalf("reserving for another ID: %v, want ErrAlreadyExists", err)
	}
	n.Release("pod_ns_uid_0")
	if err := n.Reserve("pod_ns_uid_0", "id2"); err != nil {
		t.Fatalf("reserving a released name: %v", err)
	}
}

// TestUnreadableRecordMovedAside: a truncated record does not keep the
// store from opening; it is kept beside, the others load.
func TestUnreadableRecordMovedAside(t *testing.T) {
	dir := t.TempDir()
	s, err := Open[record](dir, "record")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"good", "bad"} {
		if err := s.Add(id, record{Name: id}); err != nil {
			t.Fatal(err)
		}
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"Name": "ba`), 0o600); err != nil {
		t.Fatal(err)
	}
	s2, err := Open[record](dir, "record")
	if err != nil {
		t.Fatalf("Open with a truncated record: %v", err)
	}
	if r, err := s2.Get("good"); err != nil || r.Name != "good" {
		t.Fatalf("the good record: %+v, %v", r, err)
	}
	if _, err := s2.Get("bad"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the truncated record: %v, want ErrNotFound", err)
	}
	if _, err := os.Stat(bad + corruptSuffix); err != nil {
		t.Fatalf("the truncated record was not kept aside: %v", err)
	}
	if _, err := os.Stat(bad); !os.IsNotExist(err) {
		t.Fatalf("the truncated record is still in place: %v", err)
	}
}

// TestLeftoverTempFiles: the temporary file of a write a crash cut short,
// of this naming or of the old (id.json.tmp), is not taken for a record,
// and the record it was to replace loads whole.
func TestLeftoverTempFiles(t *testing.T) {
	dir := t.TempDir()
	s, err := Open[record](dir, "record")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Add("a", record{Name: "whole"}); err != nil {
		t.Fatal(err)
	}
	current := filepath.Join(dir, ".a.json.tmp-1234")
	old := filepath.Join(dir, "a.json.tmp")
	for _, p := range []string{current, old} {
		if err := os.WriteFile(p, []byte(`{"Name": "cut`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s2, err := Open[record](dir, "record")
	if err != nil {
		t.Fatalf("Open with leftover temporary files: %v", err)
	}
	if r, err := s2.Get("a"); err != nil || r.Name != "whole" {
		t.Fatalf("the record: %+v, %v", r, err)
	}
	if n := len(s2.List()); n != 1 {
		t.Fatalf("%d records, want 1", n)
	}
	if _, err := os.Stat(current); !os.IsNotExist(err) {
		t.Fatalf("the leftover temporary file is still there: %v", err)
	}
	if _, err := s2.Update("a", func(r *record) error { r.Count = 1; return nil }); err != nil {
		t.Fatal(err)
	}
	s3, err := Open[record](dir, "record")
	if err != nil {
		t.Fatal(err)
	}
	if r, err := s3.Get("a"); err != nil || r.Count != 1 {
		t.Fatalf("after an update: %+v, %v", r, err)
	}
}
