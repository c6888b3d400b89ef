package sandbox

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"k8s.io/klog/v2"

	"github.com/vc-cri/vc-cri/pkg/agent/protocol"
	"github.com/vc-cri/vc-cri/pkg/hypervisor"
)

// VM templates (see hypervisor.Template): a Runtime made WithTemplates
// keeps one per VM shape in its template directory,
//
//	<key>/mem     the template's guest RAM, mapped copy-on-write by its pods
//	<key>/state   its device state
//	<key>/ready   written last: the template is whole
//	<key>/vm/     the template VM's runtime files while it is built
//
// A template is built in the background the first time a sandbox of its
// shape is created, or when PrepareTemplate asks; that sandbox, and any
// other while no template of its shape is ready, boots cold. Templates
// live on a tmpfs beside the sandboxes, so a restarted daemon finds them
// again, and a changed guest image or QEMU gives its shape a new key: the
// template built for it replaces the old one.

const (
	templateReadyFile = "ready"
	// maxTemplates bounds the shapes kept, the one used least lately
	// making room for a new one: each costs the guest memory its boot
	// touched, on a tmpfs.
	maxTemplates = 4
	// templateBuildTimeout bounds a template's boot and save.
	templateBuildTimeout = 3 * time.Minute
	// restoreTimeout bounds a restore up to the agent's answer: a guest
	// that does not answer by then is broken, and the sandbox boots cold.
	// Ten restores at once on 2 cores answer within 3 s.
	restoreTimeout = 15 * time.Second
	// maxGuestFailures is how many restored guests in a row may fail to
	// answer before their template is dropped: one may be the host's
	// load; a state QEMU refuses drops it at once.
	maxGuestFailures = 3
	// templateSeedSize is the entropy a restored guest is given.
	templateSeedSize = 64
)

// WithTemplates starts sandbox VMs from templates kept in dir (on a
// tmpfs, as the state root).
func WithTemplates(dir string) Option {
	return func(r *Runtime) { r.templates.dir = dir }
}

// templates are a Runtime's VM templates.
type templates struct {
	dir string // "" when templates are off; set by NewRuntime's options

	mu sync.Mutex
	// building holds the keys of the templates being built; failed
	// those whose build failed in this process, not tried again until
	// their inputs change; guestFailures the restored guests of each
	// that failed in a row. All guarded by mu.
	building      map[string]bool
	failed        map[string]bool
	guestFailures map[string]int
	// stopBuilds ends the builds in flight; set with the first build,
	// guarded by mu.
	stopBuilds context.CancelFunc
	buildsCtx  context.Context
	builds     sync.WaitGroup
}

// templateConfig is cfg as a template of it, or as a VM started from
// one, is configured: the agent told that the guest is a template's.
func templateConfig(cfg hypervisor.Config, role hypervisor.TemplateRole, t hypervisor.Template) hypervisor.Config {
	cfg.KernelParams = append(append([]string(nil), cfg.KernelParams...), protocol.ParamTemplate+"=1")
	cfg.TemplateRole, cfg.Template = role, t
	return cfg
}

func (t *templates) files(key string) hypervisor.Template {
	return hypervisor.Template{
		MemPath:   filepath.Join(t.dir, key, "mem"),
		StatePath: filepath.Join(t.dir, key, "state"),
	}
}

