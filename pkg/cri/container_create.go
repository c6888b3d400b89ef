package cri

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/vc-cri/vc-cri/internal/rollback"
	"github.com/vc-cri/vc-cri/pkg/tracing"
)

// CreateContainer prepares the container's root from its image and has
// the pod's guest create it.
func (s *Service) CreateContainer(ctx context.Context, req *runtime.CreateContainerRequest) (_ *runtime.CreateContainerResponse, retErr error) {
	config := req.GetConfig()
	if config.GetMetadata().GetName() == "" {
		return nil, invalidArgument("container metadata needs a name")
	}
	if config.GetImage().GetImage() == "" {
		return nil, invalidArgument("container %q names no image", config.Metadata.Name)
	}
	pod, err := s.pods.Get(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	if pod.State != runtime.PodSandboxState_SANDBOX_READY {
		return nil, failedPrecondition("pod sandbox %q is not ready", pod.ID)
	}
	id := newID()
	name := containerName(config.Metadata, pod.Config.Metadata)
	log := klog.LoggerWithValues(klog.FromContext(ctx), "container", id)
	ctx = klog.NewContext(ctx, log)
	ctx, call := tracing.StartCall(ctx, tracer, "CreateContainer")
	defer func() { call.End(log, "Container create phases", retErr) }()
	if err := s.ctrNames.Reserve(name, id); err != nil {
		return nil, fmt.Errorf("container %q: %w", name, err)
	}
	if err := s.intents.Add(id, intentRecord{Kind: intentContainer, ID: id, PodID: pod.ID, At: time.Now()}); err != nil {
		s.ctrNames.Release(name)
		return nil, err
	}
	// Last, once the record is written or the steps undone.
	defer s.dropIntent(id)
	var undo rollback.Stack
	defer func() {
		if retErr != nil {
			undo.Run("id", id, "name", name)
			s.ctrNames.Release(name)
		}
	}()

	phaseCtx, span := tracer.Start(ctx, "image_status")
	img, err := s.opts.Images.Status(phaseCtx, config.Image.Image)
	span.End()
	if err != nil {
		return nil, fmt.Errorf("image of container %q: %w", name, err)
	}
	// The container's root: an overlay of the image's layers, seen
	// through the pod's user namespace if it has one.
	ids, err := podUserns(pod.Config)
	if err != nil {
		return nil, err
	}
	phaseCtx, span = tracer.Start(ctx, "rootfs_mount")
	rootfs, err := s.opts.Images.Mount(phaseCtx, id, img.ID, "", ids)
	span.End()
	if err != nil {
		return nil, fmt.Errorf("root of container %q: %w", name, err)
	}
	undo.Add("remove container root", func(ctx context.Context) error { return s.opts.Images.RemoveRootfs(ctx, id) })
	s.crashPoint(crashContainerRootfs)
	volumes := imageVolumeIDs(id, config)
	if len(volumes) > 0 {
		if _, err := s.intents.Update(id, func(in *intentRecord) error { in.ImageVolumes = volumes; return nil }); err != nil {
			return nil, err
		}
		undo.Add("remove image volumes", func(ctx context.Context) error { return s.removeImageVolumes(ctx, volumes) })
		if err := s.mountImageVolumes(ctx, volumes, config); err != nil {
			return nil, err
		}
	}

	imgConfig := img.Config.Config
	cfg, err := s.containerConfig(id, rootfs, pod, config, &imgConfig)
	if err != nil {
		return nil, err
	}
	if dir := pod.Config.LogDirectory; dir != "" && config.LogPath != "" {
		cfg.LogPath = filepath.Join(dir, config.LogPath)
	}
	// NRI plugins adjust the spec before the container is made or
	// visible, and one that connects meanwhile waits until it is
	// (nri.go). Those told of it are told of its removal if it fails,
	// theirs included.
	unblock := s.opts.NRI.BlockSync()
	defer unblock()
	nctr := nriContainer(containerRecord{ID: id, PodID: pod.ID, Config: config, State: runtime.ContainerState_CONTAINER_CREATED, CreatedAt: time.Now()})
	undo.Add("tell NRI plugins the container is removed", func(ctx context.Context) error {
		return s.opts.NRI.RemoveContainer(ctx, nriPod(pod), nctr)
	})
	phaseCtx, span = tracer.Start(ctx, "nri")
	err = s.nriCreateContainer(phaseCtx, pod, nctr, &cfg)
	span.End()
	if err != nil {
		return nil, err
	}
	if _, _, err := s.runtimeOf(pod.Runtime).CreateContainer(ctx, pod.ID, cfg); err != nil {
		return nil, fmt.Errorf("create container %q: %w", name, err)
	}
	undo.Add("delete container", func(ctx context.Context) error {
		_, err := s.runtimeOf(pod.Runtime).DeleteContainer(ctx, pod.ID, id)
		return err
	})
	s.crashPoint(crashContainerCreated)

	rec := containerRecord{
		ID: id, PodID: pod.ID, Runtime: pod.Runtime, Name: name, Config: config, ImageID: img.ID, ImageRef: imageRef(img.RepoDigests, img.RepoTags, img.ID),
		User: linuxUser(cfg.Cmd), State: runtime.ContainerState_CONTAINER_CREATED, CreatedAt: time.Now(), ImageVolumes: volumes,
		LogPath: cfg.LogPath,
	}
	_, span = tracer.Start(ctx, "record_save")
	err = s.containers.Add(id, rec)
	span.End()
	if err != nil {
		return nil, err
	}
	unblock()
	s.crashPoint(crashContainerRecord)
	if err := s.opts.NRI.PostCreateContainer(ctx, nriPod(pod), nriContainer(rec)); err != nil {
		log.Error(err, "NRI plugins failed the container's post-create")
	}
	s.events.publish(runtime.ContainerEventType_CONTAINER_CREATED_EVENT, rec, pod)
	log.Info("Container created", "name", name)
	return &runtime.CreateContainerResponse{ContainerId: id}, nil
}

// containerName is kubelet's unique name of a container.
func containerName(c *runtime.ContainerMetadata, p *runtime.PodSandboxMetadata) string {
	return strings.Join([]string{c.Name, p.Name, p.Namespace, p.Uid, fmt.Sprint(c.Attempt)}, "_")
}

// imageRef is the image as ContainerStatus reports it: by digest where
// the image has one, as containerd does.
func imageRef(digests, tags []string, id string) string {
	if len(digests) > 0 {
		return digests[0]
	}
	if len(tags) > 0 {
		return tags[0]
	}
	return id
}
