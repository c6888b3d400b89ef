package sandbox_test

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/vc-cri/vc-cri/hack/testimages"
	vc "github.com/vc-cri/vc-cri/pkg/sandbox"
)

// The real guest image (make guest) and a busybox root for the tests and
// the example that boot VMs.
var (
	guestKernel     string
	guestImage      string
	containerRootfs string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "vc-sandbox-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	// The example runs on the package-level API: its default runtime.
	vc.SetDefault(vc.NewRuntime(vc.WithStateRoot(filepath.Join(dir, "sandboxes"))))

	guest := os.Getenv("VC_GUEST_DIR")
	if guest == "" {
		_, file, _, _ := runtime.Caller(0)
		guest = filepath.Join(filepath.Dir(file), "..", "..", "_output", "guest")
	}
	guestKernel, guestImage = filepath.Join(guest, "vmlinux"), filepath.Join(guest, "initramfs.cpio")
	containerRootfs = filepath.Join(dir, "busybox")
	if err := testimages.BusyboxRootfs(containerRootfs); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	code := m.Run()
	// What the example left running; each test deletes its own.
	list, err := vc.ListSandbox()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for _, st := range list {
		if _, err := vc.DeleteSandbox(st.ID); err != nil {
			fmt.Fprintf(os.Stderr, "delete sandbox %s: %v\n", st.ID, err)
			code = 1
		}
	}
	return code
}
