package cri

import (
	"context"
	"errors"
	"fmt"
	"path"
	"time"

	"github.com/containerd/errdefs"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// Errors become gRPC statuses here, at the boundary, and nowhere else:
// UnaryInterceptor and StreamInterceptor convert what the handlers of
// both services (this RuntimeService and pkg/cri/images' ImageService)
// return. Below them every package speaks github.com/containerd/errdefs:
// it wraps errdefs' kinds with its details, or has sentinels of its own
// that wrap them (store.ErrNotFound, sandbox.ErrInvalidState,
// image.ErrDigestMismatch, hypervisor.ErrNoKVM, cni.ErrNoConfig...), and
// pkg/agent's client gives the guest's errors the kinds it vouches for.
// Nothing inspects an error's text.

func invalidArgument(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errdefs.ErrInvalidArgument, fmt.Sprintf(format, args...))
}

func failedPrecondition(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errdefs.ErrFailedPrecondition, fmt.Sprintf(format, args...))
}

func notImplemented(format string, args ...any) error {
	return errdefs.ErrNotImplemented.WithMessage(fmt.Sprintf(format, args...))
}

// kindCodes are the gRPC codes of errdefs' kinds.
var kindCodes = map[error]codes.Code{
	errdefs.ErrInvalidArgument:    codes.InvalidArgument,
	errdefs.ErrNotFound:           codes.NotFound,
	errdefs.ErrAlreadyExists:      codes.AlreadyExists,
	errdefs.ErrPermissionDenied:   codes.PermissionDenied,
	errdefs.ErrResourceExhausted:  codes.ResourceExhausted,
	errdefs.ErrFailedPrecondition: codes.FailedPrecondition,
	errdefs.ErrConflict:           codes.FailedPrecondition,
	errdefs.ErrNotModified:        codes.FailedPrecondition,
	errdefs.ErrAborted:            codes.Aborted,
	errdefs.ErrOutOfRange:         codes.OutOfRange,
	errdefs.ErrNotImplemented:     codes.Unimplemented,
	errdefs.ErrInternal:           codes.Internal,
	errdefs.ErrUnavailable:        codes.Unavailable,
	errdefs.ErrDataLoss:           codes.DataLoss,
	errdefs.ErrUnauthenticated:    codes.Unauthenticated,
}

// grpcCode classifies err: a context's end first, whatever wraps it;
// then the outermost errdefs kind in err's chain (errdefs.Resolve); then
// a gRPC status in the chain, as a library may return one; else Unknown.
func grpcCode(err error) codes.Code {
	switch {
	case err == nil:
		return codes.OK
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	}
	if code, ok := kindCodes[errdefs.Resolve(err)]; ok {
		return code
	}
	if s, ok := status.FromError(err); ok {
		return s.Code()
	}
	return codes.Unknown
}

// toStatus turns an error into a gRPC status error, keeping its message.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	code := grpcCode(err)
	if s, ok := status.FromError(err); ok && s.Code() == code {
		return s.Err()
	}
	return status.Error(code, err.Error())
}

// The interceptors of the daemon's gRPC server, outermost first (see
// Service.Interceptors):
//
//  1. pkg/metrics' counters, when metrics are on: they record the codes
//     that clients see.
//  2. UnaryInterceptor (StreamInterceptor): recovers panics, turns errors
//     into statuses, logs each call's end.
//  3. Service.ResolveIDs: short IDs become full ones; its refusals are
//     converted by 2.
//  4. UnaryLogger: the handler's context gets a logger with the method
//     and the full IDs of the request, for klog.FromContext.

// Interceptors returns the server's interceptor chains, 2 to 4 above, to
// install on the server that serves both the RuntimeService and the
// ImageService, after the metrics' own.
func (s *Service) Interceptors() ([]grpc.UnaryServerInterceptor, []grpc.StreamServerInterceptor) {
	return []grpc.UnaryServerInterceptor{UnaryInterceptor, s.ResolveIDs, UnaryLogger},
		[]grpc.StreamServerInterceptor{StreamInterceptor}
}

// logPanic, deferred first in a goroutine that handles what a guest
// sent, logs a panic there rather than let it end the daemon: the guest
// is untrusted, and a fault in handling its words must cost only its
// own pod.
func logPanic(what string, keysAndValues ...any) {
	if r := recover(); r != nil {
		klog.ErrorS(fmt.Errorf("panic: %v", r), what, keysAndValues...)
	}
}

// UnaryInterceptor turns errors into gRPC statuses and logs each call
// with its duration. Panics become Internal errors: one bad request must
// not take the daemon down.
func UnaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	start := time.Now()
	defer func() {
		// After the handler: req holds the IDs ResolveIDs made full.
		log := callLogger(ctx, info.FullMethod, req)
		if r := recover(); r != nil {
			log.Error(nil, "Panic in CRI call", "panic", r)
			resp, err = nil, status.Errorf(codes.Internal, "internal error in %s: %v", info.FullMethod, r)
		}
		err = toStatus(err)
		if err != nil {
			log.V(2).Info("CRI call failed", "duration", time.Since(start), "err", err)
		} else {
			log.V(4).Info("CRI call", "duration", time.Since(start))
		}
	}()
	return handler(ctx, req)
}

// UnaryLogger puts the call's logger in the handler's context.
func UnaryLogger(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	return handler(klog.NewContext(ctx, callLogger(ctx, info.FullMethod, req)), req)
}

// StreamInterceptor does for streaming calls what UnaryInterceptor and
// UnaryLogger do, with the method alone in the logger.
func StreamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	log := callLogger(ss.Context(), info.FullMethod, nil)
	defer func() {
		if r := recover(); r != nil {
			log.Error(nil, "Panic in CRI stream", "panic", r)
			err = status.Errorf(codes.Internal, "internal error in %s: %v", info.FullMethod, r)
		}
		err = toStatus(err)
		if err != nil {
			log.V(2).Info("CRI stream failed", "err", err)
		}
	}()
	return handler(srv, &loggedStream{ServerStream: ss, ctx: klog.NewContext(ss.Context(), log)})
}

// loggedStream is a server stream whose context carries its logger.
type loggedStream struct {
	grpc.ServerStream
	ctx context.Context // the stream's own, with the logger
}

func (s *loggedStream) Context() context.Context { return s.ctx }

// callLogger is ctx's logger with the method of the call and the pod,
// container or image its request names.
func callLogger(ctx context.Context, fullMethod string, req any) klog.Logger {
	kv := []any{"method", path.Base(fullMethod)}
	if r, ok := req.(interface{ GetPodSandboxId() string }); ok && r.GetPodSandboxId() != "" {
		kv = append(kv, "pod", r.GetPodSandboxId())
	}
	if r, ok := req.(interface{ GetContainerId() string }); ok && r.GetContainerId() != "" {
		kv = append(kv, "container", r.GetContainerId())
	}
	if r, ok := req.(interface{ GetImage() *runtime.ImageSpec }); ok && r.GetImage().GetImage() != "" {
		kv = append(kv, "image", r.GetImage().GetImage())
	}
	return klog.LoggerWithValues(klog.FromContext(ctx), kv...)
}
