package sandbox

import "regexp"

// maxGuestInterfaces bounds the interfaces a guest may report in its
// stats: their names become metric labels on the host.
const maxGuestInterfaces = 16

// validInterfaceName is a Linux interface name (at most 15 bytes) of
// the characters real ones use.
var validInterfaceName = regexp.MustCompile(`^[A-Za-z0-9_.:@-]{1,15}$`)

// acceptInterface tells whether the guest's report of an interface is
// kept, given how many were kept already: at most maxGuestInterfaces,
// each with a valid name, never twice the same.
func acceptInterface(name string, kept []InterfaceStats) bool {
	if len(kept) >= maxGuestInterfaces || !validInterfaceName.MatchString(name) || name == "." || name == ".." {
		return false
	}
	for _, k := range kept {
		if k.Name == name {
			return false
		}
	}
	return true
}
