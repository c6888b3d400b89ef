package image

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"

	"github.com/docker/distribution/registry/api/errcode"
	"go.podman.io/image/v5/docker"
	istorage "go.podman.io/image/v5/storage"
	"go.podman.io/storage"
)

// Errors of this package, tested with errors.Is. The CRI adapter maps
// each to a gRPC status code; nothing inspects error text.
var (
	// ErrNotFound: no such image, in the store or in the registry.
	ErrNotFound = errors.New("image not found")
	// ErrInvalidReference: the image reference cannot be parsed or resolved.
	ErrInvalidReference = errors.New("invalid image reference")
	// ErrInvalidAuth: the credentials given are malformed.
	ErrInvalidAuth = errors.New("invalid registry credentials")
	// ErrUnauthorized: the registry refused the credentials (or their absence).
	ErrUnauthorized = errors.New("registry authentication failed")
	// ErrBlocked: registries.conf blocks the registry.
	ErrBlocked = errors.New("registry is blocked")
	// ErrUnavailable: the registry cannot be reached.
	ErrUnavailable = errors.New("registry unavailable")
	// ErrDigestMismatch: a blob's content does not match its digest.
	ErrDigestMismatch = errors.New("blob digest mismatch")
	// ErrLayerTooLarge: a layer unpacks to more than Config.MaxLayerSize.
	ErrLayerTooLarge = errors.New("layer too large")
	// ErrInUse: the image is the image of a container's rootfs.
	ErrInUse = errors.New("image is in use by a container")
	// ErrContainerNotFound: no rootfs for that container.
	ErrContainerNotFound = errors.New("container rootfs not found")
	// ErrConflict: a container rootfs exists with another image.
	ErrConflict = errors.New("container rootfs exists with another image")
)

// classifyStore maps go.podman.io/storage errors onto this package's.
func classifyStore(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, storage.ErrImageUnknown), errors.Is(err, istorage.ErrNoSuchImage):
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	case errors.Is(err, storage.ErrImageUsedByContainer):
		return fmt.Errorf("%w: %w", ErrInUse, err)
	case errors.Is(err, storage.ErrContainerUnknown), errors.Is(err, storage.ErrNotAnID):
		return fmt.Errorf("%w: %w", ErrContainerNotFound, err)
	}
	return err
}

// classifyPull maps a registry or copy error onto this package's errors
// by type and registry error code, never by text.
func classifyPull(err error) error {
	var (
		unauth docker.ErrUnauthorizedForCredentials
		ec     errcode.ErrorCoder
		opErr  *net.OpError
		dnsErr *net.DNSError
	)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		errors.Is(err, ErrDigestMismatch), errors.Is(err, ErrBlocked), errors.Is(err, ErrLayerTooLarge):
		return err
	case errors.As(err, &unauth):
		return fmt.Errorf("%w: %w", ErrUnauthorized, err)
	case errors.As(err, &ec):
		switch ec.ErrorCode().Descriptor().Value {
		case "UNAUTHORIZED", "DENIED":
			return fmt.Errorf("%w: %w", ErrUnauthorized, err)
		case "MANIFEST_UNKNOWN", "NAME_UNKNOWN", "BLOB_UNKNOWN":
			return fmt.Errorf("%w: %w", ErrNotFound, err)
		case "TOOMANYREQUESTS", "UNAVAILABLE":
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
	case errors.Is(err, docker.ErrTooManyRequests),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.As(err, &opErr), errors.As(err, &dnsErr):
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}
