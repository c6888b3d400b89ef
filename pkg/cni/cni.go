// Package cni gives each pod sandbox a network namespace configured by
// the CNI plugins of the node's conflist (libcni), and joins the pod's CNI
// interface to the tap device of the pod's VM inside that namespace with
// one of the virtcontainers interworking models (see Model).
//
// The Manager keeps no state of its own: what CNI DEL needs comes from
// libcni's result cache, so a restarted daemon tears down pods set up by
// its predecessor.
package cni

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	"k8s.io/klog/v2"
)

// IfName is the name of the pod's interface inside its netns, and of the
// guest NIC, as Kubernetes expects.
const IfName = "eth0"

// Defaults for Config.
const (
	DefaultConfDir  = "/etc/cni/net.d"
	DefaultNetnsDir = "/run/netns"
)

// DefaultBinDirs are where Debian's containernetworking-plugins and the
// upstream release tarball put the plugins.
var DefaultBinDirs = []string{"/usr/lib/cni", "/opt/cni/bin"}

// Sentinel errors, tested with errors.Is. Each wraps its kind of
// github.com/containerd/errdefs: a node without a network configuration
// is a failed precondition, the rest are invalid arguments.
var (
	ErrNoConfig     = fmt.Errorf("no valid CNI network configuration: %w", errdefs.ErrFailedPrecondition)
	ErrInvalidModel = fmt.Errorf("invalid interworking model: %w", errdefs.ErrInvalidArgument)
	ErrInvalidNetns = fmt.Errorf("invalid network namespace: %w", errdefs.ErrInvalidArgument)
	ErrInvalidPodID = fmt.Errorf("invalid pod ID: %w", errdefs.ErrInvalidArgument)
)

// pluginError gives a plugin's error (a *types.Error, by the CNI
// specification's codes) its errdefs kind: "try again later" and "not
// available" are Unavailable, a configuration the plugin cannot take is
// the node's FailedPrecondition. Any other stays as it is.
func pluginError(err error) error {
	var pe *types.Error
	if !errors.As(err, &pe) {
		return err
	}
	switch pe.Code {
	case types.ErrTryAgainLater, types.ErrPluginNotAvailable:
		return fmt.Errorf("%w: %w", err, errdefs.ErrUnavailable)
	case types.ErrIncompatibleCNIVersion, types.ErrUnsupportedField, types.ErrDecodingFailure, types.ErrInvalidNetworkConfig:
		return fmt.Errorf("%w: %w", err, errdefs.ErrFailedPrecondition)
	}
	return err
}

// cleanupTimeout bounds rollbacks, which run under a fresh context because
// the request's may already be cancelled.
const cleanupTimeout = 30 * time.Second

// Config locates the CNI configuration, the plugins and the namespaces.
// Empty fields take the defaults.
type Config struct {
	ConfDir string
	BinDirs []string
	// NetnsDir holds the pods' netns bind mounts, named vc-<pod ID>.
	NetnsDir string
	// CacheDir is libcni's result cache, which DEL reads; empty means
	// libcni's default, /var/lib/cni.
	CacheDir string
}

// Manager runs the CNI plugins for pods. It is safe for concurrent use:
// every call reloads the conflist and keeps nothing in memory.
type Manager struct {
	confDir  string
	netnsDir string
	cni      *libcni.CNIConfig
}

// New returns a Manager for cfg.
func New(cfg Config) *Manager {
	if cfg.ConfDir == "" {
		cfg.ConfDir = DefaultConfDir
	}
	if len(cfg.BinDirs) == 0 {
		cfg.BinDirs = DefaultBinDirs
	}
	if cfg.NetnsDir == "" {
		cfg.NetnsDir = DefaultNetnsDir
	}
	return &Manager{
		confDir:  cfg.ConfDir,
		netnsDir: cfg.NetnsDir,
		cni:      libcni.NewCNIConfigWithCacheDir(cfg.BinDirs, cfg.CacheDir, nil),
	}
}

// PodNetwork describes the pod whose network is set up.
type PodNetwork struct {
	// ID is the sandbox ID: the CNI container ID and the netns name.
	ID        string
	Name      string
	Namespace string
	UID       string
	Ports     []PortMapping
}

// PortMapping is a hostPort, served by the portmap plugin.
type PortMapping struct {
	HostPort      int32  `json:"hostPort"`
	ContainerPort int32  `json:"containerPort"`
	Protocol      string `json:"protocol"` // tcp, udp or sctp
	HostIP        string `json:"hostIP,omitempty"`
}

// Setup creates the pod's netns and runs CNI ADD in it. On error nothing
// is left behind.
func (m *Manager) Setup(ctx context.Context, pod PodNetwork) (_ *Result, retErr error) {
	if err := checkPodID(pod.ID); err != nil {
		return nil, err
	}
	list, err := m.conflist()
	if err != nil {
		return nil, err
	}
	nsPath := m.NetnsPath(pod.ID)
	if err := createNetns(nsPath); err != nil {
		return nil, fmt.Errorf("failed to create netns for pod %s: %w", pod.ID, err)
	}
	defer func() {
		if retErr == nil {
			return
		}
		cctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		if err := m.Teardown(cctx, pod.ID, nsPath); err != nil {
			klog.ErrorS(err, "Cannot roll back pod network", "pod", pod.ID)
		}
	}()

	rt := runtimeConf(pod, nsPath)
	res, err := m.cni.AddNetworkList(ctx, list, rt)
	if err != nil {
		return nil, fmt.Errorf("failed to add pod %s to network %s: %w", pod.ID, list.Name, pluginError(err))
	}
	result, err := convertResult(res, nsPath)
	if err != nil {
		return nil, fmt.Errorf("bad result of network %s for pod %s: %w", list.Name, pod.ID, err)
	}
	klog.InfoS("Pod network set up", "pod", pod.ID, "network", list.Name, "netns", nsPath, "ips", result.IPs())
	return result, nil
}

