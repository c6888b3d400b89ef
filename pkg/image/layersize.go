package image

import (
	"errors"
	"fmt"
	"io"

	"go.podman.io/image/v5/pkg/compression"
)

// sizeCappedReader passes a blob through and, beside it, decompresses it
// only to count its uncompressed bytes: a layer is refused once it
// unpacks to more than max, however small it is on the wire (a
// decompression bomb), before the store has unpacked it all.
type sizeCappedReader struct {
	rc     io.ReadCloser
	digest string
	pw     *io.PipeWriter
	// counted is closed once the counter has read everything; err is its
	// verdict, set before counted is closed.
	counted chan struct{}
	err     error
}

func newSizeCappedReader(rc io.ReadCloser, digest string, max int64) *sizeCappedReader {
	pr, pw := io.Pipe()
	r := &sizeCappedReader{rc: rc, digest: digest, pw: pw, counted: make(chan struct{})}
	go func() {
		defer close(r.counted)
		r.err = countUncompressed(pr, max)
		if r.err != nil {
			pr.CloseWithError(r.err)
		}
		_, _ = io.Copy(io.Discard, pr) // what is left, so that writes never block
	}()
	return r
}

// countUncompressed fails with ErrLayerTooLarge once r, decompressed,
// passes max bytes. Data it cannot decompress is left for the store to
// refuse.
func countUncompressed(r io.Reader, max int64) error {
	d, _, err := compression.AutoDecompress(r)
	if err != nil {
		return nil
	}
	defer d.Close()
	n, err := io.Copy(io.Discard, io.LimitReader(d, max+1))
	if err == nil && n > max {
		return ErrLayerTooLarge
	}
	return nil
}

func (r *sizeCappedReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	if n > 0 {
		if _, werr := r.pw.Write(p[:n]); werr != nil && errors.Is(werr, ErrLayerTooLarge) {
			return 0, fmt.Errorf("blob %s: %w", r.digest, werr)
		}
	}
	if err == io.EOF {
		r.pw.Close()
		<-r.counted
		if r.err != nil {
			return n, fmt.Errorf("blob %s: %w", r.digest, r.err)
		}
	}
	return n, err
}

func (r *sizeCappedReader) Close() error {
	r.pw.CloseWithError(io.ErrClosedPipe)
	return r.rc.Close()
}
