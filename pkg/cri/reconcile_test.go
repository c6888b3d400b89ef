package cri

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/vc-cri/vc-cri/pkg/sandbox"
)

// node is what outlives a daemon: its records, sandboxes, images and
// network, which the next service finds again.
type node struct {
	dir  string
	sbs  *fakeSandboxes
	imgs *fakeImages
	net  *fakeNetwork
}

func newNode(t *testing.T) *node {
	return &node{dir: t.TempDir(), sbs: newFakeSandboxes(), imgs: &fakeImages{dir: t.TempDir()}, net: &fakeNetwork{active: map[string]bool{}}}
}

// service is the node's daemon; with crashAt, it freezes at that step,
// as a daemon killed there stops, and closes reached.
func (n *node) service(t *testing.T, crashAt string, reached chan struct{}) *Service {
	t.Helper()
	opts := Options{StateDir: n.dir, Handlers: vmHandlers(n.sbs), Images: n.imgs, Network: n.net}
	if crashAt != "" {
		opts.CrashPoint = func(step string) {
			if step == crashAt {
				close(reached)
				select {} // frozen, as if killed: nothing after this step runs
			}
		}
	}
	s, err := New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestCrashLeavesNothing: a daemon killed at any step of RunPodSandbox or
// CreateContainer leaves nothing that the next start does not take
// apart (VM, network, sandbox, root, files, records), and keeps what
// was finished.
func TestCrashLeavesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, step := range []string{crashPodFiles, crashPodNetwork, crashPodSandbox, crashPodRecord} {
		t.Run(step, func(t *testing.T) {
			t.Parallel()
			n := newNode(t)
			reached := make(chan struct{})
			go n.service(t, step, reached).RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: podConfig("crash")})
			<-reached
			pods := n.restart(t)
			if step == crashPodRecord {
				// Finished but for the answer: the pod is kept.
				if len(pods) != 1 || pods[0].State != runtime.PodSandboxState_SANDBOX_READY || n.sbs.podState(pods[0].Id) != sandbox.StateRunning {
					t.Fatalf("pods after a crash once recorded: %v", pods)
				}
				return
			}
			n.wantEmpty(t, pods)
		})
	}
	for _, step := range []string{crashContainerRootfs, crashContainerCreated, crashContainerRecord} {
		t.Run(step, func(t *testing.T) {
			t.Parallel()
			n := newNode(t)
			s := n.service(t, step, make(chan struct{}))
			pod, err := s.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: podConfig("crash")})
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			reached := make(chan struct{})
			s = n.service(t, step, reached)
			// With an image volume: a second root in the image store.
			cc := containerConfig("c")
			cc.Mounts = []*runtime.Mount{{ContainerPath: "/iv", Readonly: true, Image: &runtime.ImageSpec{Image: fakeImage}}}
			go s.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod.PodSandboxId, Config: cc, SandboxConfig: podConfig("crash")})
			<-reached
			n.restart(t)
			containers := n.sbs.containersOf(pod.PodSandboxId)
			roots, _ := os.ReadDir(n.imgs.dir)
			if step == crashContainerRecord {
				if len(containers) != 1 || len(roots) != 2 {
					t.Fatalf("after a crash once recorded: guest containers %v, roots %d", containers, len(roots))
				}
				return
			}
			if len(containers) != 0 || len(roots) != 0 {
				t.Fatalf("left after a crash at %s: guest containers %v, roots %d", step, containers, len(roots))
			}
		})
	}
}

// TestUnownedSandboxRemoved: a sandbox and pod files that no record
// names, with no intent either, are removed at start.
func TestUnownedSandboxRemoved(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	if _, err := n.sbs.RunSandbox(context.Background(), sandbox.SandboxConfig{ID: "stray"}); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(n.dir, "pod-files", "stray"), 0o755); err != nil {
		t.Fatal(err)
	}
	n.wantEmpty(t, n.restart(t))
}

// restart starts the node's next service, has it take apart what no
// record owns, and lists its pods.
func (n *node) restart(t *testing.T) []*runtime.PodSandbox {
	t.Helper()
	s := n.service(t, "", nil)
	t.Cleanup(s.Close)
	s.recover()
	s.reconcile(s.leftovers)
	klog.Flush()
	list, err := s.ListPodSandbox(context.Background(), &runtime.ListPodSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if in := s.intents.List(); len(in) != 0 {
		t.Fatalf("intents left: %v", in)
	}
	return list.Items
}

// wantEmpty fails unless the node has no pod, sandbox, network or pod
// files.
func (n *node) wantEmpty(t *testing.T, pods []*runtime.PodSandbox) {
	t.Helper()
	if len(pods) != 0 {
		t.Fatalf("pods: %v", pods)
	}
	if list, _ := n.sbs.ListSandbox(context.Background()); len(list) != 0 {
		t.Fatalf("sandboxes left: %v", list)
	}
	n.net.mu.Lock()
	active := len(n.net.active)
	n.net.mu.Unlock()
	if active != 0 {
		t.Fatalf("%d pod networks left", active)
	}
	if files, _ := os.ReadDir(filepath.Join(n.dir, "pod-files")); len(files) != 0 {
		t.Fatalf("pod files left: %v", files)
	}
}
