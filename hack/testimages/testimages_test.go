package testimages

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

func TestBusyboxRootfs(t *testing.T) {
	dir := t.TempDir()
	if err := BusyboxRootfs(dir); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][]string{{"/bin/sh", "-c", "echo ok"}, {"/bin/ls", "/bin/busybox"}, {"/usr/bin/pgrep", "-f", "nothing-matches-this"}} {
		out, err := exec.Command("chroot", append([]string{dir}, c...)...).CombinedOutput()
		if c[0] == "/usr/bin/pgrep" {
			// exit 1: no match, but it ran.
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
				t.Errorf("pgrep: %v %s", err, out)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v %s", c, err, out)
		}
	}
	out, err := exec.Command("chroot", dir, "/usr/bin/ipcs", "-m").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Shared Memory Segments") {
		t.Errorf("ipcs: %v %s", err, out)
	}
}

func TestCatalog(t *testing.T) {
	nnp, err := BuildNNP(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	imgs, err := Catalog(nnp)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, img := range imgs {
		for _, tag := range img.Tags {
			seen[img.Repo+":"+tag] = true
		}
	}
	for _, want := range []string{"e2e-test-images/busybox:1.29-2", "e2e-test-images/nginx:1.14-2", "e2e-test-images/httpd:2.4.39-4",
		"e2e-test-images/nonewprivs:1.3", "k8s-staging-cri-tools/test-image-user-uid:latest", "k8s-staging-cri-tools/test-image-tags:3",
		"k8s-staging-cri-tools/test-image-tag:all", "k8s-staging-cri-tools/test-image-predefined-group:latest", "pause:3.9"} {
		if !seen[want] {
			t.Errorf("catalog lacks %s", want)
		}
	}
	out, err := exec.Command(nnp).Output()
	if err != nil || string(out) != "Effective uid: "+strconv.Itoa(os.Geteuid())+"\n" {
		t.Errorf("nnp: %q %v", out, err)
	}
}
