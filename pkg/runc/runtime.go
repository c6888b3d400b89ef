// Package runc runs a pod's containers as OS containers of the host, with
// runc and one conmon per container, as CRI-O does: the runtime handler
// for pods that must share the host's namespaces (hostNetwork, hostPID,
// hostIPC), which a pod VM cannot.
//
// A pod is an infra container (vc-pause) holding the pod's namespaces;
// its containers join them. conmon monitors each container, writes its
// CRI log and exit file, and serves its stdio on an attach socket, so
// containers outlive the daemon. Everything lives under the state root,
// and a Runtime made again on it finds every pod and container there:
//
//	StateRoot/runc-state/            runc --root
//	StateRoot/pods/POD/pod.json      the pod's record
//	StateRoot/pods/POD/rootfs/       the infra's empty read-only root
//	StateRoot/pods/POD/infra/        the infra's bundle (runc ID = POD)
//	StateRoot/pods/POD/containers/C/ a container's bundle and record
//	StateRoot/pods/POD/exits/        conmon's exit directory
//
// A bundle holds config.json, record.json (containers), and conmon's
// files: pidfile, conmon.pid, exit, oom, attach (socket), ctl (fifo).
// Exec processes are the daemon's children and die with it.
//
// Only the cgroupfs cgroup manager is supported.
package runc

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	"github.com/vc-cri/vc-cri/internal/ids"
	"github.com/vc-cri/vc-cri/pkg/sandbox"
)

// Config configures a Runtime.
type Config struct {
	// StateRoot holds everything of the pods, runc's state too.
	StateRoot string
	// Runc, Conmon and Pause are the paths of runc, conmon and vc-pause.
	Runc, Conmon, Pause string
	// CgroupManager must be "" or "cgroupfs": systemd is not supported.
	CgroupManager string
}

// Runtime runs pods of OS containers. It is safe for concurrent use.
type Runtime struct {
	cfg      Config // set by New, never changed
	runcRoot string
	podsDir  string

	mu sync.Mutex
	// podLocks serialise the changes of each pod (guarded by mu): a pod's
	// record and its containers' are written only with its lock held.
	podLocks map[string]chan struct{}
	// execs are the exec processes by token (guarded by mu).
	execs map[string]*execProcess
}

// New returns a Runtime on cfg.StateRoot, made if need be.
func New(cfg Config) (*Runtime, error) {
	if cfg.CgroupManager != "" && cfg.CgroupManager != "cgroupfs" {
		return nil, fmt.Errorf("cgroup manager %q: only cgroupfs is supported: %w", cfg.CgroupManager, sandbox.ErrInvalidConfig)
	}
	if cfg.StateRoot == "" || !filepath.IsAbs(cfg.StateRoot) {
		return nil, fmt.Errorf("state root %q is not an absolute path: %w", cfg.StateRoot, sandbox.ErrInvalidConfig)
	}
	for name, p := range map[string]string{"runc": cfg.Runc, "conmon": cfg.Conmon, "pause": cfg.Pause} {
		st, err := os.Stat(p)
		if err != nil || !st.Mode().IsRegular() || st.Mode()&0o111 == 0 {
			return nil, fmt.Errorf("%s %q is not an executable: %w", name, p, sandbox.ErrInvalidConfig)
		}
	}
	r := &Runtime{
		cfg:      cfg,
		runcRoot: filepath.Join(cfg.StateRoot, "runc-state"),
		podsDir:  filepath.Join(cfg.StateRoot, "pods"),
		podLocks: map[string]chan struct{}{},
		execs:    map[string]*execProcess{},
	}
	for _, d := range []string{r.runcRoot, r.podsDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func checkID(kind, id string) error {
	if !ids.Valid(id) {
		return fmt.Errorf("%s ID %q: %w", kind, id, sandbox.ErrNotFound)
	}
	return nil
}

func (r *Runtime) podDir(podID string) string { return filepath.Join(r.podsDir, podID) }

func (r *Runtime) infraBundle(podID string) string { return filepath.Join(r.podDir(podID), "infra") }

func (r *Runtime) containersDir(podID string) string {
	return filepath.Join(r.podDir(podID), "containers")
}

func (r *Runtime) bundle(podID, containerID string) string {
	return filepath.Join(r.containersDir(podID), containerID)
}

// lockPod takes the pod's lock, or fails when ctx ends first.
func (r *Runtime) lockPod(ctx context.Context, podID string) (unlock func(), err error) {
	r.mu.Lock()
	l, ok := r.podLocks[podID]
	if !ok {
		l = make(chan struct{}, 1)
		r.podLocks[podID] = l
	}
	r.mu.Unlock()
	select {
	case l <- struct{}{}:
		return func() { <-l }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("pod %s is busy: %w", podID, ctx.Err())
	}
}

// forgetLock drops the lock of a deleted pod; the caller holds it, and
// whoever waits for it finds the pod gone.
func (r *Runtime) forgetLock(podID string) {
	r.mu.Lock()
	delete(r.podLocks, podID)
	r.mu.Unlock()
}

// defaultTimeout bounds every runc and conmon call whose context has no
// deadline.
const defaultTimeout = 30 * time.Second

func withDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, defaultTimeout)
}

// maxStderr bounds the stderr a failed command's error carries.
const maxStderr = 4 << 10

// tailBuffer keeps the last maxStderr bytes written to it.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > maxStderr {
		t.b = t.b[len(t.b)-maxStderr:]
	}
	return len(p), nil
}

// maxOutput bounds the stdout read from runc (state, events --stats).
const maxOutput = 1 << 20

// limitBuffer keeps the first maxOutput bytes written to it.
type limitBuffer struct{ b []byte }

func (l *limitBuffer) Write(p []byte) (int, error) {
	if room := maxOutput - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// runc runs runc with the runtime's root and args, under ctx's deadline
// (or defaultTimeout), and returns its stdout.
func (r *Runtime) runc(ctx context.Context, stdin []byte, args ...string) ([]byte, error) {
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.cfg.Runc, append([]string{"--root", r.runcRoot}, args...)...)
	var stdout limitBuffer
	var stderr tailBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		return stdout.b, fmt.Errorf("runc %s: %w: %s", args[0], err, stderr.b)
	}
	return stdout.b, nil
}

// errNoContainer tells whether runc's error says the container does not
// exist (any more).
func errNoContainer(err error) bool {
	return err != nil && noContainer.MatchString(err.Error())
}

var noContainer = regexp.MustCompile(`does not exist|container .* not found`)
