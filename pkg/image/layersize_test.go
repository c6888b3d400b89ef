package image

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"path/filepath"
	"testing"
)

func gzipped(t *testing.T, n int) []byte {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	if _, err := w.Write(make([]byte, n)); err != nil {
		t.Fatal(err)
	}
	w.Close()
	return b.Bytes()
}

// TestSizeCappedReader: a small blob that unpacks past the cap (a
// decompression bomb) fails; one under it passes through unchanged.
func TestSizeCappedReader(t *testing.T) {
	bomb := gzipped(t, 16<<20)
	r := newSizeCappedReader(io.NopCloser(bytes.NewReader(bomb)), "sha256:bomb", 1<<20)
	if _, err := io.Copy(io.Discard, r); !errors.Is(err, ErrLayerTooLarge) {
		t.Fatalf("a %d-byte blob unpacking to 16 MiB under a 1 MiB cap: %v, want ErrLayerTooLarge", len(bomb), err)
	}
	r.Close()

	small := gzipped(t, 512<<10)
	r = newSizeCappedReader(io.NopCloser(bytes.NewReader(small)), "sha256:small", 1<<20)
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, small) {
		t.Fatalf("a blob under the cap: %d bytes, %v", len(got), err)
	}
	r.Close()

	// Uncompressed data is counted as it is.
	r = newSizeCappedReader(io.NopCloser(bytes.NewReader(make([]byte, 2<<20))), "sha256:raw", 1<<20)
	if _, err := io.Copy(io.Discard, r); !errors.Is(err, ErrLayerTooLarge) {
		t.Fatalf("2 MiB of plain data under a 1 MiB cap: %v", err)
	}
	r.Close()
}

// TestPullLayerTooLarge: a pull of an image with a layer over the cap
// fails and leaves no image; under a larger cap it succeeds.
func TestPullLayerTooLarge(t *testing.T) {
	for _, tc := range []struct {
		max  int64
		want error
	}{{1 << 20, ErrLayerTooLarge}, {256 << 20, nil}} {
		dir := t.TempDir()
		s, err := New(Config{Root: filepath.Join(dir, "root"), RunRoot: filepath.Join(dir, "run"), RegistriesConf: regConf, MaxLayerSize: tc.max})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = s.store.Shutdown(true) })
		_, err = s.Pull(context.Background(), ref("test/busybox:1"), nil)
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Fatalf("pull under a cap of %d bytes: %v, want %v", tc.max, err, tc.want)
		}
		if list, _ := s.List(context.Background()); (tc.want != nil) != (len(list) == 0) {
			t.Fatalf("images after the pull under a cap of %d: %d", tc.max, len(list))
		}
	}
}
