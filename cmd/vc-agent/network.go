package main

import (
	"fmt"
	"net"

	"github.com/vishvananda/netlink"

	"github.com/vc-cri/vc-cri/pkg/agent/protocol"
)

// setupNetwork brings up loopback and each interface (found by MAC, named
// as asked, given its addresses and MTU), then adds the routes.
func setupNetwork(req *protocol.SetupNetworkRequest) error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return err
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("lo up: %w", err)
	}
	for _, iface := range req.Interfaces {
		if err := setupInterface(iface); err != nil {
			return fmt.Errorf("interface %s (%s): %w", iface.Name, iface.Mac, err)
		}
	}
	for _, r := range req.Routes {
		if err := addRoute(r); err != nil {
			return fmt.Errorf("route %q via %q: %w", r.Destination, r.Gateway, err)
		}
	}
	return nil
}

func setupInterface(iface *protocol.Interface) error {
	mac, err := net.ParseMAC(iface.Mac)
	if err != nil {
		return err
	}
	link, err := linkByMAC(mac)
	if err != nil {
		return err
	}
	if err := netlink.LinkSetDown(link); err != nil {
		return err
	}
	if iface.Name != "" && link.Attrs().Name != iface.Name {
		if err := netlink.LinkSetName(link, iface.Name); err != nil {
			return err
		}
	}
	if iface.Mtu > 0 {
		if err := netlink.LinkSetMTU(link, int(iface.Mtu)); err != nil {
			return err
		}
	}
	for _, a := range iface.Addresses {
		addr, err := netlink.ParseAddr(a)
		if err != nil {
			return err
		}
		if err := netlink.AddrReplace(link, addr); err != nil {
			return fmt.Errorf("address %s: %w", a, err)
		}
	}
	return netlink.LinkSetUp(link)
}

func linkByMAC(mac net.HardwareAddr) (netlink.Link, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, err
	}
	for _, l := range links {
		if l.Attrs().HardwareAddr.String() == mac.String() {
			return l, nil
		}
	}
	return nil, fmt.Errorf("no link with MAC %s", mac)
}

func addRoute(r *protocol.Route) error {
	route := &netlink.Route{}
	if r.Destination != "" {
		_, dst, err := net.ParseCIDR(r.Destination)
		if err != nil {
			return err
		}
		route.Dst = dst
	}
	if r.Gateway != "" {
		route.Gw = net.ParseIP(r.Gateway)
		if route.Gw == nil {
			return fmt.Errorf("invalid gateway %q", r.Gateway)
		}
	}
	if r.Device != "" {
		link, err := netlink.LinkByName(r.Device)
		if err != nil {
			return err
		}
		route.LinkIndex = link.Attrs().Index
	}
	return netlink.RouteReplace(route)
}

// interfaceStats are the counters of the guest's interfaces but loopback.
func interfaceStats() []*protocol.InterfaceStats {
	links, err := netlink.LinkList()
	if err != nil {
		return nil
	}
	var out []*protocol.InterfaceStats
	for _, l := range links {
		a := l.Attrs()
		if a.Name == "lo" || a.Statistics == nil {
			continue
		}
		st := a.Statistics
		out = append(out, &protocol.InterfaceStats{
			Name: a.Name, RxBytes: st.RxBytes, RxPackets: st.RxPackets, RxErrors: st.RxErrors, RxDropped: st.RxDropped,
			TxBytes: st.TxBytes, TxPackets: st.TxPackets, TxErrors: st.TxErrors, TxDropped: st.TxDropped,
		})
	}
	return out
}
