package hypervisor

import (
	"context"
	"fmt"

	"github.com/kata-containers/govmm/qemu"
	"k8s.io/klog/v2"
)

// qmpLogger adapts govmm's logging interface to klog.
type qmpLogger struct{ vm string }

func (l qmpLogger) V(level int32) bool { return klog.V(klog.Level(level)).Enabled() }

func (l qmpLogger) Infof(format string, args ...any) {
	klog.V(4).InfoS(fmt.Sprintf(format, args...), "vm", l.vm)
}

func (l qmpLogger) Warningf(format string, args ...any) {
	klog.V(2).InfoS(fmt.Sprintf(format, args...), "vm", l.vm)
}

func (l qmpLogger) Errorf(format string, args ...any) {
	klog.ErrorS(nil, fmt.Sprintf(format, args...), "vm", l.vm)
}

// withQMP connects to a QMP socket, negotiates capabilities, runs fn and
// closes the connection. One connection per operation: QEMU serves one
// QMP client at a time, and a daemon that held one open would lock out
// its successor after a restart.
func withQMP(ctx context.Context, vm, socket string, fn func(*qemu.QMP) error) error {
	disconnected := make(chan struct{})
	q, _, err := qemu.QMPStart(ctx, socket, qemu.QMPConfig{Logger: qmpLogger{vm: vm}}, disconnected)
	if err != nil {
		return fmt.Errorf("connect to QMP %s: %w", socket, err)
	}
	defer func() {
		q.Shutdown()
		<-disconnected
	}()
	if err := q.ExecuteQMPCapabilities(ctx); err != nil {
		return fmt.Errorf("QMP capabilities: %w", err)
	}
	return fn(q)
}

// queryStatus returns QMP query-status's status: "running", "paused"...
func queryStatus(ctx context.Context, vm, socket string) (string, error) {
	var status string
	err := withQMP(ctx, vm, socket, func(q *qemu.QMP) error {
		s, err := q.ExecuteQueryStatus(ctx)
		status = s.Status
		return err
	})
	return status, err
}
