package cri

import (
	"context"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestListContainers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newFakeService(t)
	p1, p2 := readyPod(t, s, "p1"), readyPod(t, s, "p2")
	a := startedContainer(t, s, p1, containerConfig("a"))
	b := createdContainer(t, s, p1, containerConfig("b"))
	c := createdContainer(t, s, p2, containerConfig("c"))
	running := &runtime.ContainerStateValue{State: runtime.ContainerState_CONTAINER_RUNNING}
	for _, tc := range []struct {
		name   string
		filter *runtime.ContainerFilter
		want   []string
	}{
		{"all", nil, []string{a, b, c}},
		{"by ID", &runtime.ContainerFilter{Id: b}, []string{b}},
		{"by ID prefix", &runtime.ContainerFilter{Id: c[:13]}, []string{c}},
		{"by pod", &runtime.ContainerFilter{PodSandboxId: p1}, []string{a, b}},
		{"by state", &runtime.ContainerFilter{State: running}, []string{a}},
		{"by label", &runtime.ContainerFilter{LabelSelector: map[string]string{"ctr": "c"}}, []string{c}},
		{"by pod and label", &runtime.ContainerFilter{PodSandboxId: p2, LabelSelector: map[string]string{"ctr": "a"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			list, err := s.ListContainers(ctx, &runtime.ListContainersRequest{Filter: tc.filter})
			if err != nil {
				t.Fatal(err)
			}
			if got := idsOf(list.Containers, func(c *runtime.Container) string { return c.Id }); !sameIDs(got, tc.want) {
				t.Fatalf("listed %v, want %v", got, tc.want)
			}
		})
	}
}
