package runc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"k8s.io/klog/v2"

	"github.com/vc-cri/vc-cri/internal/atomicfile"
	"github.com/vc-cri/vc-cri/internal/exitcode"
	"github.com/vc-cri/vc-cri/internal/ids"
	"github.com/vc-cri/vc-cri/pkg/sandbox"
)

// containerRecord is a container as kept in its bundle's record.json.
// Its state is not in it but in conmon's files (see containerStatus).
type containerRecord struct {
	Config    sandbox.ContainerConfig
	CreatedAt time.Time
	// StartTime is set by StartContainer.
	StartTime time.Time
	Terminal  bool
}

func (r *Runtime) loadContainer(podID, id string) (*containerRecord, error) {
	if err := checkID("container", id); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(r.bundle(podID, id), "record.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("container %s of pod %s: %w", id, podID, sandbox.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	var rec containerRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("container %s: record: %w", id, err)
	}
	return &rec, nil
}

func (r *Runtime) saveContainer(podID string, rec *containerRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	d, err := atomicfile.Open(r.bundle(podID, rec.Config.ID))
	if err != nil {
		return err
	}
	return d.WriteFile("record.json", b, 0o600)
}

// containerStatus is the container's state from conmon's files: stopped
// once there is an exit file (or no monitor any more: after a reboot),
// running once started, ready before.
func (r *Runtime) containerStatus(podID string, rec *containerRecord) sandbox.ContainerStatus {
	bundle := r.bundle(podID, rec.Config.ID)
	st := sandbox.ContainerStatus{
		ID:          rec.Config.ID,
		StartTime:   rec.StartTime,
		RootFs:      rec.Config.RootFs,
		Annotations: rec.Config.Annotations,
	}
	exit, err := readExit(bundle)
	switch {
	case err == nil:
		st.State.State = sandbox.StateStopped
		st.ExitCode, st.FinishedAt, st.OOMKilled = exit.code, exit.at, exit.oom
	case !monitorAlive(bundle):
		// Its monitor ended without a word (killed, or a reboot).
		st.State.State = sandbox.StateStopped
		st.ExitCode = exitcode.Unknown
		st.FinishedAt = time.Now()
	case rec.StartTime.IsZero():
		st.State.State = sandbox.StateReady
	default:
		st.State.State = sandbox.StateRunning
	}
	if st.State.State != sandbox.StateStopped {
		if pid, err := readPidFile(filepath.Join(bundle, "pidfile")); err == nil {
			st.PID = pid
		}
	}
	if !st.FinishedAt.IsZero() && st.FinishedAt.Before(st.StartTime) {
		st.FinishedAt = st.StartTime
	}
	return st
}

// withContainer runs fn with the pod locked and the container's record
// loaded.
func (r *Runtime) withContainer(ctx context.Context, podID, id string, fn func(pod *podRecord, c *containerRecord) error) error {
	unlock, err := r.lockPod(ctx, podID)
	if err != nil {
		return err
	}
	defer unlock()
	pod, err := r.loadPod(podID)
	if err != nil {
		return err
	}
	c, err := r.loadContainer(podID, id)
	if err != nil {
		return err
	}
	return fn(pod, c)
}

func (r *Runtime) containerSnapshot(pod *podRecord, c *containerRecord) *Container {
	p := r.podSnapshot(pod)
	if sc, ok := p.GetContainer(c.Config.ID).(*Container); ok && sc != nil {
		return sc
	}
	return &Container{pod: p, rec: *c, status: r.containerStatus(pod.Config.ID, c)}
}

