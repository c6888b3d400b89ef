package cri

import (
	"context"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestContainerEvents: a subscriber sees a container's life in order,
// over the GetContainerEvents stream.
func TestContainerEvents(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, f := newFakeService(t)
	stream, err := grpcClient(t, s).GetContainerEvents(ctx, &runtime.GetEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// The stream is subscribed once the server's handler runs.
	eventually(t, "subscribed", func() bool {
		s.events.mu.Lock()
		defer s.events.mu.Unlock()
		return len(s.events.subs) == 1
	})
	podID, id := runningContainer(t, s, "ev")
	f.exit(podID, id, 0, false)
	eventually(t, "exit recorded", func() bool { return containerState(t, s, id).State == runtime.ContainerState_CONTAINER_EXITED })
	if _, err := s.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []runtime.ContainerEventType{
		runtime.ContainerEventType_CONTAINER_CREATED_EVENT,
		runtime.ContainerEventType_CONTAINER_STARTED_EVENT,
		runtime.ContainerEventType_CONTAINER_STOPPED_EVENT,
		runtime.ContainerEventType_CONTAINER_DELETED_EVENT,
	} {
		ev, err := stream.Recv()
		if err != nil {
			t.Fatalf("waiting for %v: %v", want, err)
		}
		if ev.ContainerEventType != want || ev.ContainerId != id || ev.PodSandboxStatus.GetId() != podID || ev.CreatedAt == 0 {
			t.Fatalf("event %v for %s, want %v for %s", ev.ContainerEventType, ev.ContainerId, want, id)
		}
	}
}

// TestSlowSubscriber: a subscriber that does not read loses events; the
// runtime goes on.
func TestSlowSubscriber(t *testing.T) {
	t.Parallel()
	b := newEventBroadcaster()
	ch := b.subscribe()
	defer b.unsubscribe(ch)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < cap(ch)+10; i++ {
			b.publish(runtime.ContainerEventType_CONTAINER_CREATED_EVENT, containerRecord{ID: "c"}, podRecord{Config: podConfig("p")})
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("publish blocks on a slow subscriber")
	}
	if len(ch) != cap(ch) {
		t.Fatalf("%d events queued, want %d", len(ch), cap(ch))
	}
}
