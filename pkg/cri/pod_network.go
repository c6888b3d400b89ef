package cri

import (
	"context"
	"errors"
	"fmt"

	"github.com/vc-cri/vc-cri/pkg/sandbox"
)

// The pod network is this package's, as in containerd's CRI server:
// RunPodSandbox has podNetwork create the pod's network namespace and
// run CNI ADD in it, then boots the VM there; pkg/sandbox only joins the
// VM to the interfaces CNI left in that namespace (its taps) and unjoins
// them when the VM stops. teardownPod is the one place that takes a
// pod's VM and network down, for StopPodSandbox, RemovePodSandbox and a
// failed RunPodSandbox alike, in the one order that works:
//
//  1. the VM, then its taps: StopSandbox returns once the hypervisor has
//     exited and the taps are out of the namespace;
//  2. CNI DEL, which must find the interfaces as ADD left them, with no
//     tap joined to them any more;
//  3. the network namespace, which DEL still needs.
//
// podNetwork.Teardown does 2 then 3 (cni.Manager.Teardown); it is called
// only here. A pod in the host's network has neither (hostNetwork).
// stopped, when set, is called between 1 and 2, with the pod's
// containers recorded exited: NRI's StopPodSandbox is there.
func (s *Service) teardownPod(ctx context.Context, rt sandboxes, podID, netnsPath string, hostNetwork bool, stopped func(context.Context)) error {
	if _, err := rt.StopSandbox(ctx, podID); err != nil && !errors.Is(err, sandbox.ErrInvalidState) && !errors.Is(err, sandbox.ErrNotFound) {
		return fmt.Errorf("stop pod sandbox %q: %w", podID, err)
	}
	s.recordStoppedContainers(ctx, rt, podID)
	if stopped != nil {
		stopped(ctx)
	}
	if hostNetwork {
		return nil
	}
	if err := s.opts.Network.Teardown(ctx, podID, netnsPath); err != nil {
		return fmt.Errorf("tear down network of pod %q: %w", podID, err)
	}
	return nil
}
