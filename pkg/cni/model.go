package cni

import (
	"fmt"
)

// Model is the way the pod's CNI interface is joined to the VM's tap
// device inside the pod network namespace (virtcontainers' "interworking
// model").
type Model int

// The zero Model is invalid so that a forgotten setting is an error, not a
// silent choice.
const (
	// TCFilter mirrors every frame between the CNI interface and the tap
	// with tc ingress redirects. The CNI interface keeps its MAC and
	// addresses, so CNI DEL and CHECK see exactly what ADD created.
	TCFilter Model = iota + 1
	// Bridged joins the CNI interface and the tap in a Linux bridge. The
	// addresses move from the CNI interface to the guest.
	Bridged
	// MacVtap puts a macvtap device on the CNI interface; QEMU gets its
	// character device as an open file. The addresses move to the guest.
	MacVtap
)

// DefaultModel is TCFilter, Kata's default: it works with any CNI
// interface type, needs no bridge or MAC changes, and leaves the netns as
// CNI configured it, which keeps CNI CHECK and DEL honest.
const DefaultModel = TCFilter

var modelNames = map[Model]string{
	TCFilter: "tcfilter",
	Bridged:  "bridged",
	MacVtap:  "macvtap",
}

// ParseModel returns the Model named s ("tcfilter", "bridged",
// "macvtap"); an empty s or "default" means DefaultModel. It is the one
// parser of model names: configuration files and persisted state alike.
func ParseModel(s string) (Model, error) {
	if s == "" || s == "default" {
		return DefaultModel, nil
	}
	for m, name := range modelNames {
		if name == s {
			return m, nil
		}
	}
	return 0, fmt.Errorf("%w: %q", ErrInvalidModel, s)
}

// Valid reports whether m is one of the defined models.
func (m Model) Valid() bool {
	_, ok := modelNames[m]
	return ok
}

func (m Model) String() string {
	if name, ok := modelNames[m]; ok {
		return name
	}
	return fmt.Sprintf("Model(%d)", int(m))
}

// MarshalText makes a Model readable in persisted state and config files.
func (m Model) MarshalText() ([]byte, error) {
	if !m.Valid() {
		return nil, fmt.Errorf("%w: %d", ErrInvalidModel, int(m))
	}
	return []byte(m.String()), nil
}

// UnmarshalText is the inverse of MarshalText.
func (m *Model) UnmarshalText(text []byte) error {
	parsed, err := ParseModel(string(text))
	if err != nil {
		return err
	}
	*m = parsed
	return nil
}
