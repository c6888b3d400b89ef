package runc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/vc-cri/vc-cri/internal/atomicfile"
	"github.com/vc-cri/vc-cri/internal/ids"
	"github.com/vc-cri/vc-cri/pkg/sandbox"
)

// podRecord is a pod as kept in its pod.json.
type podRecord struct {
	Config    sandbox.SandboxConfig
	CreatedAt time.Time
	// Stopped: StopSandbox ended the pod. A pod whose infra exited by
	// itself is stopped too, without this.
	Stopped bool
}

// EndInfraExited is WatchSandbox's reason: the pod's infra process
// exited without StopSandbox.
const EndInfraExited = "InfraExited"

func (r *Runtime) loadPod(podID string) (*podRecord, error) {
	if err := checkID("pod", podID); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(r.podDir(podID), "pod.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("pod %s: %w", podID, sandbox.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	var rec podRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("pod %s: record: %w", podID, err)
	}
	if rec.Config.ID != podID {
		return nil, fmt.Errorf("pod %s: its record names %q", podID, rec.Config.ID)
	}
	return &rec, nil
}

func (r *Runtime) savePod(rec *podRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	d, err := atomicfile.Open(r.podDir(rec.Config.ID))
	if err != nil {
		return err
	}
	return d.WriteFile("pod.json", b, 0o600)
}

// infraPid is the PID of the pod's running infra process.
func (r *Runtime) infraPid(podID string) (int, error) {
	bundle := r.infraBundle(podID)
	if !monitorAlive(bundle) {
		return 0, fmt.Errorf("pod %s: its infra is not running: %w", podID, sandbox.ErrInvalidState)
	}
	return readPidFile(filepath.Join(bundle, "pidfile"))
}

// podState is the pod's state: running while its infra runs.
func (r *Runtime) podState(rec *podRecord) sandbox.StateString {
	if rec.Stopped {
		return sandbox.StateStopped
	}
	if _, err := readExit(r.infraBundle(rec.Config.ID)); err == nil || !monitorAlive(r.infraBundle(rec.Config.ID)) {
		return sandbox.StateStopped
	}
	return sandbox.StateRunning
}

// RunSandbox makes the pod's directory and starts its infra container.
// The pod's containers are created a posteriori: cfg.Containers must be
// empty.
func (r *Runtime) RunSandbox(ctx context.Context, cfg sandbox.SandboxConfig) (_ sandbox.VCSandbox, retErr error) {
	log := klog.FromContext(ctx).WithValues("pod", cfg.ID)
	if err := checkSandboxConfig(&cfg); err != nil {
		return nil, err
	}
	if len(cfg.Containers) > 0 {
		return nil, fmt.Errorf("pod %s: containers are created after the pod: %w", cfg.ID, sandbox.ErrInvalidConfig)
	}
	unlock, err := r.lockPod(ctx, cfg.ID)
	if err != nil {
		return nil, err
	}
	defer unlock()
	dir := r.podDir(cfg.ID)
	if err := os.Mkdir(dir, 0o700); errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("pod %s: %w", cfg.ID, sandbox.ErrAlreadyExists)
	} else if err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			r.removePod(context.WithoutCancel(ctx), &podRecord{Config: cfg})
		}
	}()
	rootfs := filepath.Join(dir, "rootfs")
	for _, d := range []string{rootfs, r.infraBundle(cfg.ID), r.containersDir(cfg.ID), filepath.Join(dir, "exits")} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return nil, err
		}
	}
	// The infra's root is searchable by the containers' users.
	if err := os.Chmod(rootfs, 0o755); err != nil {
		return nil, err
	}
	rec := &podRecord{Config: cfg, CreatedAt: time.Now()}
	if err := r.savePod(rec); err != nil {
		return nil, err
	}
	if err := writeSpec(r.infraBundle(cfg.ID), r.infraSpec(&cfg, rootfs)); err != nil {
		return nil, err
	}
	pid, err := r.startMonitor(ctx, monitorOptions{
		id: cfg.ID, name: "infra-" + cfg.ID, bundle: r.infraBundle(cfg.ID), exitDir: filepath.Join(dir, "exits"),
	})
	if err != nil {
		return nil, fmt.Errorf("pod %s: infra: %w", cfg.ID, err)
	}
	if _, err := r.runc(ctx, nil, "start", cfg.ID); err != nil {
		return nil, fmt.Errorf("pod %s: infra: %w", cfg.ID, err)
	}
	log.Info("Pod started", "infraPid", pid)
	return r.podSnapshot(rec), nil
}

