package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"time"

	"k8s.io/klog/v2"

	"github.com/vc-cri/vc-cri/internal/rollback"
	"github.com/vc-cri/vc-cri/pkg/agent/protocol"
	"github.com/vc-cri/vc-cri/pkg/hypervisor"
)

// VCSandbox is the Sandbox interface
// (required since virtcontainers.Sandbox only contains private fields)
type VCSandbox interface {
	Annotations(key string) (string, error)
	GetAllContainers() []VCContainer
	GetAnnotations() map[string]string
	GetContainer(containerID string) VCContainer
	ID() string
	SetAnnotations(annotations map[string]string) error
}

// Sandbox is a snapshot of a sandbox as of the call that returned it.
type Sandbox struct {
	r     *Runtime // the runtime that made it, for SetAnnotations
	state sandboxState
}

var _ VCSandbox = (*Sandbox)(nil)

// ID returns the sandbox's ID.
func (s *Sandbox) ID() string { return s.state.Config.ID }

// Annotations returns the annotation key, or an error naming it.
func (s *Sandbox) Annotations(key string) (string, error) {
	v, ok := s.state.Config.Annotations[key]
	if !ok {
		return "", fmt.Errorf("annotation %q of sandbox %q: %w", key, s.ID(), ErrNotFound)
	}
	return v, nil
}

// GetAnnotations returns a copy of the sandbox's annotations.
func (s *Sandbox) GetAnnotations() map[string]string {
	return maps.Clone(s.state.Config.Annotations)
}

// SetAnnotations adds the annotations, replacing those of the same keys,
// and persists them. As the interface gives it no context, it waits for
// the sandbox's lock for as long as another call holds it.
func (s *Sandbox) SetAnnotations(annotations map[string]string) error {
	ctx := context.Background()
	ls, err := s.r.loadSandbox(ctx, s.ID())
	if err != nil {
		return err
	}
	defer ls.unlock()
	if ls.Config.Annotations == nil {
		ls.Config.Annotations = map[string]string{}
	}
	maps.Copy(ls.Config.Annotations, annotations)
	if err := ls.save(ctx); err != nil {
		return err
	}
	s.state = *ls.sandboxState
	return nil
}

// GetAllContainers returns the sandbox's containers.
func (s *Sandbox) GetAllContainers() []VCContainer {
	var cs []VCContainer
	for _, c := range s.state.Containers {
		cs = append(cs, newContainer(s, c))
	}
	return cs
}

// GetContainer returns the container, or nil if the sandbox has none of
// that ID.
func (s *Sandbox) GetContainer(containerID string) VCContainer {
	c, err := s.state.container(containerID)
	if err != nil {
		return nil
	}
	return newContainer(s, c)
}

func newID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (r *Runtime) validateSandboxConfig(c *SandboxConfig) error {
	if err := checkID("sandbox", c.ID); err != nil {
		return err
	}
	if _, err := r.hypervisorFor(c.HypervisorType); err != nil {
		return err
	}
	if _, err := r.dialerFor(c.AgentType); err != nil {
		return err
	}
	if len(c.HostNamespaces) > 0 {
		return fmt.Errorf("host namespaces %v: a VM has its own kernel: %w", c.HostNamespaces, ErrInvalidConfig)
	}
	if !c.NetworkConfig.InterworkingModel.IsValid() {
		return fmt.Errorf("network interworking model %d: %w", c.NetworkConfig.InterworkingModel, ErrInvalidConfig)
	}
	if _, err := cniModel(c.NetworkConfig.InterworkingModel); err != nil {
		return err
	}
	if c.HypervisorType == QemuHypervisor {
		for what, path := range map[string]string{"kernel": c.HypervisorConfig.KernelPath, "image": c.HypervisorConfig.ImagePath} {
			if _, err := os.Stat(path); err != nil {
				return fmt.Errorf("guest %s %q: %w", what, path, errors.Join(err, ErrInvalidConfig))
			}
		}
	}
	seen := map[string]bool{}
	for _, cc := range c.Containers {
		if err := checkID("container", cc.ID); err != nil {
			return err
		}
		if seen[cc.ID] {
			return fmt.Errorf("container %q listed twice: %w", cc.ID, ErrAlreadyExists)
		}
		seen[cc.ID] = true
	}
	for _, v := range c.Volumes {
		if err := checkID("volume mount tag", v.MountTag); err != nil {
			return err
		}
	}
	return nil
}

