package sandbox_test

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	vc "github.com/vc-cri/vc-cri/pkg/sandbox"
)

// allCaps is every capability a privileged container gets.
var allCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
	"CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
	"CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
	"CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
	"CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN",
	"CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
}

// hostileScript runs as root in the guest's PID namespace: through the
// agent's root (/proc/1/root) it reaches the shared directory and tries
// what a guest that owns its kernel would, each attempt reporting
// "<name> ok" or "<name> refused".
const hostileScript = `
S=/proc/1/root/run/vc-agent/shared
try() { n=$1; shift; if "$@" 2>/dev/null; then echo "$n ok"; else echo "$n refused"; fi; }
try see test -d $S/hostile/rootfs
try top-symlink ln -s / $S/planted
try rename-container mv $S/hostile $S/moved
try replace-rootfs sh -c "mv $S/hostile/rootfs $S/hostile/old && ln -s $VICTIM $S/hostile/rootfs"
try mounts-symlink ln -s $VICTIM $S/hostile/mounts/9
try volume-dir-symlink ln -s $VICTIM $S/hostile/mounts/1/escape
try rootfs-write touch $S/hostile/rootfs/written-by-guest
try volume-write sh -c "echo guest > /data/written-by-guest"
try volume-mknod mknod /data/null c 1 3
try volume-open-dev sh -c "mknod /data/zero c 1 5; head -c 1 /data/zero >/dev/null"
try rm-passwd rm -f /etc/passwd /etc/group
try symlink-passwd ln -s $VICTIM/fifo /etc/passwd
try symlink-group ln -s /dev/watchdog /etc/group
try console-flood sh -c "timeout 3 sh -c 'cat /dev/zero > /proc/1/root/dev/ttyS0'; true"
echo done
exec sleep 1000
`

// TestHostileGuestShare plays a guest that owns its kernel against the
// shared directory: nothing it does reaches outside the pod's binds,
// and deleting the pod detaches no host mount and removes nothing
// through a bind.
func TestHostileGuestShare(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	for _, fs := range []string{"virtio-9p", "virtio-fs"} {
		t.Run(fs, func(t *testing.T) { hostileGuestShare(t, fs) })
	}
}

