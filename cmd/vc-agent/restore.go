package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"

	"github.com/vc-cri/vc-cri/pkg/agent/protocol"
)

// maxRandomSeed bounds the entropy a Restore may bring: the kernel's
// pool is 256 bits, a few times that is plenty.
const maxRandomSeed = 512

// Restore implements the agent service: it makes a guest restored from a
// template this pod's own. Every restored guest starts with the
// template's clock, entropy pool and MAC addresses.
func (a *agent) Restore(_ context.Context, req *protocol.RestoreRequest) (*protocol.Empty, error) {
	params := kernelParams()
	if params[protocol.ParamTemplate] != "1" {
		return nil, status.Error(codes.FailedPrecondition, "this guest did not boot as a template")
	}
	if len(req.RandomSeed) > maxRandomSeed {
		return nil, status.Errorf(codes.InvalidArgument, "random seed of %d bytes, at most %d", len(req.RandomSeed), maxRandomSeed)
	}
	a.restoreMu.Lock()
	defer a.restoreMu.Unlock()
	if a.restored {
		return nil, status.Error(codes.FailedPrecondition, "guest already restored")
	}
	// The entropy first: nothing below should draw on the template's pool.
	if err := addEntropy(req.RandomSeed); err != nil {
		return nil, status.Errorf(codes.Internal, "add entropy: %v", err)
	}
	ts := unix.NsecToTimespec(req.UnixNano)
	if err := unix.ClockSettime(unix.CLOCK_REALTIME, &ts); err != nil {
		return nil, status.Errorf(codes.Internal, "set clock: %v", err)
	}
	for from, to := range req.Macs {
		if err := setMAC(from, to); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "MAC %s: %v", from, err)
		}
	}
	if err := mountShared(params); err != nil {
		return nil, status.Errorf(codes.Internal, "mount shared filesystem: %v", err)
	}
	a.restored = true
	klog.InfoS("Guest restored from a template", "uptime", guestUptime())
	return &protocol.Empty{}, nil
}

// addEntropy mixes seed into the kernel's pool and credits it, so that
// getrandom and /dev/urandom diverge from every other pod of the
// template at once.
func addEntropy(seed []byte) error {
	if len(seed) == 0 {
		return nil
	}
	f, err := os.OpenFile("/dev/urandom", os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	// struct rand_pool_info { int entropy_count; int buf_size; __u32 buf[]; }
	info := make([]byte, 8+len(seed))
	binary.NativeEndian.PutUint32(info[0:], uint32(len(seed)*8))
	binary.NativeEndian.PutUint32(info[4:], uint32(len(seed)))
	copy(info[8:], seed)
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.RNDADDENTROPY, uintptr(unsafe.Pointer(&info[0]))); errno != 0 {
		return errno
	}
	return nil
}

// setMAC gives the link that has the template's MAC address the pod's.
func setMAC(from, to string) error {
	old, err := net.ParseMAC(from)
	if err != nil {
		return err
	}
	mac, err := net.ParseMAC(to)
	if err != nil {
		return err
	}
	link, err := linkByMAC(old)
	if err != nil {
		return err
	}
	if err := netlink.LinkSetHardwareAddr(link, mac); err != nil {
		return fmt.Errorf("set %s: %w", to, err)
	}
	return nil
}
