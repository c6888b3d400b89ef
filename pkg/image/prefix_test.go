package image

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestMatchIDPrefix(t *testing.T) {
	ids := []string{"ab12" + strings.Repeat("0", 60), "ab34" + strings.Repeat("0", 60), "cd00" + strings.Repeat("0", 60)}
	for _, tc := range []struct {
		prefix string
		want   string
		err    error
	}{
		{prefix: "ab1", want: ids[0]},
		{prefix: "c", want: ids[2]},
		{prefix: "ab", err: ErrAmbiguous},
		{prefix: "ef", err: ErrNotFound},
	} {
		got, err := matchIDPrefix(ids, tc.prefix)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("matchIDPrefix(%q) = %q, %v; want %q, %v", tc.prefix, got, err, tc.want, tc.err)
		}
	}
	_, err := matchIDPrefix(ids, "ab")
	if !errors.Is(err, ErrInvalidReference) || !strings.Contains(err.Error(), "sha256:"+ids[0]) || !strings.Contains(err.Error(), "sha256:"+ids[1]) {
		t.Errorf("ambiguity %v: want ErrInvalidReference naming both images", err)
	}
}

func TestIDPrefix(t *testing.T) {
	for ref, want := range map[string]struct {
		prefix     string
		digestOnly bool
	}{
		"abc123":                 {"abc123", false},
		"sha256:abc123":          {"abc123", true},
		"busybox":                {"", false},
		strings.Repeat("a", 64):  {"", false},
		"sha256:":                {"", false},
		"registry.k8s.io/pause":  {"", false},
		"ABC":                    {"", false},
		"sha256:" + "0123456789": {"0123456789", true},
	} {
		p, d := idPrefix(ref)
		if p != want.prefix || d != want.digestOnly {
			t.Errorf("idPrefix(%q) = %q, %v; want %q, %v", ref, p, d, want.prefix, want.digestOnly)
		}
	}
}

// TestImageIDPrefixes pulls images of different IDs and finds them by
// the short IDs crictl prints, with and without "sha256:".
func TestImageIDPrefixes(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	var ids []string
	for _, r := range []string{"test/busybox:1", "user/uid:1", "user/name-group:1", "corrupt/other:1"} {
		img, err := s.Pull(ctx, ref(r), nil)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, strings.TrimPrefix(img.ID, "sha256:"))
	}
	for _, id := range ids {
		for _, r := range []string{id[:13], "sha256:" + id[:13], id[:4]} {
			img, err := s.Status(ctx, r)
			if err != nil || img.ID != "sha256:"+id {
				t.Errorf("Status(%s): %v, %v; want sha256:%s", r, img, err, id)
			}
		}
	}
	unknown := ""
	for _, c := range "0123456789abcdef" {
		p := strings.Repeat(string(c), 12)
		taken := false
		for _, id := range ids {
			taken = taken || strings.HasPrefix(id, p)
		}
		if !taken {
			unknown = p
			break
		}
	}
	if _, err := s.Status(ctx, unknown); !errors.Is(err, ErrNotFound) {
		t.Errorf("Status(%s): %v, want ErrNotFound", unknown, err)
	}
	if err := s.Remove(ctx, unknown); !errors.Is(err, ErrNotFound) {
		t.Errorf("Remove(%s): %v, want ErrNotFound", unknown, err)
	}
	// A prefix of two images, when two of them share a first digit.
	first := map[byte]string{}
	for _, id := range ids {
		if other, ok := first[id[0]]; ok {
			if _, err := s.Status(ctx, id[:1]); !errors.Is(err, ErrAmbiguous) || !strings.Contains(err.Error(), other) {
				t.Errorf("Status(%s) of %s and %s: %v, want ErrAmbiguous", id[:1], other, id, err)
			}
		}
		first[id[0]] = id
	}
	// Remove by a short ID removes that image only.
	if err := s.Remove(ctx, ids[1][:13]); err != nil {
		t.Fatalf("Remove(%s): %v", ids[1][:13], err)
	}
	if _, err := s.Status(ctx, ids[1]); !errors.Is(err, ErrNotFound) {
		t.Errorf("Status after Remove(%s): %v", ids[1][:13], err)
	}
	if l, _ := s.List(ctx); len(l) != len(ids)-1 {
		t.Errorf("%d images left, want %d", len(l), len(ids)-1)
	}
}