// lookupTemplate returns the key of cfg's template and whether it is
// ready; when it is not, it starts building it, making room if need be.
func (r *Runtime) lookupTemplate(hv hypervisor.Hypervisor, dialer AgentDialer, cfg hypervisor.Config) (string, bool) {
	t := &r.templates
	if t.dir == "" {
		return "", false
	}
	if !hypervisor.CanTemplate(cfg) {
		return "", false
	}
	key, err := hypervisor.TemplateKey(templateConfig(cfg, hypervisor.BuildTemplate, hypervisor.Template{}))
	if err != nil {
		klog.ErrorS(err, "No VM template key", "vm", cfg.ID)
		return "", false
	}
	ready := filepath.Join(t.dir, key, templateReadyFile)
	if _, err := os.Stat(ready); err == nil {
		// The ready file's time is the template's last use.
		now := time.Now()
		_ = os.Chtimes(ready, now, now)
		return key, true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.building[key] || t.failed[key] || !t.makeRoom() {
		return key, false
	}
	if t.building == nil {
		t.building, t.failed = map[string]bool{}, map[string]bool{}
	}
	t.building[key] = true
	if t.buildsCtx == nil {
		t.buildsCtx, t.stopBuilds = context.WithCancel(context.Background())
	}
	t.builds.Add(1)
	go func() {
		defer t.builds.Done()
		ctx, cancel := context.WithTimeout(t.buildsCtx, templateBuildTimeout)
		defer cancel()
		err := r.buildTemplate(ctx, hv, dialer, cfg, key)
		t.mu.Lock()
		defer t.mu.Unlock()
		delete(t.building, key)
		if err != nil {
			t.failed[key] = true
			klog.ErrorS(err, "VM template not built; sandboxes of its shape boot cold", "template", key)
		}
	}()
	return key, false
}

// makeRoom removes the template used least lately when maxTemplates are
// kept, and tells whether one more may be built: the shapes asked for
// change (pods' sizes, the configuration), and the tmpfs keeps templates
// across restarts. A template being built is not removed. The caller
// holds mu.
func (t *templates) makeRoom() bool {
	entries, _ := os.ReadDir(t.dir)
	if len(entries) < maxTemplates {
		return true
	}
	var oldest string
	var oldestUse time.Time
	for _, e := range entries {
		fi, err := os.Stat(filepath.Join(t.dir, e.Name(), templateReadyFile))
		if err != nil || t.building[e.Name()] {
			continue
		}
		if oldest == "" || fi.ModTime().Before(oldestUse) {
			oldest, oldestUse = e.Name(), fi.ModTime()
		}
	}
	if oldest == "" {
		return false
	}
	klog.InfoS("Removing the VM template used least lately, to make room", "template", oldest, "lastUse", oldestUse)
	if err := os.RemoveAll(filepath.Join(t.dir, oldest)); err != nil {
		klog.ErrorS(err, "Cannot remove VM template", "template", oldest)
		return false
	}
	return true
}

// buildTemplate boots a template VM of cfg's shape, waits for its agent,
// saves it under key, and drops the older templates of its shape.
func (r *Runtime) buildTemplate(ctx context.Context, hv hypervisor.Hypervisor, dialer AgentDialer, cfg hypervisor.Config, key string) (retErr error) {
	start := time.Now()
	dir := filepath.Join(r.templates.dir, key)
	c := templateConfig(cfg, hypervisor.BuildTemplate, r.templates.files(key))
	c.ID, c.StateDir, c.NetNSPath, c.CgroupParent = "template-"+key, filepath.Join(dir, "vm"), "", ""
	// A slice of its own: cfg's is the sandbox's.
	c.NetDevices = make([]hypervisor.NetDevice, len(cfg.NetDevices))
	for i := range c.NetDevices {
		c.NetDevices[i] = hypervisor.NetDevice{MAC: hypervisor.TemplateMAC(i)}
	}
	// A VM left by a daemon that died building it, then the rest.
	if vm, err := hv.Attach(ctx, c); err == nil {
		_ = vm.Stop(ctx)
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	defer func() {
		if retErr != nil {
			_ = os.RemoveAll(dir)
		}
	}()
	if cfg.SharedDir != "" {
		c.SharedDir = filepath.Join(dir, "shared")
		if err := os.MkdirAll(c.SharedDir, 0o700); err != nil {
			return err
		}
	}
	vm, err := hv.Launch(ctx, c)
	if err != nil {
		return err
	}
	defer func() {
		if err := vm.Stop(context.WithoutCancel(ctx)); err != nil && retErr == nil {
			retErr = err
		}
	}()
	saver, ok := vm.(hypervisor.TemplateSaver)
	if !ok {
		return fmt.Errorf("VM of hypervisor %T cannot be saved as a template", hv)
	}
	ag, err := dialer.Dial(ctx, vm)
	if err != nil {
		return fmt.Errorf("agent of the template: %w", err)
	}
	_, err = ag.Check(ctx, &protocol.CheckRequest{})
	_ = ag.Close()
	if err != nil {
		return fmt.Errorf("agent of the template: %w", err)
	}
	// The agent ends its link's session when it reads the host's leaving;
	// saved before, every pod would start with a session nobody has.
	time.Sleep(200 * time.Millisecond)
	if err := saver.SaveTemplate(ctx); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, templateReadyFile), nil, 0o600); err != nil {
		return err
	}
	r.dropOtherTemplates(key)
	klog.InfoS("VM template built", "template", key, "vcpus", cfg.VCPUs, "memoryMiB", cfg.MemoryMiB, "duration", time.Since(start))
	return nil
}

