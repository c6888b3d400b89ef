package image

import (
	"context"
	"fmt"
	"hash"
	"io"

	digest "github.com/opencontainers/go-digest"
	"go.podman.io/image/v5/types"
)

// verifyingRef is a registry reference whose blobs are checked against
// their digests as they stream, so that a corrupted blob fails the pull
// with ErrDigestMismatch (go.podman.io/image's own check returns an error
// of no distinct type).
// With maxBlobSize set, a blob that unpacks to more fails the pull with
// ErrLayerTooLarge.
type verifyingRef struct {
	types.ImageReference
	maxBlobSize int64
}

func (r verifyingRef) NewImageSource(ctx context.Context, sys *types.SystemContext) (types.ImageSource, error) {
	src, err := r.ImageReference.NewImageSource(ctx, sys)
	if err != nil {
		return nil, err
	}
	return verifyingSource{ImageSource: src, maxBlobSize: r.maxBlobSize}, nil
}

type verifyingSource struct {
	types.ImageSource
	maxBlobSize int64
}

func (s verifyingSource) GetBlob(ctx context.Context, info types.BlobInfo, cache types.BlobInfoCache) (io.ReadCloser, int64, error) {
	rc, n, err := s.ImageSource.GetBlob(ctx, info, cache)
	if err != nil {
		return rc, n, err
	}
	if s.maxBlobSize > 0 {
		rc = newSizeCappedReader(rc, info.Digest.String(), s.maxBlobSize)
	}
	if info.Digest == "" || info.Digest.Validate() != nil || !info.Digest.Algorithm().Available() {
		return rc, n, nil
	}
	return &verifyingReader{rc: rc, want: info.Digest, h: info.Digest.Algorithm().Hash()}, n, nil
}

type verifyingReader struct {
	rc   io.ReadCloser
	want digest.Digest
	h    hash.Hash
}

func (r *verifyingReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	r.h.Write(p[:n])
	if err == io.EOF {
		if got := digest.NewDigest(r.want.Algorithm(), r.h); got != r.want {
			return n, fmt.Errorf("%w: blob %s has digest %s", ErrDigestMismatch, r.want, got)
		}
	}
	return n, err
}

func (r *verifyingReader) Close() error { return r.rc.Close() }
