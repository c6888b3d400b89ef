package cni

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

// Endpoint is one pod interface joined to the VM: what QEMU needs for its
// -netdev and what the guest agent needs to configure the guest NIC.
// Everything but TapFile persists as JSON, so that a restarted daemon can
// Disconnect.
type Endpoint struct {
	Model Model `json:"model"`
	// Name is the CNI interface in the netns and the guest NIC's name.
	Name string `json:"name"`
	// MAC is the guest NIC's address: the CNI interface's original one,
	// so that the ARP entries of the pod's peers stay valid.
	MAC string `json:"mac"`
	MTU int    `json:"mtu"`
	// Addresses (CIDR) and Routes are what CNI configured on Name; the
	// guest takes them over.
	Addresses []string `json:"addresses"`
	Routes    []Route  `json:"routes,omitempty"`
	// TapName is the tap device QEMU opens in the netns for TCFilter
	// and Bridged (-netdev tap,ifname=TapName,script=no,downscript=no,
	// vhost=off); for MacVtap the macvtap link, for information.
	TapName string `json:"tapName"`
	// Bridge is the bridge joining Name and TapName, for Bridged only.
	Bridge string `json:"bridge,omitempty"`
	// TapFile is, for MacVtap only, the open macvtap character device
	// for -netdev tap,fd=N. Disconnect closes it.
	TapFile *os.File `json:"-"`
}

// Names of the links Connect creates in the netns; the suffix marks them
// as ours, so that they are never taken for CNI interfaces.
const ownSuffix = "_vc"

func tapName(i int) string     { return fmt.Sprintf("tap%d%s", i, ownSuffix) }
func bridgeName(i int) string  { return fmt.Sprintf("br%d%s", i, ownSuffix) }
func macvtapName(i int) string { return fmt.Sprintf("mvtap%d%s", i, ownSuffix) }

// Connect joins every CNI interface of the netns to a new device for the
// VM, according to model. QEMU must then run inside the same netns. On
// error, the netns is left as it was.
func Connect(ctx context.Context, netnsPath string, model Model) (_ []Endpoint, retErr error) {
	if !model.Valid() {
		return nil, fmt.Errorf("%w: %v", ErrInvalidModel, model)
	}
	netns, err := ns.GetNS(netnsPath)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidNetns, err)
	}
	defer netns.Close()

	var eps []Endpoint
	defer func() {
		if retErr != nil && len(eps) > 0 {
			if err := Disconnect(context.WithoutCancel(ctx), netnsPath, eps); err != nil {
				klog.ErrorS(err, "Cannot undo a partial connect", "netns", netnsPath)
			}
		}
	}()
	err = netns.Do(func(ns.NetNS) error {
		links, err := cniLinks()
		if err != nil {
			return err
		}
		if len(links) == 0 {
			return errors.New("no CNI interface in the netns")
		}
		for i, link := range links {
			ep, err := newEndpoint(link, model)
			if err != nil {
				return err
			}
			if err := connect(link, &ep, i); err != nil {
				// disconnect tolerates missing pieces, so it also undoes
				// a half-made connection.
				if derr := disconnect(ep); derr != nil {
					klog.ErrorS(derr, "Cannot undo a partial connect", "netns", netnsPath, "link", ep.Name)
				}
				return fmt.Errorf("failed to connect %s with model %v: %w", ep.Name, model, err)
			}
			eps = append(eps, ep)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	klog.V(2).InfoS("Connected pod interfaces", "netns", netnsPath, "model", model, "endpoints", len(eps))
	return eps, nil
}

// Disconnect undoes Connect: it closes TapFile, removes the devices
// Connect created and gives the CNI interfaces back their MAC, addresses
// and routes, so that CNI DEL finds what ADD made. A netns that is gone
// already is not an error: its devices went with it.
func Disconnect(ctx context.Context, netnsPath string, eps []Endpoint) error {
	netns, err := ns.GetNS(netnsPath)
	if errors.As(err, new(ns.NSPathNotExistErr)) {
		for _, ep := range eps {
			if ep.TapFile != nil {
				ep.TapFile.Close()
			}
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidNetns, err)
	}
	defer netns.Close()

	return netns.Do(func(ns.NetNS) error {
		var errs []error
		for _, ep := range eps {
			if err := disconnect(ep); err != nil {
				errs = append(errs, fmt.Errorf("failed to disconnect %s: %w", ep.Name, err))
			}
		}
		return errors.Join(errs...)
	})
}

func connect(link netlink.Link, ep *Endpoint, i int) error {
	switch ep.Model {
	case TCFilter:
		return connectTCFilter(link, ep, i)
	case Bridged:
		return connectBridged(link, ep, i)
	case MacVtap:
		return connectMacvtap(link, ep, i)
	}
	return fmt.Errorf("%w: %v", ErrInvalidModel, ep.Model)
}

func disconnect(ep Endpoint) error {
	switch ep.Model {
	case TCFilter:
		return disconnectTCFilter(ep)
	case Bridged:
		return disconnectBridged(ep)
	case MacVtap:
		return disconnectMacvtap(ep)
	}
	return fmt.Errorf("%w: %v", ErrInvalidModel, ep.Model)
}

// cniLinks returns the interfaces CNI plugins made in the current netns:
// up, with an Ethernet address, neither loopback nor ours. The fallback
// tunnel devices (sit0, tunl0...) a new netns may hold are down and have
// no Ethernet address.
func cniLinks() ([]netlink.Link, error) {
	all, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("failed to list links: %w", err)
	}
	var links []netlink.Link
	for _, l := range all {
		a := l.Attrs()
		if a.Flags&net.FlagLoopback != 0 || a.Flags&net.FlagUp == 0 ||
			len(a.HardwareAddr) != 6 || strings.HasSuffix(a.Name, ownSuffix) {
			continue
		}
		links = append(links, l)
	}
	return links, nil
}

// newEndpoint records what CNI configured on link.
func newEndpoint(link netlink.Link, model Model) (Endpoint, error) {
	a := link.Attrs()
	ep := Endpoint{Model: model, Name: a.Name, MAC: a.HardwareAddr.String(), MTU: a.MTU}
	addrs, err := netlink.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return ep, fmt.Errorf("failed to list addresses of %s: %w", a.Name, err)
	}
	for _, addr := range addrs {
		if addr.IP.IsLinkLocalUnicast() { // the guest makes its own
			continue
		}
		ep.Addresses = append(ep.Addresses, addr.IPNet.String())
	}
	routes, err := netlink.RouteList(link, netlink.FAMILY_ALL)
	if err != nil {
		return ep, fmt.Errorf("failed to list routes of %s: %w", a.Name, err)
	}
	for _, r := range routes {
		// Prefix routes come back with the addresses, in the guest as here.
		if r.Protocol == unix.RTPROT_KERNEL {
			continue
		}
		route := Route{Destination: defaultDst(r).String(), Device: a.Name}
		if r.Gw != nil {
			route.Gateway = r.Gw.String()
		}
		ep.Routes = append(ep.Routes, route)
	}
	return ep, nil
}