// dropOtherTemplates removes the templates of key's shape that older
// inputs made. The pods started from them keep their memory: a removed
// file's pages live on while mapped.
func (r *Runtime) dropOtherTemplates(key string) {
	shape, _, _ := strings.Cut(key, "-")
	entries, _ := os.ReadDir(r.templates.dir)
	for _, e := range entries {
		if e.Name() != key && strings.HasPrefix(e.Name(), shape+"-") {
			r.dropTemplate(e.Name())
		}
	}
}

// restoredAgentAttempts is how many links a restore tries, each given
// its share of restoreTimeout. A restored guest's agent may have been in
// the middle of a session when its template was saved; a link it does
// not answer is dropped, and its agent, seeing the host leave and come
// back, starts afresh.
const restoredAgentAttempts = 3

// restoredAgent connects to the agent of a restored guest.
func restoredAgent(ctx context.Context, ls *lockedSandbox) (Agent, error) {
	var err error
	for i := range restoredAgentAttempts {
		actx, cancel := context.WithTimeout(ctx, restoreTimeout/restoredAgentAttempts)
		var ag Agent
		ag, err = ls.agent(actx)
		cancel()
		if err == nil {
			return ag, nil
		}
		if ctx.Err() != nil {
			break
		}
		klog.InfoS("The restored guest's agent did not answer; connecting again", "sandbox", ls.Config.ID, "attempt", i+1, "err", err)
	}
	return nil, err
}

// guestAnswered records whether a guest restored from key answered, and
// returns how many in a row have not.
func (t *templates) guestAnswered(key string, ok bool) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.guestFailures == nil {
		t.guestFailures = map[string]int{}
	}
	if ok {
		delete(t.guestFailures, key)
		return 0
	}
	t.guestFailures[key]++
	return t.guestFailures[key]
}

// dropTemplate removes a template, unless it is being built, and keeps
// this process from building it again: a template that failed a restore
// is not rebuilt in a loop, and one that older inputs made is not asked
// for again.
func (r *Runtime) dropTemplate(key string) {
	t := &r.templates
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.building[key] {
		return
	}
	if t.failed == nil {
		t.failed = map[string]bool{}
	}
	t.failed[key] = true
	if err := os.RemoveAll(filepath.Join(t.dir, key)); err != nil {
		klog.ErrorS(err, "Cannot remove VM template", "template", key)
	}
}

// launchVM starts the sandbox's VM: from its shape's template when one
// is ready, cold otherwise or when the restore fails. It returns the key
// of the template used, "" for a cold boot.
func (r *Runtime) launchVM(ctx context.Context, ls *lockedSandbox, hv hypervisor.Hypervisor, cfg hypervisor.Config) (hypervisor.VM, string, error) {
	dialer, err := r.dialerFor(ls.Config.AgentType)
	if err != nil {
		return nil, "", err
	}
	if key, ok := r.lookupTemplate(hv, dialer, cfg); ok {
		vm, launched, err := r.restoreVM(ctx, ls, hv, cfg, key)
		failures := r.templates.guestAnswered(key, err == nil)
		if err == nil {
			return vm, key, nil
		}
		if !launched || failures >= maxGuestFailures {
			r.dropTemplate(key)
		}
		if ctx.Err() != nil {
			return nil, "", err
		}
		klog.InfoS("Warning: VM template failed, booting the sandbox cold", "sandbox", cfg.ID, "template", key, "err", err)
	}
	vm, err := hv.Launch(ctx, cfg)
	return vm, "", err
}

