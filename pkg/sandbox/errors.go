package sandbox

import "errors"

// Sentinel errors, wrapped with the details: test them with errors.Is.
var (
	// ErrNotFound: no sandbox or container has that ID.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: the ID is taken.
	ErrAlreadyExists = errors.New("already exists")
	// ErrInvalidState: the operation does not apply in the current state.
	ErrInvalidState = errors.New("invalid state")
	// ErrInvalidConfig: the configuration cannot be honoured.
	ErrInvalidConfig = errors.New("invalid configuration")
)