// Teardown runs CNI DEL for the pod and removes its netns. It is
// idempotent: it succeeds when called again or after the netns is gone.
// An empty netnsPath means the pod's default path.
//
// Disconnect first: with Bridged and MacVtap the pod's addresses are off
// the CNI interface until then, and the bridge plugin finds its ipMasq
// rule by them. For the same reason, that rule outlives a netns removed
// behind our back (Debian's bridge plugin 1.1.1); IPs, portmap rules and
// the veth do not.
func (m *Manager) Teardown(ctx context.Context, podID, netnsPath string) error {
	if err := checkPodID(podID); err != nil {
		return err
	}
	if netnsPath == "" {
		netnsPath = m.NetnsPath(podID)
	}
	// Refuse to unmount anything that is not one of our namespaces.
	if filepath.Dir(netnsPath) != filepath.Clean(m.netnsDir) {
		return fmt.Errorf("%w: %s is not in %s", ErrInvalidNetns, netnsPath, m.netnsDir)
	}
	// Plugins tolerate an empty netns on DEL, but not a path that no
	// longer is a namespace.
	delNetns := netnsPath
	if _, err := os.Stat(netnsPath); errors.Is(err, os.ErrNotExist) {
		delNetns = ""
	}
	if err := m.del(ctx, podID, delNetns); err != nil {
		return err
	}
	if err := removeNetns(netnsPath); err != nil {
		return fmt.Errorf("failed to remove netns of pod %s: %w", podID, err)
	}
	klog.InfoS("Pod network torn down", "pod", podID, "netns", netnsPath)
	return nil
}

// del runs DEL with the configuration and arguments cached by ADD (the
// conflist may have changed since, and portmap needs the same port
// mappings to find its rules); without a cache entry, with the current
// conflist, because DEL must still release whatever may be left.
func (m *Manager) del(ctx context.Context, podID, netnsPath string) error {
	atts, err := m.cni.GetCachedAttachments(podID)
	if err != nil {
		return fmt.Errorf("failed to read CNI cache of pod %s: %w", podID, err)
	}
	for _, att := range atts {
		list, err := libcni.NetworkConfFromBytes(att.Config)
		if err != nil {
			return fmt.Errorf("bad cached CNI config of pod %s: %w", podID, err)
		}
		rt := &libcni.RuntimeConf{
			ContainerID:    podID,
			NetNS:          netnsPath,
			IfName:         att.IfName,
			Args:           att.CniArgs,
			CapabilityArgs: att.CapabilityArgs,
		}
		if err := m.cni.DelNetworkList(ctx, list, rt); err != nil {
			return fmt.Errorf("failed to delete pod %s from network %s: %w", podID, list.Name, pluginError(err))
		}
	}
	if len(atts) > 0 {
		return nil
	}
	list, err := m.conflist()
	if errors.Is(err, ErrNoConfig) {
		klog.InfoS("No CNI cache entry nor config: nothing to delete", "pod", podID)
		return nil
	}
	if err != nil {
		return err
	}
	rt := runtimeConf(PodNetwork{ID: podID}, netnsPath)
	if err := m.cni.DelNetworkList(ctx, list, rt); err != nil {
		return fmt.Errorf("failed to delete pod %s from network %s: %w", podID, list.Name, pluginError(err))
	}
	return nil
}

// Check runs CNI CHECK for a pod set up by Setup. Debian's portmap
// (1.1.1) fails CHECK for IPv4-only pods with port mappings, looking for
// an ip6tables chain it never made.
func (m *Manager) Check(ctx context.Context, pod PodNetwork, netnsPath string) error {
	if err := checkPodID(pod.ID); err != nil {
		return err
	}
	list, err := m.conflist()
	if err != nil {
		return err
	}
	if err := m.cni.CheckNetworkList(ctx, list, runtimeConf(pod, netnsPath)); err != nil {
		return fmt.Errorf("check of pod %s in network %s failed: %w", pod.ID, list.Name, pluginError(err))
	}
	return nil
}

// Status returns nil when a valid conflist exists and all of its plugins
// are installed and speak its CNI version: CRI's NetworkReady.
func (m *Manager) Status(ctx context.Context) error {
	list, err := m.conflist()
	if err != nil {
		return err
	}
	if _, err := m.cni.ValidateNetworkList(ctx, list); err != nil {
		return fmt.Errorf("network %s is not usable: %w", list.Name, err)
	}
	return nil
}

// NetnsPath is where Setup mounts the netns of the pod.
func (m *Manager) NetnsPath(podID string) string {
	return filepath.Join(m.netnsDir, "vc-"+podID)
}

// checkPodID rejects IDs that would escape the netns directory or break
// CNI_ARGS.
func checkPodID(id string) error {
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, "/;=\x00") {
		return fmt.Errorf("%w: %q", ErrInvalidPodID, id)
	}
	return nil
}

// runtimeConf is what a pod passes to the plugins. K8S_POD_* are the
// arguments kubelet passes; IgnoreUnknown keeps plugins that do not know
// them from failing.
func runtimeConf(pod PodNetwork, netnsPath string) *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{
		ContainerID: pod.ID,
		NetNS:       netnsPath,
		IfName:      IfName,
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", pod.Namespace},
			{"K8S_POD_NAME", pod.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", pod.ID},
			{"K8S_POD_UID", pod.UID},
		},
	}
	if len(pod.Ports) > 0 {
		rt.CapabilityArgs = map[string]any{"portMappings": pod.Ports}
	}
	return rt
}
