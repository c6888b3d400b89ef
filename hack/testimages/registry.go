package testimages

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// RegistryOptions configures a test registry.
type RegistryOptions struct {
	// PrivatePrefix, when not empty, makes every repository whose path
	// starts with it require HTTP basic auth with Username and Password.
	PrivatePrefix      string
	Username, Password string
	// Wrap, when set, wraps the registry's handler (tests use it to
	// corrupt or count responses).
	Wrap func(http.Handler) http.Handler
	// Logger receives the registry's request log; nil discards it.
	Logger *log.Logger
}

// Registry is an in-memory OCI registry serving plain HTTP.
type Registry struct {
	// Addr is the host:port the registry listens on.
	Addr string
	opts RegistryOptions
	srv  *http.Server
	done chan error
}

// StartRegistry serves an empty in-memory registry on addr
// ("127.0.0.1:0" picks a free port).
func StartRegistry(addr string, opts RegistryOptions) (*Registry, error) {
	l := opts.Logger
	if l == nil {
		l = log.New(io.Discard, "", 0)
	}
	var h http.Handler = registry.New(registry.Logger(l))
	if opts.PrivatePrefix != "" {
		h = basicAuth(h, opts)
	}
	if opts.Wrap != nil {
		h = opts.Wrap(h)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", addr, err)
	}
	r := &Registry{Addr: ln.Addr().String(), opts: opts, srv: &http.Server{Handler: h}, done: make(chan error, 1)}
	go func() { r.done <- r.srv.Serve(ln) }()
	return r, nil
}

// basicAuth demands credentials for repositories under opts.PrivatePrefix.
func basicAuth(next http.Handler, opts RegistryOptions) http.Handler {
	prefix := "/v2/" + strings.TrimPrefix(opts.PrivatePrefix, "/")
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		// Like public registries, the /v2/ ping challenges clients that
		// bring no (or wrong) credentials, so they learn to send them.
		if strings.HasPrefix(req.URL.Path, prefix) || req.URL.Path == "/v2/" {
			u, p, ok := req.BasicAuth()
			if !ok || u != opts.Username || p != opts.Password {
				w.Header().Set("WWW-Authenticate", `Basic realm="vc-cri test registry"`)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
				return
			}
		}
		next.ServeHTTP(w, req)
	})
}

// Push uploads images under every tag they carry.
func (r *Registry) Push(ctx context.Context, images ...Image) error {
	opts := []remote.Option{remote.WithContext(ctx)}
	if r.opts.PrivatePrefix != "" {
		opts = append(opts, remote.WithAuth(&authn.Basic{Username: r.opts.Username, Password: r.opts.Password}))
	}
	for _, img := range images {
		for _, tag := range img.Tags {
			ref, err := name.ParseReference(r.Addr+"/"+img.Repo+":"+tag, name.Insecure)
			if err != nil {
				return fmt.Errorf("reference for %s:%s: %w", img.Repo, tag, err)
			}
			if err := remote.Write(ref, img.Image, opts...); err != nil {
				return fmt.Errorf("pushing %s: %w", ref, err)
			}
		}
	}
	return nil
}

// Close stops the registry.
func (r *Registry) Close() error {
	if err := r.srv.Close(); err != nil {
		return err
	}
	return r.Wait()
}

// Wait blocks until the registry stops.
func (r *Registry) Wait() error {
	err := <-r.done
	r.done <- err
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