func writeSpec(bundle string, spec any) error {
	b, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o600)
}

// StopSandbox kills the pod's containers and its infra and waits
// (bounded) for their monitors to record it. Stopping a stopped pod does
// nothing more.
func (r *Runtime) StopSandbox(ctx context.Context, podID string) (sandbox.VCSandbox, error) {
	unlock, err := r.lockPod(ctx, podID)
	if err != nil {
		return nil, err
	}
	defer unlock()
	rec, err := r.loadPod(podID)
	if err != nil {
		return nil, err
	}
	ctrIDs, err := r.containerIDs(podID)
	if err != nil {
		return nil, err
	}
	// Every kill first, then the waits: the waits overlap.
	bundles := map[string]string{podID: r.infraBundle(podID)}
	for _, id := range ctrIDs {
		bundles[id] = r.bundle(podID, id)
	}
	for id, b := range bundles {
		r.kill(ctx, b, id)
	}
	wctx, cancel := context.WithTimeout(ctx, stopWait)
	defer cancel()
	for id, b := range bundles {
		if err := waitMonitor(wctx, b); err != nil {
			klog.FromContext(ctx).Error(err, "Container's monitor did not record its exit", "pod", podID, "container", id)
		}
	}
	r.dropExecs(podID, "")
	if !rec.Stopped {
		rec.Stopped = true
		if err := r.savePod(rec); err != nil {
			return nil, err
		}
		klog.FromContext(ctx).Info("Pod stopped", "pod", podID)
	}
	return r.podSnapshot(rec), nil
}

// stopWait bounds how long a stop waits for a killed container's monitor
// to record its exit.
const stopWait = 10 * time.Second

// killContainer SIGKILLs every process of the container and waits, for
// stopWait at most, until its monitor has exited (and written its exit).
func (r *Runtime) killContainer(ctx context.Context, bundle, id string) {
	r.kill(ctx, bundle, id)
	wctx, cancel := context.WithTimeout(ctx, stopWait)
	defer cancel()
	if err := waitMonitor(wctx, bundle); err != nil {
		klog.FromContext(ctx).Error(err, "Container's monitor did not record its exit", "container", id)
	}
}

// kill SIGKILLs every process of the container, if its monitor runs.
func (r *Runtime) kill(ctx context.Context, bundle, id string) {
	if !monitorAlive(bundle) {
		return
	}
	if _, err := r.runc(ctx, nil, "kill", "--all", id, "KILL"); err != nil {
		// A created container's init is not in its cgroup yet for --all on
		// cgroup v1: kill it alone.
		if _, err2 := r.runc(ctx, nil, "kill", id, "KILL"); err2 != nil {
			klog.FromContext(ctx).V(2).Info("Cannot kill container", "container", id, "err", err, "err2", err2)
		}
	}
}

// DeleteSandbox stops the pod if need be and removes everything of it:
// its containers in runc, its cgroup, its directory.
func (r *Runtime) DeleteSandbox(ctx context.Context, podID string) (sandbox.VCSandbox, error) {
	if _, err := r.StopSandbox(ctx, podID); err != nil {
		return nil, err
	}
	unlock, err := r.lockPod(ctx, podID)
	if err != nil {
		return nil, err
	}
	defer unlock()
	rec, err := r.loadPod(podID)
	if err != nil {
		return nil, err
	}
	snap := r.podSnapshot(rec)
	if err := r.removePod(ctx, rec); err != nil {
		return nil, err
	}
	r.forgetLock(podID)
	klog.FromContext(ctx).Info("Pod deleted", "pod", podID)
	return snap, nil
}

