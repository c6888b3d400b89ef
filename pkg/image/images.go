package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/image/v5/docker/reference"
	"go.podman.io/image/v5/manifest"
	"go.podman.io/image/v5/pkg/shortnames"
	istorage "go.podman.io/image/v5/storage"
	"go.podman.io/storage"
)

// Image is a stored image as the CRI sees it.
type Image struct {
	// ID is "sha256:" and the digest of the image's configuration.
	ID string
	// RepoTags are the image's tagged names, e.g.
	// "registry.k8s.io/pause:3.9".
	RepoTags []string
	// RepoDigests are repository@manifest-digest names.
	RepoDigests []string
	// Size is the bytes the image takes in the store (its layers
	// unpacked, plus manifest and configuration).
	Size uint64
	// Config is the image's OCI configuration: USER, ENV, ENTRYPOINT,
	// CMD, WORKDIR, volumes, labels...
	Config *imgspecv1.Image
	// TopLayer is the store's ID of the image's top layer.
	TopLayer string
}

// User returns the image's USER split the way containerd's CRI does:
// a numeric user gives uid, a name gives username; a group is ignored.
func (img *Image) User() (uid *int64, username string) {
	if img.Config == nil || img.Config.Config.User == "" {
		return nil, ""
	}
	user, _, _ := strings.Cut(img.Config.Config.User, ":")
	var n int64
	if _, err := fmt.Sscanf(user, "%d", &n); err == nil && fmt.Sprint(n) == user {
		return &n, ""
	}
	return nil, user
}

var idRE = regexp.MustCompile(`^(sha256:)?([0-9a-f]{64})$`)

// Status returns the stored image ref names: an image ID (with or without
// "sha256:"), a name with tag or digest, a short name resolved through
// registries.conf, or a unique prefix of an image ID (see lookup).
func (s *Service) Status(ctx context.Context, ref string) (*Image, error) {
	img, err := s.lookup(ref)
	if err != nil {
		return nil, err
	}
	return s.toImage(img)
}

// lookup finds the stored image that ref names. A full ID is looked up
// as such; then names; then, for hex digits shorter than an ID (with or
// without "sha256:"), the one image whose ID starts with them, as
// containerd and CRI-O resolve the short IDs crictl prints. A name wins
// over an ID prefix, as in docker: "cafe" is an image name too. A prefix
// of several images is ErrAmbiguous, naming them.
func (s *Service) lookup(ref string) (*storage.Image, error) {
	if ref == "" {
		return nil, fmt.Errorf("%w: empty", ErrInvalidReference)
	}
	if m := idRE.FindStringSubmatch(ref); m != nil {
		img, err := s.store.Image(m[2])
		if err == nil || m[1] != "" {
			return img, classifyStore(err)
		}
	}
	prefix, digestOnly := idPrefix(ref)
	if digestOnly {
		return s.byIDPrefix(prefix)
	}
	img, err := s.byName(ref)
	if prefix != "" && (errors.Is(err, ErrNotFound) || errors.Is(err, ErrInvalidReference)) {
		return s.byIDPrefix(prefix)
	}
	return img, err
}

// byName finds the stored image a name, full or short, names.
func (s *Service) byName(ref string) (*storage.Image, error) {
	cands, err := shortnames.ResolveLocally(s.systemContext(nil, ""), ref)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %w", ErrInvalidReference, ref, err)
	}
	for _, c := range cands {
		sref, err := istorage.Transport.NewStoreReference(s.store, c, "")
		if err != nil {
			return nil, fmt.Errorf("%w: %q: %w", ErrInvalidReference, ref, err)
		}
		_, img, err := istorage.ResolveReference(sref)
		if err == nil {
			return img, nil
		}
		if !errors.Is(err, istorage.ErrNoSuchImage) {
			return nil, classifyStore(err)
		}
	}
	return nil, fmt.Errorf("%w: %s", ErrNotFound, ref)
}

// byIDPrefix finds the one stored image whose ID starts with prefix.
func (s *Service) byIDPrefix(prefix string) (*storage.Image, error) {
	imgs, err := s.store.Images()
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(imgs))
	for i := range imgs {
		ids[i] = imgs[i].ID
	}
	id, err := matchIDPrefix(ids, prefix)
	if err != nil {
		return nil, err
	}
	img, err := s.store.Image(id)
	return img, classifyStore(err)
}

// ErrAmbiguous: an image ID prefix matches several images. It comes
// wrapped with ErrInvalidReference.
var ErrAmbiguous = fmt.Errorf("ambiguous image ID prefix: %w", errdefs.ErrInvalidArgument)

// maxCandidates bounds the IDs an ambiguity error names.
const maxCandidates = 5

