package cri

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/go-logr/logr/funcr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/vc-cri/vc-cri/pkg/agent"
	"github.com/vc-cri/vc-cri/pkg/agent/protocol"
	"github.com/vc-cri/vc-cri/pkg/cni"
	"github.com/vc-cri/vc-cri/pkg/cri/store"
	"github.com/vc-cri/vc-cri/pkg/hypervisor"
	"github.com/vc-cri/vc-cri/pkg/image"
	"github.com/vc-cri/vc-cri/pkg/sandbox"
)

// TestErrorCodes maps every sentinel of every package, the guest's codes
// as pkg/agent words them, and this package's own refusals through the
// one conversion to their gRPC codes, alone and wrapped as callers wrap
// them.
func TestErrorCodes(t *testing.T) {
	t.Parallel()
	guest := func(c codes.Code) error {
		return agent.GuestError(protocol.Agent_CreateContainer_FullMethodName, status.Error(c, "refused"))
	}
	for _, tc := range []struct {
		name string
		err  error
		want codes.Code
	}{
		{"nil", nil, codes.OK},
		{"plain", errors.New("boom"), codes.Unknown},

		{"store.ErrNotFound", store.ErrNotFound, codes.NotFound},
		{"store.ErrAlreadyExists", store.ErrAlreadyExists, codes.AlreadyExists},
		{"store.ErrAmbiguous", store.ErrAmbiguous, codes.InvalidArgument},

		{"sandbox.ErrNotFound", sandbox.ErrNotFound, codes.NotFound},
		{"sandbox.ErrAlreadyExists", sandbox.ErrAlreadyExists, codes.AlreadyExists},
		{"sandbox.ErrInvalidState", sandbox.ErrInvalidState, codes.FailedPrecondition},
		{"sandbox.ErrInvalidConfig", sandbox.ErrInvalidConfig, codes.InvalidArgument},

		{"image.ErrNotFound", image.ErrNotFound, codes.NotFound},
		{"image.ErrInvalidReference", image.ErrInvalidReference, codes.InvalidArgument},
		{"image.ErrInvalidAuth", image.ErrInvalidAuth, codes.InvalidArgument},
		{"image.ErrUnauthorized", image.ErrUnauthorized, codes.Unauthenticated},
		{"image.ErrBlocked", image.ErrBlocked, codes.PermissionDenied},
		{"image.ErrUnavailable", image.ErrUnavailable, codes.Unavailable},
		{"image.ErrDigestMismatch", image.ErrDigestMismatch, codes.DataLoss},
		{"image.ErrLayerTooLarge", image.ErrLayerTooLarge, codes.ResourceExhausted},
		{"image.ErrInUse", image.ErrInUse, codes.FailedPrecondition},
		{"image.ErrContainerNotFound", image.ErrContainerNotFound, codes.NotFound},
		{"image.ErrConflict", image.ErrConflict, codes.FailedPrecondition},
		{"image.ErrAmbiguous", image.ErrAmbiguous, codes.InvalidArgument},

		{"hypervisor.ErrInvalidConfig", hypervisor.ErrInvalidConfig, codes.InvalidArgument},
		{"hypervisor.ErrNotFound", hypervisor.ErrNotFound, codes.NotFound},
		{"hypervisor.ErrAlreadyExists", hypervisor.ErrAlreadyExists, codes.AlreadyExists},
		{"hypervisor.ErrNotRunning", hypervisor.ErrNotRunning, codes.FailedPrecondition},
		{"hypervisor.ErrInvalidState", hypervisor.ErrInvalidState, codes.FailedPrecondition},
		{"hypervisor.ErrNoKVM", hypervisor.ErrNoKVM, codes.FailedPrecondition},

		{"cni.ErrNoConfig", cni.ErrNoConfig, codes.FailedPrecondition},
		{"cni.ErrInvalidModel", cni.ErrInvalidModel, codes.InvalidArgument},
		{"cni.ErrInvalidNetns", cni.ErrInvalidNetns, codes.InvalidArgument},
		{"cni.ErrInvalidPodID", cni.ErrInvalidPodID, codes.InvalidArgument},

		{"guest NotFound", guest(codes.NotFound), codes.NotFound},
		{"guest AlreadyExists", guest(codes.AlreadyExists), codes.AlreadyExists},
		{"guest InvalidArgument", guest(codes.InvalidArgument), codes.InvalidArgument},
		{"guest FailedPrecondition", guest(codes.FailedPrecondition), codes.FailedPrecondition},
		{"guest Internal", guest(codes.Internal), codes.Unknown},
		{"guest Unavailable", guest(codes.Unavailable), codes.Unknown},
		{"guest Unauthenticated", guest(codes.Unauthenticated), codes.Unknown},
		{"guest DeadlineExceeded", guest(codes.DeadlineExceeded), codes.Unknown},
		{"guest Canceled", guest(codes.Canceled), codes.Unknown},

		{"invalidArgument", invalidArgument("bad %d", 1), codes.InvalidArgument},
		{"failedPrecondition", failedPrecondition("not %s", "ready"), codes.FailedPrecondition},
		{"notImplemented", notImplemented("no %s", "checkpoint"), codes.Unimplemented},
		{"errdefs.ErrInternal", errdefs.ErrInternal.WithMessage("verbose info"), codes.Internal},

		{"context.DeadlineExceeded", context.DeadlineExceeded, codes.DeadlineExceeded},
		{"context.Canceled", context.Canceled, codes.Canceled},
		{"a status", status.Error(codes.Internal, "internal error in X"), codes.Internal},

		// As callers wrap them: the details around, a join, a context's
		// end under a kind, two kinds (the outermost wins).
		{"wrapped", fmt.Errorf("create container %q: %w", "c", sandbox.ErrInvalidState), codes.FailedPrecondition},
		{"joined", fmt.Errorf("rootfs: %w", errors.Join(os.ErrNotExist, sandbox.ErrInvalidConfig)), codes.InvalidArgument},
		{"deadline under a kind", fmt.Errorf("%w: %w", image.ErrUnavailable, context.DeadlineExceeded), codes.DeadlineExceeded},
		{"two kinds", fmt.Errorf("%w: %w", image.ErrInvalidReference, image.ErrNotFound), codes.InvalidArgument},
		{"guest's under the host's", fmt.Errorf("start container: %w", guest(codes.NotFound)), codes.NotFound},
		{"wrapped status", fmt.Errorf("dial: %w", status.Error(codes.Unavailable, "gone")), codes.Unavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, ok := status.FromError(toStatus(tc.err))
			if !ok || st.Code() != tc.want {
				t.Fatalf("%v: code %v, want %v", tc.err, st.Code(), tc.want)
			}
			if tc.err != nil && !strings.HasSuffix(tc.err.Error(), st.Message()) {
				t.Errorf("message %q, want %q", st.Message(), tc.err.Error())
			}
		})
	}
}

