// Package nri hosts NRI plugins (github.com/containerd/nri) for the CRI
// server, as containerd does: it wraps nri's adaptation, which runs the
// pre-installed plugins and accepts external ones on a socket, and
// relays each lifecycle event of a pod or a container to them. Its
// callers hand it plain values (Pod, Container); it converts them to
// nri's types. A nil or disabled *NRI does nothing, and every method
// says so by succeeding.
//
// The CRI server keeps the ordering that plugins rely on: an event of an
// object is relayed before the object is visible (RunPodSandbox,
// CreateContainer), and the server holds BlockSync across that window,
// so that a plugin that connects meanwhile learns of the object either
// in its Synchronize or by the event, never neither.
//
// Unsolicited container updates from plugins (UpdateContainers, and the
// updates or evictions of other containers that a response carries)
// are not supported: they are refused or logged and dropped.
package nri

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/containerd/nri/pkg/adaptation"
	"github.com/containerd/nri/pkg/api"
	nrilog "github.com/containerd/nri/pkg/log"
	nrigen "github.com/containerd/nri/pkg/runtime-tools/generate"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-tools/generate"
	"k8s.io/klog/v2"
)

// Config configures the hosting of NRI plugins.
type Config struct {
	// Enable turns NRI on; off, New returns a *NRI that does nothing.
	Enable bool
	// SocketPath is where external plugins connect; empty: none can.
	SocketPath string
	// PluginPath holds the pre-installed plugins NRI starts itself, and
	// PluginConfigPath their configuration drop-ins.
	PluginPath       string
	PluginConfigPath string
	// RegistrationTimeout and RequestTimeout bound a plugin's
	// registration and its handling of one event (Synchronize included);
	// zero: nri's defaults (5s, 2s). They apply to the whole process.
	RegistrationTimeout time.Duration
	RequestTimeout      time.Duration
}

// Runtime is what NRI needs of the CRI server: the pods and containers it
// has, for the Synchronize of a plugin that connects.
type Runtime interface {
	NRIPods(ctx context.Context) []Pod
	NRIContainers(ctx context.Context) []Container
}

// Pod is a pod sandbox as plugins see it.
type Pod struct {
	ID, Name, Namespace, UID string
	Labels, Annotations      map[string]string
	RuntimeHandler           string
	CgroupParent             string
	// Namespaces are the pod's own namespaces with their paths, where
	// the host has them (a VM pod's network namespace).
	Namespaces []specs.LinuxNamespace
	IPs        []string
}

// State is a container's state as plugins see it.
type State int

// The container states.
const (
	StateUnknown State = iota
	StateCreated
	StateRunning
	StateExited
)

// Container is a container as plugins see it.
type Container struct {
	ID, PodID, Name     string // Name: kubelet's, from the config's metadata
	State               State
	Labels, Annotations map[string]string
	// Spec is the container's OCI spec: its args, env, mounts, hooks,
	// rlimits and resources are what plugins see, and CreateContainer
	// adjusts it in place. Without it (a container known from its record
	// alone), Args, Env and Mounts stand in.
	Spec   *specs.Spec
	Args   []string
	Env    []string
	Mounts []specs.Mount

	CreatedAt, StartedAt, FinishedAt time.Time
	ExitCode                         int32
	Reason, Message                  string
}

// NRI relays the CRI server's events to NRI plugins.
type NRI struct {
	cfg Config
	nri *adaptation.Adaptation
	// rt is set once, by Start, before any plugin can connect.
	rt Runtime

	// mu guards pods and containers: what plugins were told of each
	// (podStopped, ctrState), so that a stop is relayed once however
	// many paths report it. An object removed is forgotten; one never
	// seen (known from a previous run) counts as not stopped.
	mu         sync.Mutex
	pods       map[string]bool // pod ID: stopped
	containers map[string]ctrState
}

type ctrState int

const (
	ctrUnknown ctrState = iota
	ctrCreated
	ctrRunning
	ctrStopped
)

// New sets up NRI as cfg says; disabled, it returns a *NRI that does
// nothing. No plugin runs before Start.
func New(cfg Config) (*NRI, error) {
	n := &NRI{cfg: cfg, pods: map[string]bool{}, containers: map[string]ctrState{}}
	if !cfg.Enable {
		return n, nil
	}
	setLogger.Do(func() { nrilog.Set(klogLogger{}) })
	if cfg.RegistrationTimeout > 0 {
		adaptation.SetPluginRegistrationTimeout(cfg.RegistrationTimeout)
	}
	if cfg.RequestTimeout > 0 {
		adaptation.SetPluginRequestTimeout(cfg.RequestTimeout)
	}
	opts := []adaptation.Option{
		adaptation.WithPluginPath(cfg.PluginPath),
		adaptation.WithPluginConfigPath(cfg.PluginConfigPath),
	}
	if cfg.SocketPath == "" {
		opts = append(opts, adaptation.WithDisabledExternalConnections())
	} else {
		opts = append(opts, adaptation.WithSocketPath(cfg.SocketPath))
	}
	a, err := adaptation.New(runtimeName, runtimeVersion, n.synchronize, n.updateContainers, opts...)
	if err != nil {
		return nil, fmt.Errorf("nri: %w", err)
	}
	n.nri = a
	return n, nil
}