// CreateContainer creates the container in runc under its own conmon,
// in the pod's namespaces. It does not start it.
func (r *Runtime) CreateContainer(ctx context.Context, podID string, cfg sandbox.ContainerConfig) (_ sandbox.VCSandbox, _ sandbox.VCContainer, retErr error) {
	log := klog.FromContext(ctx).WithValues("pod", podID, "container", cfg.ID)
	if !ids.Valid(cfg.ID) || cfg.ID == podID {
		return nil, nil, fmt.Errorf("container ID %q: %w", cfg.ID, sandbox.ErrInvalidConfig)
	}
	unlock, err := r.lockPod(ctx, podID)
	if err != nil {
		return nil, nil, err
	}
	defer unlock()
	pod, err := r.loadPod(podID)
	if err != nil {
		return nil, nil, err
	}
	if s := r.podState(pod); s != sandbox.StateRunning {
		return nil, nil, fmt.Errorf("pod %s is %s: %w", podID, s, sandbox.ErrInvalidState)
	}
	infraPid, err := r.infraPid(podID)
	if err != nil {
		return nil, nil, err
	}
	spec, err := containerSpec(&pod.Config, infraPid, &cfg)
	if err != nil {
		return nil, nil, err
	}
	bundle := r.bundle(podID, cfg.ID)
	if err := os.Mkdir(bundle, 0o700); errors.Is(err, os.ErrExist) {
		return nil, nil, fmt.Errorf("container %s: %w", cfg.ID, sandbox.ErrAlreadyExists)
	} else if err != nil {
		return nil, nil, err
	}
	defer func() {
		if retErr != nil {
			r.removeContainer(context.WithoutCancel(ctx), podID, cfg.ID)
		}
	}()
	rec := &containerRecord{Config: cfg, CreatedAt: time.Now(), Terminal: spec.Process.Terminal}
	if err := r.saveContainer(podID, rec); err != nil {
		return nil, nil, err
	}
	if spec.Root.Path, err = bindRootfs(cfg.RootFs, bundle); err != nil {
		return nil, nil, fmt.Errorf("container %s: %w", cfg.ID, err)
	}
	if err := writeSpec(bundle, spec); err != nil {
		return nil, nil, err
	}
	name := cfg.ID
	if n := spec.Annotations["io.kubernetes.cri.container-name"]; n != "" {
		name = n
	}
	pid, err := r.startMonitor(ctx, monitorOptions{
		id: cfg.ID, name: name, bundle: bundle, logPath: cfg.LogPath,
		exitDir: filepath.Join(r.podDir(podID), "exits"), stdin: cfg.Cmd.Interactive, terminal: spec.Process.Terminal,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("container %s: %w", cfg.ID, err)
	}
	log.Info("Container created", "pid", pid)
	c := r.containerSnapshot(pod, rec)
	return c.pod, c, nil
}

// StartContainer starts a created container.
func (r *Runtime) StartContainer(ctx context.Context, podID, id string) (sandbox.VCContainer, error) {
	var out *Container
	err := r.withContainer(ctx, podID, id, func(pod *podRecord, c *containerRecord) error {
		if s := r.containerStatus(podID, c).State.State; s != sandbox.StateReady {
			return fmt.Errorf("container %s is %s: %w", id, s, sandbox.ErrInvalidState)
		}
		if _, err := r.runc(ctx, nil, "start", id); err != nil {
			return fmt.Errorf("container %s: %w", id, err)
		}
		c.StartTime = time.Now()
		if err := r.saveContainer(podID, c); err != nil {
			return err
		}
		klog.FromContext(ctx).Info("Container started", "pod", podID, "container", id)
		out = r.containerSnapshot(pod, c)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// StopContainer kills every process of the container and waits, bounded,
// for conmon to record the exit.
func (r *Runtime) StopContainer(ctx context.Context, podID, id string) (sandbox.VCContainer, error) {
	var out *Container
	err := r.withContainer(ctx, podID, id, func(pod *podRecord, c *containerRecord) error {
		r.killContainer(ctx, r.bundle(podID, id), id)
		r.dropExecs(podID, id)
		out = r.containerSnapshot(pod, c)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteContainer removes a container that is not running: from runc,
// and its bundle. A created one is killed first.
func (r *Runtime) DeleteContainer(ctx context.Context, podID, id string) (sandbox.VCContainer, error) {
	var out *Container
	err := r.withContainer(ctx, podID, id, func(pod *podRecord, c *containerRecord) error {
		switch r.containerStatus(podID, c).State.State {
		case sandbox.StateRunning:
			return fmt.Errorf("container %s is running, stop it first: %w", id, sandbox.ErrInvalidState)
		case sandbox.StateReady:
			r.killContainer(ctx, r.bundle(podID, id), id)
		}
		out = r.containerSnapshot(pod, c)
		return r.removeContainer(ctx, podID, id)
	})
	if err != nil {
		return nil, err
	}
	r.dropExecs(podID, id)
	klog.FromContext(ctx).Info("Container deleted", "pod", podID, "container", id)
	return out, nil
}

func (r *Runtime) removeContainer(ctx context.Context, podID, id string) error {
	if _, err := r.runc(ctx, nil, "delete", "--force", id); err != nil && !errNoContainer(err) {
		return fmt.Errorf("container %s: %w", id, err)
	}
	_ = os.Remove(filepath.Join(r.podDir(podID), "exits", id))
	if err := unbindRootfs(r.bundle(podID, id)); err != nil {
		return fmt.Errorf("container %s: %w", id, err)
	}
	return os.RemoveAll(r.bundle(podID, id))
}

// StatusContainer reports the container.
func (r *Runtime) StatusContainer(ctx context.Context, podID, id string) (sandbox.ContainerStatus, error) {
	if _, err := r.loadPod(podID); err != nil {
		return sandbox.ContainerStatus{}, err
	}
	c, err := r.loadContainer(podID, id)
	if err != nil {
		return sandbox.ContainerStatus{}, err
	}
	return r.containerStatus(podID, c), nil
}

// logReopenTimeout bounds the wait for conmon to make the new log file.
const logReopenTimeout = 10 * time.Second

// waitForFile waits until path exists.
func waitForFile(ctx context.Context, path string) error {
	ctx, cancel := context.WithTimeout(ctx, logReopenTimeout)
	defer cancel()
	for {
		_, err := os.Stat(path)
		if err == nil {
			return nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("log %s not reopened: %w", path, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// ReopenContainerLog has conmon reopen the container's log file, after
// kubelet rotated it.
func (r *Runtime) ReopenContainerLog(ctx context.Context, podID, id string) error {
	st, err := r.StatusContainer(ctx, podID, id)
	if err != nil {
		return err
	}
	if st.State.State == sandbox.StateStopped {
		return fmt.Errorf("container %s is stopped: %w", id, sandbox.ErrInvalidState)
	}
	c, err := r.loadContainer(podID, id)
	if err != nil {
		return err
	}
	if err := control(ctx, r.bundle(podID, id), "2 0 0"); err != nil {
		return err
	}
	// conmon reopens when it reads the message: kubelet, as critest,
	// looks for the new file as soon as this returns.
	return waitForFile(ctx, c.Config.LogPath)
}
