package cni

import (
	"fmt"

	"github.com/vishvananda/netlink"
)

// createTap creates a persistent, single-queue tap in the current netns
// and brings it up. It belongs to root, which QEMU runs as. QEMU opens it
// by name and sets its own per-file flags (vnet_hdr); a multi-queue tap
// would refuse QEMU's single-queue TUNSETIFF.
func createTap(name string, mtu int) (netlink.Link, error) {
	tap := &netlink.Tuntap{
		LinkAttrs: netlink.LinkAttrs{Name: name, MTU: mtu},
		Mode:      netlink.TUNTAP_MODE_TAP,
		Flags:     netlink.TUNTAP_NO_PI,
		Queues:    1,
	}
	if err := netlink.LinkAdd(tap); err != nil {
		return nil, fmt.Errorf("failed to create tap %s: %w", name, err)
	}
	// The device persists without the creating file descriptors.
	for _, f := range tap.Fds {
		f.Close()
	}
	link, err := netlink.LinkByName(name)
	if err != nil {
		return nil, err
	}
	// LinkAdd does not apply the MTU to a tuntap.
	if err := netlink.LinkSetMTU(link, mtu); err != nil {
		return nil, fmt.Errorf("failed to set MTU of %s: %w", name, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("failed to bring up %s: %w", name, err)
	}
	return link, nil
}