func hostileGuestShare(t *testing.T, sharedFS string) {
	r, bg := vc.NewTestRuntime(t), context.Background()
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	if out, err := exec.Command("cp", "-a", containerRootfs, rootfs).CombinedOutput(); err != nil {
		t.Fatalf("copy rootfs: %v: %s", err, out)
	}
	// The victim: a host directory with a mount on it, where the guest
	// aims its symlinks.
	victim := t.TempDir()
	if err := unix.Mount("tmpfs", victim, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(victim, unix.MNT_DETACH)
	if err := os.WriteFile(filepath.Join(victim, "keep"), []byte("host"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A host FIFO the guest aims /etc/passwd at: opening it would block.
	if err := unix.Mkfifo(filepath.Join(victim, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	volume := t.TempDir()
	if err := os.WriteFile(filepath.Join(volume, "host-file"), []byte("host"), 0o644); err != nil {
		t.Fatal(err)
	}

	spec, err := vc.DefaultSpec()
	if err != nil {
		t.Fatal(err)
	}
	// The guest's PID namespace, every capability, nothing masked.
	var nss []specs.LinuxNamespace
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type != specs.PIDNamespace {
			nss = append(nss, ns)
		}
	}
	spec.Linux.Namespaces, spec.Linux.MaskedPaths, spec.Linux.ReadonlyPaths = nss, nil, nil
	spec.Process.Args = []string{"sh", "-c", hostileScript}
	spec.Process.Env = []string{"PATH=/bin:/usr/bin", "VICTIM=" + victim}
	spec.Process.Capabilities = &specs.LinuxCapabilities{Bounding: allCaps, Effective: allCaps, Permitted: allCaps}
	// mounts/0 is /etc/hostname-like file; mounts/1 the volume.
	spec.Mounts = append(spec.Mounts,
		specs.Mount{Source: filepath.Join(volume, "host-file"), Destination: "/etc/host-file", Type: "bind", Options: []string{"rbind", "ro"}},
		specs.Mount{Source: volume, Destination: "/data", Type: "bind", Options: []string{"rbind"}},
	)
	ctr := vc.ContainerConfig{
		ID:         "hostile",
		RootFs:     rootfs,
		Cmd:        vc.Cmd{User: "root"},
		CustomSpec: spec,
	}
	cfg := qemuConfig(t, ctr)
	cfg.HypervisorConfig.SharedFS = sharedFS
	s, err := r.CreateSandbox(bg, cfg)
	if err != nil {
		t.Fatalf("CreateSandbox: %v", err)
	}
	defer r.DeleteSandbox(bg, s.ID())
	sandboxDir := filepath.Join(r.StateRoot(), s.ID())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, stdout, _, err := r.IOStream(ctx, s.ID(), "hostile", "hostile")
	if err != nil {
		t.Fatalf("IOStream: %v", err)
	}
	if _, err := r.StartSandbox(bg, s.ID()); err != nil {
		t.Fatalf("StartSandbox: %v", err)
	}
	got := map[string]string{}
	var b strings.Builder
	for sc := bufio.NewScanner(stdout); sc.Scan() && sc.Text() != "done"; {
		b.WriteString(sc.Text() + "\n")
		if k, v, ok := strings.Cut(sc.Text(), " "); ok {
			got[k] = v
		}
	}
	t.Logf("guest:\n%s", b.String())
	want := map[string]string{
		"see": "ok", "top-symlink": "refused", "rename-container": "refused", "replace-rootfs": "refused",
		"mounts-symlink": "refused", "rootfs-write": "ok", "volume-write": "ok", "volume-open-dev": "refused",
		"symlink-passwd": "ok", "symlink-group": "ok", "console-flood": "ok",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("guest %s: %q, want %q", k, got[k], v)
		}
	}
	// The user was resolved at create: an exec needs no /etc/passwd, and
	// one naming a user fails at once on the guest's symlink to a host
	// FIFO (the unit tests plant a FIFO itself: 9p makes none).
	execCtx, cancelExec := context.WithTimeout(ctx, time.Minute)
	defer cancelExec()
	_, _, p, err := r.EnterContainer(bg, s.ID(), "hostile", vc.Cmd{Args: []string{"id", "-u"}})
	if err != nil {
		t.Fatalf("exec after the guest planted a FIFO at /etc/passwd: %v", err)
	}
	_, out, _, err := r.IOStream(execCtx, s.ID(), "hostile", p.Token)
	if err != nil {
		t.Fatal(err)
	}
	idOut, _ := io.ReadAll(out)
	if code, err := r.WaitProcess(execCtx, s.ID(), "hostile", p.Token); err != nil || code != 0 || string(idOut) != "0\n" {
		t.Errorf("exec id -u: %q, %d, %v", idOut, code, err)
	}
	start := time.Now()
	if _, _, _, err := r.EnterContainer(bg, s.ID(), "hostile", vc.Cmd{Args: []string{"id"}, User: "daemon"}); err == nil {
		t.Error("exec as a named user over the guest's symlinked passwd succeeded")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("exec as a named user took %v", d)
	}
	// The console went to a ring buffer in QEMU: no file grew.
	_ = filepath.WalkDir(r.StateRoot(), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == "console.log" {
			t.Errorf("console file %s without debug", p)
		}
		return nil
	})
	// volume-dir-symlink is the guest's right inside its own volume; the
	// host never resolves it.
	if _, err := r.StopSandbox(bg, s.ID()); err != nil {
		t.Fatalf("StopSandbox: %v", err)
	}
	if _, err := r.DeleteSandbox(bg, s.ID()); err != nil {
		t.Fatalf("DeleteSandbox: %v", err)
	}
	if _, err := os.Stat(sandboxDir); !os.IsNotExist(err) {
		t.Errorf("sandbox directory left: %v", err)
	}
	if infos, _ := mountinfo.GetMounts(mountinfo.PrefixFilter(sandboxDir)); len(infos) > 0 {
		t.Errorf("mounts left: %s", infos[0].Mountpoint)
	}
	if m, _ := mountinfo.Mounted(victim); !m {
		t.Error("the host mount the guest aimed at was detached")
	}
	entries, _ := os.ReadDir(victim)
	if len(entries) != 2 {
		t.Errorf("victim holds %d entries, want only its own", len(entries))
	}
	if b, err := os.ReadFile(filepath.Join(volume, "host-file")); err != nil || string(b) != "host" {
		t.Errorf("volume's host file after delete: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(rootfs, "bin", "sh")); err != nil {
		t.Errorf("rootfs reached through by removal: %v", err)
	}
}
