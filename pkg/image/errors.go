package image

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"

	"github.com/containerd/errdefs"
	"github.com/docker/distribution/registry/api/errcode"
	"go.podman.io/image/v5/docker"
	istorage "go.podman.io/image/v5/storage"
	"go.podman.io/storage"
)

// Errors of this package, tested with errors.Is. Each wraps its kind of
// github.com/containerd/errdefs, which the CRI answers with a gRPC code;
// nothing inspects error text.
var (
	// ErrNotFound: no such image, in the store or in the registry.
	ErrNotFound = fmt.Errorf("image %w", errdefs.ErrNotFound)
	// ErrInvalidReference: the image reference cannot be parsed or resolved.
	ErrInvalidReference = fmt.Errorf("invalid image reference: %w", errdefs.ErrInvalidArgument)
	// ErrInvalidAuth: the credentials given are malformed.
	ErrInvalidAuth = fmt.Errorf("invalid registry credentials: %w", errdefs.ErrInvalidArgument)
	// ErrUnauthorized: the registry refused the credentials (or their absence).
	ErrUnauthorized = fmt.Errorf("registry authentication failed: %w", errdefs.ErrUnauthenticated)
	// ErrBlocked: registries.conf blocks the registry.
	ErrBlocked = fmt.Errorf("registry is blocked: %w", errdefs.ErrPermissionDenied)
	// ErrUnavailable: the registry cannot be reached.
	ErrUnavailable = fmt.Errorf("registry %w", errdefs.ErrUnavailable)
	// ErrDigestMismatch: a blob's content does not match its digest.
	ErrDigestMismatch = fmt.Errorf("blob digest mismatch: %w", errdefs.ErrDataLoss)
	// ErrLayerTooLarge: a layer unpacks to more than Config.MaxLayerSize.
	ErrLayerTooLarge = fmt.Errorf("layer too large: %w", errdefs.ErrResourceExhausted)
	// ErrInUse: the image is the image of a container's rootfs.
	ErrInUse = fmt.Errorf("image is in use by a container: %w", errdefs.ErrFailedPrecondition)
	// ErrContainerNotFound: no rootfs for that container.
	ErrContainerNotFound = fmt.Errorf("container rootfs %w", errdefs.ErrNotFound)
	// ErrConflict: a container rootfs exists with another image.
	ErrConflict = fmt.Errorf("container rootfs exists with another image: %w", errdefs.ErrConflict)
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
