package runc

import (
	"context"

	"github.com/vc-cri/vc-cri/pkg/sandbox"
)

// ResizeSandbox has nothing to do: an OS containers' pod has no VM, and
// its pod cgroup is kubelet's, which kubelet resizes before it asks the
// runtime (as containerd does for runc pods). Its containers' limits
// change by UpdateContainer. It reports no size.
func (r *Runtime) ResizeSandbox(ctx context.Context, podID string, size sandbox.Resources) (sandbox.Resources, error) {
	return sandbox.Resources{}, nil
}
