// Command vc-cri is a Kubernetes CRI runtime in which every pod is its
// own virtual machine. It serves the CRI RuntimeService and ImageService
// on a unix socket for kubelet, crictl and critest.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"
	"go.podman.io/storage/pkg/reexec"
	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/vc-cri/vc-cri/pkg/cni"
)

const defaultConfigPath = "/etc/vc-cri/config.toml"

func main() {
	// The image store re-executes this binary for some of its work.
	if reexec.Init() {
		return
	}
	if err := newRootCommand().Execute(); err != nil {
		os.Exit(1)
	}
}

// flags are the command line's overrides of the configuration file.
type flags struct {
	config           string
	listen           string
	root             string
	state            string
	cniConfDir       string
	cniBinDirs       []string
	registriesConf   string
	streamingAddress string
	metricsAddress   string
	otlpEndpoint     string
	logLevel         int
}

func newRootCommand() *cobra.Command {
	var f flags
	root := &cobra.Command{
		Use:           "vc-cri",
		Short:         "A CRI runtime that runs every pod in its own VM",
		SilenceUsage:  true,
		SilenceErrors: false,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.load(cmd)
			if err != nil {
				return err
			}
			if err := enterMountNamespace(filepath.Join(cfg.State, "ns", "mnt")); err != nil {
				return fmt.Errorf("private mount namespace: %w", err)
			}
			ctx, stop := signal.NotifyContext(context.Background(), unix.SIGTERM, unix.SIGINT)
			defer stop()
			return serve(ctx, cfg)
		},
	}
	pf := root.PersistentFlags()
	pf.StringVar(&f.config, "config", defaultConfigPath, "configuration file (TOML); embedded defaults when absent")
	pf.StringVar(&f.listen, "listen", "", "CRI endpoint, unix:///path")
	pf.StringVar(&f.root, "root", "", "directory of persistent state (image store)")
	pf.StringVar(&f.state, "state", "", "directory of runtime state (sandboxes, sockets)")
	pf.StringVar(&f.cniConfDir, "cni-conf-dir", "", "CNI configuration directory")
	pf.StringSliceVar(&f.cniBinDirs, "cni-bin-dir", nil, "CNI plugin directories")
	pf.StringVar(&f.registriesConf, "registries-conf", "", "containers-registries.conf(5) file")
	pf.StringVar(&f.streamingAddress, "streaming-address", "", "address of the exec/attach/port-forward server")
	pf.StringVar(&f.metricsAddress, "metrics-address", "", "serve Prometheus metrics on host:port (/metrics)")
	pf.StringVar(&f.otlpEndpoint, "otlp-endpoint", "", "export traces to this OTLP/gRPC collector, http://host:port or https://host:port")
	pf.IntVar(&f.logLevel, "log-level", -1, "klog verbosity, 0 to 10")

	root.AddCommand(&cobra.Command{
		Use:   "check",
		Short: "Report whether this host can run pod VMs",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.load(cmd)
			if err != nil {
				return err
			}
			if !printChecks(cmd.OutOrStdout(), checkHost(cmd.Context(), cfg, f.config)) {
				return fmt.Errorf("host is not ready")
			}
			return nil
		},
	})
	var envFormat string
	envCmd := &cobra.Command{
		Use:   "env",
		Short: "Print the effective configuration, the host's facts and the versions (for bug reports)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.load(cmd)
			if err != nil {
				return err
			}
			return writeEnv(cmd.OutOrStdout(), buildEnv(cmd.Context(), cfg, f.config), envFormat)
		},
	}
	envCmd.Flags().StringVarP(&envFormat, "output", "o", "toml", "toml or json")
	root.AddCommand(envCmd)
	configCmd := &cobra.Command{Use: "config", Short: "Configuration"}
	configCmd.AddCommand(&cobra.Command{
		Use:   "default",
		Short: "Print the default configuration",
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := cmd.OutOrStdout().Write(defaultConfig)
			return err
		},
	})
	configCmd.AddCommand(&cobra.Command{
		Use:   "install-cni",
		Short: "Install the default bridge CNI configuration where there is none",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.load(cmd)
			if err != nil {
				return err
			}
			installed, err := cni.InstallDefaultConflist(cfg.CNI.ConfDir)
			if err != nil {
				return err
			}
			if installed {
				fmt.Fprintf(cmd.OutOrStdout(), "installed %s\n", filepath.Join(cfg.CNI.ConfDir, cni.DefaultConflistName))
			}
			return nil
		},
	})
	root.AddCommand(configCmd)
	return root
}

// load reads the configuration file and applies the flags set.
func (f *flags) load(cmd *cobra.Command) (*Config, error) {
	cfg, err := loadConfig(f.config, cmd.Flags().Changed("config"))
	if err != nil {
		return nil, err
	}
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&cfg.Listen, f.listen)
	set(&cfg.Root, f.root)
	set(&cfg.State, f.state)
	set(&cfg.CNI.ConfDir, f.cniConfDir)
	set(&cfg.Image.RegistriesConf, f.registriesConf)
	set(&cfg.StreamingAddress, f.streamingAddress)
	set(&cfg.MetricsAddress, f.metricsAddress)
	set(&cfg.Tracing.OTLPEndpoint, f.otlpEndpoint)
	if len(f.cniBinDirs) > 0 {
		cfg.CNI.BinDirs = f.cniBinDirs
	}
	if f.logLevel >= 0 {
		cfg.LogLevel = f.logLevel
	}
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	if err := fs.Set("v", strconv.Itoa(cfg.LogLevel)); err != nil {
		return nil, err
	}
	return cfg, nil
}
