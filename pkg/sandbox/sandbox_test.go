package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/vc-cri/vc-cri/internal/exitcode"
)

func mockConfig(id string, containers ...ContainerConfig) SandboxConfig {
	return SandboxConfig{
		ID:             id,
		HypervisorType: MockHypervisor,
		AgentType:      NoopAgentType,
		Containers:     containers,
	}
}

// testRootfs makes a minimal container root with a user and a group.
func testRootfs(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33:www:/var/www:/bin/sh\n",
		"etc/group":  "root:x:0:\nwww:x:33:\nextra:x:1234:www\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func testContainer(t *testing.T, id string) ContainerConfig {
	return ContainerConfig{ID: id, RootFs: testRootfs(t), Cmd: Cmd{Args: []string{"sleep", "1000"}}}
}

func mustState(t *testing.T, r *Runtime, id string, want StateString) SandboxStatus {
	t.Helper()
	st, err := r.StatusSandbox(context.Background(), id)
	if err != nil {
		t.Fatalf("StatusSandbox(%s): %v", id, err)
	}
	if st.State.State != want {
		t.Fatalf("sandbox %s is %s, want %s", id, st.State.State, want)
	}
	return st
}

func TestSandboxLifecycle(t *testing.T) {
	t.Parallel()
	ctx, r := context.Background(), testRuntime(t)
	s, err := r.CreateSandbox(ctx, mockConfig("life", testContainer(t, "c1")))
	if err != nil {
		t.Fatalf("CreateSandbox: %v", err)
	}
	if s.ID() != "life" || len(s.GetAllContainers()) != 1 {
		t.Fatalf("sandbox %s has %d containers, want life with 1", s.ID(), len(s.GetAllContainers()))
	}
	st := mustState(t, r, "life", StateReady)
	if st.ContainersStatus[0].State.State != StateReady {
		t.Fatalf("container is %s, want ready", st.ContainersStatus[0].State.State)
	}
	if _, err := r.StartSandbox(ctx, "life"); err != nil {
		t.Fatalf("StartSandbox: %v", err)
	}
	st = mustState(t, r, "life", StateRunning)
	if st.ContainersStatus[0].State.State != StateRunning {
		t.Fatalf("container is %s after StartSandbox, want running", st.ContainersStatus[0].State.State)
	}
	if _, err := r.PauseSandbox(ctx, "life"); err != nil {
		t.Fatalf("PauseSandbox: %v", err)
	}
	mustState(t, r, "life", StatePaused)
	if _, err := r.ResumeSandbox(ctx, "life"); err != nil {
		t.Fatalf("ResumeSandbox: %v", err)
	}
	mustState(t, r, "life", StateRunning)
	if _, err := r.StopSandbox(ctx, "life"); err != nil {
		t.Fatalf("StopSandbox: %v", err)
	}
	st = mustState(t, r, "life", StateStopped)
	if st.ContainersStatus[0].State.State != StateStopped {
		t.Fatalf("container is %s after StopSandbox, want stopped", st.ContainersStatus[0].State.State)
	}
	if _, err := r.DeleteSandbox(ctx, "life"); err != nil {
		t.Fatalf("DeleteSandbox: %v", err)
	}
	if _, err := r.StatusSandbox(ctx, "life"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("StatusSandbox after delete: %v, want ErrNotFound", err)
	}
	if _, err := os.Stat(r.sandboxDir("life")); !os.IsNotExist(err) {
		t.Fatalf("sandbox directory left after delete: %v", err)
	}
}

func TestRunSandboxAndDeleteRunning(t *testing.T) {
	t.Parallel()
	ctx, r := context.Background(), testRuntime(t)
	if _, err := r.RunSandbox(ctx, mockConfig("run", testContainer(t, "c1"))); err != nil {
		t.Fatalf("RunSandbox: %v", err)
	}
	mustState(t, r, "run", StateRunning)
	// DeleteSandbox stops what runs first.
	if _, err := r.DeleteSandbox(ctx, "run"); err != nil {
		t.Fatalf("DeleteSandbox of a running sandbox: %v", err)
	}
	if _, err := r.StatusSandbox(ctx, "run"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("StatusSandbox after delete: %v, want ErrNotFound", err)
	}
}

