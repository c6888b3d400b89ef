package cri

import (
	"sync"
	"time"

	"google.golang.org/grpc"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// eventBroadcaster hands container lifecycle events to every
// GetContainerEvents stream. A subscriber too slow to keep up loses
// events rather than holding the runtime back.
type eventBroadcaster struct {
	// mu guards subs.
	mu   sync.Mutex
	subs map[chan *runtime.ContainerEventResponse]struct{}
}

func newEventBroadcaster() *eventBroadcaster {
	return &eventBroadcaster{subs: map[chan *runtime.ContainerEventResponse]struct{}{}}
}

func (b *eventBroadcaster) publish(kind runtime.ContainerEventType, c containerRecord, pod podRecord) {
	ev := &runtime.ContainerEventResponse{
		ContainerId:        c.ID,
		ContainerEventType: kind,
		CreatedAt:          time.Now().UnixNano(),
		PodSandboxStatus: &runtime.PodSandboxStatus{
			Id: pod.ID, Metadata: pod.Config.Metadata, State: pod.State, CreatedAt: pod.CreatedAt.UnixNano(),
			Labels: pod.Config.Labels, Annotations: pod.Config.Annotations,
		},
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs {
		select {
		case ch <- ev:
		default:
			klog.V(2).InfoS("Dropped a container event for a slow subscriber", "container", c.ID)
		}
	}
}

func (b *eventBroadcaster) subscribe() chan *runtime.ContainerEventResponse {
	ch := make(chan *runtime.ContainerEventResponse, 256)
	b.mu.Lock()
	b.subs[ch] = struct{}{}
	b.mu.Unlock()
	return ch
}

func (b *eventBroadcaster) unsubscribe(ch chan *runtime.ContainerEventResponse) {
	b.mu.Lock()
	delete(b.subs, ch)
	b.mu.Unlock()
}

// GetContainerEvents streams container lifecycle events until the client
// leaves.
func (s *Service) GetContainerEvents(_ *runtime.GetEventsRequest, stream grpc.ServerStreamingServer[runtime.ContainerEventResponse]) error {
	ch := s.events.subscribe()
	defer s.events.unsubscribe(ch)
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case ev := <-ch:
			if err := stream.Send(ev); err != nil {
				return err
			}
		}
	}
}
