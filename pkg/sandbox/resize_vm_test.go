package sandbox_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	vc "github.com/vc-cri/vc-cri/pkg/sandbox"
)

func limits(quota int64, memMiB int64) specs.LinuxResources {
	period := uint64(100000)
	mem := memMiB << 20
	return specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: &quota, Period: &period}, Memory: &specs.LinuxMemory{Limit: &mem}}
}

// TestResizeInVM, in a real guest: a running container's CPU and memory
// limits go up and down, twice the same, with no restart; the pod VM grows
// by a vCPU and by 256 MiB, the guest seeing both; a shrink that would
// take memory the guest uses, and a grow beyond the VM's room, are
// refused and leave everything as it was; then it shrinks back. It logs
// how long the hot-plug of a vCPU and the grow of 256 MiB took. It runs
// on a cold-booted VM and on one started from a template.
func TestResizeInVM(t *testing.T) {
	t.Run("cold", func(t *testing.T) { resizeInVM(t, false) })
	t.Run("template", func(t *testing.T) { resizeInVM(t, true) })
}

func resizeInVM(t *testing.T, fromTemplate bool) {
	ctr := vc.ContainerConfig{
		ID: "app", RootFs: containerRootfs,
		Cmd:       vc.Cmd{Args: []string{"sleep", "100000"}, Envs: []vc.EnvVar{{Var: "PATH", Value: "/bin:/usr/bin"}}},
		Resources: limits(50000, 64),
		Mounts: []vc.Mount{
			// The guest's cgroups, to read the container's limits, and
			// memory of the guest's to fill.
			{Source: "cgroup", Destination: "/sys/fs/cgroup", Type: "cgroup2"},
			{Source: "tmpfs", Destination: "/fill", Type: "tmpfs", Options: []string{"size=400m"}},
		},
	}
	cfg := qemuConfig(t, ctr)
	cfg.HypervisorConfig.NumVCPUs, cfg.HypervisorConfig.MemorySize = 1, 256
	cfg.HypervisorConfig.DefaultMaxVCPUs, cfg.HypervisorConfig.DefaultMaxMemorySize = 2, 768
	r, bg := vc.NewTestRuntime(t), context.Background()
	if fromTemplate {
		r = vc.NewTestRuntime(t, vc.WithTemplates(t.TempDir()))
		if err := r.PrepareTemplate(cfg, 0); err != nil {
			t.Fatalf("PrepareTemplate: %v", err)
		}
		r.WaitTemplates()
	}
	s, err := r.RunSandbox(bg, cfg)
	if err != nil {
		t.Fatalf("RunSandbox: %v", err)
	}
	defer r.DeleteSandbox(bg, s.ID())
	if st, err := r.StatusSandbox(bg, s.ID()); err != nil || (st.Template != "") != fromTemplate {
		t.Fatalf("sandbox from template %q (%v), want one: %v", st.Template, err, fromTemplate)
	}
	ctx, cancel := context.WithTimeout(bg, 5*time.Minute)
	defer cancel()
	sh := func(script string) string {
		return strings.TrimSpace(shIn(ctx, t, r, s.ID(), "app", script, ctr.Cmd.Envs))
	}
	// The container's init (sleep) is PID 1 of its namespace: its start
	// time tells a restart.
	started := sh("cut -d' ' -f22 /proc/1/stat")
	cgroup := func() string {
		return sh("d=/sys/fs/cgroup$(cut -d: -f3 /proc/self/cgroup); cat $d/cpu.max $d/memory.max | tr '\\n' ' '")
	}
	if got, want := cgroup(), "50000 100000 67108864"; got != want {
		t.Fatalf("cgroup at start %q, want %q", got, want)
	}

	// Container limits up, the same again, down.
	for _, step := range []struct {
		quota, memMiB int64
		want          string
	}{
		{150000, 512, "150000 100000 536870912"},
		{150000, 512, "150000 100000 536870912"},
		{20000, 32, "20000 100000 33554432"},
	} {
		if err := r.UpdateContainer(ctx, s.ID(), "app", limits(step.quota, step.memMiB)); err != nil {
			t.Fatalf("UpdateContainer(%d, %d MiB): %v", step.quota, step.memMiB, err)
		}
		if got := cgroup(); got != step.want {
			t.Fatalf("cgroup after UpdateContainer(%d, %d MiB): %q, want %q", step.quota, step.memMiB, got, step.want)
		}
		if got := sh("cut -d' ' -f22 /proc/1/stat"); got != started {
			t.Fatalf("the container restarted: its init started at %s, then %s", started, got)
		}
	}
	// Room for the memory to be filled below.
	if err := r.UpdateContainer(ctx, s.ID(), "app", limits(100000, 1024)); err != nil {
		t.Fatal(err)
	}

	guest := func() (cpus string, memMiB int) {
		t.Helper()
		out := strings.Fields(sh("cat /sys/devices/system/cpu/online; grep MemTotal /proc/meminfo"))
		if len(out) != 4 {
			t.Fatalf("guest said %q", out)
		}
		kb, err := strconv.Atoi(out[2])
		if err != nil {
			t.Fatal(err)
		}
		return out[0], kb >> 10
	}
	size := func() vc.Resources {
		t.Helper()
		st, err := r.StatusSandbox(ctx, s.ID())
		if err != nil {
			t.Fatal(err)
		}
		return st.Size
	}
	resize := func(want vc.Resources) (vc.Resources, time.Duration, error) {
		start := time.Now()
		got, err := r.ResizeSandbox(ctx, s.ID(), want)
		return got, time.Since(start), err
	}
	cpus0, mem0 := guest()
	if cpus0 != "0" {
		t.Fatalf("guest CPUs online at boot: %s", cpus0)
	}

	// A vCPU, then 256 MiB.
	got, cpuTime, err := resize(vc.Resources{VCPUs: 2})
	if err != nil || got != (vc.Resources{VCPUs: 2, Memory: 256}) {
		t.Fatalf("grow by a vCPU: %+v, %v", got, err)
	}
	got, memTime, err := resize(vc.Resources{Memory: 512})
	if err != nil || got != (vc.Resources{VCPUs: 2, Memory: 512}) {
		t.Fatalf("grow by 256 MiB: %+v, %v", got, err)
	}
	t.Logf("figures: vCPU hot-plug %v, memory grow of 256 MiB %v", cpuTime.Round(time.Millisecond), memTime.Round(time.Millisecond))
	cpus, mem := guest()
	if cpus != "0-1" || mem != mem0+256 {
		t.Fatalf("after the grow the guest has CPUs %s and %d MiB, want 0-1 and %d", cpus, mem, mem0+256)
	}
	if got := sh("nproc"); got != "2" {
		t.Fatalf("nproc in the container: %s", got)
	}

	// Refused: nothing changes.
	sh("dd if=/dev/zero of=/fill/fill bs=1M count=300 2>/dev/null")
	for _, tc := range []struct {
		name string
		ask  vc.Resources
		kind error
	}{
		{"a shrink below what the guest uses", vc.Resources{VCPUs: 1, Memory: 256}, errdefs.ErrFailedPrecondition},
		{"a grow beyond the VM's room", vc.Resources{VCPUs: 3, Memory: 600}, errdefs.ErrResourceExhausted},
	} {
		if _, _, err := resize(tc.ask); !errors.Is(err, tc.kind) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.kind)
		} else {
			t.Logf("%s: refused: %v", tc.name, err)
		}
		if got := size(); got != (vc.Resources{VCPUs: 2, Memory: 512}) {
			t.Errorf("after %s the size is %+v", tc.name, got)
		}
		if cpus, mem := guest(); cpus != "0-1" || mem != mem0+256 {
			t.Errorf("after %s the guest has CPUs %s and %d MiB", tc.name, cpus, mem)
		}
	}

	// Once the guest has freed its memory, the shrink goes through.
	sh("rm /fill/fill")
	if got, _, err := resize(vc.Resources{VCPUs: 1, Memory: 256}); err != nil || got != (vc.Resources{VCPUs: 1, Memory: 256}) {
		t.Fatalf("shrink: %+v, %v", got, err)
	}
	if cpus, mem := guest(); cpus != "0" || mem != mem0 {
		t.Fatalf("after the shrink the guest has CPUs %s and %d MiB, want 0 and %d", cpus, mem, mem0)
	}
	// And grows again: the vCPU QEMU kept comes back online.
	if got, _, err := resize(vc.Resources{VCPUs: 2}); err != nil || got.VCPUs != 2 {
		t.Fatalf("grow again: %+v, %v", got, err)
	}
	if cpus, _ := guest(); cpus != "0-1" {
		t.Fatalf("after growing again the guest has CPUs %s", cpus)
	}
	if got := sh("cut -d' ' -f22 /proc/1/stat"); got != started {
		t.Fatalf("the container restarted during the pod's resizes")
	}
}
