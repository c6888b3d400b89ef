package cri

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/vc-cri/vc-cri/pkg/hypervisor"
	"github.com/vc-cri/vc-cri/pkg/sandbox"
)

// teardownLog is what happened to a pod's VM and network, in order.
type teardownLog struct {
	mu     sync.Mutex
	events []string
}

func (l *teardownLog) add(e string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

func (l *teardownLog) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

// loggedSandboxes are real sandboxes (mock VMs) that log when a VM is
// down; failRun makes RunSandbox fail once the VM has booted.
type loggedSandboxes struct {
	sandboxes
	log     *teardownLog
	failRun bool
}

func (s *loggedSandboxes) RunSandbox(ctx context.Context, cfg sandbox.SandboxConfig) (sandbox.VCSandbox, error) {
	sb, err := s.sandboxes.RunSandbox(ctx, cfg)
	if err == nil && s.failRun {
		return nil, errors.New("injected failure after boot")
	}
	return sb, err
}

func (s *loggedSandboxes) StopSandbox(ctx context.Context, id string) (sandbox.VCSandbox, error) {
	sb, err := s.sandboxes.StopSandbox(ctx, id)
	s.log.add("vm down")
	return sb, err
}

func (s *loggedSandboxes) DeleteSandbox(ctx context.Context, id string) (sandbox.VCSandbox, error) {
	sb, err := s.sandboxes.DeleteSandbox(ctx, id)
	s.log.add("vm deleted")
	return sb, err
}

// orderedNetwork is a pod network that checks, at CNI DEL, that the
// pod's VM is down and its taps out of the namespace: its sandbox is
// stopped or gone.
type orderedNetwork struct {
	fakeNetwork
	log       *teardownLog
	sandboxes sandboxes
}

func (n *orderedNetwork) Teardown(ctx context.Context, podID, netnsPath string) error {
	st, err := n.sandboxes.StatusSandbox(ctx, podID)
	switch {
	case errors.Is(err, sandbox.ErrNotFound):
	case err != nil:
		return err
	case st.State.State != sandbox.StateStopped:
		n.log.add("cni del with the vm " + string(st.State.State))
		return fmt.Errorf("CNI DEL of pod %s while its sandbox is %s", podID, st.State.State)
	}
	n.log.add("cni del, netns removed")
	return n.fakeNetwork.Teardown(ctx, podID, netnsPath)
}

func newOrderedService(t *testing.T, failRun bool) (*Service, *teardownLog) {
	t.Helper()
	dir := t.TempDir()
	log := &teardownLog{}
	sbs := &loggedSandboxes{sandboxes: testSandboxes(dir, hypervisor.NewMock()), log: log, failRun: failRun}
	net := &orderedNetwork{fakeNetwork: fakeNetwork{active: map[string]bool{}}, log: log, sandboxes: sbs}
	s := newTestServiceWith(t, dir, sbs, net)
	t.Cleanup(func() {
		// What the injected failure left: a stopped sandbox no pod knows.
		st, _ := sbs.sandboxes.(*sandbox.Runtime).ListSandbox(context.Background())
		for _, sb := range st {
			sbs.sandboxes.DeleteSandbox(context.Background(), sb.ID)
		}
	})
	return s, log
}

// TestPodTeardownOrder: however a pod goes, its VM is down (and its taps
// out of the netns) before CNI DEL, which removes the netns last.
func TestPodTeardownOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for name, tc := range map[string]struct {
		failRun bool
		end     func(s *Service, pod string) error
		want    []string
	}{
		"stop": {
			end: func(s *Service, pod string) error {
				_, err := s.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: pod})
				return err
			},
			want: []string{"vm down", "cni del, netns removed"},
		},
		"remove a ready pod": {
			end: func(s *Service, pod string) error {
				_, err := s.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: pod})
				return err
			},
			want: []string{"vm down", "cni del, netns removed", "vm deleted"},
		},
		"failed run": {
			failRun: true,
			want:    []string{"vm down", "cni del, netns removed"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s, log := newOrderedService(t, tc.failRun)
			run, err := s.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: podConfig("web")})
			if tc.failRun {
				if err == nil {
					t.Fatal("RunPodSandbox succeeded despite the injected failure")
				}
			} else {
				if err != nil {
					t.Fatalf("RunPodSandbox: %v", err)
				}
				if err := tc.end(s, run.PodSandboxId); err != nil {
					t.Fatal(err)
				}
			}
			if got := log.get(); !slices.Equal(got, tc.want) {
				t.Fatalf("teardown: %q, want %q", got, tc.want)
			}
		})
	}
}

var _ podNetwork = (*orderedNetwork)(nil)
