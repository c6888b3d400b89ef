package runc

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// A pod VM's guest has every capability to give; an OS container gets at
// most what the daemon itself holds. A privileged container asks for all
// of them, and runc fails to apply one this host withholds (a container
// host may well lack CAP_SYS_RESOURCE, as these do), so each set is cut
// to the daemon's bounding set, as containerd does for privileged
// containers.

// boundingSet is the daemon's bounding set, by OCI name (CAP_...).
var boundingSet = sync.OnceValues(func() (map[string]bool, error) {
	caps, err := capability.NewPid2(0)
	if err != nil {
		return nil, err
	}
	if err := caps.Load(); err != nil {
		return nil, err
	}
	set := map[string]bool{}
	for _, c := range capability.ListKnown() {
		if caps.Get(capability.BOUNDING, c) {
			set["CAP_"+strings.ToUpper(c.String())] = true
		}
	}
	return set, nil
})

// keepHostCapabilities drops from caps what the daemon cannot grant.
func keepHostCapabilities(caps *specs.LinuxCapabilities) error {
	if caps == nil {
		return nil
	}
	set, err := boundingSet()
	if err != nil {
		return fmt.Errorf("the daemon's capabilities: %w", err)
	}
	drop := func(names []string) []string {
		return slices.DeleteFunc(names, func(n string) bool { return !set[n] })
	}
	caps.Bounding = drop(caps.Bounding)
	caps.Effective = drop(caps.Effective)
	caps.Permitted = drop(caps.Permitted)
	caps.Inheritable = drop(caps.Inheritable)
	caps.Ambient = drop(caps.Ambient)
	return nil
}
