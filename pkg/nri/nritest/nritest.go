// Package nritest is an NRI plugin for tests: it records the events it
// is sent, and adjusts or fails them as a test asks. It runs in the
// test's process, connected to the socket of the NRI under test.
package nritest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"
)

// Event is one event a plugin was sent.
type Event struct {
	Kind        string // "RunPodSandbox", "CreateContainer", ...
	PodID       string
	ContainerID string
	Pod         *api.PodSandbox
	Container   *api.Container
}

// Plugin records events. Its hooks are set before Connect.
type Plugin struct {
	// Adjust, when set, answers CreateContainer.
	Adjust func(*api.PodSandbox, *api.Container) *api.ContainerAdjustment
	// Fail, when set, is asked whether to fail an event, by its kind.
	Fail func(kind string) error

	synced chan struct{}

	// mu guards events, syncPods and syncContainers.
	mu             sync.Mutex
	events         []Event
	syncPods       []*api.PodSandbox
	syncContainers []*api.Container
}

// Connect connects p to the NRI listening on socket and returns once it
// is synchronized; it is disconnected when the test ends. wait, when set,
// is called after the Synchronize and returns once the runtime has
// registered the plugin (pkg/nri's BlockSync taken and released).
func Connect(t testing.TB, socket string, p *Plugin, wait func()) {
	t.Helper()
	p.synced = make(chan struct{})
	s, err := stub.New(p, stub.WithPluginName("test"), stub.WithPluginIdx("10"), stub.WithSocketPath(socket))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	select {
	case <-p.synced:
	case err := <-done:
		t.Fatalf("NRI test plugin: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("NRI test plugin was not synchronized within 10s")
	}
	if wait != nil {
		wait()
	}
}

// Events are the events recorded so far.
func (p *Plugin) Events() []Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Event(nil), p.events...)
}

// Kinds are the kinds of the events recorded so far of the object id
// (a pod's or a container's).
func (p *Plugin) Kinds(id string) []string {
	var kinds []string
	for _, e := range p.Events() {
		if e.ContainerID == id || (e.ContainerID == "" && e.PodID == id) {
			kinds = append(kinds, e.Kind)
		}
	}
	return kinds
}

// Synced are the pods and containers of the plugin's Synchronize.
func (p *Plugin) Synced() ([]*api.PodSandbox, []*api.Container) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.syncPods, p.syncContainers
}

func (p *Plugin) record(kind string, pod *api.PodSandbox, ctr *api.Container) error {
	p.mu.Lock()
	p.events = append(p.events, Event{Kind: kind, PodID: pod.GetId(), ContainerID: ctr.GetId(), Pod: pod, Container: ctr})
	p.mu.Unlock()
	if p.Fail != nil {
		if err := p.Fail(kind); err != nil {
			return fmt.Errorf("test plugin: %w", err)
		}
	}
	return nil
}

// Synchronize implements stub.SynchronizeInterface.
func (p *Plugin) Synchronize(_ context.Context, pods []*api.PodSandbox, ctrs []*api.Container) ([]*api.ContainerUpdate, error) {
	p.mu.Lock()
	p.syncPods, p.syncContainers = pods, ctrs
	p.mu.Unlock()
	close(p.synced)
	return nil, nil
}

// RunPodSandbox implements stub.RunPodInterface.
func (p *Plugin) RunPodSandbox(_ context.Context, pod *api.PodSandbox) error {
	return p.record("RunPodSandbox", pod, nil)
}

// UpdatePodSandbox implements stub.UpdatePodInterface.
func (p *Plugin) UpdatePodSandbox(_ context.Context, pod *api.PodSandbox, _, _ *api.LinuxResources) error {
	return p.record("UpdatePodSandbox", pod, nil)
}

// PostUpdatePodSandbox implements stub.PostUpdatePodInterface.
func (p *Plugin) PostUpdatePodSandbox(_ context.Context, pod *api.PodSandbox) error {
	return p.record("PostUpdatePodSandbox", pod, nil)
}

// StopPodSandbox implements stub.StopPodInterface.
func (p *Plugin) StopPodSandbox(_ context.Context, pod *api.PodSandbox) error {
	return p.record("StopPodSandbox", pod, nil)
}

// RemovePodSandbox implements stub.RemovePodInterface.
func (p *Plugin) RemovePodSandbox(_ context.Context, pod *api.PodSandbox) error {
	return p.record("RemovePodSandbox", pod, nil)
}

// CreateContainer implements stub.CreateContainerInterface.
func (p *Plugin) CreateContainer(_ context.Context, pod *api.PodSandbox, ctr *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	if err := p.record("CreateContainer", pod, ctr); err != nil {
		return nil, nil, err
	}
	if p.Adjust != nil {
		return p.Adjust(pod, ctr), nil, nil
	}
	return nil, nil, nil
}

// PostCreateContainer implements stub.PostCreateContainerInterface.
func (p *Plugin) PostCreateContainer(_ context.Context, pod *api.PodSandbox, ctr *api.Container) error {
	return p.record("PostCreateContainer", pod, ctr)
}

// StartContainer implements stub.StartContainerInterface.
func (p *Plugin) StartContainer(_ context.Context, pod *api.PodSandbox, ctr *api.Container) error {
	return p.record("StartContainer", pod, ctr)
}

// PostStartContainer implements stub.PostStartContainerInterface.
func (p *Plugin) PostStartContainer(_ context.Context, pod *api.PodSandbox, ctr *api.Container) error {
	return p.record("PostStartContainer", pod, ctr)
}

// UpdateContainer implements stub.UpdateContainerInterface.
func (p *Plugin) UpdateContainer(_ context.Context, pod *api.PodSandbox, ctr *api.Container, _ *api.LinuxResources) ([]*api.ContainerUpdate, error) {
	return nil, p.record("UpdateContainer", pod, ctr)
}

// PostUpdateContainer implements stub.PostUpdateContainerInterface.
func (p *Plugin) PostUpdateContainer(_ context.Context, pod *api.PodSandbox, ctr *api.Container) error {
	return p.record("PostUpdateContainer", pod, ctr)
}

// StopContainer implements stub.StopContainerInterface.
func (p *Plugin) StopContainer(_ context.Context, pod *api.PodSandbox, ctr *api.Container) ([]*api.ContainerUpdate, error) {
	return nil, p.record("StopContainer", pod, ctr)
}

// RemoveContainer implements stub.RemoveContainerInterface.
func (p *Plugin) RemoveContainer(_ context.Context, pod *api.PodSandbox, ctr *api.Container) error {
	return p.record("RemoveContainer", pod, ctr)
}
