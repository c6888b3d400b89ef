package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

// envHost writes a config whose guest files and CNI directories are
// fakes under a temporary directory, with no QEMU (no probe).
func envFixture(t *testing.T) (configPath, kernelSum string) {
	t.Helper()
	dir := t.TempDir()
	kernel := filepath.Join(dir, "vmlinux")
	if err := os.WriteFile(kernel, []byte("not a kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("not a kernel"))
	bin := filepath.Join(dir, "bin")
	conf := filepath.Join(dir, "net.d")
	for _, d := range []string{bin, conf} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"bridge", "host-local", "loopback"} {
		if err := os.WriteFile(filepath.Join(bin, p), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	conflist := `{"cniVersion": "1.0.0", "name": "testnet", "plugins": [{"type": "bridge"}, {"type": "portmap"}]}`
	if err := os.WriteFile(filepath.Join(conf, "10-test.conflist"), []byte(conflist), 0o644); err != nil {
		t.Fatal(err)
	}
	configPath = filepath.Join(dir, "config.toml")
	cfg := `listen = "unix:///file.sock"
metrics_address = "127.0.0.1:9999"
[vm]
hypervisor_path = "` + filepath.Join(dir, "no-qemu") + `"
kernel = "` + kernel + `"
image = "` + filepath.Join(dir, "missing.cpio") + `"
[cni]
conf_dir = "` + conf + `"
bin_dirs = ["` + bin + `"]
`
	if err := os.WriteFile(configPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return configPath, hex.EncodeToString(sum[:])
}

// runEnv runs `vc-cri env ARGS...` and returns its output.
func runEnv(t *testing.T, args ...string) []byte {
	t.Helper()
	cmd := newRootCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs(append([]string{"env"}, args...))
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("vc-cri env %v: %v", args, err)
	}
	return out.Bytes()
}

// lookup walks a decoded document along a dotted key.
func lookup(doc map[string]any, key string) (any, bool) {
	var v any = doc
	for _, k := range strings.Split(key, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[k]; !ok {
			return nil, false
		}
	}
	return v, true
}

// envKeys are the keys `vc-cri env` promises (README, bug reports).
var envKeys = []string{
	"meta.format_version", "meta.generated",
	"runtime.name", "runtime.version", "runtime.cri_api_version", "runtime.go_version", "runtime.binary",
	"runtime.config_file", "runtime.config_file_found",
	"config.listen", "config.root", "config.state", "config.log_level", "config.streaming_address", "config.metrics_address",
	"config.vm.kernel", "config.vm.image", "config.vm.accelerator", "config.vm.vcpus", "config.vm.memory_mib",
	"config.cni.conf_dir", "config.cni.bin_dirs", "config.image.registries_conf", "config.tracing.otlp_endpoint",
	"hypervisor.path", "hypervisor.version", "hypervisor.error", "hypervisor.accelerator_configured",
	"hypervisor.accelerator", "hypervisor.accelerator_reason", "hypervisor.kvm_device",
	"guest.kernel.path", "guest.kernel.size", "guest.kernel.sha256", "guest.image.path", "guest.image.error",
	"network.conf_dir", "network.bin_dirs", "network.plugins", "network.missing_plugins", "network.networks",
	"host.os", "host.kernel", "host.arch", "host.cpus", "host.memory_mib", "host.cgroup", "host.overlay", "host.tun", "host.systemd",
	"tools.crictl",
}

func TestEnvKeysTOMLAndJSON(t *testing.T) {
	path, sum := envFixture(t)
	for _, format := range []string{"toml", "json"} {
		out := runEnv(t, "--config", path, "--listen", "unix:///flag.sock", "-o", format)
		doc := map[string]any{}
		var err error
		if format == "toml" {
			err = toml.Unmarshal(out, &doc)
		} else {
			err = json.Unmarshal(out, &doc)
		}
		if err != nil {
			t.Fatalf("%s: %v\n%s", format, err, out)
		}
		for _, k := range envKeys {
			if _, ok := lookup(doc, k); !ok {
				t.Errorf("%s: no key %s", format, k)
			}
		}
		for k, want := range map[string]any{
			"config.listen":                 "unix:///flag.sock", // the flag over the file
			"config.metrics_address":        "127.0.0.1:9999",    // the file over the defaults
			"config.vm.memory_mib":          "256",               // the defaults
			"guest.kernel.sha256":           sum,
			"guest.kernel.size":             "12",
			"runtime.config_file":           path,
			"runtime.name":                  "vc-cri",
			"hypervisor.accelerator_reason": "not probed: QEMU or the guest kernel is missing",
		} {
			v, _ := lookup(doc, k)
			if got := strings.TrimSuffix(strings.TrimSuffix(toString(v), ".0"), "e+00"); got != want {
				t.Errorf("%s: %s = %q, want %q", format, k, got, want)
			}
		}
		if v, _ := lookup(doc, "guest.image.error"); !strings.Contains(toString(v), "no such file") {
			t.Errorf("%s: guest.image.error = %v", format, v)
		}
		if v, _ := lookup(doc, "network.missing_plugins"); toString(v) != "[portmap]" {
			t.Errorf("%s: network.missing_plugins = %v", format, v)
		}
		nets, _ := lookup(doc, "network.networks")
		if list, ok := nets.([]any); !ok || len(list) != 1 || !strings.Contains(toString(list[0]), "testnet") {
			t.Errorf("%s: network.networks = %v", format, nets)
		}
	}
}

func toString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case []any:
		parts := make([]string, len(v))
		for i, p := range v {
			parts[i] = toString(p)
		}
		return "[" + strings.Join(parts, " ") + "]"
	}
	b, _ := json.Marshal(v)
	return strings.Trim(string(b), `"`)
}

func TestEnvRefusesUnknownFormat(t *testing.T) {
	if err := writeEnv(&bytes.Buffer{}, envReport{}, "yaml"); err == nil {
		t.Fatal("format yaml accepted")
	}
}
