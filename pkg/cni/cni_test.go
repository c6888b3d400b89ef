package cni

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
)

func writeFile(t *testing.T, dir, name, data string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestConflistSelection(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "00-broken.conflist", `{"cniVersion": "1.0.0", "name": `)
	writeFile(t, dir, "01-empty.conflist", `{"cniVersion": "1.0.0", "name": "empty", "plugins": []}`)
	writeFile(t, dir, "05-single.conf", `{"cniVersion": "1.0.0", "name": "single", "type": "bridge"}`)
	writeFile(t, dir, "10-list.conflist", `{"cniVersion": "1.0.0", "name": "list", "plugins": [{"type": "bridge"}]}`)
	writeFile(t, dir, "00-notes.txt", `not a config`)

	m := New(Config{ConfDir: dir})
	list, err := m.conflist()
	if err != nil {
		t.Fatal(err)
	}
	if list.Name != "single" || len(list.Plugins) != 1 || list.Plugins[0].Network.Type != "bridge" {
		t.Fatalf("picked %q with %d plugins, want the single .conf upconverted", list.Name, len(list.Plugins))
	}

	os.Remove(filepath.Join(dir, "05-single.conf"))
	if list, err = m.conflist(); err != nil || list.Name != "list" {
		t.Fatalf("picked %v (err %v), want list", list, err)
	}
}

func TestNoConfig(t *testing.T) {
	ctx := context.Background()
	for name, dir := range map[string]string{
		"empty":   t.TempDir(),
		"missing": filepath.Join(t.TempDir(), "nope"),
	} {
		t.Run(name, func(t *testing.T) {
			netnsDir := t.TempDir()
			m := New(Config{ConfDir: dir, NetnsDir: netnsDir})
			if err := m.Status(ctx); !errors.Is(err, ErrNoConfig) {
				t.Fatalf("Status: %v, want ErrNoConfig", err)
			}
			if _, err := m.Setup(ctx, PodNetwork{ID: "p1"}); !errors.Is(err, ErrNoConfig) {
				t.Fatalf("Setup: %v, want ErrNoConfig", err)
			}
			if entries, _ := os.ReadDir(netnsDir); len(entries) != 0 {
				t.Fatalf("Setup left %v behind", entries)
			}
		})
	}
}

func TestStatusMissingPlugin(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "10-x.conflist", `{"cniVersion": "1.0.0", "name": "x", "plugins": [{"type": "no-such-plugin"}]}`)
	m := New(Config{ConfDir: dir, BinDirs: []string{t.TempDir()}})
	if err := m.Status(context.Background()); err == nil {
		t.Fatal("Status succeeded without the plugin")
	}
}

func TestDefaultConflist(t *testing.T) {
	dir := t.TempDir()
	installed, err := InstallDefaultConflist(dir)
	if err != nil || !installed {
		t.Fatalf("first install: %v, %v", installed, err)
	}
	if installed, err = InstallDefaultConflist(dir); err != nil || installed {
		t.Fatalf("second install: %v, %v, want a no-op", installed, err)
	}
	m := New(Config{ConfDir: dir})
	list, err := m.conflist()
	if err != nil {
		t.Fatal(err)
	}
	if list.Name != "vc-cri" || len(list.Plugins) != 3 {
		t.Fatalf("default conflist: %s with %d plugins", list.Name, len(list.Plugins))
	}
	if testing.Short() {
		return
	}
	// Debian's plugins must accept it: it is what `make run` installs.
	if err := m.Status(context.Background()); err != nil {
		t.Fatalf("Status of the default conflist: %v (are containernetworking-plugins installed?)", err)
	}
}

func TestRuntimeConf(t *testing.T) {
	pod := PodNetwork{
		ID: "abc", Name: "web", Namespace: "default", UID: "u-1",
		Ports: []PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}},
	}
	rt := runtimeConf(pod, "/run/netns/vc-abc")
	want := [][2]string{
		{"IgnoreUnknown", "1"},
		{"K8S_POD_NAMESPACE", "default"},
		{"K8S_POD_NAME", "web"},
		{"K8S_POD_INFRA_CONTAINER_ID", "abc"},
		{"K8S_POD_UID", "u-1"},
	}
	if !reflect.DeepEqual(rt.Args, want) {
		t.Fatalf("args %v, want %v", rt.Args, want)
	}
	if rt.ContainerID != "abc" || rt.IfName != "eth0" || rt.NetNS != "/run/netns/vc-abc" {
		t.Fatalf("runtime conf %+v", rt)
	}
	if !reflect.DeepEqual(rt.CapabilityArgs["portMappings"], pod.Ports) {
		t.Fatalf("portMappings %v", rt.CapabilityArgs)
	}
	if rt := runtimeConf(PodNetwork{ID: "x"}, ""); rt.CapabilityArgs != nil {
		t.Fatalf("capability args without ports: %v", rt.CapabilityArgs)
	}
}

