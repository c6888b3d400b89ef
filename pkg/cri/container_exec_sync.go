package cri

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/vc-cri/vc-cri/pkg/tracing"
)

// maxExecSyncOutput caps each output stream of ExecSync, as kubelet's
// probes do.
const maxExecSyncOutput = 16 << 20

// ExecSync runs a command in the container and returns its output and
// exit code; past the timeout the command is killed.
func (s *Service) ExecSync(ctx context.Context, req *runtime.ExecSyncRequest) (_ *runtime.ExecSyncResponse, retErr error) {
	if len(req.Cmd) == 0 {
		return nil, invalidArgument("exec needs a command")
	}
	if err := s.checkRunning(req.GetContainerId()); err != nil {
		return nil, err
	}
	log := klog.FromContext(ctx)
	ctx, call := tracing.StartCall(ctx, tracer, "ExecSync")
	defer func() { call.End(log, "ExecSync phases", retErr) }()
	if req.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(req.Timeout)*time.Second)
		defer cancel()
	}
	var stdout, stderr capped
	stdout.max, stderr.max = maxExecSyncOutput, maxExecSyncOutput
	code, err := s.exec(ctx, req.ContainerId, req.Cmd, nil, nopCloser{&stdout}, nopCloser{&stderr}, false, nil)
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		klog.FromContext(ctx).V(2).Info("ExecSync timed out", "timeout", time.Duration(req.Timeout)*time.Second)
		return nil, fmt.Errorf("command %q timed out after %ds: %w", req.Cmd, req.Timeout, context.DeadlineExceeded)
	}
	if err != nil {
		return nil, err
	}
	return &runtime.ExecSyncResponse{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), ExitCode: code}, nil
}

// capped keeps the first max bytes written to it.
type capped struct {
	bytes.Buffer
	max int
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - c.Len(); room > 0 {
		c.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

type nopCloser struct{ *capped }

func (nopCloser) Close() error { return nil }