func defaultDst(r netlink.Route) *net.IPNet {
	if r.Dst != nil {
		return r.Dst
	}
	if r.Family == unix.AF_INET6 {
		return &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
	}
	return &net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)}
}

// handOverAddresses gives the CNI interface a random MAC and removes its
// addresses: in Bridged and MacVtap the guest owns the original MAC and
// the addresses, and the netns must neither capture frames for that MAC
// nor answer ARP for those addresses.
func handOverAddresses(link netlink.Link, ep *Endpoint) error {
	mac, err := randomMAC()
	if err != nil {
		return err
	}
	if err := netlink.LinkSetHardwareAddr(link, mac); err != nil {
		return fmt.Errorf("failed to change MAC of %s: %w", ep.Name, err)
	}
	for _, cidr := range ep.Addresses {
		addr, err := netlink.ParseAddr(cidr)
		if err != nil {
			return err
		}
		if err := netlink.AddrDel(link, addr); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("failed to remove %s from %s: %w", cidr, ep.Name, err)
		}
	}
	return nil
}

// restoreAddresses undoes handOverAddresses.
func restoreAddresses(ep Endpoint) error {
	link, err := netlink.LinkByName(ep.Name)
	if errors.As(err, new(netlink.LinkNotFoundError)) {
		return nil // CNI DEL ran first: nothing to give back
	}
	if err != nil {
		return err
	}
	mac, err := net.ParseMAC(ep.MAC)
	if err != nil {
		return err
	}
	if err := netlink.LinkSetHardwareAddr(link, mac); err != nil {
		return fmt.Errorf("failed to restore MAC of %s: %w", ep.Name, err)
	}
	for _, cidr := range ep.Addresses {
		addr, err := netlink.ParseAddr(cidr)
		if err != nil {
			return err
		}
		if err := netlink.AddrReplace(link, addr); err != nil {
			return fmt.Errorf("failed to restore %s on %s: %w", cidr, ep.Name, err)
		}
	}
	for _, r := range ep.Routes {
		route := netlink.Route{LinkIndex: link.Attrs().Index}
		if _, route.Dst, err = net.ParseCIDR(r.Destination); err != nil {
			return err
		}
		if r.Gateway == "" {
			route.Scope = netlink.SCOPE_LINK
		} else {
			route.Gw = net.ParseIP(r.Gateway)
		}
		if err := netlink.RouteReplace(&route); err != nil {
			return fmt.Errorf("failed to restore route to %s on %s: %w", r.Destination, ep.Name, err)
		}
	}
	return nil
}

// randomMAC returns a unicast, locally administered address.
func randomMAC() (net.HardwareAddr, error) {
	mac := make(net.HardwareAddr, 6)
	if _, err := rand.Read(mac); err != nil {
		return nil, err
	}
	mac[0] = mac[0]&^0x01 | 0x02
	return mac, nil
}

// deleteLink removes a link of ours by name, if it still exists.
func deleteLink(name string) error {
	link, err := netlink.LinkByName(name)
	if errors.As(err, new(netlink.LinkNotFoundError)) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := netlink.LinkDel(link); err != nil {
		return fmt.Errorf("failed to delete %s: %w", name, err)
	}
	return nil
}
