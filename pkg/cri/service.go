// Package cri serves the CRI RuntimeService on top of pkg/sandbox: every
// pod is a sandbox, that is a VM, and its containers run in the guest.
// One file per CRI call, as in containerd's CRI server.
//
// Locks: each record store (pods, containers, intents) has its own,
// held only inside its calls; a container record's update may take ioMu
// (addIO), and nothing takes a store's lock under ioMu. watchMu, the
// name reservations' and the event broadcaster's locks are taken alone.
// None is held across a call to the sandbox layer, whose sandbox lock
// honours the caller's context (pkg/sandbox's package comment), nor to
// NRI plugins (nri.go).
package cri

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/vc-cri/vc-cri/pkg/cni"
	"github.com/vc-cri/vc-cri/pkg/cri/store"
	"github.com/vc-cri/vc-cri/pkg/image"
	"github.com/vc-cri/vc-cri/pkg/nri"
)

// RuntimeName and RuntimeVersion are what Version reports.
const (
	RuntimeName    = "vc-cri"
	RuntimeVersion = "0.1.0"
)

// imageStore is what the runtime service needs of the image store.
type imageStore interface {
	Status(ctx context.Context, ref string) (*image.Image, error)
	Mount(ctx context.Context, containerID, imageRef, target string, ids image.IDMap) (string, error)
	RemoveRootfs(ctx context.Context, containerID string) error
	// Root is the store's directory, on the filesystem of container roots.
	Root() string
}

// podNetwork is what the runtime service needs of the pod network, which
// it owns (see teardownPod): the network namespace and CNI.
type podNetwork interface {
	Setup(ctx context.Context, pod cni.PodNetwork) (*cni.Result, error)
	Teardown(ctx context.Context, podID, netnsPath string) error
	Status(ctx context.Context) error
}

var (
	_ imageStore = (*image.Service)(nil)
	_ podNetwork = (*cni.Manager)(nil)
)

// Options configure the runtime service.
type Options struct {
	// StateDir holds the service's records (pods, containers) and each
	// pod's generated files (resolv.conf, hosts, hostname).
	StateDir string
	// Handlers are the runtime handlers by name; "" is the default one,
	// which runs pods that name none.
	Handlers map[string]Handler
	// HostNamespacePods names the handler that runs a pod asking for the
	// host's network, PID or IPC namespace of a handler that cannot give
	// them (a VM's); "" refuses such pods.
	HostNamespacePods string
	Images            imageStore
	Network           podNetwork
	// StreamingAddress is where exec, attach and port-forward streams are
	// served: host:port, port 0 picks one.
	StreamingAddress string
	// NRI relays the lifecycle of pods and containers to NRI plugins
	// (nri.go); nil: none. The service starts it (Start) and stops it
	// (Close).
	NRI *nri.NRI
	// CrashPoint, when set, is called at each named step of
	// RunPodSandbox and CreateContainer: the crash tests end the process
	// there (reconcile.go).
	CrashPoint func(step string)
}

// Service implements the CRI RuntimeService.
type Service struct {
	runtime.UnimplementedRuntimeServiceServer

	opts       Options
	pods       *store.Store[podRecord]
	containers *store.Store[containerRecord]
	intents    *store.Store[intentRecord]
	// leftovers are what New found that no record owns; Start takes them
	// apart.
	leftovers leftovers
	podNames  *store.Names
	ctrNames  *store.Names
	streaming *streamServer
	events    *eventBroadcaster

	// ioMu guards io: the monitors of running containers. It is taken
	// under a container record's update (addIO), never the other way.
	ioMu sync.Mutex
	io   map[string]*containerIO

	// The last stats of running containers and ready pods.
	containerStatsCache *statsCache[*runtime.ContainerStats]
	podStatsCache       *statsCache[*runtime.PodSandboxStats]

	// watchMu guards watches: the watches of ready pods' VMs.
	watchMu sync.Mutex
	watches map[string]*podWatch

	// cidrMu guards podCIDR, what kubelet last gave UpdateRuntimeConfig.
	cidrMu  sync.Mutex
	podCIDR string
}

var _ runtime.RuntimeServiceServer = (*Service)(nil)

