// Package image pulls, stores and removes container images and prepares
// each container's root filesystem: a writable overlay of its image's
// layers. It is the logic behind vc-cri's CRI ImageService and knows no
// CRI wire types.
//
// Images and layers live in a go.podman.io/storage store (overlay driver);
// pulls go through go.podman.io/image/v5, configured by a
// containers-registries.conf(5) v2 file: mirrors, insecure (plain HTTP)
// registries, blocked registries and short names. Layer unpacking is
// storage's, which contains "..", absolute paths and symlinks inside the
// layer and honours whiteouts and opaque directories.
//
// Binaries that use this package must call
// go.podman.io/storage/pkg/reexec.Init() first thing in main (and in
// TestMain): storage unpacks layers in a re-executed child. They build
// with the tag containers_image_openpgp.
package image

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/image/v5/signature"
	"go.podman.io/image/v5/types"
	"go.podman.io/storage"
)

// Config configures a Service.
type Config struct {
	// Root holds images, layers and container layers (for example
	// /var/lib/vc-cri/storage).
	Root string
	// RunRoot holds the store's runtime state (for example
	// /run/vc-cri/storage).
	RunRoot string
	// Driver is the storage graph driver; "overlay" when empty.
	Driver string
	// DriverOptions are the driver's options, e.g. "overlay.mountopt=nodev".
	DriverOptions []string
	// RegistriesConf is a containers-registries.conf(5) v2 file; its drop-in
	// directory is RegistriesConf + ".d". Empty: the system's
	// (/etc/containers/registries.conf).
	RegistriesConf string
	// SignaturePolicy is a containers-policy.json(5) file; empty accepts
	// every image (CRI-O's default policy).
	SignaturePolicy string
	// AuthFile is a containers-auth.json(5) file with credentials used when
	// a pull carries none; empty: none.
	AuthFile string
	// MaxLayerSize, when positive, is the largest a layer may unpack to,
	// in bytes; a pull of a larger one fails with ErrLayerTooLarge.
	MaxLayerSize int64
}

// Service is the image store. Its methods are safe for concurrent use.
type Service struct {
	cfg    Config
	store  storage.Store
	policy *signature.Policy

	// flights deduplicates concurrent pulls; see pull.go.
	flights flightGroup

	// configs caches image configurations by image ID (they never change
	// for an ID). Guarded by mu.
	mu      sync.Mutex
	configs map[string]*imgspecv1.Image
}

// New opens (creating if needed) the store described by cfg.
func New(cfg Config) (*Service, error) {
	if cfg.Root == "" || cfg.RunRoot == "" {
		return nil, errors.New("image store needs Root and RunRoot")
	}
	if cfg.Driver == "" {
		cfg.Driver = "overlay"
	}
	if cfg.RegistriesConf != "" {
		if _, err := os.Stat(cfg.RegistriesConf); err != nil {
			return nil, fmt.Errorf("registries configuration: %w", err)
		}
	}
	policy := &signature.Policy{Default: []signature.PolicyRequirement{signature.NewPRInsecureAcceptAnything()}}
	if cfg.SignaturePolicy != "" {
		p, err := signature.NewPolicyFromFile(cfg.SignaturePolicy)
		if err != nil {
			return nil, fmt.Errorf("signature policy: %w", err)
		}
		policy = p
	}
	for _, d := range []string{cfg.Root, cfg.RunRoot} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	store, err := storage.GetStore(storage.StoreOptions{
		RunRoot:            cfg.RunRoot,
		GraphRoot:          cfg.Root,
		GraphDriverName:    cfg.Driver,
		GraphDriverOptions: driverOptions(cfg.Driver, cfg.DriverOptions),
	})
	if err != nil {
		return nil, fmt.Errorf("opening image store in %s: %w", cfg.Root, err)
	}
	return &Service{cfg: cfg, store: store, policy: policy, configs: map[string]*imgspecv1.Image{}}, nil
}

// driverOptions adds nosuid and nodev to the overlay's mount options:
// a container's root is shared with a guest that may own its kernel,
// and must not carry its setuid files or device nodes onto the host.
func driverOptions(driver string, opts []string) []string {
	if driver != "overlay" {
		return opts
	}
	out := slices.Clone(opts)
	for i, o := range out {
		k, v, _ := strings.Cut(o, "=")
		if k == "overlay.mountopt" || k == "overlay2.mountopt" || k == ".mountopt" {
			for _, want := range []string{"nodev", "nosuid"} {
				if !slices.Contains(strings.Split(v, ","), want) {
					v += "," + want
				}
			}
			out[i] = k + "=" + strings.TrimPrefix(v, ",")
			return out
		}
	}
	return append(out, "overlay.mountopt=nodev,nosuid")
}

// Close ends the pulls in progress and releases the store. Mounted
// container rootfs stay mounted.
func (s *Service) Close() error {
	s.flights.stop()
	_, err := s.store.Shutdown(false)
	return err
}

// Root is the store's root directory (for image filesystem usage).
func (s *Service) Root() string { return s.cfg.Root }

// systemContext is the go.podman.io/image configuration of one operation.
func (s *Service) systemContext(auth *types.DockerAuthConfig, registryToken string) *types.SystemContext {
	sc := &types.SystemContext{
		DockerRegistryUserAgent:   "vc-cri",
		BlobInfoCacheDir:          filepath.Join(s.cfg.Root, "cache"),
		AuthFilePath:              s.cfg.AuthFile,
		DockerAuthConfig:          auth,
		DockerBearerRegistryToken: registryToken,
	}
	if sc.AuthFilePath == "" {
		// No host credential files: only what the CRI request carries.
		sc.AuthFilePath = filepath.Join(s.cfg.Root, "no-auth.json")
	}
	if s.cfg.RegistriesConf != "" {
		sc.SystemRegistriesConfPath = s.cfg.RegistriesConf
		sc.SystemRegistriesConfDirPath = s.cfg.RegistriesConf + ".d"
	}
	return sc
}
