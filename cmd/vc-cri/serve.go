package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"syscall"

	"google.golang.org/grpc"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/vc-cri/vc-cri/pkg/cni"
	"github.com/vc-cri/vc-cri/pkg/cri"
	"github.com/vc-cri/vc-cri/pkg/cri/images"
	"github.com/vc-cri/vc-cri/pkg/image"
	"github.com/vc-cri/vc-cri/pkg/metrics"
	"github.com/vc-cri/vc-cri/pkg/nri"
	"github.com/vc-cri/vc-cri/pkg/sandbox"
)

// serve runs the CRI server until ctx ends. Pods keep running: their VMs
// outlive the daemon, and the next start finds them again.
func serve(ctx context.Context, cfg *Config) error {
	socket, ok := strings.CutPrefix(cfg.Listen, "unix://")
	if !ok {
		return fmt.Errorf("listen %q: want unix:///path", cfg.Listen)
	}
	unlock, err := lockStateDir(cfg.State)
	if err != nil {
		return err
	}
	defer unlock()
	stopTracing, err := startTracing(ctx, cfg)
	if err != nil {
		return fmt.Errorf("tracing: %w", err)
	}
	defer stopTracing()
	var m *metrics.Metrics
	runtimeOpts := []sandbox.Option{sandbox.WithStateRoot(filepath.Join(cfg.State, "sandboxes"))}
	if cfg.VM.Templates {
		runtimeOpts = append(runtimeOpts, sandbox.WithTemplates(filepath.Join(cfg.State, "templates")))
	}
	if cfg.MetricsAddress != "" {
		m = metrics.New(metrics.Options{Version: cri.RuntimeVersion})
		runtimeOpts = append(runtimeOpts, sandbox.WithAgentDialer(sandbox.KataContainersAgent,
			sandbox.KataDialer(grpc.WithChainUnaryInterceptor(m.AgentUnaryInterceptor))))
	}
	sandboxes := sandbox.NewRuntime(runtimeOpts...)
	if err := sandboxes.CleanTemplates(ctx); err != nil {
		return fmt.Errorf("VM templates: %w", err)
	}
	defer sandboxes.StopTemplates()
	// The package-level API, for any caller of it in this process, acts
	// on the same sandboxes.
	sandbox.SetDefault(sandboxes)

	imgs, err := image.New(image.Config{
		Root:           filepath.Join(cfg.Root, "storage"),
		RunRoot:        filepath.Join(cfg.State, "storage"),
		RegistriesConf: cfg.Image.RegistriesConf,
		MaxLayerSize:   cfg.Image.MaxLayerSizeMiB << 20,
	})
	if err != nil {
		return fmt.Errorf("image store: %w", err)
	}
	defer imgs.Close()

	sbCfg, err := sandboxTemplate(cfg)
	if err != nil {
		return err
	}
	userns := usernsSupport(filepath.Join(cfg.Root, "storage"), filepath.Join(cfg.State, "sandboxes"))
	hs, hostPods, err := handlers(cfg, sandboxes, sbCfg, cfg.State, userns)
	if err != nil {
		return err
	}
	nriCfg, err := cfg.NRI.config()
	if err != nil {
		return err
	}
	plugins, err := nri.New(nriCfg)
	if err != nil {
		return err
	}
	svc, err := cri.New(ctx, cri.Options{
		StateDir:          filepath.Join(cfg.State, "cri"),
		Handlers:          hs,
		HostNamespacePods: hostPods,
		Images:            imgs,
		Network:           timedNetwork{cni.New(cni.Config{ConfDir: cfg.CNI.ConfDir, BinDirs: cfg.CNI.BinDirs, NetnsDir: filepath.Join(cfg.State, "netns")})},
		StreamingAddress:  cfg.StreamingAddress,
		NRI:               plugins,
		CrashPoint:        crashPoint(os.Getenv(crashAtEnv)),
	})
	if err != nil {
		return err
	}
	// The default pod's VM template, one NIC (CNI's), built meanwhile.
	if err := sandboxes.PrepareTemplate(sbCfg, 1); err != nil {
		klog.ErrorS(err, "No VM template for the default pod; its first pod boots cold")
	}

	if err := os.MkdirAll(filepath.Dir(socket), 0o755); err != nil {
		return err
	}
	if err := os.Remove(socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	l, err := net.Listen("unix", socket)
	if err != nil {
		return err
	}
	// Root and the group of the socket's directory: kubelet and crictl
	// run as root; nobody else may drive the node's pods.
	if err := os.Chmod(socket, 0o660); err != nil {
		return err
	}
	// One chain for both services: errors become statuses, IDs are
	// resolved and each call gets its logger there (Service.Interceptors).
	unary, stream := svc.Interceptors()
	if m != nil {
		// First in the chain: it sees the status codes clients see.
		m.SetSource(metricsSource{svc: svc, sandboxDir: sandboxes.StateRoot(), procDir: "/proc"})
		unary = append([]grpc.UnaryServerInterceptor{m.UnaryInterceptor}, unary...)
		stream = append([]grpc.StreamServerInterceptor{m.StreamInterceptor}, stream...)
	}
	gs := grpc.NewServer(grpc.ChainUnaryInterceptor(unary...), grpc.ChainStreamInterceptor(stream...))
	runtime.RegisterRuntimeServiceServer(gs, svc)
	runtime.RegisterImageServiceServer(gs, images.NewService(imgs))

	var ml net.Listener
	if m != nil {
		if ml, err = net.Listen("tcp", cfg.MetricsAddress); err != nil {
			return fmt.Errorf("metrics_address: %w", err)
		}
	}

	errc := make(chan error, 3)
	go func() { errc <- svc.Start(ctx) }()
	go func() { errc <- gs.Serve(l) }()
	if m != nil {
		go func() { errc <- m.ServeListener(ctx, ml) }()
	}
	klog.InfoS("vc-cri serving", "socket", socket, "state", cfg.State, "root", cfg.Root)
	select {
	case <-ctx.Done():
		klog.InfoS("Shutting down; pods keep running")
	case err = <-errc:
	}
	gs.GracefulStop()
	svc.Close()
	return err
}

// crashAtEnv names a step of RunPodSandbox or CreateContainer (see
// pkg/cri's reconcile.go) where the daemon kills itself with SIGKILL: the
// crash tests' way to stop it exactly there. Unset, nothing happens.
const crashAtEnv = "VC_CRI_CRASH_AT"

func crashPoint(at string) func(string) {
	if at == "" {
		return nil
	}
	klog.InfoS("The daemon will kill itself at a step of its calls", "step", at, "env", crashAtEnv)
	return func(step string) {
		if step == at {
			klog.InfoS("Killing the daemon at this step", "step", step)
			klog.Flush()
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
	}
}

// sandboxTemplate is the sandbox configuration every pod starts from.
func sandboxTemplate(cfg *Config) (sandbox.SandboxConfig, error) {
	model, err := networkModel(cfg.VM.NetworkModel)
	if err != nil {
		return sandbox.SandboxConfig{}, err
	}
	var params []sandbox.Param
	for _, p := range cfg.VM.KernelParams {
		k, v, _ := strings.Cut(p, "=")
		params = append(params, sandbox.Param{Key: k, Value: v})
	}
	agent := sandbox.KataContainersAgent
	if cfg.VM.Hypervisor == string(sandbox.MockHypervisor) {
		agent = sandbox.NoopAgentType
	}
	return sandbox.SandboxConfig{
		HypervisorType: sandbox.HypervisorType(cfg.VM.Hypervisor),
		HypervisorConfig: sandbox.HypervisorConfig{
			KernelPath:           cfg.VM.Kernel,
			ImagePath:            cfg.VM.Image,
			HypervisorPath:       cfg.VM.HypervisorPath,
			MachineAccelerators:  cfg.VM.Accelerator,
			SharedFS:             cfg.VM.SharedFS,
			KernelParams:         params,
			NumVCPUs:             cfg.VM.VCPUs,
			MemorySize:           cfg.VM.MemoryMiB,
			DefaultMaxVCPUs:      orHost(cfg.VM.MaxVCPUs, min(uint32(goruntime.NumCPU()), maxGuestVCPUs)),
			DefaultMaxMemorySize: orHost(cfg.VM.MaxMemoryMiB, uint32(min(memoryMiB(), math.MaxUint32))),
			Debug:                cfg.VM.Debug,
		},
		AgentType:     agent,
		AgentConfig:   sandbox.KataAgentConfig{Debug: cfg.VM.Debug},
		NetworkConfig: sandbox.NetworkConfig{InterworkingModel: model},
	}, nil
}

// maxGuestVCPUs is the most CPUs the guest kernel has (the lean kernel's
// CONFIG_NR_CPUS): the default bound of a pod VM's vCPUs.
const maxGuestVCPUs = 64

// orHost is v, or the host's h for 0.
func orHost(v, h uint32) uint32 {
	if v == 0 {
		return h
	}
	return v
}

func networkModel(name string) (sandbox.NetInterworkingModel, error) {
	m, err := cni.ParseModel(name)
	if err != nil {
		return 0, fmt.Errorf("vm.network_model: %w: want tcfilter, bridged or macvtap", err)
	}
	return sandbox.InterworkingModel(m)
}