func TestInvalidSandboxTransitions(t *testing.T) {
	t.Parallel()
	ctx, r := context.Background(), testRuntime(t)
	if _, err := r.CreateSandbox(ctx, mockConfig("trans")); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		op   func(context.Context, string) (VCSandbox, error)
		from StateString
	}{
		{"pause ready", r.PauseSandbox, StateReady},
		{"resume ready", r.ResumeSandbox, StateReady},
	}
	for _, s := range steps {
		if _, err := s.op(ctx, "trans"); !errors.Is(err, ErrInvalidState) {
			t.Errorf("%s: %v, want ErrInvalidState", s.name, err)
		}
		mustState(t, r, "trans", s.from)
	}
	if _, err := r.StartSandbox(ctx, "trans"); err != nil {
		t.Fatal(err)
	}
	for name, op := range map[string]func(context.Context, string) (VCSandbox, error){"start running": r.StartSandbox, "resume running": r.ResumeSandbox} {
		if _, err := op(ctx, "trans"); !errors.Is(err, ErrInvalidState) {
			t.Errorf("%s: %v, want ErrInvalidState", name, err)
		}
		mustState(t, r, "trans", StateRunning)
	}
	if _, err := r.PauseSandbox(ctx, "trans"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.StartSandbox(ctx, "trans"); !errors.Is(err, ErrInvalidState) {
		t.Errorf("start paused: %v, want ErrInvalidState", err)
	}
	mustState(t, r, "trans", StatePaused)
	if _, err := r.StopSandbox(ctx, "trans"); err != nil {
		t.Fatalf("stop paused: %v", err)
	}
	for name, op := range map[string]func(context.Context, string) (VCSandbox, error){
		"start stopped": r.StartSandbox, "stop stopped": r.StopSandbox, "pause stopped": r.PauseSandbox, "resume stopped": r.ResumeSandbox,
	} {
		if _, err := op(ctx, "trans"); !errors.Is(err, ErrInvalidState) {
			t.Errorf("%s: %v, want ErrInvalidState", name, err)
		}
		mustState(t, r, "trans", StateStopped)
	}
	if _, _, err := r.CreateContainer(ctx, "trans", testContainer(t, "late")); !errors.Is(err, ErrInvalidState) {
		t.Errorf("create container in stopped sandbox: %v, want ErrInvalidState", err)
	}
}

func TestBadSandboxConfigs(t *testing.T) {
	t.Parallel()
	ctx, r := context.Background(), testRuntime(t)
	if _, err := r.CreateSandbox(ctx, mockConfig("dup")); err != nil {
		t.Fatal(err)
	}

	missingKernel := mockConfig("nokernel")
	missingKernel.HypervisorType = QemuHypervisor
	missingKernel.AgentType = KataContainersAgent
	missingKernel.HypervisorConfig.KernelPath = "/nonexistent/vmlinux"
	missingKernel.HypervisorConfig.ImagePath = "/nonexistent/initramfs"

	badModel := mockConfig("badmodel")
	badModel.NetworkConfig.InterworkingModel = NetXConnectInvalidModel

	enlightened := mockConfig("enlightened")
	enlightened.NetworkConfig.InterworkingModel = NetXConnectEnlightenedModel

	badHypervisor := mockConfig("badhv")
	badHypervisor.HypervisorType = "xen"

	badAgent := mockConfig("badagent")
	badAgent.AgentType = "hyperstart"

	dupContainers := mockConfig("dupc", testContainer(t, "same"), testContainer(t, "same"))

	badCache := mockConfig("dax")
	badCache.HypervisorConfig.VirtioFSCacheSize = 1024

	for _, tc := range []struct {
		name string
		cfg  SandboxConfig
		want error
	}{
		{"duplicate ID", mockConfig("dup"), ErrAlreadyExists},
		{"missing kernel", missingKernel, ErrInvalidConfig},
		{"invalid interworking model", badModel, ErrInvalidConfig},
		{"enlightened interworking model", enlightened, ErrInvalidConfig},
		{"unknown hypervisor", badHypervisor, ErrInvalidConfig},
		{"unknown agent", badAgent, ErrInvalidConfig},
		{"duplicate container IDs", dupContainers, ErrAlreadyExists},
		{"invalid ID", mockConfig("../escape"), ErrInvalidConfig},
		{"DAX cache", badCache, ErrInvalidConfig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := r.CreateSandbox(ctx, tc.cfg); !errors.Is(err, tc.want) {
				t.Fatalf("CreateSandbox: %v, want %v", err, tc.want)
			}
			if tc.cfg.ID != "dup" {
				if _, err := os.Stat(r.sandboxDir(tc.cfg.ID)); err == nil {
					t.Fatalf("a refused sandbox left its directory")
				}
			}
		})
	}
	if _, err := r.StatusContainer(ctx, "dup", "nosuch"); !errors.Is(err, ErrNotFound) {
		t.Errorf("StatusContainer of unknown container: %v, want ErrNotFound", err)
	}
	if _, err := r.StatusSandbox(ctx, "nosuch"); !errors.Is(err, ErrNotFound) {
		t.Errorf("StatusSandbox of unknown sandbox: %v, want ErrNotFound", err)
	}
	if err := r.KillContainer(ctx, "nosuch", "c", syscall.SIGKILL, false); !errors.Is(err, ErrNotFound) {
		t.Errorf("KillContainer in unknown sandbox: %v, want ErrNotFound", err)
	}
}

