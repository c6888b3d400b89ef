package cni

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// testEnv is a private CNI network: its own conf, cache, host-local and
// netns directories, a bridge and a /24 of 10.250.0.0/16 picked at
// random, so that it collides neither with the host's config nor with a
// concurrent run.
type testEnv struct {
	m       *Manager
	bridge  string
	subnet  *net.IPNet
	dataDir string
	cache   string
}

// requireHost fails, rather than skips, when the host cannot run the
// integration tests: they run as root in CI.
func requireHost(t *testing.T, bins ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs root, CNI plugins and iptables")
	}
	if os.Geteuid() != 0 {
		t.Fatal("integration tests need root; use -short to skip them")
	}
	for _, bin := range bins {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("needed binary: %v", err)
		}
	}
	for _, plugin := range []string{"bridge", "host-local", "portmap", "loopback", "tuning"} {
		if _, err := os.Stat(filepath.Join("/usr/lib/cni", plugin)); err != nil {
			t.Fatalf("needed CNI plugin (Debian's containernetworking-plugins): %v", err)
		}
	}
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// newTestEnv writes a conflist of bridge (with ipMasq if masq),
// host-local, portmap and loopback; extra is JSON for plugins inserted
// after the bridge.
func newTestEnv(t *testing.T, masq bool, extra string) *testEnv {
	t.Helper()
	requireHost(t, "iptables-save")
	octet := make([]byte, 1)
	rand.Read(octet)
	e := &testEnv{
		bridge:  "vct" + randomHex(t, 4),
		subnet:  &net.IPNet{IP: net.IPv4(10, 250, octet[0], 0).To4(), Mask: net.CIDRMask(24, 32)},
		dataDir: t.TempDir(),
		cache:   t.TempDir(),
	}
	confDir := t.TempDir()
	writeFile(t, confDir, "10-test.conflist", fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "vctest",
  "plugins": [
    {"type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": %t,
     "ipam": {"type": "host-local", "dataDir": %q, "ranges": [[{"subnet": %q}]],
              "routes": [{"dst": "0.0.0.0/0"}]}},
    %s
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "loopback"}
  ]
}`, e.bridge, masq, e.dataDir, e.subnet, extra))
	e.m = New(Config{ConfDir: confDir, NetnsDir: t.TempDir(), CacheDir: e.cache})
	t.Cleanup(func() {
		if link, err := netlink.LinkByName(e.bridge); err == nil {
			netlink.LinkDel(link)
		}
	})
	return e
}

func (e *testEnv) pod(t *testing.T) PodNetwork {
	return PodNetwork{ID: "vctest-" + randomHex(t, 8), Name: "web", Namespace: "default", UID: "uid-1"}
}

// podWithPort has a hostPort, for which portmap adds iptables rules
// naming the pod.
func (e *testEnv) podWithPort(t *testing.T) PodNetwork {
	pod := e.pod(t)
	pod.Ports = []PortMapping{{HostPort: 41000, ContainerPort: 80, Protocol: "tcp"}}
	return pod
}

// assertClean checks that nothing of the pod is left on the host.
func (e *testEnv) assertClean(t *testing.T, podID, netnsPath string) {
	t.Helper()
	if _, err := os.Stat(netnsPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("netns %s still exists: %v", netnsPath, err)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if bytes.Contains(mounts, []byte(netnsPath)) {
		t.Errorf("netns %s is still mounted", netnsPath)
	}
	// The kernel destroys a netns, and the veth in it, asynchronously.
	if port := e.waitNoPorts(5 * time.Second); port != "" {
		t.Errorf("%s still has port %s", e.bridge, port)
	}
	out, err := exec.Command("iptables-save").Output()
	if err != nil {
		t.Fatalf("iptables-save: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, podID) {
			t.Errorf("iptables rule left: %s", line)
		}
	}
	filepath.WalkDir(e.dataDir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if data, _ := os.ReadFile(path); bytes.Contains(data, []byte(podID)) {
				t.Errorf("host-local still reserves %s for the pod", filepath.Base(path))
			}
		}
		return nil
	})
	if atts, _ := e.m.cni.GetCachedAttachments(podID); len(atts) != 0 {
		t.Errorf("CNI cache still holds %d entries", len(atts))
	}
}

// waitNoPorts waits until the test bridge has no port, and returns one
// left at timeout.
func (e *testEnv) waitNoPorts(timeout time.Duration) string {
	for deadline := time.Now().Add(timeout); ; time.Sleep(50 * time.Millisecond) {
		br, err := netlink.LinkByName(e.bridge)
		if err != nil {
			return ""
		}
		links, _ := netlink.LinkList()
		port := ""
		for _, l := range links {
			if l.Attrs().MasterIndex == br.Attrs().Index {
				port = l.Attrs().Name
			}
		}
		if port == "" || time.Now().After(deadline) {
			return port
		}
	}
}

func TestSetupTeardown(t *testing.T) {
	e := newTestEnv(t, true, "")
	ctx := context.Background()
	if err := e.m.Status(ctx); err != nil {
		t.Fatalf("Status: %v", err)
	}
	pod := e.podWithPort(t)
	res, err := e.m.Setup(ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.m.Teardown(context.Background(), pod.ID, res.NetnsPath) })

	if res.NetnsPath != e.m.NetnsPath(pod.ID) {
		t.Errorf("netns %s, want %s", res.NetnsPath, e.m.NetnsPath(pod.ID))
	}
	if err := ns.IsNSorErr(res.NetnsPath); err != nil {
		t.Fatalf("netns: %v", err)
	}
	if len(res.Interfaces) != 1 || res.Interfaces[0].Name != "eth0" || len(res.Interfaces[0].IPs) != 1 {
		t.Fatalf("interfaces %+v", res.Interfaces)
	}
	ip, _, err := net.ParseCIDR(res.Interfaces[0].IPs[0].Address)
	if err != nil || !e.subnet.Contains(ip) {
		t.Fatalf("pod IP %s outside %s (%v)", res.Interfaces[0].IPs[0].Address, e.subnet, err)
	}
	if gw := res.Interfaces[0].IPs[0].Gateway; gw != e.subnet.IP.To4().Mask(e.subnet.Mask).String()[:len(gw)-1]+"1" {
		t.Errorf("gateway %s", gw)
	}
	if len(res.Routes) != 1 || res.Routes[0].Destination != "0.0.0.0/0" {
		t.Errorf("routes %+v", res.Routes)
	}
	out, _ := exec.Command("iptables-save").Output()
	if !bytes.Contains(out, []byte(pod.ID)) {
		t.Error("no iptables rule mentions the pod: portmap did not run")
	}
	if _, err := e.m.Setup(ctx, pod); !errors.Is(err, os.ErrExist) {
		t.Errorf("second Setup of one pod: %v, want ErrExist", err)
	}

	for i := range 2 {
		if err := e.m.Teardown(ctx, pod.ID, res.NetnsPath); err != nil {
			t.Fatalf("Teardown %d: %v", i+1, err)
		}
	}
	e.assertClean(t, pod.ID, res.NetnsPath)
}

// TestTeardownNetnsGone is a teardown after the netns went away: DEL
// must still release the IP and the port mappings, from libcni's cache.
// Without ipMasq: Debian's bridge plugin (1.1.1) removes its MASQUERADE
// rule only when it finds the pod's addresses in the netns.
func TestTeardownNetnsGone(t *testing.T) {
	e := newTestEnv(t, false, "")
	ctx := context.Background()
	pod := e.podWithPort(t)
	res, err := e.m.Setup(ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	if out, _ := exec.Command("iptables-save").Output(); !bytes.Contains(out, []byte(pod.ID)) {
		t.Fatal("no portmap rule mentions the pod")
	}
	if err := removeNetns(res.NetnsPath); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Teardown(ctx, pod.ID, ""); err != nil {
		t.Fatal(err)
	}
	e.assertClean(t, pod.ID, res.NetnsPath)
}

// TestSetupRollback: a plugin after bridge fails ADD; Setup must undo the
// bridge's work and the netns.
func TestSetupRollback(t *testing.T) {
	e := newTestEnv(t, true, `{"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.no_such_knob": "1"}},`)
	pod := e.pod(t)
	if _, err := e.m.Setup(context.Background(), pod); err == nil {
		t.Fatal("Setup succeeded despite the failing plugin")
	}
	e.assertClean(t, pod.ID, e.m.NetnsPath(pod.ID))
}

func TestConnect(t *testing.T) {
	e := newTestEnv(t, true, "")
	pinger := pingCommand(t)
	for _, model := range []Model{TCFilter, Bridged, MacVtap} {
		t.Run(model.String(), func(t *testing.T) {
			ctx := context.Background()
			pod := e.pod(t)
			res, err := e.m.Setup(ctx, pod)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { e.m.Teardown(context.Background(), pod.ID, res.NetnsPath) })
			before := snapshot(t, res.NetnsPath)

			eps, err := Connect(ctx, res.NetnsPath, model)
			if err != nil {
				t.Fatal(err)
			}
			// Cleanups run last first: this one before Teardown, which
			// needs the addresses back on eth0 to find ipMasq's rules.
			t.Cleanup(func() { Disconnect(context.Background(), res.NetnsPath, eps) })
			if len(eps) != 1 {
				t.Fatalf("%d endpoints, want 1", len(eps))
			}
			ep := eps[0]
			if ep.Name != "eth0" || ep.MAC != res.Interfaces[0].MAC || ep.MTU == 0 ||
				!equal(ep.Addresses, []string{res.Interfaces[0].IPs[0].Address}) {
				t.Fatalf("endpoint %+v does not match CNI result %+v", ep, res.Interfaces[0])
			}
			if len(ep.Routes) != 1 || ep.Routes[0].Destination != "0.0.0.0/0" ||
				ep.Routes[0].Gateway != res.Interfaces[0].IPs[0].Gateway {
				t.Fatalf("routes %+v", ep.Routes)
			}
			if (ep.TapFile != nil) != (model == MacVtap) {
				t.Fatalf("TapFile %v with model %v", ep.TapFile, model)
			}
			inNetns(t, res.NetnsPath, func() { checkWiring(t, ep) })

			// The guest: a netns with a NIC of the endpoint's MAC and
			// addresses, joined to the endpoint's tap as QEMU would.
			vm := startFakeVM(t, e, res.NetnsPath, ep)
			podIP, _, _ := strings.Cut(ep.Addresses[0], "/")
			if out, err := exec.Command(pinger[0], append(pinger[1:], "-c1", "-W5", podIP)...).CombinedOutput(); err != nil {
				t.Fatalf("host cannot ping the pod's guest at %s: %v\n%s", podIP, err, out)
			}
			vm.stop()

			if err := Disconnect(ctx, res.NetnsPath, eps); err != nil {
				t.Fatal(err)
			}
			if err := Disconnect(ctx, res.NetnsPath, eps); err != nil {
				t.Fatalf("second Disconnect: %v", err)
			}
			if after := snapshot(t, res.NetnsPath); after != before {
				t.Fatalf("Disconnect did not restore the netns:\nbefore %s\nafter  %s", before, after)
			}
			if err := e.m.Check(ctx, pod, res.NetnsPath); err != nil {
				t.Errorf("CNI CHECK after Disconnect: %v", err)
			}
			if err := e.m.Teardown(ctx, pod.ID, res.NetnsPath); err != nil {
				t.Fatal(err)
			}
			e.assertClean(t, pod.ID, res.NetnsPath)
		})
	}
}

func equal(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }

func pingCommand(t *testing.T) []string {
	if path, err := exec.LookPath("ping"); err == nil {
		return []string{path}
	}
	if path, err := exec.LookPath("busybox"); err == nil {
		return []string{path, "ping"}
	}
	t.Fatal("needed binary: ping (iputils-ping or busybox)")
	return nil
}

func inNetns(t *testing.T, path string, f func()) {
	t.Helper()
	if err := ns.WithNetNSPath(path, func(ns.NetNS) error { f(); return nil }); err != nil {
		t.Fatal(err)
	}
}

// snapshot describes links, addresses and routes of a netns, to compare
// before Connect and after Disconnect.
func snapshot(t *testing.T, netnsPath string) string {
	var b strings.Builder
	inNetns(t, netnsPath, func() {
		links, err := netlink.LinkList()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range links {
			a := l.Attrs()
			fmt.Fprintf(&b, "%s %s %s mtu %d master %d;", a.Name, l.Type(), a.HardwareAddr, a.MTU, a.MasterIndex)
			addrs, _ := netlink.AddrList(l, netlink.FAMILY_V4)
			for _, addr := range addrs {
				fmt.Fprintf(&b, " %s", addr.IPNet)
			}
			routes, _ := netlink.RouteList(l, netlink.FAMILY_V4)
			for _, r := range routes {
				fmt.Fprintf(&b, " [%s via %s]", r.Dst, r.Gw)
			}
			qdiscs, _ := netlink.QdiscList(l)
			for _, q := range qdiscs {
				fmt.Fprintf(&b, " %s", q.Type())
			}
			b.WriteString("\n")
		}
	})
	return b.String()
}

// checkWiring checks, inside the netns, the devices each model makes.
func checkWiring(t *testing.T, ep Endpoint) {
	t.Helper()
	veth, err := netlink.LinkByName(ep.Name)
	if err != nil {
		t.Fatal(err)
	}
	tap, err := netlink.LinkByName(ep.TapName)
	if err != nil {
		t.Fatal(err)
	}
	switch ep.Model {
	case TCFilter:
		if tap.Type() != "tuntap" {
			t.Errorf("%s is a %s", ep.TapName, tap.Type())
		}
		for from, to := range map[netlink.Link]netlink.Link{veth: tap, tap: veth} {
			if !redirectsTo(t, from, to) {
				t.Errorf("no mirred redirect from %s to %s", from.Attrs().Name, to.Attrs().Name)
			}
		}
	case Bridged:
		br, err := netlink.LinkByName(ep.Bridge)
		if err != nil {
			t.Fatal(err)
		}
		if veth.Attrs().MasterIndex != br.Attrs().Index || tap.Attrs().MasterIndex != br.Attrs().Index {
			t.Errorf("%s and %s are not both in %s", ep.Name, ep.TapName, ep.Bridge)
		}
		checkHandedOver(t, ep, veth)
	case MacVtap:
		if tap.Type() != "macvtap" || tap.Attrs().ParentIndex != veth.Attrs().Index ||
			tap.Attrs().HardwareAddr.String() != ep.MAC {
			t.Errorf("macvtap %s: type %s, parent %d, MAC %s", ep.TapName, tap.Type(), tap.Attrs().ParentIndex, tap.Attrs().HardwareAddr)
		}
		checkHandedOver(t, ep, veth)
	}
}

func redirectsTo(t *testing.T, from, to netlink.Link) bool {
	filters, err := netlink.FilterList(from, netlink.HANDLE_INGRESS)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range filters {
		if u32, ok := f.(*netlink.U32); ok {
			for _, a := range u32.Actions {
				if m, ok := a.(*netlink.MirredAction); ok && m.Ifindex == to.Attrs().Index && m.MirredAction == netlink.TCA_EGRESS_REDIR {
					return true
				}
			}
		}
	}
	return false
}

func checkHandedOver(t *testing.T, ep Endpoint, veth netlink.Link) {
	t.Helper()
	if veth.Attrs().HardwareAddr.String() == ep.MAC {
		t.Errorf("%s kept the guest's MAC", ep.Name)
	}
	if addrs, _ := netlink.AddrList(veth, netlink.FAMILY_V4); len(addrs) != 0 {
		t.Errorf("%s kept its addresses %v", ep.Name, addrs)
	}
}

// fakeVM stands in for QEMU: it copies frames between the endpoint's tap
// (or macvtap file) and a tap in a "guest" netns configured as the agent
// would configure the guest NIC.
type fakeVM struct {
	files []*os.File
	done  chan struct{}
}

func startFakeVM(t *testing.T, e *testEnv, netnsPath string, ep Endpoint) *fakeVM {
	t.Helper()
	guestNS := filepath.Join(e.m.netnsDir, "guest")
	if err := createNetns(guestNS); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeNetns(guestNS) })

	var host *os.File
	if ep.TapFile != nil {
		// A macvtap file starts with vnet_hdr on; pollable turns it off,
		// as the pump copies bare frames.
		fd, err := unix.FcntlInt(ep.TapFile.Fd(), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		host = pollable(t, fd, "")
	} else {
		inNetns(t, netnsPath, func() { host = openTap(t, ep.TapName) })
	}
	var guest *os.File
	inNetns(t, guestNS, func() {
		guest = openTap(t, "guest0")
		link, err := netlink.LinkByName("guest0")
		if err != nil {
			t.Fatal(err)
		}
		mac, _ := net.ParseMAC(ep.MAC)
		if err := netlink.LinkSetHardwareAddr(link, mac); err != nil {
			t.Fatal(err)
		}
		if err := netlink.LinkSetUp(link); err != nil {
			t.Fatal(err)
		}
		addr, _ := netlink.ParseAddr(ep.Addresses[0])
		if err := netlink.AddrAdd(link, addr); err != nil {
			t.Fatal(err)
		}
	})
	vm := &fakeVM{files: []*os.File{host, guest}, done: make(chan struct{}, 2)}
	go vm.pump(host, guest)
	go vm.pump(guest, host)
	t.Cleanup(vm.stop)
	return vm
}

func (vm *fakeVM) pump(from, to *os.File) {
	defer func() { vm.done <- struct{}{} }()
	buf := make([]byte, 65536)
	for {
		n, err := from.Read(buf)
		if err != nil {
			return
		}
		if _, err := to.Write(buf[:n]); err != nil && !errors.Is(err, unix.EIO) {
			return
		}
	}
}

func (vm *fakeVM) stop() {
	if vm.files == nil {
		return
	}
	for _, f := range vm.files {
		f.Close()
	}
	vm.files = nil
	for range 2 {
		select {
		case <-vm.done:
		case <-time.After(5 * time.Second):
			panic("fake VM pump did not stop")
		}
	}
}

// openTap opens (or creates, non-persistent) the tap name in the current
// netns, as QEMU's -netdev tap,ifname= does.
func openTap(t *testing.T, name string) *os.File {
	t.Helper()
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	return pollable(t, fd, name)
}

// pollable sets the tap flags of fd (bare frames) and wraps it in a file
// that Go's poller serves, so that Close ends a pending Read. The poller
// cannot take a tun file before TUNSETIFF.
func pollable(t *testing.T, fd int, name string) *os.File {
	t.Helper()
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		t.Fatal(err)
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		t.Fatalf("TUNSETIFF %s: %v", name, err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	return os.NewFile(uintptr(fd), name)
}