// TestInterceptors: the handler's logger names the method and the IDs of
// the request, errors leave as statuses, a panic as Internal.
func TestInterceptors(t *testing.T) {
	t.Parallel()
	var lines []string
	log := funcr.New(func(prefix, args string) { lines = append(lines, args) }, funcr.Options{})
	ctx := klog.NewContext(context.Background(), log)
	info := &grpc.UnaryServerInfo{FullMethod: "/runtime.v1.RuntimeService/StopContainer"}
	chain := func(handler grpc.UnaryHandler) error {
		_, err := UnaryInterceptor(ctx, &runtime.StopContainerRequest{ContainerId: "c1"}, info, func(ctx context.Context, req any) (any, error) {
			return UnaryLogger(ctx, req, info, handler)
		})
		return err
	}

	err := chain(func(ctx context.Context, _ any) (any, error) {
		klog.FromContext(ctx).Info("Stopping")
		return nil, fmt.Errorf("stop container %q: %w", "c1", sandbox.ErrInvalidState)
	})
	if status.Code(err) != codes.FailedPrecondition {
		t.Errorf("error: %v", err)
	}
	if len(lines) == 0 || !strings.Contains(lines[0], `"method"="StopContainer"`) || !strings.Contains(lines[0], `"container"="c1"`) {
		t.Errorf("handler's log line: %q", lines)
	}

	err = chain(func(context.Context, any) (any, error) { panic("bad") })
	if status.Code(err) != codes.Internal {
		t.Errorf("panic: %v", err)
	}
}

// TestLogPanic: a goroutine that defers logPanic survives a panic.
func TestLogPanic(t *testing.T) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer logPanic("test", "k", "v")
		var m map[string]int
		m["boom"]++ // a nil map: panics
	}()
	<-done
}
