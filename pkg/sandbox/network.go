package sandbox

import (
	"context"
	"fmt"

	"github.com/vc-cri/vc-cri/pkg/agent/protocol"
	"github.com/vc-cri/vc-cri/pkg/cni"
	"github.com/vc-cri/vc-cri/pkg/hypervisor"
)

// cniModels maps the interworking models of the specification to
// pkg/cni's, which owns network models and their names (cni.ParseModel).
var cniModels = map[NetInterworkingModel]cni.Model{
	NetXConnectDefaultModel:  cni.DefaultModel,
	NetXConnectTCFilterModel: cni.TCFilter,
	NetXConnectBridgedModel:  cni.Bridged,
	NetXConnectMacVtapModel:  cni.MacVtap,
}

// cniModel maps an interworking model to pkg/cni's.
func cniModel(m NetInterworkingModel) (cni.Model, error) {
	if cm, ok := cniModels[m]; ok {
		return cm, nil
	}
	if m == NetXConnectEnlightenedModel {
		return 0, fmt.Errorf("the enlightened model needs CNI plugins that create VM interfaces themselves, which vc-cri does not drive: %w", ErrInvalidConfig)
	}
	return 0, fmt.Errorf("network interworking model %d: %w", m, ErrInvalidConfig)
}

// InterworkingModel is the interworking model of pkg/cni's model m
// (beyond the specification: how a caller turns a model cni.ParseModel
// read from its configuration into a NetworkConfig's).
func InterworkingModel(m cni.Model) (NetInterworkingModel, error) {
	for im, cm := range cniModels {
		if cm == m && im != NetXConnectDefaultModel {
			return im, nil
		}
	}
	return 0, fmt.Errorf("network model %v: %w", m, ErrInvalidConfig)
}

// connectNetwork joins every interface CNI left in the sandbox's netns
// to the VM with the sandbox's model.
func connectNetwork(ctx context.Context, c *SandboxConfig) ([]cni.Endpoint, error) {
	if c.NetworkConfig.NetNSPath == "" {
		return nil, nil
	}
	model, err := cniModel(c.NetworkConfig.InterworkingModel)
	if err != nil {
		return nil, err
	}
	eps, err := cni.Connect(ctx, c.NetworkConfig.NetNSPath, model)
	if err != nil {
		return nil, fmt.Errorf("connect network of sandbox %q: %w", c.ID, err)
	}
	return eps, nil
}

// disconnectNetwork undoes connectNetwork.
func disconnectNetwork(ctx context.Context, netnsPath string, eps []cni.Endpoint) error {
	if len(eps) == 0 {
		return nil
	}
	return cni.Disconnect(ctx, netnsPath, eps)
}

// netDevices are the VM's NICs, one per endpoint.
func netDevices(eps []cni.Endpoint) []hypervisor.NetDevice {
	var ds []hypervisor.NetDevice
	for _, ep := range eps {
		ds = append(ds, hypervisor.NetDevice{TapName: ep.TapName, MAC: ep.MAC, File: ep.TapFile})
	}
	return ds
}

// closeTapFiles closes the host's copies of macvtap devices once QEMU has
// its own.
func closeTapFiles(eps []cni.Endpoint) {
	for _, ep := range eps {
		if ep.TapFile != nil {
			ep.TapFile.Close()
		}
	}
}

// guestSetup tells the guest its hostname, sysctls and, for each
// endpoint, the NIC's name, addresses and routes, which CNI gave the
// netns interface.
func guestSetup(c *SandboxConfig, eps []cni.Endpoint) *protocol.SetupNetworkRequest {
	req := &protocol.SetupNetworkRequest{Hostname: c.Hostname, Sysctls: c.Sysctls}
	for _, ep := range eps {
		req.Interfaces = append(req.Interfaces, &protocol.Interface{
			Name: ep.Name, Mac: ep.MAC, Addresses: ep.Addresses, Mtu: uint32(ep.MTU),
		})
		for _, r := range ep.Routes {
			dev := r.Device
			if dev == "" {
				dev = ep.Name
			}
			req.Routes = append(req.Routes, &protocol.Route{Destination: r.Destination, Gateway: r.Gateway, Device: dev})
		}
	}
	return req
}
