package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/moby/sys/capability"
	"github.com/moby/sys/user"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/configs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// An exec through libcontainer re-executes this binary as runc's init in
// the guest: its Go runtime and package initialisation cost more guest
// CPU, under TCG, than the rest of the exec together, and kubelet's exec
// probes (1 s by default) feel it. An exec that needs nothing more than
// the container's namespaces, cgroup, credentials, capabilities and
// no_new_privs starts directly instead: one thread of the agent takes all
// of those on (each is per thread in Linux once the thread no longer
// shares its filesystem context), and forks the process from there. The
// thread is never handed back to the Go runtime, which ends it. Anything
// else (a terminal, seccomp, a user namespace, rlimits, labels,
// scheduling) goes through runc's init as before.

// canExecDirect says whether the direct start does all that runc's init
// would for this process in this container. Both take the container's
// rlimits, OOM score, labels and scheduling, not the exec's (newProcess
// passes libcontainer the exec's user, capabilities and no_new_privs).
func canExecDirect(cfg *configs.Config, sp *specs.Process) bool {
	return !sp.Terminal && !cfg.Namespaces.Contains(configs.NEWUSER) && cfg.Seccomp == nil &&
		cfg.AppArmorProfile == "" && cfg.ProcessLabel == "" && cfg.Personality == nil &&
		cfg.Scheduler == nil && cfg.IOPriority == nil && cfg.MemoryPolicy == nil && cfg.NoNewKeyring &&
		cfg.ExecCPUAffinity == nil
}

// execDirect starts sp in the container whose state is st, with lp's
// standard files (pipes, no terminal). The container's init must run.
func execDirect(cfg *configs.Config, st *libcontainer.State, sp *specs.Process, lp *libcontainer.Process) (runningProcess, error) {
	stdout, _ := lp.Stdout.(*os.File)
	stderr, _ := lp.Stderr.(*os.File)
	if stdout == nil || stderr == nil {
		return nil, errors.New("a direct start needs pipes for its output")
	}
	stdin, _ := lp.Stdin.(*os.File)
	if stdin == nil {
		devNull, err := os.Open(os.DevNull)
		if err != nil {
			return nil, err
		}
		defer devNull.Close()
		stdin = devNull
	}
	stdio := []*os.File{stdin, stdout, stderr}
	if err := chownStdio(stdio, int(sp.User.UID)); err != nil {
		return nil, err
	}
	target, err := openTargets(st)
	if err != nil {
		return nil, err
	}
	defer target.close()

	type started struct {
		proc *os.Process
		err  error
	}
	done := make(chan started, 1)
	go func() {
		// Never unlocked: the thread takes on the container's namespaces
		// and credentials, and ends with this goroutine.
		runtime.LockOSThread()
		proc, err := startOnThread(cfg, target, sp, stdio)
		done <- started{proc, err}
	}()
	s := <-done
	if s.err != nil {
		return nil, s.err
	}
	if err := setProcessLimits(cfg, s.proc.Pid); err != nil {
		_ = s.proc.Kill()
		_, _ = s.proc.Wait()
		return nil, err
	}
	return s.proc, nil
}

// setProcessLimits gives a started process the container's rlimits and
// OOM score adjustment. Those are the process's, not a thread's, so they
// are set once it runs: for the first instructions of its program it has
// the agent's, which only the process itself could make use of.
func setProcessLimits(cfg *configs.Config, pid int) error {
	for _, rl := range cfg.Rlimits {
		if err := unix.Prlimit(pid, rl.Type, &unix.Rlimit{Cur: rl.Soft, Max: rl.Hard}, nil); err != nil {
			return fmt.Errorf("set rlimit %d: %w", rl.Type, err)
		}
	}
	if cfg.OomScoreAdj != nil {
		adj := []byte(strconv.Itoa(*cfg.OomScoreAdj))
		if err := os.WriteFile(filepath.Join("/proc", strconv.Itoa(pid), "oom_score_adj"), adj, 0); err != nil {
			return fmt.Errorf("set oom_score_adj: %w", err)
		}
	}
	return nil
}

