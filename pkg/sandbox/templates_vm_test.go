package sandbox_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	vc "github.com/vc-cri/vc-cri/pkg/sandbox"
)

// TestTemplatesInVM: the first sandbox of a shape boots cold and has its
// template built; the next ones start from it, each with its own clock,
// entropy and hostname, and run containers as a cold guest does; a
// changed guest image makes a new template that replaces the old, and a
// corrupt template a cold boot, with the template dropped.
func TestTemplatesInVM(t *testing.T) {
	ctr := vc.ContainerConfig{
		ID: "app", RootFs: containerRootfs,
		Cmd: vc.Cmd{Args: []string{"sleep", "100000"}, Envs: []vc.EnvVar{{Var: "PATH", Value: "/bin:/usr/bin"}}},
	}
	// The guest image, copied: the test changes it.
	image := filepath.Join(t.TempDir(), "initramfs.cpio")
	if b, err := os.ReadFile(guestImage); err != nil {
		t.Fatal(err)
	} else if err := os.WriteFile(image, b, 0o644); err != nil {
		t.Fatal(err)
	}
	templates := t.TempDir()
	r, bg := vc.NewTestRuntime(t, vc.WithTemplates(templates)), context.Background()
	ctx, cancel := context.WithTimeout(bg, 5*time.Minute)
	defer cancel()
	run := func(hostname string) (vc.SandboxStatus, func(string) string) {
		t.Helper()
		cfg := qemuConfig(t, ctr)
		cfg.HypervisorConfig.ImagePath = image
		cfg.Hostname = hostname
		s, err := r.RunSandbox(ctx, cfg)
		if err != nil {
			t.Fatalf("RunSandbox %s: %v", hostname, err)
		}
		t.Cleanup(func() { r.DeleteSandbox(bg, s.ID()) })
		st, err := r.StatusSandbox(ctx, s.ID())
		if err != nil {
			t.Fatal(err)
		}
		return st, func(script string) string {
			return strings.TrimSpace(shIn(ctx, t, r, s.ID(), "app", script, ctr.Cmd.Envs))
		}
	}
	templateDirs := func() []string {
		entries, _ := os.ReadDir(templates)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return names
	}

	cold, _ := run("cold")
	if cold.Template != "" {
		t.Fatalf("first sandbox started from template %q, want a cold boot", cold.Template)
	}
	r.WaitTemplates()
	if dirs := templateDirs(); len(dirs) != 1 {
		t.Fatalf("templates after the first sandbox: %q, want one", dirs)
	}

	type guest struct{ hostname, uuid, clock string }
	var guests []guest
	for _, name := range []string{"warm-a", "warm-b"} {
		st, sh := run(name)
		if st.Template == "" {
			t.Fatalf("sandbox %s booted cold, want it from the template", name)
		}
		g := guest{sh("hostname"), sh("cat /proc/sys/kernel/random/uuid"), sh("date +%s")}
		if g.hostname != name {
			t.Errorf("hostname %q in sandbox %s", g.hostname, name)
		}
		if sec, err := strconv.ParseInt(g.clock, 10, 64); err != nil || time.Since(time.Unix(sec, 0)).Abs() > time.Minute {
			t.Errorf("guest clock %q in sandbox %s, host %d", g.clock, name, time.Now().Unix())
		}
		if out := sh("echo written > /tmp/f && cat /tmp/f && ls /bin/busybox"); out != "written\n/bin/busybox" {
			t.Errorf("rootfs in sandbox %s: %q", name, out)
		}
		guests = append(guests, g)
	}
	if guests[0].uuid == guests[1].uuid {
		t.Errorf("two guests of one template drew the same random UUID %s", guests[0].uuid)
	}

	// A rebuilt guest image: a new template replaces the old one.
	before := templateDirs()
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(image, later, later); err != nil {
		t.Fatal(err)
	}
	if st, _ := run("new-image"); st.Template != "" {
		t.Fatalf("sandbox of a changed image started from template %q", st.Template)
	}
	r.WaitTemplates()
	after := templateDirs()
	if len(after) != 1 || len(before) != 1 || after[0] == before[0] {
		t.Fatalf("templates before the image changed %q, after %q: want one, replaced", before, after)
	}
	if st, _ := run("new-warm"); st.Template != after[0] {
		t.Fatalf("sandbox of the new image from template %q, want %q", st.Template, after[0])
	}

	// A corrupt template: the sandbox boots cold, and the template goes.
	key := templateDirs()[0]
	if err := os.WriteFile(filepath.Join(templates, key, "state"), []byte("not a migration stream"), 0o600); err != nil {
		t.Fatal(err)
	}
	if st, sh := run("after-corrupt"); st.Template != "" {
		t.Fatalf("sandbox started from the corrupt template %q", st.Template)
	} else if got := sh("hostname"); got != "after-corrupt" {
		t.Errorf("hostname %q after a cold boot", got)
	}
	r.WaitTemplates()
	if dirs := templateDirs(); len(dirs) != 0 {
		t.Fatalf("templates after a failed restore: %q, want none (not rebuilt)", dirs)
	}
}

// TestStopTemplatesInVM: a Runtime that shuts down while a template is
// being built leaves neither its VM nor its files behind.
func TestStopTemplatesInVM(t *testing.T) {
	cfg := qemuConfig(t)
	templates := t.TempDir()
	r := vc.NewTestRuntime(t, vc.WithTemplates(templates))
	if err := r.PrepareTemplate(cfg, 1); err != nil {
		t.Fatalf("PrepareTemplate: %v", err)
	}
	time.Sleep(300 * time.Millisecond) // into the template VM's boot
	r.StopTemplates()
	if entries, _ := os.ReadDir(templates); len(entries) != 0 {
		t.Errorf("template files left: %v", entries)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), templates) {
			t.Errorf("a process of the template runs: %s: %q", p, strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
}