// setLogger sets nri's logger, a global, once.
var setLogger sync.Once

// The runtime's name and version as plugins are told them.
const (
	runtimeName    = "vc-cri"
	runtimeVersion = "0.1.0"
)

// Enabled tells whether events reach plugins.
func (n *NRI) Enabled() bool { return n != nil && n.nri != nil }

// Start runs the pre-installed plugins and starts accepting external
// ones, each synchronized with rt's pods and containers.
func (n *NRI) Start(rt Runtime) error {
	if !n.Enabled() {
		return nil
	}
	n.rt = rt
	if err := n.nri.Start(); err != nil {
		return fmt.Errorf("nri: start: %w", err)
	}
	klog.InfoS("NRI started", "socket", n.cfg.SocketPath, "pluginPath", n.cfg.PluginPath)
	return nil
}

// Stop stops the plugins NRI started and disconnects the others.
func (n *NRI) Stop() {
	if n.Enabled() {
		n.nri.Stop()
	}
}

// BlockSync keeps plugins from completing their Synchronize until the
// returned function is called: the CRI server holds it from an object's
// event until its record is visible to Runtime.
func (n *NRI) BlockSync() (unblock func()) {
	if !n.Enabled() {
		return func() {}
	}
	b := n.nri.BlockPluginSync()
	var once sync.Once
	return func() { once.Do(b.Unblock) }
}

// RunPodSandbox tells plugins of a pod whose sandbox runs; an error of
// one fails the pod.
func (n *NRI) RunPodSandbox(ctx context.Context, pod Pod) error {
	if !n.Enabled() {
		return nil
	}
	n.mu.Lock()
	n.pods[pod.ID] = false
	n.mu.Unlock()
	if err := n.nri.RunPodSandbox(ctx, &api.RunPodSandboxRequest{Pod: toPod(pod)}); err != nil {
		return fmt.Errorf("nri: RunPodSandbox: %w", err)
	}
	return nil
}

// StopPodSandbox tells plugins of a pod whose containers and sandbox
// stopped, once.
func (n *NRI) StopPodSandbox(ctx context.Context, pod Pod) error {
	if !n.Enabled() {
		return nil
	}
	n.mu.Lock()
	stopped := n.pods[pod.ID]
	n.pods[pod.ID] = true
	n.mu.Unlock()
	if stopped {
		return nil
	}
	if err := n.nri.StopPodSandbox(ctx, &api.StopPodSandboxRequest{Pod: toPod(pod)}); err != nil {
		return fmt.Errorf("nri: StopPodSandbox: %w", err)
	}
	return nil
}

// RemovePodSandbox tells plugins of a pod removed.
func (n *NRI) RemovePodSandbox(ctx context.Context, pod Pod) error {
	if !n.Enabled() {
		return nil
	}
	n.mu.Lock()
	delete(n.pods, pod.ID)
	n.mu.Unlock()
	if err := n.nri.RemovePodSandbox(ctx, &api.RemovePodSandboxRequest{Pod: toPod(pod)}); err != nil {
		return fmt.Errorf("nri: RemovePodSandbox: %w", err)
	}
	return nil
}

// CreateContainer tells plugins of a container about to be created and
// applies their adjustment to ctr.Spec; an error of one fails the
// create, which then owes plugins a RemoveContainer (as for any create
// that fails after this call).
func (n *NRI) CreateContainer(ctx context.Context, pod Pod, ctr Container) error {
	if !n.Enabled() {
		return nil
	}
	if ctr.Spec == nil {
		return errors.New("nri: CreateContainer: the container has no spec")
	}
	n.setState(ctr.ID, ctrCreated)
	ctr.State = StateCreated
	rpl, err := n.nri.CreateContainer(ctx, &api.CreateContainerRequest{Pod: toPod(pod), Container: toContainer(ctr)})
	if err != nil {
		return fmt.Errorf("nri: CreateContainer: %w", err)
	}
	dropUpdates(ctx, "CreateContainer", ctr.ID, rpl.GetUpdate(), len(rpl.GetEvict()))
	if err := adjust(ctr.Spec, rpl.GetAdjust()); err != nil {
		return fmt.Errorf("nri: CreateContainer: %w", err)
	}
	return nil
}

