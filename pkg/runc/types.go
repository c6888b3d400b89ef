package runc

import (
	"context"
	"fmt"
	"maps"

	"github.com/vc-cri/vc-cri/pkg/sandbox"
)

// Pod is a snapshot of a pod as of the call that returned it.
type Pod struct {
	r          *Runtime // for SetAnnotations
	rec        podRecord
	containers []*Container
}

var _ sandbox.VCSandbox = (*Pod)(nil)

// ID returns the pod's ID.
func (p *Pod) ID() string { return p.rec.Config.ID }

// Annotations returns the annotation key, or an error naming it.
func (p *Pod) Annotations(key string) (string, error) {
	v, ok := p.rec.Config.Annotations[key]
	if !ok {
		return "", fmt.Errorf("annotation %q of pod %q: %w", key, p.ID(), sandbox.ErrNotFound)
	}
	return v, nil
}

// GetAnnotations returns a copy of the pod's annotations.
func (p *Pod) GetAnnotations() map[string]string { return maps.Clone(p.rec.Config.Annotations) }

// SetAnnotations adds the annotations and persists them.
func (p *Pod) SetAnnotations(annotations map[string]string) error {
	ctx := context.Background()
	unlock, err := p.r.lockPod(ctx, p.ID())
	if err != nil {
		return err
	}
	defer unlock()
	rec, err := p.r.loadPod(p.ID())
	if err != nil {
		return err
	}
	if rec.Config.Annotations == nil {
		rec.Config.Annotations = map[string]string{}
	}
	maps.Copy(rec.Config.Annotations, annotations)
	if err := p.r.savePod(rec); err != nil {
		return err
	}
	p.rec = *rec
	return nil
}

// GetAllContainers returns the pod's containers (those the snapshot has).
func (p *Pod) GetAllContainers() []sandbox.VCContainer {
	var cs []sandbox.VCContainer
	for _, c := range p.containers {
		cs = append(cs, c)
	}
	return cs
}

// GetContainer returns the container, or nil.
func (p *Pod) GetContainer(containerID string) sandbox.VCContainer {
	for _, c := range p.containers {
		if c.ID() == containerID {
			return c
		}
	}
	return nil
}

// Container is a snapshot of a container.
type Container struct {
	pod    *Pod
	rec    containerRecord
	status sandbox.ContainerStatus
}

var _ sandbox.VCContainer = (*Container)(nil)

// ID returns the container's ID.
func (c *Container) ID() string { return c.rec.Config.ID }

// GetAnnotations returns a copy of the container's annotations.
func (c *Container) GetAnnotations() map[string]string { return maps.Clone(c.rec.Config.Annotations) }

// GetPid returns the host PID of the container's process (0 before it
// is created or once recorded as stopped).
func (c *Container) GetPid() int { return c.status.PID }

// GetToken returns the token of the container's own process: its ID.
func (c *Container) GetToken() string { return c.ID() }

// Sandbox returns the container's pod.
func (c *Container) Sandbox() sandbox.VCSandbox { return c.pod }

// Process returns the container's own process.
func (c *Container) Process() sandbox.Process {
	return sandbox.Process{Token: c.ID(), Pid: c.GetPid(), StartTime: c.status.StartTime}
}
