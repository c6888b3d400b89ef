package sandbox

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/vc-cri/vc-cri/pkg/agent/protocol"
	"github.com/vc-cri/vc-cri/pkg/hypervisor"
)

// mockHypervisor is shared by the whole process: its VMs must outlive
// the API call that started them, as real ones do.
var mockHypervisor = hypervisor.NewMock()

func hypervisorFor(t HypervisorType) (hypervisor.Hypervisor, error) {
	switch t {
	case QemuHypervisor:
		return &hypervisor.QEMU{}, nil
	case MockHypervisor:
		return mockHypervisor, nil
	}
	return nil, fmt.Errorf("unknown hypervisor type %q: %w", t, ErrInvalidConfig)
}

// vmConfig translates the sandbox's hypervisor configuration. Every
// field either takes effect or is refused here or by the hypervisor's
// own validation.
func vmConfig(id string, c *SandboxConfig) (hypervisor.Config, error) {
	h := c.HypervisorConfig
	if h.VirtioFSCacheSize > 0 {
		return hypervisor.Config{}, fmt.Errorf("VirtioFSCacheSize %d: the DAX window needs a QEMU with virtio-fs DAX, which QEMU 7.2 lacks: %w", h.VirtioFSCacheSize, ErrInvalidConfig)
	}
	vcpus, mem := h.NumVCPUs, h.MemorySize
	if c.VMConfig.VCPUs > 0 {
		vcpus = uint32(c.VMConfig.VCPUs)
	}
	if c.VMConfig.Memory > 0 {
		mem = uint32(c.VMConfig.Memory)
	}
	if vcpus == 0 {
		vcpus = 1
	}
	if mem == 0 {
		mem = 256
	}
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
		StateDir:       vmDir(id),
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
		SharedFS:       hypervisor.SharedFS(sharedFS),
		SharedDir:      sharedDir(id),
		SharedTag:      protocol.SharedTag,
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
		AccelVerdictFile: filepath.Join(filepath.Dir(StateRoot), hypervisor.AccelVerdictFileName),
	}, nil
}

// String renders a kernel parameter: "key=value", or "key" alone.
func (p Param) String(sep string) string {
	if p.Value == "" {
		return p.Key
	}
	return p.Key + sep + p.Value
}

// vms caches this process's handles on running VMs by sandbox ID.
var vms = struct {
	sync.Mutex
	m map[string]hypervisor.VM
}{m: map[string]hypervisor.VM{}}

// vmOf returns the sandbox's VM, attaching to it when another process
// (or an earlier run of this one) started it.
func vmOf(ctx context.Context, s *sandboxState) (hypervisor.VM, error) {
	vms.Lock()
	defer vms.Unlock()
	if vm, ok := vms.m[s.Config.ID]; ok {
		return vm, nil
	}
	hv, err := hypervisorFor(s.Config.HypervisorType)
	if err != nil {
		return nil, err
	}
	cfg, err := vmConfig(s.Config.ID, &s.Config)
	if err != nil {
		return nil, err
	}
	vm, err := hv.Attach(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("VM of sandbox %q: %w", s.Config.ID, err)
	}
	vms.m[s.Config.ID] = vm
	return vm, nil
}

func rememberVM(id string, vm hypervisor.VM) {
	vms.Lock()
	defer vms.Unlock()
	vms.m[id] = vm
}

func forgetVM(id string) {
	vms.Lock()
	defer vms.Unlock()
	delete(vms.m, id)
}
