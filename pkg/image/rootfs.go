package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/moby/sys/mountinfo"
	"go.podman.io/storage"
	"golang.org/x/sys/unix"
)

// rootfsMeta is what the store keeps about a container rootfs.
type rootfsMeta struct {
	// Target is where the rootfs is bind mounted ("" if only at the
	// store's own mount point).
	Target string `json:"target,omitempty"`
}

// Mount gives container containerID a writable overlay of the layers of
// the image imageRef names (an ID or a name) and mounts it on target
// (created if needed), for example inside the pod's shared directory;
// with target "" it stays at the store's mount point. It returns the
// rootfs path. Mount is idempotent: the container's layer is created once
// and kept until RemoveRootfs.
func (s *Service) Mount(ctx context.Context, containerID, imageRef, target string) (path string, retErr error) {
	if containerID == "" {
		return "", errors.New("mount needs a container ID")
	}
	img, err := s.lookup(imageRef)
	if err != nil {
		return "", err
	}
	c, err := s.store.Container(containerID)
	switch {
	case errors.Is(err, storage.ErrContainerUnknown):
		c, err = s.store.CreateContainer(containerID, nil, img.ID, "", "", &storage.ContainerOptions{})
		if err != nil {
			return "", fmt.Errorf("creating rootfs of container %s: %w", containerID, classifyStore(err))
		}
		defer func() {
			if retErr != nil {
				_ = s.store.DeleteContainer(containerID)
			}
		}()
	case err != nil:
		return "", classifyStore(err)
	case c.ImageID != img.ID:
		return "", fmt.Errorf("%w: container %s has image %s, not %s", ErrConflict, containerID, c.ImageID, img.ID)
	}

	mp, err := s.store.Mount(c.ID, "")
	if err != nil {
		return "", fmt.Errorf("mounting rootfs of container %s: %w", containerID, classifyStore(err))
	}
	if target == "" {
		return mp, nil
	}
	defer func() {
		if retErr != nil {
			_, _ = s.store.Unmount(c.ID, true)
		}
	}()
	if err := os.MkdirAll(target, 0o755); err != nil {
		return "", err
	}
	mounted, err := mountinfo.Mounted(target)
	if err != nil {
		return "", err
	}
	if !mounted {
		if err := unix.Mount(mp, target, "", unix.MS_BIND, ""); err != nil {
			return "", fmt.Errorf("bind mounting rootfs of container %s on %s: %w", containerID, target, err)
		}
		// The overlay is nosuid and nodev already (driverOptions); its
		// bind is made so too, as it may be given to a guest.
		if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
			_ = unix.Unmount(target, unix.MNT_DETACH)
			return "", fmt.Errorf("bind mounting rootfs of container %s on %s: %w", containerID, target, err)
		}
	}
	md, _ := json.Marshal(rootfsMeta{Target: target})
	if err := s.store.SetMetadata(c.ID, string(md)); err != nil {
		_ = unix.Unmount(target, unix.MNT_DETACH)
		return "", err
	}
	return target, nil
}

// Unmount unmounts container containerID's rootfs (its bind mount and the
// overlay) but keeps its writable layer. Unmounting an unmounted rootfs
// is no error.
func (s *Service) Unmount(ctx context.Context, containerID string) error {
	md, err := s.store.Metadata(containerID)
	if err != nil {
		return classifyStore(err)
	}
	var meta rootfsMeta
	if md != "" {
		if err := json.Unmarshal([]byte(md), &meta); err != nil {
			return fmt.Errorf("rootfs metadata of container %s: %w", containerID, err)
		}
	}
	if meta.Target != "" {
		if err := unmountAll(meta.Target); err != nil {
			return fmt.Errorf("unmounting rootfs of container %s: %w", containerID, err)
		}
	}
	if _, err := s.store.Unmount(containerID, true); err != nil && !errors.Is(err, storage.ErrLayerNotMounted) {
		return fmt.Errorf("unmounting rootfs of container %s: %w", containerID, classifyStore(err))
	}
	return nil
}

// unmountAll unmounts every mount stacked on target.
func unmountAll(target string) error {
	for {
		mounted, err := mountinfo.Mounted(target)
		if errors.Is(err, os.ErrNotExist) || err == nil && !mounted {
			return nil
		}
		if err != nil {
			return err
		}
		if err := unix.Unmount(target, 0); err != nil {
			if err := unix.Unmount(target, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
				return err
			}
		}
	}
}

// RemoveRootfs unmounts and deletes container containerID's rootfs and
// writable layer, and removes the (then empty) bind mount target. Removing
// a rootfs that does not exist is no error.
func (s *Service) RemoveRootfs(ctx context.Context, containerID string) error {
	md, err := s.store.Metadata(containerID)
	if err = classifyStore(err); errors.Is(err, ErrContainerNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := s.Unmount(ctx, containerID); err != nil {
		return err
	}
	if err := s.store.DeleteContainer(containerID); err != nil && !errors.Is(err, storage.ErrContainerUnknown) {
		return fmt.Errorf("deleting rootfs of container %s: %w", containerID, classifyStore(err))
	}
	var meta rootfsMeta
	if json.Unmarshal([]byte(md), &meta) == nil && meta.Target != "" {
		_ = os.Remove(meta.Target) // only if empty
	}
	return nil
}
