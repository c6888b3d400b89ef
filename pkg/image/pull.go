package image

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"go.podman.io/image/v5/copy"
	"go.podman.io/image/v5/docker"
	"go.podman.io/image/v5/docker/reference"
	"go.podman.io/image/v5/pkg/shortnames"
	"go.podman.io/image/v5/pkg/sysregistriesv2"
	"go.podman.io/image/v5/signature"
	istorage "go.podman.io/image/v5/storage"
	"go.podman.io/image/v5/types"
)

// Auth is the credential of one pull, as the CRI's AuthConfig carries it.
type Auth struct {
	Username, Password string
	// Auth is base64("username:password").
	Auth string
	// IdentityToken is an OAuth2 refresh token for the registry.
	IdentityToken string
	// RegistryToken is a bearer token sent to the registry as is.
	RegistryToken string
}

// dockerAuth maps a to go.podman.io/image's credentials.
func (a *Auth) dockerAuth() (*types.DockerAuthConfig, string, error) {
	if a == nil {
		return nil, "", nil
	}
	user, pass := a.Username, a.Password
	if a.Auth != "" {
		b, err := base64.StdEncoding.DecodeString(a.Auth)
		if err != nil {
			return nil, "", fmt.Errorf("%w: auth is not base64: %w", ErrInvalidAuth, err)
		}
		var ok bool
		user, pass, ok = strings.Cut(string(b), ":")
		if !ok {
			return nil, "", fmt.Errorf("%w: auth is not user:password", ErrInvalidAuth)
		}
	}
	if user == "" && pass == "" && a.IdentityToken == "" {
		return nil, a.RegistryToken, nil
	}
	return &types.DockerAuthConfig{Username: user, Password: pass, IdentityToken: a.IdentityToken}, a.RegistryToken, nil
}

// Pull fetches the image ref names into the store and returns it.
// A short name is tried against each candidate registries.conf gives, in
// order. Concurrent pulls of one image (and one credential) do the work
// once; a caller that gives up (ctx) leaves the pull to the others, and a
// pull all callers gave up is cancelled. A failed pull leaves no image.
func (s *Service) Pull(ctx context.Context, ref string, auth *Auth) (*Image, error) {
	if ref == "" || idRE.MatchString(ref) {
		return nil, fmt.Errorf("%w: %q is not a pullable name", ErrInvalidReference, ref)
	}
	if _, err := reference.ParseNormalizedNamed(ref); err != nil {
		return nil, fmt.Errorf("%w: %q: %w", ErrInvalidReference, ref, err)
	}
	dauth, token, err := auth.dockerAuth()
	if err != nil {
		return nil, err
	}
	sc := s.systemContext(dauth, token)
	resolved, err := shortnames.Resolve(sc, ref)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %w", ErrInvalidReference, ref, err)
	}
	cands := resolved.PullCandidates
	if len(cands) == 0 {
		return nil, fmt.Errorf("%w: %q resolves to no registry", ErrInvalidReference, ref)
	}
	key := cands[0].Value.String() + "\x00" + authKey(dauth, token)
	id, err := s.flights.do(ctx, key, func(ctx context.Context) (string, error) {
		var errs []error
		for _, c := range cands {
			id, err := s.pullOne(ctx, sc, c.Value)
			if err == nil {
				return id, nil
			}
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
		}
		if len(errs) == 1 {
			return "", errs[0]
		}
		return "", errors.Join(errs...)
	})
	if err != nil {
		return nil, err
	}
	img, err := s.store.Image(id)
	if err != nil {
		return nil, classifyStore(err)
	}
	return s.toImage(img)
}

func authKey(a *types.DockerAuthConfig, token string) string {
	if a == nil {
		return token
	}
	return a.Username + "\x00" + a.Password + "\x00" + a.IdentityToken + "\x00" + token
}

// pullOne copies one fully qualified reference into the store and returns
// the image ID.
func (s *Service) pullOne(ctx context.Context, sc *types.SystemContext, named reference.Named) (string, error) {
	reg, err := sysregistriesv2.FindRegistry(sc, named.String())
	if err != nil {
		return "", fmt.Errorf("registries configuration: %w", err)
	}
	if reg != nil && reg.Blocked {
		return "", fmt.Errorf("%w: %s", ErrBlocked, reference.Domain(named))
	}
	srcRef, err := docker.NewReference(named)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %w", ErrInvalidReference, named, err)
	}
	destRef, err := istorage.Transport.NewStoreReference(s.store, named, "")
	if err != nil {
		return "", fmt.Errorf("%w: %s: %w", ErrInvalidReference, named, err)
	}
	pc, err := signature.NewPolicyContext(s.policy)
	if err != nil {
		return "", err
	}
	defer pc.Destroy() //nolint:errcheck
	_, err = copy.Image(ctx, pc, destRef, verifyingRef{ImageReference: srcRef, maxBlobSize: s.cfg.MaxLayerSize}, &copy.Options{
		SourceCtx:        sc,
		DestinationCtx:   sc,
		RemoveSignatures: true,
	})
	if err != nil {
		return "", fmt.Errorf("pulling %s: %w", named, classifyPull(err))
	}
	_, img, err := istorage.ResolveReference(destRef)
	if err != nil {
		return "", fmt.Errorf("pulled %s: %w", named, classifyStore(err))
	}
	return img.ID, nil
}