func TestGeneratedID(t *testing.T) {
	t.Parallel()
	ctx, r := context.Background(), testRuntime(t)
	s, err := r.CreateSandbox(ctx, mockConfig(""))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.ID()) != 64 {
		t.Fatalf("generated ID %q, want 64 hex digits", s.ID())
	}
	mustState(t, r, s.ID(), StateReady)
}

func TestContainerLifecycle(t *testing.T) {
	t.Parallel()
	ctx, r := context.Background(), testRuntime(t)
	if _, err := r.RunSandbox(ctx, mockConfig("ctr")); err != nil {
		t.Fatal(err)
	}

	cfg := testContainer(t, "web")
	cfg.Annotations = map[string]string{"io.vc-cri.test": "yes"}
	_, c, err := r.CreateContainer(ctx, "ctr", cfg)
	if err != nil {
		t.Fatalf("CreateContainer: %v", err)
	}
	if c.GetAnnotations()["io.vc-cri.test"] != "yes" || c.Sandbox().ID() != "ctr" || c.GetToken() != "web" {
		t.Fatalf("container %s: annotations %v, sandbox %s, token %s", c.ID(), c.GetAnnotations(), c.Sandbox().ID(), c.GetToken())
	}
	if _, _, err := r.CreateContainer(ctx, "ctr", cfg); !errors.Is(err, ErrAlreadyExists) {
		t.Fatalf("second CreateContainer: %v, want ErrAlreadyExists", err)
	}
	if _, err := r.StartContainer(ctx, "ctr", "web"); err != nil {
		t.Fatalf("StartContainer: %v", err)
	}
	if _, err := r.StartContainer(ctx, "ctr", "web"); !errors.Is(err, ErrInvalidState) {
		t.Fatalf("StartContainer of running: %v, want ErrInvalidState", err)
	}
	if _, err := r.DeleteContainer(ctx, "ctr", "web"); !errors.Is(err, ErrInvalidState) {
		t.Fatalf("DeleteContainer of running: %v, want ErrInvalidState", err)
	}
	st, err := r.StatusContainer(ctx, "ctr", "web")
	if err != nil || st.State.State != StateRunning || st.StartTime.IsZero() {
		t.Fatalf("StatusContainer: %+v, %v; want running with a start time", st, err)
	}
	list, err := r.ProcessListContainer(ctx, "ctr", "web", ProcessListOptions{Format: "table"})
	if err != nil || len(list) == 0 {
		t.Fatalf("ProcessListContainer: %q, %v", list, err)
	}
	if err := r.KillContainer(ctx, "ctr", "web", syscall.SIGTERM, false); err != nil {
		t.Fatalf("KillContainer: %v", err)
	}
	st, err = r.StatusContainer(ctx, "ctr", "web")
	if err != nil || st.State.State != StateStopped || st.ExitCode != exitcode.Signaled(syscall.SIGTERM) {
		t.Fatalf("StatusContainer after SIGTERM: %+v, %v; want stopped with exit code 143", st, err)
	}
	if _, err := r.StopContainer(ctx, "ctr", "web"); !errors.Is(err, ErrInvalidState) {
		t.Fatalf("StopContainer of stopped: %v, want ErrInvalidState", err)
	}
	if _, err := r.DeleteContainer(ctx, "ctr", "web"); err != nil {
		t.Fatalf("DeleteContainer: %v", err)
	}
	if _, err := r.StatusContainer(ctx, "ctr", "web"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("StatusContainer after delete: %v, want ErrNotFound", err)
	}
	if _, err := os.Stat(filepath.Join(r.sharedDir("ctr"), "web")); !os.IsNotExist(err) {
		t.Fatalf("container's shared directory left: %v", err)
	}
}