// targets are the container's namespaces (those that are not the
// agent's own) and cgroup, opened before the thread leaves the agent's.
type targets struct {
	namespaces []namespaceFile // the mount namespace last
	cgroup     *os.File
}

type namespaceFile struct {
	file *os.File
	flag int
}

func openTargets(st *libcontainer.State) (_ *targets, retErr error) {
	t := &targets{}
	defer func() {
		if retErr != nil {
			t.close()
		}
	}()
	cgroupDir, ok := st.CgroupPaths[""]
	if !ok {
		return nil, errors.New("the container has no cgroup v2 path")
	}
	var err error
	if t.cgroup, err = os.OpenFile(cgroupDir, unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
		return nil, err
	}
	var mnt *namespaceFile
	for _, typ := range configs.NamespaceTypes() {
		path, ok := st.NamespacePaths[typ]
		if !ok || typ == configs.NEWUSER {
			continue
		}
		same, err := sameNamespace(path, "/proc/thread-self/ns/"+configs.NsName(typ))
		if err != nil {
			return nil, err
		}
		if same {
			continue
		}
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		ns := namespaceFile{file: f, flag: (&configs.Namespace{Type: typ}).Syscall()}
		if typ == configs.NEWNS {
			mnt = &ns
			continue
		}
		t.namespaces = append(t.namespaces, ns)
	}
	if mnt != nil {
		t.namespaces = append(t.namespaces, *mnt)
	}
	return t, nil
}

func (t *targets) close() {
	for _, ns := range t.namespaces {
		_ = ns.file.Close()
	}
	if t.cgroup != nil {
		_ = t.cgroup.Close()
	}
}

func sameNamespace(a, b string) (bool, error) {
	var sa, sb unix.Stat_t
	if err := unix.Stat(a, &sa); err != nil {
		return false, err
	}
	if err := unix.Stat(b, &sb); err != nil {
		return false, err
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino, nil
}

// startOnThread runs on a locked thread that it leaves in the container.
func startOnThread(cfg *configs.Config, t *targets, sp *specs.Process, stdio []*os.File) (*os.Process, error) {
	// Read through the agent's /proc: the container's does not show the
	// agent.
	caps, ambient, err := processCapabilities(sp.Capabilities)
	if err != nil {
		return nil, err
	}
	// A thread that shares its filesystem context cannot join a mount
	// namespace.
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return nil, fmt.Errorf("unshare CLONE_FS: %w", err)
	}
	for _, ns := range t.namespaces {
		if err := unix.Setns(int(ns.file.Fd()), ns.flag); err != nil {
			return nil, fmt.Errorf("join %s: %w", ns.file.Name(), err)
		}
	}
	if cfg.Umask != nil {
		unix.Umask(int(*cfg.Umask))
	}
	// From here on, paths are the container's.
	env, err := processEnv(sp.Env, int(sp.User.UID))
	if err != nil {
		return nil, err
	}
	exe, err := lookPath(sp.Args[0], env, sp.Cwd)
	if err != nil {
		return nil, err
	}
	if err := caps.Apply(capability.BOUNDING | capability.CAPS); err != nil {
		return nil, fmt.Errorf("apply capabilities: %w", err)
	}
	if sp.NoNewPrivileges {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return nil, fmt.Errorf("no_new_privs: %w", err)
		}
	}
	groups := make([]uint32, len(sp.User.AdditionalGids))
	copy(groups, sp.User.AdditionalGids)
	return os.StartProcess(exe, sp.Args, &os.ProcAttr{
		Dir:   sp.Cwd,
		Env:   env,
		Files: stdio,
		Sys: &syscall.SysProcAttr{
			// The child changes user after it joined the cgroup, which
			// takes the agent's privileges.
			Credential:  &syscall.Credential{Uid: sp.User.UID, Gid: sp.User.GID, Groups: groups},
			AmbientCaps: ambient,
			UseCgroupFD: true,
			CgroupFD:    int(t.cgroup.Fd()),
		},
	})
}

