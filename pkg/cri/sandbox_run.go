package cri

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/vc-cri/vc-cri/internal/rollback"
	"github.com/vc-cri/vc-cri/pkg/cni"
	"github.com/vc-cri/vc-cri/pkg/sandbox"
	"github.com/vc-cri/vc-cri/pkg/tracing"
)

// RunPodSandbox runs the pod on its handler (podHandler): a VM, or an
// infra container of the host, inside a network namespace that CNI
// configured, or in the host's network.
func (s *Service) RunPodSandbox(ctx context.Context, req *runtime.RunPodSandboxRequest) (_ *runtime.RunPodSandboxResponse, retErr error) {
	config := req.GetConfig()
	if err := validatePodConfig(config); err != nil {
		return nil, err
	}
	handler, hostNS, err := s.podHandler(config, req.GetRuntimeHandler())
	if err != nil {
		return nil, err
	}
	rt := s.runtimeOf(handler)
	id := newID()
	name := podName(config.Metadata)
	log := klog.LoggerWithValues(klog.FromContext(ctx), "pod", id)
	ctx = klog.NewContext(ctx, log)
	ctx, call := tracing.StartCall(ctx, tracer, "RunPodSandbox")
	defer func() { call.End(log, "Pod sandbox phases", retErr) }()
	if handler != req.GetRuntimeHandler() {
		log.Info("Pod shares the host's namespaces: running it as OS containers", "namespaces", namespaceNames(hostNS), "handler", handler)
	}
	if err := s.podNames.Reserve(name, id); err != nil {
		return nil, fmt.Errorf("pod sandbox %q: %w", name, err)
	}
	if err := s.intents.Add(id, intentRecord{Kind: intentPod, ID: id, At: time.Now()}); err != nil {
		s.podNames.Release(name)
		return nil, err
	}
	// Last, once the record is written or the steps undone.
	defer s.dropIntent(id)
	var undo rollback.Stack
	defer func() {
		if retErr != nil {
			undo.Run("id", id, "name", name)
			s.podNames.Release(name)
		}
	}()

	_, span := tracer.Start(ctx, "pod_files")
	err = s.writePodFiles(id, config)
	span.End()
	if err != nil {
		return nil, err
	}
	undo.Add("remove pod files", func(context.Context) error { return s.removePodDir(id) })
	s.crashPoint(crashPodFiles)

	// A pod in the host's network has no namespace of its own for CNI.
	result := &cni.Result{}
	if !slices.Contains(hostNS, specs.NetworkNamespace) {
		cniCtx, span := tracer.Start(ctx, "cni")
		result, err = s.opts.Network.Setup(cniCtx, podNetworkOf(id, config))
		span.End()
		if err != nil {
			return nil, fmt.Errorf("set up network of pod %q: %w", name, err)
		}
	}
	undo.Add("tear down pod", func(ctx context.Context) error {
		return s.teardownPod(ctx, rt, id, result.NetnsPath, slices.Contains(hostNS, specs.NetworkNamespace), nil)
	})
	s.crashPoint(crashPodNetwork)

	sbCfg := s.sandboxConfig(id, handler, config, result.NetnsPath)
	sbCfg.HostNamespaces = hostNS
	if _, err := rt.RunSandbox(ctx, sbCfg); err != nil {
		return nil, fmt.Errorf("run pod sandbox %q: %w", name, err)
	}
	undo.Add("delete sandbox", func(ctx context.Context) error {
		_, err := rt.DeleteSandbox(ctx, id)
		return err
	})
	s.crashPoint(crashPodSandbox)

	rec := podRecord{
		ID: id, Name: name, Config: config, State: runtime.PodSandboxState_SANDBOX_READY,
		CreatedAt: time.Now(), NetNSPath: result.NetnsPath, IPs: result.IPs(), Handler: req.GetRuntimeHandler(),
		Runtime: handler,
	}
	// NRI plugins hear of the pod before it is visible, and one that
	// connects meanwhile waits until it is (nri.go). Those told of it
	// are told of its end if it fails, theirs included.
	unblock := s.opts.NRI.BlockSync()
	defer unblock()
	undo.Add("tell NRI plugins the pod is removed", func(ctx context.Context) error {
		return s.opts.NRI.RemovePodSandbox(ctx, nriPod(rec))
	})
	_, span = tracer.Start(ctx, "nri")
	err = s.opts.NRI.RunPodSandbox(ctx, nriPod(rec))
	span.End()
	if err != nil {
		return nil, fmt.Errorf("pod sandbox %q: %w", name, err)
	}
	_, span = tracer.Start(ctx, "record_save")
	err = s.pods.Add(id, rec)
	span.End()
	if err != nil {
		return nil, err
	}
	unblock()
	s.crashPoint(crashPodRecord)
	s.watchPod(id, handler)
	log.Info("Pod sandbox running", "name", name, "handler", handler, "ips", result.IPs())
	return &runtime.RunPodSandboxResponse{PodSandboxId: id}, nil
}

