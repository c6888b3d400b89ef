package cni

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// connectTCFilter creates a tap and redirects every frame arriving on the
// CNI interface out of the tap, and back: the VM's NIC and the CNI
// interface behave as one wire, and the netns' own stack sees nothing.
func connectTCFilter(link netlink.Link, ep *Endpoint, i int) error {
	ep.TapName = tapName(i)
	tap, err := createTap(ep.TapName, ep.MTU)
	if err != nil {
		return err
	}
	if err := redirect(link, tap); err != nil {
		return err
	}
	return redirect(tap, link)
}

// disconnectTCFilter deletes the tap, with its qdisc, and the CNI
// interface's ingress qdisc, with its filter.
func disconnectTCFilter(ep Endpoint) error {
	if err := deleteLink(ep.TapName); err != nil {
		return err
	}
	link, err := netlink.LinkByName(ep.Name)
	if errors.As(err, new(netlink.LinkNotFoundError)) {
		return nil
	}
	if err != nil {
		return err
	}
	err = netlink.QdiscDel(ingressQdisc(link))
	if err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("failed to delete ingress qdisc of %s: %w", ep.Name, err)
	}
	return nil
}

// redirect adds an ingress qdisc to from, with a filter that matches all
// frames and redirects them to the egress of to.
func redirect(from, to netlink.Link) error {
	if err := netlink.QdiscAdd(ingressQdisc(from)); err != nil {
		return fmt.Errorf("failed to add ingress qdisc to %s: %w", from.Attrs().Name, err)
	}
	filter := &netlink.U32{
		FilterAttrs: netlink.FilterAttrs{
			LinkIndex: from.Attrs().Index,
			Parent:    netlink.HANDLE_INGRESS,
			Priority:  1,
			Protocol:  unix.ETH_P_ALL,
		},
		// One key with a zero mask matches every frame.
		Sel: &netlink.TcU32Sel{
			Flags: netlink.TC_U32_TERMINAL,
			Keys:  []netlink.TcU32Key{{}},
		},
		Actions: []netlink.Action{netlink.NewMirredAction(to.Attrs().Index)},
	}
	if err := netlink.FilterAdd(filter); err != nil {
		return fmt.Errorf("failed to redirect %s to %s: %w", from.Attrs().Name, to.Attrs().Name, err)
	}
	return nil
}

func ingressQdisc(link netlink.Link) *netlink.Ingress {
	return &netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{
		LinkIndex: link.Attrs().Index,
		Handle:    netlink.MakeHandle(0xffff, 0),
		Parent:    netlink.HANDLE_INGRESS,
	}}
}
