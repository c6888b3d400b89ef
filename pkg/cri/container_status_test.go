package cri

import (
	"context"
	"slices"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/vc-cri/vc-cri/pkg/sandbox"
)

func TestContainerStatus(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, f := newFakeService(t)
	pod := readyPod(t, s, "web")
	cc := containerConfig("app")
	cc.Annotations = map[string]string{"a": "b"}
	cc.Mounts = []*runtime.Mount{{ContainerPath: "/data", HostPath: t.TempDir()}}
	cc.Linux = &runtime.LinuxContainerConfig{
		Resources: &runtime.LinuxContainerResources{MemoryLimitInBytes: 64 << 20},
		// The fake image's root has no /etc/passwd: uid 1000 has group 0.
		SecurityContext: &runtime.LinuxContainerSecurityContext{RunAsUser: &runtime.Int64Value{Value: 1000}, SupplementalGroups: []int64{1234}},
	}
	id := createdContainer(t, s, pod, cc)

	resp, err := s.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		t.Fatalf("ContainerStatus: %v", err)
	}
	st := resp.Status
	if st.Id != id || st.State != runtime.ContainerState_CONTAINER_CREATED || st.CreatedAt == 0 || st.StartedAt != 0 || st.FinishedAt != 0 ||
		st.Image.Image != fakeImage || st.ImageId == "" || st.Annotations["a"] != "b" || len(st.Mounts) != 1 ||
		st.Resources.GetLinux().GetMemoryLimitInBytes() != 64<<20 {
		t.Fatalf("status of a created container: %v", st)
	}
	if resp.Info["sandboxID"] != pod {
		t.Fatalf("verbose info %v, want sandboxID %s", resp.Info, pod)
	}
	// The user in force: resolved at create, as the sandbox got it.
	wantUser := &runtime.LinuxContainerUser{Uid: 1000, Gid: 0, SupplementalGroups: []int64{0, 1234}}
	if got := st.GetUser().GetLinux(); !proto.Equal(got, wantUser) {
		t.Fatalf("user %v, want %v", got, wantUser)
	}
	var cmd sandbox.Cmd
	f.inspect(pod, id, func(c *fakeContainer) { cmd = c.cfg.Cmd })
	if cmd.User != "1000" || cmd.PrimaryGroup != "0" || !slices.Equal(cmd.SupplementaryGroups, []string{"0", "1234"}) || !cmd.StrictGroups {
		t.Fatalf("the sandbox's Cmd %+v", cmd)
	}
	// A record of an earlier vc-cri has no user: reported empty.
	if u := s.containerStatus(containerRecord{ID: "old", Config: cc}).GetUser(); u.GetLinux() == nil || u.GetLinux().Uid != 0 || len(u.GetLinux().SupplementalGroups) != 0 {
		t.Fatalf("user of a record without one: %v", u)
	}

	// The OOM killer's exit: its reason.
	if _, err := s.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	f.exit(pod, id, 137, true)
	eventually(t, "exit recorded", func() bool { return containerState(t, s, id).State == runtime.ContainerState_CONTAINER_EXITED })
	if st := containerState(t, s, id); st.ExitCode != 137 || st.Reason != reasonOOMKilled || st.StartedAt == 0 || st.FinishedAt < st.StartedAt {
		t.Fatalf("status after the OOM killer: %v", st)
	}

	_, err = s.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: "nope"})
	wantCode(t, "ContainerStatus of an unknown container", err, codes.NotFound)
}
