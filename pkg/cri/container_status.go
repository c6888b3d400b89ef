package cri

import (
	"context"
	"strconv"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/vc-cri/vc-cri/pkg/sandbox"
)

// ContainerStatus reports the container: state, times, exit, image,
// mounts, log path, resources, and the user and groups it runs as.
func (s *Service) ContainerStatus(_ context.Context, req *runtime.ContainerStatusRequest) (*runtime.ContainerStatusResponse, error) {
	c, err := s.containers.Get(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	resp := &runtime.ContainerStatusResponse{Status: s.containerStatus(c)}
	if req.Verbose {
		resp.Info = map[string]string{"sandboxID": c.PodID}
	}
	return resp, nil
}

func (s *Service) containerStatus(c containerRecord) *runtime.ContainerStatus {
	st := &runtime.ContainerStatus{
		Id:          c.ID,
		Metadata:    c.Config.Metadata,
		State:       c.State,
		CreatedAt:   c.CreatedAt.UnixNano(),
		Image:       c.Config.Image,
		ImageRef:    c.ImageRef,
		ImageId:     c.ImageID,
		Reason:      c.Reason,
		Message:     c.Message,
		Labels:      c.Config.Labels,
		Annotations: c.Config.Annotations,
		Mounts:      c.Config.Mounts,
		LogPath:     c.LogPath,
		User:        &runtime.ContainerUser{Linux: c.User},
	}
	if c.User == nil {
		st.User.Linux = &runtime.LinuxContainerUser{} // unknown: a record of an earlier vc-cri
	}
	if !c.StartedAt.IsZero() {
		st.StartedAt = c.StartedAt.UnixNano()
	}
	if c.State == runtime.ContainerState_CONTAINER_EXITED {
		st.FinishedAt = c.FinishedAt.UnixNano()
		st.ExitCode = c.ExitCode
	}
	if r := c.Config.GetLinux().GetResources(); r != nil {
		st.Resources = &runtime.ContainerResources{Linux: r}
	}
	return st
}

// linuxUser is the user a container runs as, from the Cmd containerConfig
// resolved: uid, gid and every supplementary group in force (the gid
// among them); nil if cmd does not hold numbers.
func linuxUser(cmd sandbox.Cmd) *runtime.LinuxContainerUser {
	uid, err1 := strconv.ParseInt(cmd.User, 10, 64)
	gid, err2 := strconv.ParseInt(cmd.PrimaryGroup, 10, 64)
	if err1 != nil || err2 != nil {
		return nil
	}
	u := &runtime.LinuxContainerUser{Uid: uid, Gid: gid, SupplementalGroups: []int64{}}
	for _, g := range cmd.SupplementaryGroups {
		n, err := strconv.ParseInt(g, 10, 64)
		if err != nil {
			return nil
		}
		u.SupplementalGroups = append(u.SupplementalGroups, n)
	}
	return u
}
