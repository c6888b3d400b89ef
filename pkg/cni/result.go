package cni

import (
	"fmt"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
)

// Result is what CNI ADD configured in the pod's netns. Strings, not
// net types, so that it persists as JSON and maps directly onto the
// agent's SetupNetwork request.
type Result struct {
	NetnsPath  string      `json:"netnsPath"`
	Interfaces []Interface `json:"interfaces"`
	Routes     []Route     `json:"routes,omitempty"`
	DNS        DNS         `json:"dns"`
}

// Interface is an interface the plugins created in the pod's netns.
type Interface struct {
	Name string `json:"name"`
	MAC  string `json:"mac"`
	IPs  []IP   `json:"ips"`
}

// IP is an address of an interface.
type IP struct {
	Address string `json:"address"` // CIDR, e.g. 10.87.0.5/16
	Gateway string `json:"gateway,omitempty"`
}

// Route is a route of the pod.
type Route struct {
	Destination string `json:"destination"` // CIDR
	Gateway     string `json:"gateway,omitempty"`
	// Device is the interface; empty lets the kernel choose from the
	// gateway.
	Device string `json:"device,omitempty"`
}

// DNS is the DNS configuration the plugins returned, if any.
type DNS struct {
	Nameservers []string `json:"nameservers,omitempty"`
	Domain      string   `json:"domain,omitempty"`
	Search      []string `json:"search,omitempty"`
	Options     []string `json:"options,omitempty"`
}

// IPs returns the pod's addresses without prefix length, the first one
// being the pod IP of CRI's PodSandboxStatus.
func (r *Result) IPs() []string {
	var ips []string
	for _, iface := range r.Interfaces {
		for _, ip := range iface.IPs {
			addr, _, _ := strings.Cut(ip.Address, "/")
			ips = append(ips, addr)
		}
	}
	return ips
}

// convertResult keeps the interfaces inside netnsPath (not the host's
// bridge or veth end) with the addresses assigned to them.
func convertResult(res types.Result, netnsPath string) (*Result, error) {
	cur, err := current.NewResultFromResult(res)
	if err != nil {
		return nil, fmt.Errorf("cannot convert CNI result: %w", err)
	}
	out := &Result{
		NetnsPath: netnsPath,
		DNS: DNS{
			Nameservers: cur.DNS.Nameservers,
			Domain:      cur.DNS.Domain,
			Search:      cur.DNS.Search,
			Options:     cur.DNS.Options,
		},
	}
	index := map[int]int{} // CNI interface index -> index in out.Interfaces
	for i, iface := range cur.Interfaces {
		if iface.Sandbox == "" {
			continue
		}
		index[i] = len(out.Interfaces)
		out.Interfaces = append(out.Interfaces, Interface{Name: iface.Name, MAC: iface.Mac})
	}
	for _, ip := range cur.IPs {
		// A single-interface plugin may omit the index: the address is
		// then the pod interface's.
		j, ok := 0, len(out.Interfaces) == 1 && ip.Interface == nil
		if ip.Interface != nil {
			j, ok = index[*ip.Interface]
		}
		if !ok {
			continue
		}
		addr := IP{Address: ip.Address.String()}
		if ip.Gateway != nil {
			addr.Gateway = ip.Gateway.String()
		}
		out.Interfaces[j].IPs = append(out.Interfaces[j].IPs, addr)
	}
	for _, r := range cur.Routes {
		route := Route{Destination: r.Dst.String()}
		if r.GW != nil {
			route.Gateway = r.GW.String()
		}
		out.Routes = append(out.Routes, route)
	}
	if len(out.IPs()) == 0 {
		return nil, fmt.Errorf("no IP address for the pod interface")
	}
	return out, nil
}
