package cri

import (
	"context"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestListPodSandbox(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newFakeService(t)
	a, b := readyPod(t, s, "a"), readyPod(t, s, "b")
	if _, err := s.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: b}); err != nil {
		t.Fatal(err)
	}
	ready := &runtime.PodSandboxStateValue{State: runtime.PodSandboxState_SANDBOX_READY}
	for _, tc := range []struct {
		name   string
		filter *runtime.PodSandboxFilter
		want   []string
	}{
		{"all", nil, []string{a, b}},
		{"by ID", &runtime.PodSandboxFilter{Id: b}, []string{b}},
		{"by ID prefix", &runtime.PodSandboxFilter{Id: a[:13]}, []string{a}},
		{"by state", &runtime.PodSandboxFilter{State: ready}, []string{a}},
		{"by label", &runtime.PodSandboxFilter{LabelSelector: map[string]string{"app": "b"}}, []string{b}},
		{"by label none", &runtime.PodSandboxFilter{LabelSelector: map[string]string{"app": "c"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			list, err := s.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{Filter: tc.filter})
			if err != nil {
				t.Fatal(err)
			}
			if got := idsOf(list.Items, func(p *runtime.PodSandbox) string { return p.Id }); !sameIDs(got, tc.want) {
				t.Fatalf("listed %v, want %v", got, tc.want)
			}
		})
	}
}

// sameIDs tells whether got and want hold the same IDs, in any order.
func sameIDs(got, want []string) bool {
	if len(got) != len(want) {
		return false
	}
	seen := map[string]bool{}
	for _, id := range want {
		seen[id] = true
	}
	for _, id := range got {
		if !seen[id] {
			return false
		}
	}
	return true
}
