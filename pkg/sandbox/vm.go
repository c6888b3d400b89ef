package sandbox

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/vc-cri/vc-cri/pkg/agent/protocol"
	"github.com/vc-cri/vc-cri/pkg/hypervisor"
)

// vmConfig translates the sandbox's hypervisor configuration. Every
// field either takes effect or is refused here or by the hypervisor's
// own validation.
func (r *Runtime) vmConfig(id string, c *SandboxConfig) (hypervisor.Config, error) {
	h := c.HypervisorConfig
	if h.VirtioFSCacheSize > 0 {
		return hypervisor.Config{}, fmt.Errorf("VirtioFSCacheSize %d: the DAX window needs a QEMU with virtio-fs DAX, which QEMU 7.2 lacks: %w", h.VirtioFSCacheSize, ErrInvalidConfig)
	}
	vcpus, mem := bootSize(c)
	accel := hypervisor.Accelerator(h.MachineAccelerators)
	if accel == "" {
		accel = hypervisor.AccelAuto
	}
	if accel == hypervisor.AccelAuto && h.DisableNestingChecks {
		// Trust /dev/kvm without booting a probe guest under it.
		accel = hypervisor.AccelTCG
		if _, err := os.Stat("/dev/kvm"); err == nil {
			accel = hypervisor.AccelKVM
		}
	}
	sharedFS := h.SharedFS
	if sharedFS == "" {
		sharedFS = string(hypervisor.SharedFS9p)
	}
	params := []string{
		protocol.ParamSharedFS + "=" + sharedFS,
		protocol.ParamSharedTag + "=" + protocol.SharedTag,
	}
	if h.Debug || kataConfig(c.AgentConfig).Debug {
		params = append(params, protocol.ParamDebug+"=1")
	}
	for _, p := range h.KernelParams {
		params = append(params, p.String("="))
	}
	var extra []string
	for _, p := range h.HypervisorParams {
		key := p.Key
		if !strings.HasPrefix(key, "-") {
			key = "-" + key
		}
		extra = append(extra, key)
		if p.Value != "" {
			extra = append(extra, p.Value)
		}
	}
	return hypervisor.Config{
		ID:             id,
		StateDir:       r.vmDir(id),
		Path:           h.HypervisorPath,
		KernelPath:     h.KernelPath,
		InitrdPath:     h.ImagePath,
		FirmwarePath:   h.FirmwarePath,
		KernelParams:   params,
		ExtraArgs:      extra,
		MachineType:    h.HypervisorMachineType,
		Accelerator:    accel,
		VCPUs:          vcpus,
		MemoryMiB:      mem,
		MaxVCPUs:       max(vcpus, h.DefaultMaxVCPUs),
		MaxMemoryMiB:   max(mem, h.DefaultMaxMemorySize),
		SharedFS:       hypervisor.SharedFS(sharedFS),
		SharedDir:      r.sharedDir(id),
		SharedTag:      protocol.SharedTag,
		AgentPortName:  protocol.PortName,
		VirtioFSDaemon: h.VirtioFSDaemon,
		VirtioFSCache:  h.VirtioFSCache,
		NetNSPath:      c.NetworkConfig.NetNSPath,
		Debug:          h.Debug,
		MemPrealloc:    h.MemPrealloc,
		HugePages:      h.HugePages,
		Mlock:          h.Mlock,
		Realtime:       h.Realtime,
		DefaultBridges: h.DefaultBridges,
		CgroupParent:   hypervisor.CgroupParent(c.CgroupParent),
		// Beside the sandboxes, on the same tmpfs: a host reboot, which may
		// change what KVM can do, forgets it.
		AccelVerdictFile: filepath.Join(filepath.Dir(r.stateRoot), hypervisor.AccelVerdictFileName),
	}, nil
}

// bootSize is the vCPUs and memory (MiB) a sandbox's VM boots with.
func bootSize(c *SandboxConfig) (vcpus, memMiB uint32) {
	vcpus, memMiB = c.HypervisorConfig.NumVCPUs, c.HypervisorConfig.MemorySize
	if c.VMConfig.VCPUs > 0 {
		vcpus = uint32(c.VMConfig.VCPUs)
	}
	if c.VMConfig.Memory > 0 {
		memMiB = uint32(c.VMConfig.Memory)
	}
	if vcpus == 0 {
		vcpus = 1
	}
	if memMiB == 0 {
		memMiB = 256
	}
	return vcpus, memMiB
}

// String renders a kernel parameter: "key=value", or "key" alone.
func (p Param) String(sep string) string {
	if p.Value == "" {
		return p.Key
	}
	return p.Key + sep + p.Value
}

// vm returns the sandbox's VM, attaching to it when another process
// (or an earlier run of this one) started it.
func (ls *lockedSandbox) vm(ctx context.Context) (hypervisor.VM, error) {
	id := ls.Config.ID
	// Under the cache's mutex, as a handle that lost a race could not be
	// dropped: it holds a pidfd of QEMU.
	return ls.r.vms.getOrAdd(id, func() (hypervisor.VM, error) {
		hv, err := ls.r.hypervisorFor(ls.Config.HypervisorType)
		if err != nil {
			return nil, err
		}
		cfg, err := ls.r.vmConfig(id, &ls.Config)
		if err != nil {
			return nil, err
		}
		vm, err := hv.Attach(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("VM of sandbox %q: %w", id, err)
		}
		return vm, nil
	})
}
