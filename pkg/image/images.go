package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

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
// "sha256:"), a unique ID prefix, a name with tag or digest, or a short
// name resolved through registries.conf.
func (s *Service) Status(ctx context.Context, ref string) (*Image, error) {
	img, err := s.lookup(ref)
	if err != nil {
		return nil, err
	}
	return s.toImage(img)
}

// lookup finds the stored image that ref names.
func (s *Service) lookup(ref string) (*storage.Image, error) {
	if ref == "" {
		return nil, fmt.Errorf("%w: empty", ErrInvalidReference)
	}
	if m := idRE.FindStringSubmatch(ref); m != nil {
		img, err := s.store.Image(m[2])
		if err == nil || m[1] != "" {
			return img, classifyStore(err)
		}
	} else if len(ref) >= 6 && isHex(ref) {
		// An ID prefix, as crictl users type them.
		if img, err := s.store.Image(ref); err == nil && strings.HasPrefix(img.ID, ref) {
			return img, nil
		}
	}
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
