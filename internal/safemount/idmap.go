package safemount

import (
	"fmt"
	"math"
	"os"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"go.podman.io/storage/pkg/idmap"
	"go.podman.io/storage/pkg/idtools"
	"golang.org/x/sys/unix"
)

// An idmapped bind shows a file the disk has owned by container ID n as
// owned by the host ID the user namespace maps n to, and stores a file
// made or chowned by host ID h as owned by the container ID mapped to h.
// A caller whose own ID the mapping lacks can make no file there
// (EOVERFLOW): so the mapping of IDMap's namespace also maps the host's
// root, the ID of the file server of a guest (QEMU's 9p makes the file
// as root, then chowns it to the guest's caller), to rootHoldID, an ID no
// image or volume uses, which the chown replaces at once.
const rootHoldID = math.MaxUint32 - 1

// IDMap is a user namespace of the mappings uids and gids, held by a
// process that lives until Close, for idmapped binds (BindOptions.IDMap).
type IDMap struct {
	ns      *os.File
	cleanup func()
}

// NewIDMap makes the user namespace of the mappings (as a container's
// uid_map and gid_map), with the host's root mapped too (rootHoldID).
func NewIDMap(uids, gids []specs.LinuxIDMapping) (*IDMap, error) {
	pid, cleanup, err := idmap.CreateUsernsProcess(withRoot(uids), withRoot(gids))
	if err != nil {
		return nil, fmt.Errorf("user namespace for an idmapped bind: %w", err)
	}
	ns, err := os.Open("/proc/" + strconv.Itoa(pid) + "/ns/user")
	if err != nil {
		cleanup()
		return nil, fmt.Errorf("user namespace for an idmapped bind: %w", err)
	}
	return &IDMap{ns: ns, cleanup: cleanup}, nil
}

// Close releases the namespace; the binds made with it keep it.
func (m *IDMap) Close() {
	_ = m.ns.Close()
	m.cleanup()
}

// StorageIDMaps are the OCI mappings ms in go.podman.io/storage's terms.
func StorageIDMaps(ms []specs.LinuxIDMapping) []idtools.IDMap {
	out := make([]idtools.IDMap, 0, len(ms)+1)
	for _, m := range ms {
		out = append(out, idtools.IDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)})
	}
	return out
}

// withRoot is ms in storage's terms, plus the host's root on rootHoldID
// unless ms maps it already.
func withRoot(ms []specs.LinuxIDMapping) []idtools.IDMap {
	out := StorageIDMaps(ms)
	hasRoot := false
	for _, m := range ms {
		hasRoot = hasRoot || m.HostID == 0 || uint64(m.ContainerID)+uint64(m.Size) > rootHoldID
	}
	if !hasRoot {
		out = append(out, idtools.IDMap{ContainerID: rootHoldID, HostID: 0, Size: 1})
	}
	return out
}

// setIDMap makes the detached tree fd, and its submounts, idmapped by m.
func setIDMap(fd int, m *IDMap) error {
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(m.ns.Fd())}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr); err != nil {
		return fmt.Errorf("idmapped mount: %w", err)
	}
	return nil
}

// CanIDMap tells whether a bind of dir can be idmapped: nil if its
// filesystem allows it, else why not.
func CanIDMap(dir string) error {
	ids := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1 << 20, Size: 65536}}
	m, err := NewIDMap(ids, ids)
	if err != nil {
		return err
	}
	defer m.Close()
	tree, err := unix.OpenTree(unix.AT_FDCWD, dir, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return &os.PathError{Op: "open_tree", Path: dir, Err: err}
	}
	defer unix.Close(tree)
	if err := setIDMap(tree, m); err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	return nil
}