// adjust applies a plugin's adjustment to spec. Devices and CDI devices
// need a host's view of its devices that a pod VM does not share: they
// are refused rather than dropped.
func adjust(spec *specs.Spec, adj *api.ContainerAdjustment) error {
	if adj == nil {
		return nil
	}
	if len(adj.GetLinux().GetDevices()) > 0 || len(adj.GetCDIDevices()) > 0 {
		return errors.New("adjustment of devices is not supported")
	}
	if spec.Linux == nil {
		spec.Linux = &specs.Linux{}
	}
	if spec.Linux.Resources == nil {
		spec.Linux.Resources = &specs.LinuxResources{}
	}
	g := generate.NewFromSpec(spec)
	if err := nrigen.SpecGenerator(&g).Adjust(adj); err != nil {
		return fmt.Errorf("apply the plugins' adjustment: %w", err)
	}
	return nil
}

// PostCreateContainer tells plugins of a container created.
func (n *NRI) PostCreateContainer(ctx context.Context, pod Pod, ctr Container) error {
	if !n.Enabled() {
		return nil
	}
	err := n.nri.PostCreateContainer(ctx, &api.PostCreateContainerRequest{Pod: toPod(pod), Container: toContainer(ctr)})
	if err != nil {
		return fmt.Errorf("nri: PostCreateContainer: %w", err)
	}
	return nil
}

// StartContainer tells plugins of a container about to start; an error
// of one fails the start.
func (n *NRI) StartContainer(ctx context.Context, pod Pod, ctr Container) error {
	if !n.Enabled() {
		return nil
	}
	n.setState(ctr.ID, ctrRunning)
	if err := n.nri.StartContainer(ctx, &api.StartContainerRequest{Pod: toPod(pod), Container: toContainer(ctr)}); err != nil {
		return fmt.Errorf("nri: StartContainer: %w", err)
	}
	return nil
}

// PostStartContainer tells plugins of a container started.
func (n *NRI) PostStartContainer(ctx context.Context, pod Pod, ctr Container) error {
	if !n.Enabled() {
		return nil
	}
	if err := n.nri.PostStartContainer(ctx, &api.PostStartContainerRequest{Pod: toPod(pod), Container: toContainer(ctr)}); err != nil {
		return fmt.Errorf("nri: PostStartContainer: %w", err)
	}
	return nil
}

// UpdateContainer tells plugins of new resources asked for a container
// and returns them as the plugins adjusted them; an error of one fails
// the update.
func (n *NRI) UpdateContainer(ctx context.Context, pod Pod, ctr Container, res specs.LinuxResources) (specs.LinuxResources, error) {
	if !n.Enabled() {
		return res, nil
	}
	rpl, err := n.nri.UpdateContainer(ctx, &api.UpdateContainerRequest{
		Pod: toPod(pod), Container: toContainer(ctr), LinuxResources: api.FromOCILinuxResources(&res, nil),
	})
	if err != nil {
		return specs.LinuxResources{}, fmt.Errorf("nri: UpdateContainer: %w", err)
	}
	var others []*api.ContainerUpdate
	for _, u := range rpl.GetUpdate() {
		if u == nil {
			continue
		}
		if u.GetContainerId() != ctr.ID {
			others = append(others, u)
			continue
		}
		if r := u.GetLinux().GetResources(); r != nil {
			res = *r.ToOCI()
		}
	}
	dropUpdates(ctx, "UpdateContainer", ctr.ID, others, len(rpl.GetEvict()))
	return res, nil
}

// PostUpdateContainer tells plugins of a container's resources updated.
func (n *NRI) PostUpdateContainer(ctx context.Context, pod Pod, ctr Container) error {
	if !n.Enabled() {
		return nil
	}
	if err := n.nri.PostUpdateContainer(ctx, &api.PostUpdateContainerRequest{Pod: toPod(pod), Container: toContainer(ctr)}); err != nil {
		return fmt.Errorf("nri: PostUpdateContainer: %w", err)
	}
	return nil
}

// UpdatePodSandbox tells plugins of new resources asked for a pod: its
// overhead and its containers' sum; an error of one fails the update.
func (n *NRI) UpdatePodSandbox(ctx context.Context, pod Pod, overhead, res specs.LinuxResources) error {
	if !n.Enabled() {
		return nil
	}
	if _, err := n.nri.UpdatePodSandbox(ctx, &api.UpdatePodSandboxRequest{
		Pod: toPod(pod), OverheadLinuxResources: api.FromOCILinuxResources(&overhead, nil), LinuxResources: api.FromOCILinuxResources(&res, nil),
	}); err != nil {
		return fmt.Errorf("nri: UpdatePodSandbox: %w", err)
	}
	return nil
}

