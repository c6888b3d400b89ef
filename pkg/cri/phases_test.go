package cri

import (
	"context"
	"errors"
	"slices"
	"testing"

	"go.opentelemetry.io/otel"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/vc-cri/vc-cri/pkg/tracing"
	"github.com/vc-cri/vc-cri/pkg/tracing/tracingtest"
)

// testSpans records every span of the test binary, under the provider
// the daemon installs (with the phases' processor): the provider is
// global, so it is installed once, and each test finds its own spans by
// the trace of a root span it starts.
var testSpans = tracingtest.InstallRecorder(tracing.NewPhaseProcessor())

// tracedCall runs fn as a traced caller would, with a logger of its own,
// and returns the names of the spans under its root and the one line fn
// logged with msg.
func tracedCall(t *testing.T, msg string, fn func(ctx context.Context)) ([]string, map[string]any) {
	t.Helper()
	var logs tracingtest.LogLines
	ctx, root := otel.Tracer("test").Start(klog.NewContext(context.Background(), logs.Logger()), t.Name())
	fn(ctx)
	root.End()
	names := tracingtest.NamesUnder(testSpans, root)
	return names, logs.Only(t, msg)
}

// wantPhases checks that the call made a span of each phase and logged
// its time, and that the line has the IDs given.
func wantPhases(t *testing.T, call string, spans []string, line map[string]any, ids map[string]string, phases ...string) {
	t.Helper()
	if !slices.Contains(spans, call) {
		t.Errorf("%s: no span of the call among %q", call, spans)
	}
	for _, p := range phases {
		if !slices.Contains(spans, p) {
			t.Errorf("%s: no span %q among %q", call, p, spans)
		}
	}
	for _, key := range append(append([]string{"total"}, phases...), "other") {
		if _, ok := line[key+"_ms"].(float64); !ok {
			t.Errorf("%s: %s_ms = %v in %v, want a number", call, key, line[key+"_ms"], line)
		}
	}
	for k, v := range ids {
		if line[k] != v {
			t.Errorf("%s: %s = %v in the line, want %s", call, k, line[k], v)
		}
	}
	if _, ok := line["err"]; ok {
		t.Errorf("%s: err in the line of a call that succeeded: %v", call, line)
	}
}

// TestCallPhases: RunPodSandbox, CreateContainer, StartContainer, Exec
// and ExecSync, on the mock hypervisor and the noop agent, trace their
// phases, pkg/sandbox's among them, and each logs one line with them
// all.
func TestCallPhases(t *testing.T) {
	t.Parallel()
	s, _ := newTestService(t, t.TempDir())
	var pod string
	spans, line := tracedCall(t, "Pod sandbox phases", func(ctx context.Context) {
		resp, err := s.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: podConfig("phases")})
		if err != nil {
			t.Fatal(err)
		}
		pod = resp.PodSandboxId
	})
	wantPhases(t, "RunPodSandbox", spans, line, map[string]string{"pod": pod},
		"pod_files", "cni", "share_setup", "host_network", "vm_start", "agent_dial", "guest_details", "guest_network", "state_save", "record_save")

	var ctr string
	spans, line = tracedCall(t, "Container create phases", func(ctx context.Context) {
		resp, err := s.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod, Config: containerConfig("c")})
		if err != nil {
			t.Fatal(err)
		}
		ctr = resp.ContainerId
	})
	wantPhases(t, "CreateContainer", spans, line, map[string]string{"container": ctr},
		"image_status", "rootfs_mount", "rootfs_share", "guest_create", "state_save", "record_save")

	spans, line = tracedCall(t, "Container start phases", func(ctx context.Context) {
		if _, err := s.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: ctr}); err != nil {
			t.Fatal(err)
		}
	})
	wantPhases(t, "StartContainer", spans, line, map[string]string{"pod": pod},
		"record_save", "output_attach", "guest_start", "state_save")

	spans, line = tracedCall(t, "ExecSync phases", func(ctx context.Context) {
		if _, err := s.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: ctr, Cmd: []string{"true"}, Timeout: 10}); err != nil {
			t.Fatal(err)
		}
	})
	wantPhases(t, "ExecSync", spans, line, nil, "exec_start", "output_attach", "exec_wait", "output_drain")

	spans, line = tracedCall(t, "Exec phases", func(ctx context.Context) {
		if err := (streamRuntime{s}).Exec(ctx, ctr, []string{"true"}, nil, nopCloser{&capped{}}, nil, false, nil); err != nil {
			t.Fatal(err)
		}
	})
	wantPhases(t, "Exec", spans, line, map[string]string{"container": ctr}, "exec_start", "output_attach", "exec_wait", "output_drain")
}

// TestFailedCallPhases: a call that fails logs its phases so far, and
// its error.
func TestFailedCallPhases(t *testing.T) {
	t.Parallel()
	s, f := newFakeService(t)
	f.fail("RunSandbox", "", errors.New("injected"))
	spans, line := tracedCall(t, "Pod sandbox phases", func(ctx context.Context) {
		if _, err := s.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: podConfig("fails")}); err == nil {
			t.Fatal("RunPodSandbox did not fail")
		}
	})
	if !slices.Contains(spans, "cni") {
		t.Errorf("no span cni among %q", spans)
	}
	if _, ok := line["cni_ms"].(float64); !ok {
		t.Errorf("cni_ms = %v in %v, want a number", line["cni_ms"], line)
	}
	if line["err"] == nil {
		t.Errorf("no err in the line of a failed call: %v", line)
	}
}