// New opens the service's records of the pods and containers a previous
// run left; Start finds them again.
func New(ctx context.Context, opts Options) (*Service, error) {
	if opts.Images == nil || opts.Network == nil {
		return nil, errors.New("cri: Images and Network are required")
	}
	if err := checkHandlers(opts); err != nil {
		return nil, err
	}
	pods, err := store.Open[podRecord](filepath.Join(opts.StateDir, "pods"), "pod sandbox")
	if err != nil {
		return nil, err
	}
	containers, err := store.Open[containerRecord](filepath.Join(opts.StateDir, "containers"), "container")
	if err != nil {
		return nil, err
	}
	intents, err := store.Open[intentRecord](filepath.Join(opts.StateDir, "intents"), "intent")
	if err != nil {
		return nil, err
	}
	s := &Service{
		opts:       opts,
		pods:       pods,
		containers: containers,
		intents:    intents,
		podNames:   store.NewNames(),
		ctrNames:   store.NewNames(),
		events:     newEventBroadcaster(),
		io:         map[string]*containerIO{},
		watches:    map[string]*podWatch{},

		containerStatsCache: newStatsCache[*runtime.ContainerStats](),
		podStatsCache:       newStatsCache[*runtime.PodSandboxStats](),
	}
	for _, p := range pods.List() {
		if _, ok := opts.Handlers[p.Runtime]; !ok {
			return nil, fmt.Errorf("pod sandbox %s runs on runtime handler %q, which the configuration no longer has", p.ID, p.Runtime)
		}
		if err := s.podNames.Reserve(p.Name, p.ID); err != nil {
			return nil, err
		}
	}
	for _, c := range containers.List() {
		if _, ok := opts.Handlers[c.Runtime]; !ok {
			return nil, fmt.Errorf("container %s runs on runtime handler %q, which the configuration no longer has", c.ID, c.Runtime)
		}
		if err := s.ctrNames.Reserve(c.Name, c.ID); err != nil {
			return nil, err
		}
		if c.State == runtime.ContainerState_CONTAINER_RUNNING {
			s.registerRecovered(c)
		}
	}
	if s.leftovers, err = s.findLeftovers(ctx); err != nil {
		return nil, err
	}
	if s.streaming, err = newStreamServer(s, opts.StreamingAddress); err != nil {
		return nil, err
	}
	return s, nil
}

// Start serves the streaming server until ctx ends, and meanwhile finds
// again, in the background, what a previous run left running. NRI
// plugins that cannot be started or connect (no socket) are logged: the
// pods run without them.
func (s *Service) Start(ctx context.Context) error {
	if err := s.opts.NRI.Start(nriRuntime{s}); err != nil {
		klog.ErrorS(err, "NRI plugins are not all running; going on without them")
	}
	go s.recover()
	go s.reconcile(s.leftovers)
	return s.streaming.serve(ctx)
}

// Close stops watching pods and containers, without a word to their
// records: the VMs and their containers run on, for the next run of the
// service to find.
func (s *Service) Close() {
	s.watchMu.Lock()
	watches := s.watches
	s.watches = map[string]*podWatch{}
	s.watchMu.Unlock()
	for _, w := range watches {
		w.cancel()
		<-w.done
	}
	s.ioMu.Lock()
	monitors := s.io
	s.io = map[string]*containerIO{}
	s.ioMu.Unlock()
	for _, cio := range monitors {
		cio.cancel()
	}
	s.opts.NRI.Stop()
}

// recoveryTimeout bounds the reattachment of one container: a guest that
// does not answer holds up only its own pod, and only this long.
const recoveryTimeout = time.Minute

// registerRecovered gives a container a previous run left running its
// monitor, before the service serves anything: whoever finds it running
// finds its monitor too. The monitor starts in recover.
func (s *Service) registerRecovered(c containerRecord) {
	cio, err := s.newContainerIO(c)
	if err != nil {
		klog.ErrorS(err, "Cannot reopen the container's log; its output is lost", "pod", c.PodID, "container", c.ID)
		c.LogPath = ""
		cio, _ = s.newContainerIO(c)
	}
	s.addIO(c.ID, cio)
}

// recover watches the ready pods' VMs again and reattaches their running
// containers' monitors and output, each pod on its own.
func (s *Service) recover() {
	for _, p := range s.pods.List() {
		if p.State == runtime.PodSandboxState_SANDBOX_READY {
			s.watchPod(p.ID, p.Runtime)
		}
	}
	for _, c := range s.containers.List() {
		cio, ok := s.containerIO(c.ID)
		if !ok || c.State != runtime.ContainerState_CONTAINER_RUNNING {
			continue
		}
		go func() {
			defer logPanic("Recovery of a container failed", "pod", c.PodID, "container", c.ID)
			go s.monitor(c, cio)
			ctx, cancel := context.WithTimeout(context.Background(), recoveryTimeout)
			defer cancel()
			if err := s.attachOutput(ctx, c, cio); err != nil {
				klog.ErrorS(err, "Cannot reattach to the container's output", "pod", c.PodID, "container", c.ID)
				return
			}
			klog.InfoS("Container recovered", "pod", c.PodID, "container", c.ID)
		}()
	}
}

// podDir holds the files vc-cri generates for a pod.
func (s *Service) podDir(id string) string {
	return filepath.Join(s.opts.StateDir, "pod-files", id)
}

func (s *Service) removePodDir(id string) error {
	if err := os.RemoveAll(s.podDir(id)); err != nil {
		return fmt.Errorf("remove pod files: %w", err)
	}
	return nil
}
