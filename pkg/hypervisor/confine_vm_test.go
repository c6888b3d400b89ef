package hypervisor

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestQEMUConfined boots a 9p guest and reads QEMU's confinement from
// /proc: the capabilities qemuCaps keeps, no_new_privs, a seccomp
// filter, and a console that is not a file.
func TestQEMUConfined(t *testing.T) {
	c := bootConfig(t, "9p")
	vm := launch(t, c)
	readyOrFail(t, vm, c)
	b, err := os.ReadFile("/proc/" + strconv.Itoa(vm.Pid()) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	var want uint64
	for _, c := range []uintptr{unix.CAP_CHOWN, unix.CAP_DAC_OVERRIDE, unix.CAP_FOWNER, unix.CAP_FSETID} {
		want |= 1 << c
	}
	fields := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			fields[k] = strings.TrimSpace(v)
		}
	}
	for k, v := range map[string]string{
		"CapBnd": fmt.Sprintf("%016x", want), "CapEff": fmt.Sprintf("%016x", want),
		"CapPrm": fmt.Sprintf("%016x", want), "NoNewPrivs": "1", "Seccomp": "2",
	} {
		if fields[k] != v {
			t.Errorf("QEMU %s = %q, want %q", k, fields[k], v)
		}
	}
	if _, err := os.Stat(c.path(consoleLogName)); !os.IsNotExist(err) {
		t.Errorf("console.log without Debug: %v", err)
	}
	limits, err := os.ReadFile("/proc/" + strconv.Itoa(vm.Pid()) + "/limits")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(limits), "\n") {
		if f := strings.Fields(strings.TrimPrefix(l, "Max file size")); strings.HasPrefix(l, "Max file size") &&
			(len(f) < 2 || f[0] != strconv.Itoa(maxLogSize) || f[1] != strconv.Itoa(maxLogSize)) {
			t.Errorf("QEMU's file size limit: %q, want %d", l, maxLogSize)
		}
	}
}
