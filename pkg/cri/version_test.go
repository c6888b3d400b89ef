package cri

import (
	"context"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestVersion(t *testing.T) {
	t.Parallel()
	s, _ := newFakeService(t)
	v, err := s.Version(context.Background(), &runtime.VersionRequest{Version: "v1"})
	if err != nil || v.RuntimeName != RuntimeName || v.RuntimeVersion != RuntimeVersion || v.RuntimeApiVersion != "v1" || v.Version == "" {
		t.Fatalf("Version: %v, %v", v, err)
	}
}
