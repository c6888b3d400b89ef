package sandbox

import (
	"fmt"

	"github.com/containerd/errdefs"
)

// Sentinel errors, wrapped with the details: test them with errors.Is.
// Each wraps its kind of github.com/containerd/errdefs, which the CRI
// answers with a gRPC code.
var (
	// ErrNotFound: no sandbox or container has that ID.
	ErrNotFound = fmt.Errorf("%w", errdefs.ErrNotFound)
	// ErrAlreadyExists: the ID is taken.
	ErrAlreadyExists = fmt.Errorf("%w", errdefs.ErrAlreadyExists)
	// ErrInvalidState: the operation does not apply in the current state.
	ErrInvalidState = fmt.Errorf("invalid state: %w", errdefs.ErrFailedPrecondition)
	// ErrInvalidConfig: the configuration cannot be honoured.
	ErrInvalidConfig = fmt.Errorf("invalid configuration: %w", errdefs.ErrInvalidArgument)
)