// matchIDPrefix returns the one of ids that starts with prefix.
func matchIDPrefix(ids []string, prefix string) (string, error) {
	var matches []string
	for _, id := range ids {
		if strings.HasPrefix(id, prefix) {
			matches = append(matches, "sha256:"+id)
		}
	}
	switch len(matches) {
	case 0:
		return "", fmt.Errorf("%w: no image ID starts with %q", ErrNotFound, prefix)
	case 1:
		return strings.TrimPrefix(matches[0], "sha256:"), nil
	}
	slices.Sort(matches)
	named := strings.Join(matches[:min(len(matches), maxCandidates)], ", ")
	if len(matches) > maxCandidates {
		named += fmt.Sprintf(" and %d more", len(matches)-maxCandidates)
	}
	return "", fmt.Errorf("%w: %w: image ID prefix %q matches %d images: %s", ErrAmbiguous, ErrInvalidReference, prefix, len(matches), named)
}

// idPrefix returns the hex digits of ref when ref is 1 to 63 of them,
// with or without "sha256:"; digestOnly tells that ref had "sha256:",
// and so can be no name.
func idPrefix(ref string) (prefix string, digestOnly bool) {
	hex, digestOnly := strings.CutPrefix(ref, "sha256:")
	if hex == "" || len(hex) >= 64 || !isHex(hex) {
		return "", false
	}
	return hex, digestOnly
}

func isHex(s string) bool {
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// List returns every stored image.
func (s *Service) List(ctx context.Context) ([]*Image, error) {
	imgs, err := s.store.Images()
	if err != nil {
		return nil, err
	}
	out := make([]*Image, 0, len(imgs))
	for i := range imgs {
		img, err := s.toImage(&imgs[i])
		if errors.Is(err, ErrNotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, img)
	}
	return out, nil
}

// Remove deletes the image ref names with all its names, as containerd's
// CRI does. An image a container rootfs uses is not removed (ErrInUse).
func (s *Service) Remove(ctx context.Context, ref string) error {
	img, err := s.lookup(ref)
	if err != nil {
		return err
	}
	if _, err := s.store.DeleteImage(img.ID, true); err != nil {
		return fmt.Errorf("removing image %s: %w", img.ID, classifyStore(err))
	}
	s.mu.Lock()
	delete(s.configs, img.ID)
	s.mu.Unlock()
	return nil
}

// toImage converts a storage image.
func (s *Service) toImage(img *storage.Image) (*Image, error) {
	cfg, err := s.config(img)
	if err != nil {
		return nil, err
	}
	size, err := s.store.ImageSize(img.ID)
	if err != nil {
		return nil, classifyStore(err)
	}
	out := &Image{ID: "sha256:" + img.ID, Size: uint64(max(size, 0)), Config: cfg, TopLayer: img.TopLayer}
	digests := img.Digests
	if len(digests) == 0 && img.Digest != "" {
		digests = []digest.Digest{img.Digest}
	}
	addDigest := func(d string) {
		if !slices.Contains(out.RepoDigests, d) {
			out.RepoDigests = append(out.RepoDigests, d)
		}
	}
	for _, n := range img.Names {
		named, err := reference.ParseNormalizedNamed(n)
		if err != nil {
			continue
		}
		if t, ok := named.(reference.NamedTagged); ok {
			out.RepoTags = append(out.RepoTags, t.String())
		}
		if d, ok := named.(reference.Canonical); ok {
			addDigest(d.String())
		}
		for _, d := range digests {
			addDigest(named.Name() + "@" + d.String())
		}
	}
	return out, nil
}

// config reads an image's OCI configuration, through the cache.
func (s *Service) config(img *storage.Image) (*imgspecv1.Image, error) {
	s.mu.Lock()
	cfg, ok := s.configs[img.ID]
	s.mu.Unlock()
	if ok {
		return cfg, nil
	}
	mb, err := s.store.ImageBigData(img.ID, storage.ImageDigestBigDataKey)
	if err != nil {
		return nil, classifyStore(err)
	}
	m, err := manifest.FromBlob(mb, manifest.GuessMIMEType(mb))
	if err != nil {
		return nil, fmt.Errorf("manifest of image %s: %w", img.ID, err)
	}
	cb, err := s.store.ImageBigData(img.ID, m.ConfigInfo().Digest.String())
	if err != nil {
		return nil, fmt.Errorf("configuration of image %s: %w", img.ID, classifyStore(err))
	}
	cfg = &imgspecv1.Image{}
	if err := json.Unmarshal(cb, cfg); err != nil {
		return nil, fmt.Errorf("configuration of image %s: %w", img.ID, err)
	}
	s.mu.Lock()
	s.configs[img.ID] = cfg
	s.mu.Unlock()
	return cfg, nil
}
