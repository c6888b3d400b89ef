package sandbox_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/vc-cri/vc-cri/hack/testimages"
	vc "github.com/vc-cri/vc-cri/pkg/sandbox"
)

// TestUserNamespaceInVM: a container whose spec asks for a user
// namespace of mappings runs, in a real guest, in the pod's user
// namespace of those mappings and a PID namespace it owns (so that it
// mounts its /proc); its root, as the image store maps it (owned by the
// host IDs the namespace maps 0 to), is its root's to write; and a bind
// mount's files are seen through the mapping: owned by 0 on the host,
// owned by its root, and a file it makes is owned by 0 on the host.
func TestUserNamespaceInVM(t *testing.T) {
	cfg := qemuConfig(t)
	const hostID = 100000
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	if err := testimages.BusyboxRootfs(rootfs); err != nil {
		t.Fatal(err)
	}
	// What go.podman.io/storage's idmapped layers show of an image.
	if err := filepath.Walk(rootfs, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, hostID, hostID)
	}); err != nil {
		t.Fatal(err)
	}
	volume := t.TempDir()
	if err := os.WriteFile(filepath.Join(volume, "owned"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec, err := vc.DefaultSpec()
	if err != nil {
		t.Fatal(err)
	}
	spec.Process.Args = []string{"sleep", "1000"}
	spec.Process.Env = []string{"PATH=/bin:/usr/bin"}
	ids := []specs.LinuxIDMapping{{ContainerID: 0, HostID: hostID, Size: 65536}}
	// No PID namespace listed: the pod's, as pkg/cri has it for
	// NamespaceMode_POD.
	spec.Linux.Namespaces = slices.DeleteFunc(spec.Linux.Namespaces, func(ns specs.LinuxNamespace) bool { return ns.Type == specs.PIDNamespace })
	spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
	spec.Linux.UIDMappings, spec.Linux.GIDMappings = ids, ids
	spec.Mounts = append(spec.Mounts, specs.Mount{Destination: "/vol", Type: "bind", Source: volume, Options: []string{"rbind"}})
	cfg.Containers = []vc.ContainerConfig{
		{ID: "a", RootFs: rootfs, CustomSpec: spec},
		{ID: "b", RootFs: rootfs, CustomSpec: spec},
	}
	r, bg := vc.NewTestRuntime(t), context.Background()
	s, err := r.CreateSandbox(bg, cfg)
	if err != nil {
		t.Fatalf("CreateSandbox: %v", err)
	}
	defer r.DeleteSandbox(bg, s.ID())
	if _, err := r.StartSandbox(bg, s.ID()); err != nil {
		t.Fatalf("StartSandbox: %v", err)
	}
	ctx, cancel := context.WithTimeout(bg, 2*time.Minute)
	defer cancel()
	exec := func(id, script string) string { return shIn(ctx, t, r, s.ID(), id, script+" 2>&1", nil) }
	if out := strings.Fields(exec("a", "cat /proc/self/uid_map /proc/self/gid_map")); strings.Join(out, " ") != "0 100000 65536 0 100000 65536" {
		t.Errorf("uid_map and gid_map %q, want 0 %d 65536 each", out, hostID)
	}
	// One user namespace and one PID namespace, the pod's, for both.
	for _, ns := range []string{"user", "pid"} {
		a, b := exec("a", "readlink /proc/self/ns/"+ns), exec("b", "readlink /proc/self/ns/"+ns)
		if a != b {
			t.Errorf("%s namespaces %q and %q: want the pod's one", ns, a, b)
		}
	}
	if out := exec("b", "ps -o pid,args"); strings.Count(out, "sleep 1000") != 2 || !strings.Contains(out, " 1 /proc/self/exe userns") {
		t.Errorf("the pod's PID namespace shows %q: want the holder as PID 1 and both containers' sleep", out)
	}
	if out := exec("a", "echo hi > /etc/written && stat -c %u:%g /etc/written / && id -u"); out != "0:0\n0:0\n0\n" {
		t.Errorf("the rootfs as the container's root sees it: %q", out)
	}
	if fi, err := os.Stat(filepath.Join(rootfs, "etc", "written")); err != nil {
		t.Errorf("the rootfs write did not reach the host: %v", err)
	} else if uid := statUID(fi); uid != hostID {
		t.Errorf("the file the container's root made in its rootfs is owned by %d on the host, want %d", uid, hostID)
	}
	if out := exec("a", "stat -c %u:%g /vol/owned && touch /vol/made && stat -c %u:%g /vol/made"); out != "0:0\n0:0\n" {
		t.Errorf("the volume as the container's root sees it: %q, want 0:0 twice", out)
	}
	if fi, err := os.Stat(filepath.Join(volume, "made")); err != nil {
		t.Errorf("the volume write did not reach the host: %v", err)
	} else if uid := statUID(fi); uid != 0 {
		t.Errorf("the file the container's root made in the volume is owned by %d on the host, want 0", uid)
	}
}

func statUID(fi os.FileInfo) uint32 { return fi.Sys().(*syscall.Stat_t).Uid }