// removePod removes the pod's containers from runc, its own cgroup and
// its directory; what fails is named in the error and left for a retry.
func (r *Runtime) removePod(ctx context.Context, rec *podRecord) error {
	podID := rec.Config.ID
	ctrIDs, _ := r.containerIDs(podID)
	var errs []error
	for _, id := range append(ctrIDs, podID) {
		if _, err := r.runc(ctx, nil, "delete", "--force", id); err != nil && !errNoContainer(err) {
			errs = append(errs, err)
		}
	}
	for _, id := range ctrIDs {
		if err := unbindRootfs(r.bundle(podID, id)); err != nil {
			errs = append(errs, err)
		}
	}
	if rec.Config.CgroupParent == "" {
		if err := removeCgroup(ownCgroup(podID)); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		if err := os.RemoveAll(r.podDir(podID)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeCgroup removes a cgroupfs directory the runtime made, in every
// hierarchy (cgroup v1) or the unified one, once runc removed its
// children.
func removeCgroup(path string) error {
	roots := []string{"/sys/fs/cgroup"}
	if entries, err := os.ReadDir("/sys/fs/cgroup"); err == nil {
		for _, e := range entries {
			roots = append(roots, filepath.Join("/sys/fs/cgroup", e.Name()))
		}
	}
	var errs []error
	for _, root := range roots {
		dir := filepath.Join(root, path)
		if err := unix.Rmdir(dir); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENOTDIR) {
			errs = append(errs, fmt.Errorf("remove cgroup %s: %w", dir, err))
		}
		// The runtime's parent, /vc-cri, is left: other pods share it.
	}
	return errors.Join(errs...)
}

// StatusSandbox reports the pod and its containers.
func (r *Runtime) StatusSandbox(ctx context.Context, podID string) (sandbox.SandboxStatus, error) {
	rec, err := r.loadPod(podID)
	if err != nil {
		return sandbox.SandboxStatus{}, err
	}
	return r.podStatus(rec), nil
}

func (r *Runtime) podStatus(rec *podRecord) sandbox.SandboxStatus {
	p := r.podSnapshot(rec)
	st := sandbox.SandboxStatus{
		ID:          rec.Config.ID,
		State:       sandbox.State{State: r.podState(rec)},
		Annotations: p.GetAnnotations(),
	}
	for _, c := range p.containers {
		st.ContainersStatus = append(st.ContainersStatus, c.status)
	}
	return st
}

// ListSandbox reports every pod of the state root.
func (r *Runtime) ListSandbox(ctx context.Context) ([]sandbox.SandboxStatus, error) {
	entries, err := os.ReadDir(r.podsDir)
	if err != nil {
		return nil, err
	}
	var out []sandbox.SandboxStatus
	for _, e := range entries {
		rec, err := r.loadPod(e.Name())
		if err != nil {
			// A pod being made or removed, or a broken one: not listed.
			klog.FromContext(ctx).V(2).Info("Pod not listed", "pod", e.Name(), "err", err)
			continue
		}
		out = append(out, r.podStatus(rec))
	}
	return out, nil
}

// podSnapshot is the pod with its containers as on disk now.
func (r *Runtime) podSnapshot(rec *podRecord) *Pod {
	p := &Pod{r: r, rec: *rec}
	ctrIDs, _ := r.containerIDs(rec.Config.ID)
	for _, id := range ctrIDs {
		crec, err := r.loadContainer(rec.Config.ID, id)
		if err != nil {
			continue
		}
		p.containers = append(p.containers, &Container{pod: p, rec: *crec, status: r.containerStatus(rec.Config.ID, crec)})
	}
	return p
}

// containerIDs are the IDs of the pod's containers, from their bundles.
func (r *Runtime) containerIDs(podID string) ([]string, error) {
	return ids.Dirs(r.containersDir(podID))
}

// WatchSandbox returns when the pod's infra process exits by itself
// (EndInfraExited), or ctx ends (ctx.Err()). A StopSandbox meanwhile
// ends the infra, which this then reports.
func (r *Runtime) WatchSandbox(ctx context.Context, podID string) (sandbox.SandboxEnd, error) {
	rec, err := r.loadPod(podID)
	if err != nil {
		return sandbox.SandboxEnd{}, err
	}
	if s := r.podState(rec); s != sandbox.StateRunning {
		return sandbox.SandboxEnd{}, fmt.Errorf("pod %s is %s, not running: %w", podID, s, sandbox.ErrInvalidState)
	}
	pid, err := r.infraPid(podID)
	if err != nil {
		return sandbox.SandboxEnd{}, err
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return sandbox.SandboxEnd{}, fmt.Errorf("pod %s: watch infra %d: %w", podID, pid, err)
	}
	defer unix.Close(fd)
	// The PID was the infra's when the pidfd was made only if its monitor
	// still runs and has no exit to report.
	if _, err := readExit(r.infraBundle(podID)); err == nil {
		return sandbox.SandboxEnd{Reason: EndInfraExited, At: time.Now()}, nil
	}
	if err := waitFd(ctx, fd); err != nil {
		return sandbox.SandboxEnd{}, err
	}
	return sandbox.SandboxEnd{Reason: EndInfraExited, At: time.Now()}, nil
}