func validatePodConfig(config *runtime.PodSandboxConfig) error {
	md := config.GetMetadata()
	if md == nil || md.Name == "" || md.Namespace == "" || md.Uid == "" {
		return invalidArgument("pod sandbox metadata needs a name, a namespace and a uid")
	}
	if len(config.Hostname) > maxHostname {
		return invalidArgument("hostname %q is longer than %d bytes", config.Hostname, maxHostname)
	}
	_, err := podUserns(config)
	return err
}

// podName is kubelet's unique name of a pod sandbox.
func podName(md *runtime.PodSandboxMetadata) string {
	return strings.Join([]string{md.Name, md.Namespace, md.Uid, fmt.Sprint(md.Attempt)}, "_")
}

func newID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func podNetworkOf(id string, config *runtime.PodSandboxConfig) cni.PodNetwork {
	pn := cni.PodNetwork{
		ID:        id,
		Name:      config.Metadata.Name,
		Namespace: config.Metadata.Namespace,
		UID:       config.Metadata.Uid,
	}
	for _, pm := range config.PortMappings {
		if pm.HostPort == 0 {
			continue
		}
		proto := strings.ToLower(pm.Protocol.String())
		pn.Ports = append(pn.Ports, cni.PortMapping{
			HostPort: pm.HostPort, ContainerPort: pm.ContainerPort, Protocol: proto, HostIP: pm.HostIp,
		})
	}
	return pn
}

// guestOverheadMiB is the memory a pod VM needs besides its containers:
// the guest kernel, the agent and page cache.
const guestOverheadMiB = 192

// sandboxConfig is the pod's sandbox: its handler's template sized for
// the pod. kubelet passes the sum of its containers' limits as the pod's
// resources; a VM gets that plus the guest's overhead, and never less
// than the template's size.
func (s *Service) sandboxConfig(id, handler string, config *runtime.PodSandboxConfig, netns string) sandbox.SandboxConfig {
	cfg := s.opts.Handlers[handler].Sandbox
	cfg.ID = id
	cfg.Hostname = podHostname(config)
	cfg.NetworkConfig.NetNSPath = netns
	cfg.Sysctls = config.GetLinux().GetSysctls()
	cfg.CgroupParent = config.GetLinux().GetCgroupParent()
	cfg.Annotations = map[string]string{
		"io.kubernetes.cri.sandbox-name":      config.Metadata.Name,
		"io.kubernetes.cri.sandbox-namespace": config.Metadata.Namespace,
		"io.kubernetes.cri.sandbox-uid":       config.Metadata.Uid,
	}
	size := podVMSize(cfg, config.GetLinux().GetResources())
	if size.Memory > 0 {
		cfg.VMConfig.Memory = size.Memory
	}
	if size.VCPUs > 0 {
		cfg.VMConfig.VCPUs = size.VCPUs
	}
	return cfg
}

// podVMSize is the VM size of a pod whose containers' limits sum to res
// (kubelet's pod resources): the memory limit plus the guest's overhead,
// ceil(quota/period) vCPUs, never less than the handler's template tmpl.
// A resource res does not limit is zero: the template's, or as it is.
func podVMSize(tmpl sandbox.SandboxConfig, res *runtime.LinuxContainerResources) sandbox.Resources {
	var size sandbox.Resources
	if limit := res.GetMemoryLimitInBytes(); limit > 0 {
		size.Memory = max(uint(limit>>20)+guestOverheadMiB, tmpl.VMConfig.Memory, uint(tmpl.HypervisorConfig.MemorySize))
	}
	if quota, period := res.GetCpuQuota(), res.GetCpuPeriod(); quota > 0 && period > 0 {
		size.VCPUs = max(uint((quota+period-1)/period), tmpl.VMConfig.VCPUs, uint(tmpl.HypervisorConfig.NumVCPUs))
	}
	return size
}

// writePodFiles writes the hostname, hosts and resolv.conf files the
// pod's containers get.
func (s *Service) writePodFiles(id string, config *runtime.PodSandboxConfig) error {
	dir := s.podDir(id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	hostname := podHostname(config)
	hosts := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
	files := map[string]string{
		"hostname":    hostname + "\n",
		"hosts":       hosts,
		"resolv.conf": resolvConf(config.GetDnsConfig()),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// maxHostname is the longest hostname Linux takes.
const maxHostname = 64

// podHostname is the pod's hostname, or its name cut to a DNS label when
// kubelet gives none.
func podHostname(config *runtime.PodSandboxConfig) string {
	if config.Hostname != "" {
		return config.Hostname
	}
	name := config.Metadata.Name
	if len(name) > 63 {
		name = strings.TrimRight(name[:63], "-.")
	}
	return name
}

func resolvConf(dns *runtime.DNSConfig) string {
	var b strings.Builder
	for _, s := range dns.GetServers() {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(dns.GetSearches()) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(dns.GetSearches(), " "))
	}
	if len(dns.GetOptions()) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(dns.GetOptions(), " "))
	}
	return b.String()
}
