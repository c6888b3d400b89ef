package cri

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"google.golang.org/grpc/codes"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestImageVolumes: an image volume is the image's root (or its subpath)
// from the image store, bound read-only; ContainerStatus names the image
// it came from; one that is writable or names a subpath the image lacks
// is refused with nothing left; removing the container removes it.
func TestImageVolumes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, f := newFakeService(t)
	imgs := s.opts.Images.(*fakeImages)
	pod := readyPod(t, s, "iv")
	roots := func() int {
		entries, _ := os.ReadDir(imgs.dir)
		return len(entries)
	}
	volume := func(name, sub string, readOnly bool) *runtime.ContainerConfig {
		cc := containerConfig(name)
		cc.Mounts = []*runtime.Mount{{ContainerPath: "/mnt/iv", Readonly: readOnly, Image: &runtime.ImageSpec{Image: fakeImage}, ImageSubPath: sub}}
		return cc
	}

	for name, cc := range map[string]*runtime.ContainerConfig{
		"writable":         volume("writable", "", false),
		"missing subpath":  volume("missing", "not-existing", true),
		"subpath escaping": volume("escaping", "../../..", true),
	} {
		_, err := s.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod, Config: cc})
		if name == "subpath escaping" {
			// Resolved within the image's root: its root, which exists.
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			continue
		}
		wantCode(t, name, err, codes.InvalidArgument)
	}
	list, _ := s.ListContainers(ctx, &runtime.ListContainersRequest{})
	for _, c := range list.Containers {
		if _, err := s.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: c.Id}); err != nil {
			t.Fatal(err)
		}
	}
	if n := roots(); n != 0 {
		t.Fatalf("%d roots left after the refusals", n)
	}

	id := createdContainer(t, s, pod, volume("iv", "etc", true))
	if n := roots(); n != 2 {
		t.Fatalf("%d roots, want the container's and its volume's", n)
	}
	f.mu.Lock()
	spec := f.pods[pod].containers[id].cfg.CustomSpec
	f.mu.Unlock()
	var found bool
	for _, m := range spec.Mounts {
		if m.Destination == "/mnt/iv" {
			found = true
			if _, err := os.Stat(filepath.Join(m.Source, "passwd")); err != nil || filepath.Base(m.Source) != "etc" || !slices.Contains(m.Options, "ro") {
				t.Fatalf("image volume mount %+v: %v", m, err)
			}
		}
	}
	if !found {
		t.Fatal("no mount of the image volume in the container's spec")
	}
	st := containerState(t, s, id)
	if len(st.Mounts) != 1 || st.Mounts[0].GetImage().GetImageRef() == "" {
		t.Fatalf("status mounts %v: want the image volume with its image's ID", st.Mounts)
	}
	if _, err := s.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	if n := roots(); n != 0 {
		t.Fatalf("%d roots left after the removal", n)
	}
}