// createSandbox boots the sandbox's VM, reaches its agent, and creates
// its containers. On failure everything done is undone.
func (r *Runtime) createSandbox(ctx context.Context, cfg SandboxConfig) (_ *Sandbox, retErr error) {
	if cfg.ID == "" {
		cfg.ID = newID()
	}
	if err := r.validateSandboxConfig(&cfg); err != nil {
		return nil, err
	}
	hv, err := r.hypervisorFor(cfg.HypervisorType)
	if err != nil {
		return nil, err
	}
	vmCfg, err := r.vmConfig(cfg.ID, &cfg)
	if err != nil {
		return nil, err
	}
	ls, err := r.createSandboxDir(ctx, cfg.ID)
	if err != nil {
		return nil, err
	}
	var undo rollback.Stack
	defer func() {
		if retErr != nil {
			undo.Run("sandbox", cfg.ID)
		}
		ls.unlock()
	}()
	undo.Add("remove sandbox directory", func(context.Context) error { return removeSandboxDir(r.stateRoot, cfg.ID) })

	ls.Config = cfg
	ls.Config.AgentConfig = kataConfig(cfg.AgentConfig)
	ls.CreatedAt = time.Now()
	ls.State = State{StateReady}

	// The state is saved before each step that leaves something on the
	// host (mounts, taps, the VM), so that a process that dies midway
	// leaves a sandbox that DeleteSandbox takes apart.
	if err := ls.save(ctx); err != nil {
		return nil, err
	}
	_, span := startPhase(ctx, "share_setup")
	err = setupShare(ls.dir(), cfg.ID, cfg.Volumes)
	endPhase(span, err)
	if err != nil {
		return nil, err
	}

	netCtx, span := startPhase(ctx, "host_network")
	eps, err := connectNetwork(netCtx, &cfg)
	endPhase(span, err)
	if err != nil {
		return nil, err
	}
	undo.Add("disconnect network", func(ctx context.Context) error {
		return disconnectNetwork(ctx, cfg.NetworkConfig.NetNSPath, eps)
	})
	ls.Endpoints = eps
	vmCfg.NetDevices = netDevices(eps)
	if err := ls.save(ctx); err != nil {
		closeTapFiles(eps)
		return nil, err
	}

	klog.InfoS("Starting sandbox VM", "sandbox", cfg.ID, "hypervisor", cfg.HypervisorType)
	vmCtx, span := startPhase(ctx, "vm_start")
	vm, template, err := r.launchVM(vmCtx, ls, hv, vmCfg)
	endPhase(span, err)
	closeTapFiles(eps)
	if err != nil {
		return nil, fmt.Errorf("start VM of sandbox %q: %w", cfg.ID, err)
	}
	r.vms.put(cfg.ID, vm)
	undo.Add("stop VM", func(ctx context.Context) error { r.vms.take(cfg.ID); return vm.Stop(ctx) })
	ls.VMPid, ls.Template = vm.Pid(), template
	if err := ls.save(ctx); err != nil {
		return nil, err
	}

	// From the VM's start to its agent's answer: the guest's boot.
	ag, err := ls.agent(ctx)
	if err != nil {
		return nil, err
	}
	undo.Add("close agent link", func(context.Context) error { r.dropAgent(cfg.ID); return nil })
	phaseCtx, span := startPhase(ctx, "guest_details")
	details, err := ag.GuestDetails(phaseCtx, &protocol.GuestDetailsRequest{})
	endPhase(span, err)
	if err != nil {
		return nil, fmt.Errorf("details of the guest of sandbox %q: %w", cfg.ID, err)
	}
	if ls.GuestHugePageSizes, err = guestHugePageSizes(details.GetHugepageSizes()); err != nil {
		return nil, fmt.Errorf("guest of sandbox %q: %w", cfg.ID, err)
	}
	phaseCtx, span = startPhase(ctx, "guest_network")
	_, err = ag.SetupNetwork(phaseCtx, guestSetup(&cfg, eps))
	endPhase(span, err)
	if err != nil {
		return nil, fmt.Errorf("set up guest of sandbox %q: %w", cfg.ID, err)
	}
	if err := ls.save(ctx); err != nil {
		return nil, err
	}
	if err := ls.runHooks(ctx, cfg.Hooks.PreStartHooks, "created"); err != nil {
		return nil, err
	}
	for i := range cfg.Containers {
		if _, err := createContainer(ctx, ls, cfg.Containers[i]); err != nil {
			return nil, err
		}
	}
	klog.InfoS("Sandbox created", "sandbox", cfg.ID, "pid", ls.VMPid)
	return ls.snapshot(), nil
}

