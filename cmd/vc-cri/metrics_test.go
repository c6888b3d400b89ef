package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

type fakeLister struct{}

func (fakeLister) ListPodSandbox(context.Context, *runtime.ListPodSandboxRequest) (*runtime.ListPodSandboxResponse, error) {
	return &runtime.ListPodSandboxResponse{Items: []*runtime.PodSandbox{
		{State: runtime.PodSandboxState_SANDBOX_READY}, {State: runtime.PodSandboxState_SANDBOX_READY},
		{State: runtime.PodSandboxState_SANDBOX_NOTREADY},
	}}, nil
}

func (fakeLister) ListContainers(context.Context, *runtime.ListContainersRequest) (*runtime.ListContainersResponse, error) {
	return &runtime.ListContainersResponse{Containers: []*runtime.Container{
		{State: runtime.ContainerState_CONTAINER_RUNNING}, {State: runtime.ContainerState_CONTAINER_EXITED},
	}}, nil
}

func TestMetricsSourceCounts(t *testing.T) {
	proc := t.TempDir()
	procs := map[string]string{
		"100":  "/usr/bin/qemu-system-x86_64\x00-name\x00sandbox-a\x00-qmp\x00unix:/run/vc-cri/sandboxes/a/vm/qmp.sock\x00",
		"101":  "qemu-system-x86_64\x00-chardev\x00socket,path=/run/vc-cri/sandboxes/b/vm/agent.sock\x00",
		"102":  "/usr/bin/qemu-system-x86_64\x00-qmp\x00unix:/run/other/sandboxes/c/vm/qmp.sock\x00", // another daemon's
		"103":  "/bin/sh\x00-c\x00echo /run/vc-cri/sandboxes/\x00",                                   // not QEMU
		"self": "/usr/bin/qemu-system-x86_64\x00/run/vc-cri/sandboxes/x\x00",                         // not a PID
	}
	for pid, cmdline := range procs {
		if err := os.MkdirAll(filepath.Join(proc, pid), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(proc, pid, "cmdline"), []byte(cmdline), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c, err := metricsSource{svc: fakeLister{}, sandboxDir: "/run/vc-cri/sandboxes", procDir: proc}.Counts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c.Pods["ready"] != 2 || c.Pods["notready"] != 1 || c.Containers["running"] != 1 || c.Containers["exited"] != 1 || c.VMsRunning != 2 {
		t.Fatalf("counts %+v", c)
	}
}
