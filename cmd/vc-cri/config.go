package main

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/vc-cri/vc-cri/pkg/nri"
)

// defaultConfig is the configuration vc-cri runs with when
// /etc/vc-cri/config.toml is absent; `vc-cri config default` prints it.
//
//go:embed config.default.toml
var defaultConfig []byte

// Config is vc-cri's configuration file.
type Config struct {
	// Listen is the CRI endpoint, unix:///path.
	Listen string `toml:"listen"`
	// Root holds persistent state: the image store.
	Root string `toml:"root"`
	// State holds runtime state: sandboxes, VM sockets, the CRI socket.
	State string `toml:"state"`
	// LogLevel is klog's verbosity: 0 (default) to 10.
	LogLevel int `toml:"log_level"`
	// StreamingAddress is where exec, attach and port-forward streams are
	// served (host:port; port 0 picks one).
	StreamingAddress string `toml:"streaming_address"`
	// MetricsAddress is where the daemon's Prometheus metrics are served
	// (host:port, at /metrics); empty: no metrics.
	MetricsAddress string `toml:"metrics_address"`

	// DefaultRuntime names the handler of pods that name none.
	DefaultRuntime string `toml:"default_runtime"`
	// HostNamespacePods is the handler of pods that ask a VM handler for
	// the host's network, PID or IPC namespace, or "refuse".
	HostNamespacePods string                   `toml:"host_namespace_pods"`
	Runtimes          map[string]RuntimeConfig `toml:"runtimes"`
	VM                VMConfig                 `toml:"vm"`
	CNI               CNIConfig                `toml:"cni"`
	Image             ImageConfig              `toml:"image"`
	Tracing           TracingConfig            `toml:"tracing"`
	NRI               NRIConfig                `toml:"nri"`
}

// VMConfig is the pod VM's configuration.
type RuntimeConfig struct {
	// Type is "vm" (a pod VM, configured by [vm]) or "runc" (OS
	// containers on the host).
	Type string `toml:"type"`
	// RuntimePath, ConmonPath and PausePath are the runc handler's
	// programs; an empty PausePath is vc-pause beside vc-cri.
	RuntimePath string `toml:"runtime_path"`
	ConmonPath  string `toml:"conmon_path"`
	PausePath   string `toml:"pause_path"`
}

// VMConfig is the [vm] table: the pod VMs of the "vm" handlers.
type VMConfig struct {
	Hypervisor     string `toml:"hypervisor"`
	HypervisorPath string `toml:"hypervisor_path"`
	Kernel         string `toml:"kernel"`
	Image          string `toml:"image"`
	Accelerator    string `toml:"accelerator"`
	SharedFS       string `toml:"shared_fs"`
	VCPUs          uint32 `toml:"vcpus"`
	MemoryMiB      uint32 `toml:"memory_mib"`
	// MaxVCPUs and MaxMemoryMiB are the most a pod VM may grow to while
	// it runs (UpdatePodSandboxResources); 0 is the host's CPUs (at most
	// maxGuestVCPUs) and memory, at most vcpus and memory_mib no room.
	MaxVCPUs     uint32   `toml:"max_vcpus"`
	MaxMemoryMiB uint32   `toml:"max_memory_mib"`
	KernelParams []string `toml:"kernel_params"`
	NetworkModel string   `toml:"network_model"`
	Debug        bool     `toml:"debug"`
	// Templates starts pod VMs from VM templates, one per VM shape,
	// kept under the state directory (see the README's security notes).
	Templates bool `toml:"templates"`
}

// CNIConfig locates the CNI configuration and plugins.
type CNIConfig struct {
	ConfDir string   `toml:"conf_dir"`
	BinDirs []string `toml:"bin_dirs"`
}

// ImageConfig configures image pulls.
type ImageConfig struct {
	// RegistriesConf is a containers-registries.conf(5) v2 file.
	RegistriesConf string `toml:"registries_conf"`
	// MaxLayerSizeMiB, when positive, is the largest a layer of a pulled
	// image may unpack to: a guard against decompression bombs.
	MaxLayerSizeMiB int64 `toml:"max_layer_size_mib"`
}

// TracingConfig configures the export of the daemon's traces; the phase
// log lines need none of it (pkg/tracing).
type TracingConfig struct {
	// OTLPEndpoint is the URL of an OTLP/gRPC collector the spans of
	// pod, container and exec starts are exported to: http://HOST:PORT
	// in plaintext, https://HOST:PORT over TLS. Empty: no export.
	OTLPEndpoint string `toml:"otlp_endpoint"`
}

// NRIConfig configures the hosting of NRI plugins (pkg/nri), as
// containerd's [plugins."io.containerd.nri.v1.nri"] does.
type NRIConfig struct {
	Enable           bool   `toml:"enable"`
	SocketPath       string `toml:"socket_path"`
	PluginPath       string `toml:"plugin_path"`
	PluginConfigPath string `toml:"plugin_config_path"`
	// The timeouts are durations ("5s"); empty: nri's defaults.
	PluginRegistrationTimeout string `toml:"plugin_registration_timeout"`
	PluginRequestTimeout      string `toml:"plugin_request_timeout"`
}

// config is the pkg/nri configuration.
func (c NRIConfig) config() (nri.Config, error) {
	cfg := nri.Config{
		Enable: c.Enable, SocketPath: c.SocketPath, PluginPath: c.PluginPath, PluginConfigPath: c.PluginConfigPath,
	}
	for _, d := range []struct {
		name string
		s    string
		to   *time.Duration
	}{
		{"plugin_registration_timeout", c.PluginRegistrationTimeout, &cfg.RegistrationTimeout},
		{"plugin_request_timeout", c.PluginRequestTimeout, &cfg.RequestTimeout},
	} {
		if d.s == "" {
			continue
		}
		v, err := time.ParseDuration(d.s)
		if err != nil || v < 0 {
			return nri.Config{}, fmt.Errorf("nri.%s: %q is no duration", d.name, d.s)
		}
		*d.to = v
	}
	return cfg, nil
}

// loadConfig reads path over the embedded defaults. A missing file is no
// error when it is the default path: the defaults apply.
func loadConfig(path string, explicit bool) (*Config, error) {
	var cfg Config
	if err := toml.Unmarshal(defaultConfig, &cfg); err != nil {
		return nil, fmt.Errorf("embedded defaults: %w", err)
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && !explicit {
		return &cfg, nil
	}
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	dec := toml.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return &cfg, nil
}