// startSandbox starts a ready sandbox's containers.
func startSandbox(ctx context.Context, ls *lockedSandbox) error {
	if err := checkTransition(sandboxTransitions, "sandbox", ls.Config.ID, ls.State.State, StateRunning); err != nil {
		return err
	}
	if ls.State.State == StatePaused {
		return fmt.Errorf("sandbox %s is paused, resume it: %w", ls.Config.ID, ErrInvalidState)
	}
	ls.State = State{StateRunning}
	for _, c := range ls.Containers {
		if c.State.State == StateReady {
			if err := startContainer(ctx, ls, c); err != nil {
				return err
			}
		}
	}
	if err := ls.save(ctx); err != nil {
		return err
	}
	return ls.runHooks(ctx, ls.Config.Hooks.PostStartHooks, "running")
}

// hasExited tells, without waiting, whether the VM's process has exited.
func hasExited(vm hypervisor.VM) bool {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return vm.Wait(ctx) == nil
}

// powerOffTimeout bounds the wait for a guest to power itself off.
const powerOffTimeout = 5 * time.Second

// stopSandbox ends the sandbox's containers and its VM. The VM is asked
// to power off through its agent and, failing that, ended by force.
func stopSandbox(ctx context.Context, ls *lockedSandbox) error {
	id := ls.Config.ID
	if err := checkTransition(sandboxTransitions, "sandbox", id, ls.State.State, StateStopped); err != nil {
		return err
	}
	klog.InfoS("Stopping sandbox", "sandbox", id)
	vm, vmErr := ls.vm(ctx)
	if vmErr == nil && ls.State.State == StatePaused {
		if err := vm.Resume(ctx); err != nil {
			klog.ErrorS(err, "Cannot resume VM to stop it", "sandbox", id)
		}
	}
	if vmErr == nil && hasExited(vm) {
		// Nothing in it to ask: its agent's socket leads nowhere now.
		klog.InfoS("Sandbox VM had already exited", "sandbox", id)
	} else if vmErr == nil {
		dialCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		ag, err := ls.agent(dialCtx)
		cancel()
		if err == nil {
			for _, c := range ls.Containers {
				if c.State.State != StateStopped {
					stopContainerProcesses(ctx, ag, ls, c)
				}
			}
			if _, err := ag.DestroySandbox(ctx, &protocol.DestroySandboxRequest{}); err != nil {
				klog.ErrorS(err, "Agent did not destroy the sandbox, the VM will be ended by force", "sandbox", id)
			} else {
				// The guest powers itself off: give it the time to.
				waitCtx, cancel := context.WithTimeout(ctx, powerOffTimeout)
				if err := vm.Wait(waitCtx); err != nil {
					klog.InfoS("Guest did not power off in time", "sandbox", id, "timeout", powerOffTimeout)
				}
				cancel()
			}
		} else {
			klog.ErrorS(err, "Agent unreachable, the VM will be ended by force", "sandbox", id)
		}
	}
	ls.r.dropAgent(id)
	if vmErr == nil {
		if err := vm.Stop(ctx); err != nil {
			return fmt.Errorf("stop VM of sandbox %q: %w", id, err)
		}
	}
	ls.r.vms.take(id)
	if err := disconnectNetwork(ctx, ls.Config.NetworkConfig.NetNSPath, ls.Endpoints); err != nil {
		return fmt.Errorf("disconnect network of sandbox %q: %w", id, err)
	}
	ls.Endpoints = nil
	for _, c := range ls.Containers {
		if c.State.State != StateStopped {
			c.State = State{StateStopped}
			c.FinishedAt = time.Now()
		}
	}
	ls.State = State{StateStopped}
	if err := ls.save(ctx); err != nil {
		return err
	}
	klog.InfoS("Sandbox stopped", "sandbox", id)
	return ls.runHooks(ctx, ls.Config.Hooks.PostStopHooks, "stopped")
}

