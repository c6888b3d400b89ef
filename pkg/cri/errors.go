package cri

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"

	"github.com/vc-cri/vc-cri/pkg/cri/store"
	"github.com/vc-cri/vc-cri/pkg/image"
	"github.com/vc-cri/vc-cri/pkg/sandbox"
)

// Errors become gRPC statuses here, at the boundary, and nowhere else.
// Inner packages return sentinel errors wrapped with their details.

// errInvalidArgument and errFailedPrecondition mark this package's own
// refusals.
var (
	errInvalidArgument    = errors.New("invalid argument")
	errFailedPrecondition = errors.New("failed precondition")
)

func invalidArgument(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errInvalidArgument, fmt.Sprintf(format, args...))
}

func failedPrecondition(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errFailedPrecondition, fmt.Sprintf(format, args...))
}

// grpcCode classifies err.
func grpcCode(err error) codes.Code {
	if s, ok := status.FromError(err); ok {
		return s.Code()
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	case errors.Is(err, errInvalidArgument), errors.Is(err, sandbox.ErrInvalidConfig):
		return codes.InvalidArgument
	case errors.Is(err, store.ErrNotFound), errors.Is(err, sandbox.ErrNotFound), errors.Is(err, image.ErrNotFound):
		return codes.NotFound
	case errors.Is(err, store.ErrAlreadyExists), errors.Is(err, sandbox.ErrAlreadyExists):
		return codes.AlreadyExists
	case errors.Is(err, errFailedPrecondition), errors.Is(err, sandbox.ErrInvalidState):
		return codes.FailedPrecondition
	}
	return codes.Unknown
}

// toStatus turns an error into a gRPC status error, keeping its message.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(grpcCode(err), err.Error())
}

// UnaryInterceptor logs each call with its duration and turns errors
// into gRPC statuses. Panics become Internal errors: one bad request must
// not take the daemon down.
func UnaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			klog.ErrorS(nil, "Panic in CRI call", "method", info.FullMethod, "panic", r)
			resp, err = nil, status.Errorf(codes.Internal, "internal error in %s: %v", info.FullMethod, r)
		}
		err = toStatus(err)
		if err != nil {
			klog.V(2).InfoS("CRI call failed", "method", info.FullMethod, "duration", time.Since(start), "err", err)
		} else {
			klog.V(4).InfoS("CRI call", "method", info.FullMethod, "duration", time.Since(start))
		}
	}()
	return handler(ctx, req)
}

// StreamInterceptor does for streaming calls what UnaryInterceptor does.
func StreamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	defer func() {
		if r := recover(); r != nil {
			klog.ErrorS(nil, "Panic in CRI stream", "method", info.FullMethod, "panic", r)
			err = status.Errorf(codes.Internal, "internal error in %s: %v", info.FullMethod, r)
		}
		err = toStatus(err)
	}()
	return handler(srv, ss)
}