func TestBadInput(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	m := New(Config{ConfDir: dir, NetnsDir: dir})
	for _, id := range []string{"", "..", "a/b", "a;b"} {
		if _, err := m.Setup(ctx, PodNetwork{ID: id}); !errors.Is(err, ErrInvalidPodID) {
			t.Errorf("Setup(%q): %v, want ErrInvalidPodID", id, err)
		}
	}
	if err := m.Teardown(ctx, "p1", "/proc/self/ns/net"); !errors.Is(err, ErrInvalidNetns) {
		t.Errorf("Teardown outside the netns dir: %v, want ErrInvalidNetns", err)
	}

	notNetns := filepath.Join(dir, "file")
	writeFile(t, dir, "file", "")
	for _, path := range []string{notNetns, filepath.Join(dir, "missing")} {
		if _, err := Connect(ctx, path, DefaultModel); !errors.Is(err, ErrInvalidNetns) {
			t.Errorf("Connect(%s): %v, want ErrInvalidNetns", path, err)
		}
	}
	if err := Disconnect(ctx, notNetns, nil); !errors.Is(err, ErrInvalidNetns) {
		t.Errorf("Disconnect(%s): %v, want ErrInvalidNetns", notNetns, err)
	}
	if err := Disconnect(ctx, filepath.Join(dir, "missing"), nil); err != nil {
		t.Errorf("Disconnect of a gone netns: %v", err)
	}
	for _, model := range []Model{0, 42} {
		if _, err := Connect(ctx, "/proc/self/ns/net", model); !errors.Is(err, ErrInvalidModel) {
			t.Errorf("Connect with %v: %v, want ErrInvalidModel", model, err)
		}
	}
}

func TestParseModel(t *testing.T) {
	for s, want := range map[string]Model{"": TCFilter, "default": TCFilter, "tcfilter": TCFilter, "bridged": Bridged, "macvtap": MacVtap} {
		if got, err := ParseModel(s); err != nil || got != want {
			t.Errorf("ParseModel(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	if _, err := ParseModel("macvlan"); !errors.Is(err, ErrInvalidModel) {
		t.Errorf("ParseModel(macvlan): %v", err)
	}
	var m Model
	if err := m.UnmarshalText([]byte("bridged")); err != nil || m != Bridged {
		t.Errorf("UnmarshalText: %v, %v", m, err)
	}
	if _, err := Model(0).MarshalText(); !errors.Is(err, ErrInvalidModel) {
		t.Errorf("MarshalText of the zero Model: %v", err)
	}
}

func TestConvertResult(t *testing.T) {
	one, zero := 1, 0
	_, pod, _ := net.ParseCIDR("10.250.0.7/24")
	pod.IP = net.ParseIP("10.250.0.7")
	_, host, _ := net.ParseCIDR("10.250.0.1/24")
	_, dflt, _ := net.ParseCIDR("0.0.0.0/0")
	res := &current.Result{
		CNIVersion: "1.0.0",
		Interfaces: []*current.Interface{
			{Name: "br0", Mac: "aa:aa:aa:aa:aa:aa"},
			{Name: "eth0", Mac: "02:00:00:00:00:07", Sandbox: "/run/netns/x"},
		},
		IPs: []*current.IPConfig{
			{Interface: &one, Address: *pod, Gateway: net.ParseIP("10.250.0.1")},
			{Interface: &zero, Address: *host},
		},
		Routes: []*types.Route{{Dst: *dflt, GW: net.ParseIP("10.250.0.1")}},
	}
	res.DNS.Nameservers = []string{"10.250.0.1"}
	got, err := convertResult(res, "/run/netns/x")
	if err != nil {
		t.Fatal(err)
	}
	want := &Result{
		NetnsPath: "/run/netns/x",
		Interfaces: []Interface{{Name: "eth0", MAC: "02:00:00:00:00:07",
			IPs: []IP{{Address: "10.250.0.7/24", Gateway: "10.250.0.1"}}}},
		Routes: []Route{{Destination: "0.0.0.0/0", Gateway: "10.250.0.1"}},
		DNS:    DNS{Nameservers: []string{"10.250.0.1"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	if ips := got.IPs(); !reflect.DeepEqual(ips, []string{"10.250.0.7"}) {
		t.Fatalf("IPs() = %v", ips)
	}

	res.IPs = res.IPs[1:]
	if _, err := convertResult(res, "/run/netns/x"); err == nil {
		t.Fatal("a result without a pod IP was accepted")
	}
}