// restoreVM starts the sandbox's VM from template key, and makes its
// guest the pod's own.
// launched tells whether QEMU took the template's state: a failure after
// it is the restored guest's.
func (r *Runtime) restoreVM(ctx context.Context, ls *lockedSandbox, hv hypervisor.Hypervisor, cfg hypervisor.Config, key string) (_ hypervisor.VM, launched bool, retErr error) {
	ctx, cancel := context.WithTimeout(ctx, restoreTimeout)
	defer cancel()
	vm, err := hv.Launch(ctx, templateConfig(cfg, hypervisor.FromTemplate, r.templates.files(key)))
	if err != nil {
		return nil, false, err
	}
	r.vms.put(cfg.ID, vm)
	defer func() {
		if retErr != nil {
			r.dropAgent(cfg.ID)
			r.vms.take(cfg.ID)
			if err := vm.Stop(context.WithoutCancel(ctx)); err != nil {
				klog.ErrorS(err, "Cannot stop a VM whose restore failed", "sandbox", cfg.ID)
			}
		}
	}()
	ag, err := restoredAgent(ctx, ls)
	if err != nil {
		return nil, true, err
	}
	seed := make([]byte, templateSeedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, true, err
	}
	req := &protocol.RestoreRequest{UnixNano: time.Now().UnixNano(), RandomSeed: seed, Macs: map[string]string{}}
	for i, n := range cfg.NetDevices {
		req.Macs[hypervisor.TemplateMAC(i)] = n.MAC
	}
	phaseCtx, span := startPhase(ctx, "guest_restore")
	_, err = ag.Restore(phaseCtx, req)
	endPhase(span, err)
	if err != nil {
		return nil, true, fmt.Errorf("restore the guest: %w", err)
	}
	return vm, true, nil
}

// waitTemplates waits for the builds in flight.
func (r *Runtime) waitTemplates() { r.templates.builds.Wait() }

// StopTemplates ends the template builds in flight, their VMs stopped,
// and waits for them: a Runtime's owner calls it as it shuts down, so
// that no template VM outlives it.
func (r *Runtime) StopTemplates() {
	t := &r.templates
	t.mu.Lock()
	if t.stopBuilds != nil {
		t.stopBuilds()
	}
	t.mu.Unlock()
	t.builds.Wait()
}

// CleanTemplates removes what a process that died building a template
// left: its VM, still running, and its files. A Runtime's owner calls it
// once at start, before the first sandbox.
func (r *Runtime) CleanTemplates(ctx context.Context) error {
	t := &r.templates
	if t.dir == "" {
		return nil
	}
	entries, err := os.ReadDir(t.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	hv, err := r.hypervisorFor(QemuHypervisor)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		dir := filepath.Join(t.dir, e.Name())
		vmDir := filepath.Join(dir, "vm")
		if vm, err := hv.Attach(ctx, hypervisor.Config{ID: "template-" + e.Name(), StateDir: vmDir}); err == nil {
			klog.InfoS("Stopping the VM of an unfinished template", "template", e.Name())
			errs = append(errs, vm.Stop(ctx))
		}
		if _, err := os.Stat(filepath.Join(dir, templateReadyFile)); err != nil {
			errs = append(errs, os.RemoveAll(dir))
		}
	}
	return errors.Join(errs...)
}

// PrepareTemplate starts building, in the background, the template of
// the VMs of sandboxes configured as c with nics NICs, unless it is
// ready or templates are off: a daemon asks at start for its default
// pod's, so that its first pod need not boot cold.
func (r *Runtime) PrepareTemplate(c SandboxConfig, nics int) error {
	if r.templates.dir == "" {
		return nil
	}
	hv, err := r.hypervisorFor(c.HypervisorType)
	if err != nil {
		return err
	}
	dialer, err := r.dialerFor(c.AgentType)
	if err != nil {
		return err
	}
	cfg, err := r.vmConfig("template", &c)
	if err != nil {
		return err
	}
	for i := range nics {
		cfg.NetDevices = append(cfg.NetDevices, hypervisor.NetDevice{MAC: hypervisor.TemplateMAC(i)})
	}
	r.lookupTemplate(hv, dialer, cfg)
	return nil
}