// PostUpdatePodSandbox tells plugins of a pod's resources updated.
func (n *NRI) PostUpdatePodSandbox(ctx context.Context, pod Pod) error {
	if !n.Enabled() {
		return nil
	}
	if err := n.nri.PostUpdatePodSandbox(ctx, &api.PostUpdatePodSandboxRequest{Pod: toPod(pod)}); err != nil {
		return fmt.Errorf("nri: PostUpdatePodSandbox: %w", err)
	}
	return nil
}

// StopContainer tells plugins of a container that stopped, once: by a
// stop, by itself or with its pod.
func (n *NRI) StopContainer(ctx context.Context, pod Pod, ctr Container) error {
	if !n.Enabled() {
		return nil
	}
	n.mu.Lock()
	st := n.containers[ctr.ID]
	n.containers[ctr.ID] = ctrStopped
	n.mu.Unlock()
	if st == ctrStopped {
		return nil
	}
	return n.stopContainer(ctx, pod, ctr)
}

func (n *NRI) stopContainer(ctx context.Context, pod Pod, ctr Container) error {
	rpl, err := n.nri.StopContainer(ctx, &api.StopContainerRequest{Pod: toPod(pod), Container: toContainer(ctr)})
	if err != nil {
		return fmt.Errorf("nri: StopContainer: %w", err)
	}
	dropUpdates(ctx, "StopContainer", ctr.ID, rpl.GetUpdate(), 0)
	return nil
}

// RemoveContainer tells plugins of a container removed, after its stop
// if they were not told of that: a container never started, or one whose
// create failed.
func (n *NRI) RemoveContainer(ctx context.Context, pod Pod, ctr Container) error {
	if !n.Enabled() {
		return nil
	}
	n.mu.Lock()
	st := n.containers[ctr.ID]
	delete(n.containers, ctr.ID)
	n.mu.Unlock()
	var errs []error
	if st == ctrCreated || st == ctrRunning || (st == ctrUnknown && (ctr.State == StateCreated || ctr.State == StateRunning)) {
		errs = append(errs, n.stopContainer(ctx, pod, ctr))
	}
	if err := n.nri.RemoveContainer(ctx, &api.RemoveContainerRequest{Pod: toPod(pod), Container: toContainer(ctr)}); err != nil {
		errs = append(errs, fmt.Errorf("nri: RemoveContainer: %w", err))
	}
	return errors.Join(errs...)
}

func (n *NRI) setState(id string, st ctrState) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.containers[id] = st
}

// synchronize hands a plugin that connects the runtime's pods and
// containers. The updates it asks for are not supported.
func (n *NRI) synchronize(ctx context.Context, cb adaptation.SyncCB) error {
	var pods []*api.PodSandbox
	for _, p := range n.rt.NRIPods(ctx) {
		pods = append(pods, toPod(p))
	}
	var ctrs []*api.Container
	for _, c := range n.rt.NRIContainers(ctx) {
		ctrs = append(ctrs, toContainer(c))
	}
	updates, err := cb(ctx, pods, ctrs)
	if err != nil {
		return fmt.Errorf("synchronize plugin: %w", err)
	}
	dropUpdates(ctx, "Synchronize", "", updates, 0)
	return nil
}

// errUpdatesUnsupported answers a plugin's unsolicited updates.
var errUpdatesUnsupported = errors.New("vc-cri does not support unsolicited container updates from NRI plugins")

func (n *NRI) updateContainers(ctx context.Context, updates []*api.ContainerUpdate) ([]*api.ContainerUpdate, error) {
	klog.FromContext(ctx).Info("Refused the updates an NRI plugin asked for", "containers", len(updates))
	return updates, errUpdatesUnsupported
}

// dropUpdates logs the updates of other containers (and evictions) that
// plugins asked for in answer to an event: not supported.
func dropUpdates(ctx context.Context, event, id string, updates []*api.ContainerUpdate, evictions int) {
	var ids []string
	for _, u := range updates {
		if u != nil && u.GetContainerId() != id {
			ids = append(ids, u.GetContainerId())
		}
	}
	if len(ids) > 0 || evictions > 0 {
		klog.FromContext(ctx).Info("Dropped the container updates NRI plugins asked for: not supported", "event", event, "updated", ids, "evictions", evictions)
	}
}
