package main

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-tools/generate"
	"golang.org/x/sys/unix"
)

// TestRecursiveReadOnlyMount: the host sends a recursive read-only
// mount as "rro"; the agent's libcontainer makes it a bind whose
// submounts are read-only too (mount_setattr, AT_RECURSIVE), where "ro"
// makes the top mount read-only alone.
func TestRecursiveReadOnlyMount(t *testing.T) {
	g, err := generate.New("linux")
	if err != nil {
		t.Fatal(err)
	}
	g.SetRootPath("/run/vc/shared/c/rootfs")
	for dest, opt := range map[string]string{"/rro": "rro", "/ro": "ro"} {
		g.AddMount(specs.Mount{Destination: dest, Type: "bind", Source: "/run/vc/shared/c/mounts" + dest, Options: []string{"rbind", "rprivate", opt}})
	}
	config, err := libcontainerConfig("c", g.Config)
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, m := range config.Mounts {
		switch m.Destination {
		case "/rro":
			found++
			if m.RecAttr == nil || m.RecAttr.Attr_set&unix.MOUNT_ATTR_RDONLY == 0 || m.Flags&unix.MS_REC == 0 {
				t.Errorf("rro: flags %#x, recursive attributes %+v", m.Flags, m.RecAttr)
			}
		case "/ro":
			found++
			if m.RecAttr != nil || m.Flags&unix.MS_RDONLY == 0 {
				t.Errorf("ro: flags %#x, recursive attributes %+v", m.Flags, m.RecAttr)
			}
		}
	}
	if found != 2 {
		t.Fatalf("mounts %+v", config.Mounts)
	}
}