// deleteSandbox stops the sandbox if needed and removes everything of it.
func deleteSandbox(ctx context.Context, ls *lockedSandbox) error {
	if ls.State.State != StateStopped {
		if err := stopSandbox(ctx, ls); err != nil {
			return err
		}
	}
	var errs []error
	for _, c := range ls.Containers {
		if err := unshare(ls.dir(), c.Config.ID, c.Mounts); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		if err := unmountSandbox(ls.dir()); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		// Keep the state: removing the directory now could reach through
		// a mount that is still there.
		return errors.Join(errs...)
	}
	klog.InfoS("Sandbox deleted", "sandbox", ls.Config.ID)
	return ls.remove()
}

// pauseSandbox freezes the whole VM; resumeSandbox thaws it.
func pauseSandbox(ctx context.Context, ls *lockedSandbox) error {
	return setVMRunning(ctx, ls, StatePaused)
}

func resumeSandbox(ctx context.Context, ls *lockedSandbox) error {
	if ls.State.State != StatePaused {
		return fmt.Errorf("sandbox %s is %s, not paused: %w", ls.Config.ID, ls.State.State, ErrInvalidState)
	}
	return setVMRunning(ctx, ls, StateRunning)
}

func setVMRunning(ctx context.Context, ls *lockedSandbox, to StateString) error {
	if err := checkTransition(sandboxTransitions, "sandbox", ls.Config.ID, ls.State.State, to); err != nil {
		return err
	}
	vm, err := ls.vm(ctx)
	if err != nil {
		return err
	}
	if to == StatePaused {
		err = vm.Pause(ctx)
	} else {
		err = vm.Resume(ctx)
	}
	if err != nil {
		return err
	}
	ls.State = State{to}
	return ls.save(ctx)
}

// sandboxStatus reports the sandbox and its containers as recorded.
func sandboxStatus(ls *lockedSandbox) SandboxStatus {
	st := SandboxStatus{
		ID:               ls.Config.ID,
		State:            ls.State,
		Hypervisor:       ls.Config.HypervisorType,
		HypervisorConfig: ls.Config.HypervisorConfig,
		Agent:            ls.Config.AgentType,
		Annotations:      maps.Clone(ls.Config.Annotations),
		Template:         ls.Template,
	}
	if ls.Resized != nil {
		st.Size = *ls.Resized
	} else {
		vcpus, mem := bootSize(&ls.Config)
		st.Size = Resources{VCPUs: uint(vcpus), Memory: uint(mem)}
	}
	for _, c := range ls.Containers {
		st.ContainersStatus = append(st.ContainersStatus, containerStatus(ls.sandboxState, c))
	}
	return st
}
