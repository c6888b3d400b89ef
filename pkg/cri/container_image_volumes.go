package cri

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"

	securejoin "github.com/cyphar/filepath-securejoin"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/vc-cri/vc-cri/pkg/image"
)

// Image volumes (KEP-4639): a mount whose source is an image. kubelet
// pulls the image as its pull policy says; CreateContainer mounts its
// layers from the image store, each volume as a container of the store
// of its own, read-only, and binds the image's root (or its subpath)
// into the container as any host path is bound. The store's containers
// go with the container's (removeContainer, and reconcile after a
// crash), by the IDs its record and intent keep.

// imageVolumeIDs are the image store IDs of the config's image volumes.
func imageVolumeIDs(containerID string, config *runtime.ContainerConfig) []string {
	var ids []string
	for i, m := range config.Mounts {
		if m.GetImage().GetImage() != "" {
			sum := sha256.Sum256(fmt.Appendf(nil, "%s/image-volume/%d", containerID, i))
			ids = append(ids, hex.EncodeToString(sum[:]))
		}
	}
	return ids
}

// mountImageVolumes mounts the config's image volumes, the store IDs of
// imageVolumeIDs in their order, and points each mount's HostPath at
// what the container gets; its Image.ImageRef is the image's ID, as
// ContainerStatus reports it.
func (s *Service) mountImageVolumes(ctx context.Context, ids []string, config *runtime.ContainerConfig) error {
	n := 0
	for _, m := range config.Mounts {
		if m.GetImage().GetImage() == "" {
			continue
		}
		if !m.Readonly {
			return invalidArgument("image volume %q must be read-only", m.ContainerPath)
		}
		img, err := s.opts.Images.Status(ctx, m.Image.Image)
		if err != nil {
			return fmt.Errorf("image of volume %q: %w", m.ContainerPath, err)
		}
		root, err := s.opts.Images.Mount(ctx, ids[n], img.ID, "", image.IDMap{})
		n++
		if err != nil {
			return fmt.Errorf("image volume %q: %w", m.ContainerPath, err)
		}
		host := root
		if m.ImageSubPath != "" {
			// The image's own symlinks are followed within its root only.
			if host, err = securejoin.SecureJoin(root, m.ImageSubPath); err != nil {
				return fmt.Errorf("subpath %q of image volume %q: %w", m.ImageSubPath, m.ContainerPath, err)
			}
			if _, err := os.Stat(host); errors.Is(err, os.ErrNotExist) {
				return invalidArgument("subpath %q of image volume %q: not in image %s", m.ImageSubPath, m.ContainerPath, img.ID)
			} else if err != nil {
				return err
			}
		}
		m.HostPath = host
		m.Image.ImageRef = img.ID
	}
	return nil
}

// removeImageVolumes removes the store's containers of image volumes.
func (s *Service) removeImageVolumes(ctx context.Context, ids []string) error {
	var errs []error
	for _, id := range ids {
		if err := s.opts.Images.RemoveRootfs(ctx, id); err != nil {
			errs = append(errs, fmt.Errorf("remove image volume %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}