// processCapabilities are the thread's capabilities with the process's
// bounding and inheritable sets, for the thread to apply, and the
// process's ambient set, for the child to raise. The effective and
// permitted sets stay the agent's until the child changes user; execve
// then makes them what they are after runc's init.
func processCapabilities(c *specs.LinuxCapabilities) (capability.Capabilities, []uintptr, error) {
	if c == nil {
		c = &specs.LinuxCapabilities{}
	}
	caps, err := capability.NewPid2(0)
	if err != nil {
		return nil, nil, err
	}
	if err := caps.Load(); err != nil {
		return nil, nil, err
	}
	bounding, err := capabilityValues(c.Bounding)
	if err != nil {
		return nil, nil, err
	}
	inheritable, err := capabilityValues(c.Inheritable)
	if err != nil {
		return nil, nil, err
	}
	ambient, err := capabilityValues(c.Ambient)
	if err != nil {
		return nil, nil, err
	}
	caps.Clear(capability.BOUNDING | capability.INHERITABLE)
	caps.Set(capability.BOUNDING, bounding...)
	caps.Set(capability.INHERITABLE, inheritable...)
	out := make([]uintptr, len(ambient))
	for i, v := range ambient {
		out[i] = uintptr(v)
	}
	return caps, out, nil
}

// capabilityValues are the capabilities named that the guest's kernel
// has; runc's init leaves out the others too.
func capabilityValues(names []string) ([]capability.Cap, error) {
	last, err := capability.LastCap()
	if err != nil {
		return nil, err
	}
	known := map[string]capability.Cap{}
	for _, c := range capability.ListKnown() {
		if c <= last {
			known["CAP_"+strings.ToUpper(c.String())] = c
		}
	}
	var out []capability.Cap
	for _, n := range names {
		if c, ok := known[n]; ok {
			out = append(out, c)
		}
	}
	return out, nil
}

// processEnv is env as runc's init makes it: the last of each name kept,
// HOME from the container's /etc/passwd when env has none.
func processEnv(env []string, uid int) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	home := false
	for _, kv := range slices.Backward(env) {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || name == "" || strings.IndexByte(kv, 0) >= 0 {
			return nil, fmt.Errorf("invalid environment variable %q", kv)
		}
		if seen[name] || (name == "HOME" && value == "") {
			continue
		}
		seen[name] = true
		home = home || name == "HOME"
		out = append(out, kv)
	}
	slices.Reverse(out)
	if !home {
		dir := "/"
		if u, err := user.LookupUid(uid); err == nil {
			dir = u.Home
		}
		out = append(out, "HOME="+dir)
	}
	return out, nil
}

// lookPath finds file in the PATH of env, as runc's init does with the
// process's environment; a relative path is the child's, from cwd.
func lookPath(file string, env []string, cwd string) (string, error) {
	executable := func(path string) error {
		if !filepath.IsAbs(path) {
			path = filepath.Join(cwd, path)
		}
		return isExecutable(path)
	}
	if strings.Contains(file, "/") {
		return file, executable(file)
	}
	path := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		candidate := filepath.Join(dir, file)
		if executable(candidate) == nil {
			return candidate, nil
		}
	}
	return "", fmt.Errorf("exec: %q: executable file not found in $PATH", file)
}

func isExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%s: %w", path, os.ErrPermission)
	}
	return nil
}

// chownStdio gives the process's pipes to its user, as runc's init does,
// so that it may reopen them (/dev/stdout).
func chownStdio(stdio []*os.File, uid int) error {
	for _, f := range stdio {
		var st unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &st); err != nil {
			return err
		}
		if int(st.Uid) == uid || st.Mode&unix.S_IFMT == unix.S_IFCHR {
			continue
		}
		if err := unix.Fchown(int(f.Fd()), uid, -1); err != nil {
			return fmt.Errorf("chown stdio: %w", err)
		}
	}
	return nil
}
