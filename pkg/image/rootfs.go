package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"go.podman.io/storage"
	"go.podman.io/storage/types"
	"golang.org/x/sys/unix"

	"github.com/vc-cri/vc-cri/internal/safemount"
)

// IDMap maps a container's user and group IDs to the host's: its user
// namespace's uid_map and gid_map. The zero IDMap is the host's IDs.
type IDMap struct {
	UIDs, GIDs []specs.LinuxIDMapping
}

// storageOptions are the store's ID mapping options for m: none (the
// store's default, the host's IDs), or m, which the overlay driver applies by idmapped mounts of the
// image's layers (no copy, no chown) where the kernel has them.
func (m IDMap) storageOptions() types.IDMappingOptions {
	if len(m.UIDs) == 0 && len(m.GIDs) == 0 {
		return types.IDMappingOptions{} // the store's default: the host's
	}
	return types.IDMappingOptions{UIDMap: safemount.StorageIDMaps(m.UIDs), GIDMap: safemount.StorageIDMaps(m.GIDs)}
}

// rootfsMetaKey names the container's big data item that holds its
// rootfsMeta.
const rootfsMetaKey = "vc-cri.rootfs"

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
// and kept until RemoveRootfs. With ids, the rootfs is seen through the
// container's user namespace: a file the image has owned by 0 is owned
// by the host ID mapped to 0, and so are the layer's new files.
func (s *Service) Mount(ctx context.Context, containerID, imageRef, target string, ids IDMap) (path string, retErr error) {
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
		c, err = s.store.CreateContainer(containerID, nil, img.ID, "", "", &storage.ContainerOptions{IDMappingOptions: ids.storageOptions()})
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
	if err := s.store.SetContainerBigData(c.ID, rootfsMetaKey, md); err != nil {
		_ = unix.Unmount(target, unix.MNT_DETACH)
		return "", err
	}
	return target, nil
}

// Unmount unmounts container containerID's rootfs (its bind mount and the
// overlay) but keeps its writable layer. Unmounting an unmounted rootfs
// is no error.
func (s *Service) Unmount(ctx context.Context, containerID string) error {
	meta, err := s.rootfsMeta(containerID)
	if err != nil {
		return err
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

// rootfsMeta reads what Mount kept of container containerID's rootfs. It
// is kept with the container alone: the store's generic metadata calls
// look an ID up among layers first, and a short ID can name the prefix of
// a layer's.
func (s *Service) rootfsMeta(containerID string) (rootfsMeta, error) {
	var meta rootfsMeta
	md, err := s.store.ContainerBigData(containerID, rootfsMetaKey)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return meta, nil // never mounted on a target
	case err != nil:
		return meta, classifyStore(err)
	}
	if err := json.Unmarshal(md, &meta); err != nil {
		return meta, fmt.Errorf("rootfs metadata of container %s: %w", containerID, err)
	}
	return meta, nil
}

// unmountAll unmounts every mount stacked on target, until umount says
// there is none. It does not ask the mount table, whose reads race with
// the mounts other processes make.
func unmountAll(target string) error {
	for {
		err := unix.Unmount(target, 0)
		if errors.Is(err, unix.EBUSY) {
			err = unix.Unmount(target, unix.MNT_DETACH)
		}
		switch {
		case err == nil:
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			return nil // not, or no longer, a mount point
		default:
			return err
		}
	}
}

// RemoveRootfs unmounts and deletes container containerID's rootfs and
// writable layer, and removes the (then empty) bind mount target. Removing
// a rootfs that does not exist is no error.
func (s *Service) RemoveRootfs(ctx context.Context, containerID string) error {
	meta, err := s.rootfsMeta(containerID)
	if errors.Is(err, ErrContainerNotFound) {
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
	if meta.Target != "" {
		_ = os.Remove(meta.Target) // only if empty
	}
	return nil
}
