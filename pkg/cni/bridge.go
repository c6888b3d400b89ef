package cni

import (
	"fmt"

	"github.com/vishvananda/netlink"
)

// connectBridged joins the CNI interface and a tap in a new bridge. The
// guest takes over the CNI interface's MAC and addresses; the interface
// itself gets a random MAC, or the bridge would keep frames for the guest
// as its own.
func connectBridged(link netlink.Link, ep *Endpoint, i int) error {
	ep.TapName, ep.Bridge = tapName(i), bridgeName(i)
	tap, err := createTap(ep.TapName, ep.MTU)
	if err != nil {
		return err
	}
	attrs := netlink.NewLinkAttrs() // the default TxQLen, not 0
	attrs.Name, attrs.MTU = ep.Bridge, ep.MTU
	br := &netlink.Bridge{LinkAttrs: attrs}
	if err := netlink.LinkAdd(br); err != nil {
		return fmt.Errorf("failed to create bridge %s: %w", ep.Bridge, err)
	}
	if err := handOverAddresses(link, ep); err != nil {
		return err
	}
	for _, port := range []netlink.Link{link, tap} {
		if err := netlink.LinkSetMaster(port, br); err != nil {
			return fmt.Errorf("failed to add %s to %s: %w", port.Attrs().Name, ep.Bridge, err)
		}
	}
	if err := netlink.LinkSetUp(br); err != nil {
		return fmt.Errorf("failed to bring up %s: %w", ep.Bridge, err)
	}
	return nil
}

// disconnectBridged deletes the bridge and the tap, and gives the CNI
// interface back its MAC, addresses and routes.
func disconnectBridged(ep Endpoint) error {
	if err := deleteLink(ep.Bridge); err != nil {
		return err
	}
	if err := deleteLink(ep.TapName); err != nil {
		return err
	}
	return restoreAddresses(ep)
}
