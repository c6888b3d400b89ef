package cni

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// connectMacvtap puts a macvtap in bridge mode on the CNI interface, with
// the interface's MAC; the interface gets a random one, since macvlan
// refuses its lower device's address, and gives up its addresses to the
// guest.
func connectMacvtap(link netlink.Link, ep *Endpoint, i int) error {
	ep.TapName = macvtapName(i)
	mac := link.Attrs().HardwareAddr
	if err := handOverAddresses(link, ep); err != nil {
		return err
	}
	// NewLinkAttrs, not a literal: a zero TxQLen would give the macvtap
	// a frame ring of size 0, and it would drop every frame for the VM.
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.ParentIndex, attrs.MTU, attrs.HardwareAddr = ep.TapName, link.Attrs().Index, ep.MTU, mac
	mvt := &netlink.Macvtap{Macvlan: netlink.Macvlan{LinkAttrs: attrs, Mode: netlink.MACVLAN_MODE_BRIDGE}}
	if err := netlink.LinkAdd(mvt); err != nil {
		return fmt.Errorf("failed to create macvtap %s: %w", ep.TapName, err)
	}
	if err := netlink.LinkSetUp(mvt); err != nil {
		return fmt.Errorf("failed to bring up %s: %w", ep.TapName, err)
	}
	file, err := openMacvtap(ep.TapName)
	if err != nil {
		return err
	}
	ep.TapFile = file
	return nil
}

// disconnectMacvtap deletes the macvtap and gives the CNI interface back
// its MAC, addresses and routes.
func disconnectMacvtap(ep Endpoint) error {
	if ep.TapFile != nil {
		ep.TapFile.Close()
	}
	if err := deleteLink(ep.TapName); err != nil {
		return err
	}
	return restoreAddresses(ep)
}

// openMacvtap opens the character device of the macvtap name, which
// is in the current netns. /dev/tapN cannot be trusted: N is the ifindex
// inside the netns, so macvtaps of several pods compete for one name in
// the host's /dev. Instead, a private node is made from the device number
// and unlinked once open.
func openMacvtap(name string) (*os.File, error) {
	dev, err := macvtapDevice(name)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("/dev", ".vc-macvtap-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	node := filepath.Join(dir, name)
	if err := unix.Mknod(node, unix.S_IFCHR|0o600, int(dev)); err != nil {
		return nil, fmt.Errorf("mknod %s: %w", node, err)
	}
	// Without O_NONBLOCK, os.NewFile leaves the descriptor blocking and
	// outside Go's poller, as QEMU expects to inherit it.
	fd, err := unix.Open(node, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", node, err)
	}
	return os.NewFile(uintptr(fd), "/dev/"+name), nil
}

// macvtapDevice reads the device number of the macvtap name, in the
// current netns, from sysfs. The host's /sys shows the host's netns only,
// since a sysfs shows the netns of whoever mounted it; so the calling
// thread, in the pod's netns, mounts a sysfs of its own for a moment.
func macvtapDevice(name string) (uint64, error) {
	sys, err := os.MkdirTemp("", "vc-sysfs-")
	if err != nil {
		return 0, err
	}
	defer os.Remove(sys)
	if err := unix.Mount("sysfs", sys, "sysfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return 0, fmt.Errorf("mount sysfs: %w", err)
	}
	defer unix.Unmount(sys, unix.MNT_DETACH)

	dir := filepath.Join(sys, "class/net", name, "macvtap")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "tap") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name(), "dev"))
		if err != nil {
			return 0, err
		}
		var major, minor uint32
		if _, err := fmt.Sscanf(strings.TrimSpace(string(data)), "%d:%d", &major, &minor); err != nil {
			return 0, fmt.Errorf("bad device number %q: %w", data, err)
		}
		return unix.Mkdev(major, minor), nil
	}
	return 0, fmt.Errorf("no character device in %s", dir)
}