func TestStopAndEnterContainer(t *testing.T) {
	t.Parallel()
	ctx, r := context.Background(), testRuntime(t)
	if _, err := r.RunSandbox(ctx, mockConfig("enter", testContainer(t, "c"))); err != nil {
		t.Fatal(err)
	}
	_, c, p, err := r.EnterContainer(ctx, "enter", "c", Cmd{Args: []string{"true"}})
	if err != nil {
		t.Fatalf("EnterContainer: %v", err)
	}
	if p.Token == "" || p.Token == c.ID() {
		t.Fatalf("exec token %q: want one of its own", p.Token)
	}
	if _, err := r.StopContainer(ctx, "enter", "c"); err != nil {
		t.Fatalf("StopContainer: %v", err)
	}
	if _, _, _, err := r.EnterContainer(ctx, "enter", "c", Cmd{Args: []string{"true"}}); !errors.Is(err, ErrInvalidState) {
		t.Fatalf("EnterContainer in a stopped container: %v, want ErrInvalidState", err)
	}
	if _, err := r.ProcessListContainer(ctx, "enter", "c", ProcessListOptions{}); !errors.Is(err, ErrInvalidState) {
		t.Fatalf("ProcessListContainer of a stopped container: %v, want ErrInvalidState", err)
	}
}

func TestAnnotationsPersistAndSerialise(t *testing.T) {
	t.Parallel()
	ctx, r := context.Background(), testRuntime(t)
	cfg := mockConfig("notes")
	cfg.Annotations = map[string]string{"org.example.a": "1"}
	s, err := r.CreateSandbox(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := s.Annotations("org.example.a"); err != nil || v != "1" {
		t.Fatalf("Annotations: %q, %v", v, err)
	}
	if _, err := s.Annotations("org.example.none"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Annotations of a missing key: %v, want ErrNotFound", err)
	}
	// Concurrent writers each add a key: the lock keeps every one.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := &Sandbox{r: r, state: sandboxState{Config: SandboxConfig{ID: "notes"}}}
			if err := s.SetAnnotations(map[string]string{fmt.Sprintf("org.example.k%d", i): "v"}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	st, err := r.StatusSandbox(ctx, "notes")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Annotations) != 9 {
		t.Fatalf("annotations after concurrent updates: %v, want 9 keys", st.Annotations)
	}
}

func TestProcessRestartFindsSandbox(t *testing.T) {
	t.Parallel()
	ctx, r := context.Background(), testRuntime(t)
	if _, err := r.RunSandbox(ctx, mockConfig("restart", testContainer(t, "c"))); err != nil {
		t.Fatal(err)
	}
	// A new process: a runtime on the same state root and hypervisor,
	// with no cached VM or agent handles.
	r = NewRuntime(WithStateRoot(r.StateRoot()), WithHypervisor(MockHypervisor, r.hypervisors[MockHypervisor]))
	list, err := r.ListSandbox(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, st := range list {
		found = found || (st.ID == "restart" && st.State.State == StateRunning)
	}
	if !found {
		t.Fatalf("ListSandbox after restart: %+v, want restart running", list)
	}
	if _, err := r.PauseSandbox(ctx, "restart"); err != nil {
		t.Fatalf("PauseSandbox after restart: %v", err)
	}
	if _, err := r.ResumeSandbox(ctx, "restart"); err != nil {
		t.Fatalf("ResumeSandbox after restart: %v", err)
	}
}

func TestHasSubmounts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sub := filepath.Join(dir, "tmpfs")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if hasSubmounts(dir) {
		t.Fatal("a plain directory has submounts")
	}
	if err := syscall.Mount("none", sub, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	defer syscall.Unmount(sub, syscall.MNT_DETACH)
	if !hasSubmounts(dir) {
		t.Fatal("a tmpfs below the directory is not seen")
	}
}
