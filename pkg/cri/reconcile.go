package cri

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"k8s.io/klog/v2"

	"github.com/vc-cri/vc-cri/pkg/sandbox"
)

// After a crash (kill -9 of the daemon, a host that lost power in the
// middle of a call), what no record owns is taken apart at the next
// start: the pods and containers whose intent outlived their call, the
// sandboxes and pod directories no pod record names. RunPodSandbox and
// CreateContainer write their intent first (intentRecord), and
// pkg/sandbox saves a sandbox's state before each step that leaves
// something on the host, so that every leftover is found one of these
// ways.

// crashPoint marks a step of RunPodSandbox or CreateContainer where a
// test may end the process, as kill -9 would (Options.CrashPoint).
func (s *Service) crashPoint(name string) {
	if s.opts.CrashPoint != nil {
		s.opts.CrashPoint(name)
	}
}

// The steps crashPoint names.
const (
	crashPodFiles         = "pod-files"
	crashPodNetwork       = "pod-network"
	crashPodSandbox       = "pod-sandbox"
	crashPodRecord        = "pod-record"
	crashContainerRootfs  = "container-rootfs"
	crashContainerCreated = "container-created"
	crashContainerRecord  = "container-record"
)

// reconcileTimeout bounds the taking apart of one leftover.
const reconcileTimeout = 2 * time.Minute

// leftovers are what New found that no record owns, before anything
// could be added: the sandboxes and pod directories of no pod.
type leftovers struct {
	sandboxes []string
	podDirs   []string
}

// findLeftovers lists the sandboxes and pod directories that no pod
// record names. It runs before the service serves: a pod made later is
// never taken for a leftover.
func (s *Service) findLeftovers(ctx context.Context) (leftovers, error) {
	var l leftovers
	owned := func(id string) bool {
		_, err := s.pods.Get(id)
		return err == nil
	}
	for _, rt := range s.runtimes() {
		list, err := rt.ListSandbox(ctx)
		if err != nil {
			return l, fmt.Errorf("list sandboxes: %w", err)
		}
		for _, sb := range list {
			if !owned(sb.ID) {
				l.sandboxes = append(l.sandboxes, sb.ID)
			}
		}
	}
	entries, err := os.ReadDir(s.podDir(""))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return l, err
	}
	for _, e := range entries {
		if !owned(e.Name()) {
			l.podDirs = append(l.podDirs, e.Name())
		}
	}
	return l, nil
}

// reconcile takes apart what a previous run left unfinished or unowned.
func (s *Service) reconcile(l leftovers) {
	undone := map[string]bool{}
	for _, in := range s.intents.List() {
		ctx, cancel := context.WithTimeout(context.Background(), reconcileTimeout)
		err := s.undoIntent(ctx, in)
		cancel()
		if err != nil {
			klog.ErrorS(err, "Cannot take apart what a killed call left; kept for the next start", "kind", in.Kind, "id", in.ID)
			continue
		}
		undone[in.ID] = true
		if err := s.intents.Delete(in.ID); err != nil {
			klog.ErrorS(err, "Cannot remove an intent", "id", in.ID)
		}
	}
	for _, id := range l.sandboxes {
		if undone[id] {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), reconcileTimeout)
		klog.InfoS("Removing a sandbox no pod owns", "pod", id)
		if err := s.undoPod(ctx, id); err != nil {
			klog.ErrorS(err, "Cannot remove a sandbox no pod owns", "pod", id)
		}
		cancel()
	}
	for _, id := range l.podDirs {
		if !undone[id] {
			if err := s.removePodDir(id); err != nil {
				klog.ErrorS(err, "Cannot remove the files of no pod", "pod", id)
			}
		}
	}
}

// undoIntent takes apart an object whose call did not finish; one whose
// record was written is kept.
func (s *Service) undoIntent(ctx context.Context, in intentRecord) error {
	switch in.Kind {
	case intentPod:
		if _, err := s.pods.Get(in.ID); err == nil {
			return nil
		}
		klog.InfoS("Taking apart a pod whose RunPodSandbox did not finish", "pod", in.ID, "since", in.At)
		return s.undoPod(ctx, in.ID)
	case intentContainer:
		if _, err := s.containers.Get(in.ID); err == nil {
			return nil
		}
		klog.InfoS("Taking apart a container whose CreateContainer did not finish", "pod", in.PodID, "container", in.ID, "since", in.At)
		for _, rt := range s.runtimes() {
			if _, err := rt.DeleteContainer(ctx, in.PodID, in.ID); err != nil && !errors.Is(err, sandbox.ErrNotFound) {
				return err
			}
		}
		if err := s.removeImageVolumes(ctx, in.ImageVolumes); err != nil {
			return err
		}
		return s.opts.Images.RemoveRootfs(ctx, in.ID)
	}
	return fmt.Errorf("intent of unknown kind %q", in.Kind)
}

// undoPod takes down and removes a pod that has no record, on whichever
// runtime has it: its VM or infra, its network (CNI DEL, the namespace),
// its sandbox and its files.
func (s *Service) undoPod(ctx context.Context, id string) error {
	for _, rt := range s.runtimes() {
		if err := s.teardownPod(ctx, rt, id, "", true, nil); err != nil {
			return err
		}
		if _, err := rt.DeleteSandbox(ctx, id); err != nil && !errors.Is(err, sandbox.ErrNotFound) {
			return err
		}
	}
	if err := s.opts.Network.Teardown(ctx, id, ""); err != nil {
		return fmt.Errorf("tear down network of pod %q: %w", id, err)
	}
	return s.removePodDir(id)
}

// dropIntent removes a finished call's intent. One that cannot be
// removed is harmless: reconcile keeps what has a record.
func (s *Service) dropIntent(id string) {
	if err := s.intents.Delete(id); err != nil {
		klog.ErrorS(err, "Cannot remove an intent", "id", id)
	}
}
