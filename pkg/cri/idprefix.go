package cri

import (
	"context"
	"errors"

	"google.golang.org/grpc"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/vc-cri/vc-cri/pkg/cri/store"
)

// ID prefixes. Every call that takes a pod or container ID accepts a
// unique prefix of one, as containerd's and CRI-O's do, so that the
// 13-character IDs crictl prints work. The IDs are resolved once, here,
// before any handler runs: the handlers, and the streaming server that
// Exec, Attach and PortForward hand their requests to, see full IDs only.
//
//   - A unique prefix becomes the full ID.
//   - A prefix of several IDs is InvalidArgument naming them.
//   - An ID that matches nothing and has the form of a short ID (1 to 63
//     lower-case hex digits, see store.IsShortID) is NotFound for every
//     call, stop and remove too: kubelet always passes full IDs, so such
//     an ID is a user's typing, and "stopped" would hide that the pod it
//     meant still runs.
//   - Any other ID that matches nothing (a full ID of a pod removed
//     already, a UUID) goes to the handler as it is: stop and remove
//     succeed, as the CRI asks of them, and status calls say NotFound.
//
// List filters narrow by a unique prefix the same way; a filter that
// matches several or none is left to the list itself.

// ResolveIDs is the gRPC unary interceptor that resolves the pod and
// container IDs of RuntimeService requests; install it after
// UnaryInterceptor, which turns its errors into statuses, and before
// UnaryLogger, which logs the full IDs (see Service.Interceptors).
func (s *Service) ResolveIDs(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := s.resolveRequest(req); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

// resolveRequest rewrites the IDs of req in place.
func (s *Service) resolveRequest(req any) error {
	pod := func(id *string) error { return resolveID(s.pods, id) }
	ctr := func(id *string) error { return resolveID(s.containers, id) }
	switch r := req.(type) {
	case *runtime.StopPodSandboxRequest:
		return pod(&r.PodSandboxId)
	case *runtime.RemovePodSandboxRequest:
		return pod(&r.PodSandboxId)
	case *runtime.PodSandboxStatusRequest:
		return pod(&r.PodSandboxId)
	case *runtime.PodSandboxStatsRequest:
		return pod(&r.PodSandboxId)
	case *runtime.PortForwardRequest:
		return pod(&r.PodSandboxId)
	case *runtime.UpdatePodSandboxResourcesRequest:
		return pod(&r.PodSandboxId)
	case *runtime.CreateContainerRequest:
		return pod(&r.PodSandboxId)
	case *runtime.StartContainerRequest:
		return ctr(&r.ContainerId)
	case *runtime.StopContainerRequest:
		return ctr(&r.ContainerId)
	case *runtime.RemoveContainerRequest:
		return ctr(&r.ContainerId)
	case *runtime.ContainerStatusRequest:
		return ctr(&r.ContainerId)
	case *runtime.UpdateContainerResourcesRequest:
		return ctr(&r.ContainerId)
	case *runtime.ExecSyncRequest:
		return ctr(&r.ContainerId)
	case *runtime.ExecRequest:
		return ctr(&r.ContainerId)
	case *runtime.AttachRequest:
		return ctr(&r.ContainerId)
	case *runtime.ContainerStatsRequest:
		return ctr(&r.ContainerId)
	case *runtime.ReopenContainerLogRequest:
		return ctr(&r.ContainerId)
	case *runtime.CheckpointContainerRequest:
		return ctr(&r.ContainerId)
	case *runtime.ListPodSandboxRequest:
		if f := r.GetFilter(); f != nil {
			narrowFilter(s.pods, &f.Id)
		}
	case *runtime.ListPodSandboxStatsRequest:
		if f := r.GetFilter(); f != nil {
			narrowFilter(s.pods, &f.Id)
		}
	case *runtime.ListContainersRequest:
		if f := r.GetFilter(); f != nil {
			narrowFilter(s.containers, &f.Id)
			narrowFilter(s.pods, &f.PodSandboxId)
		}
	case *runtime.ListContainerStatsRequest:
		if f := r.GetFilter(); f != nil {
			narrowFilter(s.containers, &f.Id)
			narrowFilter(s.pods, &f.PodSandboxId)
		}
	}
	return nil
}

// resolveID replaces *id by the full ID it names, by the rules above.
func resolveID[T any](st *store.Store[T], id *string) error {
	if *id == "" {
		return nil // the handler's to refuse
	}
	full, err := st.Resolve(*id)
	switch {
	case err == nil:
		*id = full
		return nil
	case errors.Is(err, store.ErrAmbiguous): // an InvalidArgument
		return err
	case errors.Is(err, store.ErrNotFound) && store.IsShortID(*id):
		return err
	case errors.Is(err, store.ErrNotFound):
		return nil
	}
	return err
}

// narrowFilter replaces a list filter's ID by the full ID it is a unique
// prefix of, and leaves it alone otherwise.
func narrowFilter[T any](st *store.Store[T], id *string) {
	if *id == "" {
		return
	}
	if full, err := st.Resolve(*id); err == nil {
		*id = full
	}
}
