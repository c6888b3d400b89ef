package main

import (
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vc-cri/vc-cri/pkg/agent/protocol"
)

func TestBadRequestsGetClearCodes(t *testing.T) {
	a := newAgent(t.TempDir())
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		call func() error
		want codes.Code
	}{
		{"spec not JSON", func() error {
			_, err := a.CreateContainer(ctx, &protocol.CreateContainerRequest{ContainerId: "c", OciSpec: []byte("{")})
			return err
		}, codes.InvalidArgument},
		{"spec without process", func() error {
			_, err := a.CreateContainer(ctx, &protocol.CreateContainerRequest{ContainerId: "c", OciSpec: []byte(`{"root":{"path":"/x"}}`)})
			return err
		}, codes.InvalidArgument},
		{"bad container id", func() error {
			_, err := a.CreateContainer(ctx, &protocol.CreateContainerRequest{ContainerId: "../x", OciSpec: []byte(`{}`)})
			return err
		}, codes.InvalidArgument},
		{"start unknown", func() error {
			_, err := a.StartContainer(ctx, &protocol.ContainerRequest{ContainerId: "nosuch"})
			return err
		}, codes.NotFound},
		{"exec in unknown", func() error {
			_, err := a.ExecProcess(ctx, &protocol.ExecProcessRequest{ContainerId: "nosuch", ExecId: "e"})
			return err
		}, codes.NotFound},
		{"wait unknown", func() error {
			_, err := a.WaitProcess(ctx, &protocol.ProcessRequest{ContainerId: "nosuch"})
			return err
		}, codes.NotFound},
		{"remove unknown", func() error {
			_, err := a.RemoveContainer(ctx, &protocol.ContainerRequest{ContainerId: "nosuch"})
			return err
		}, codes.NotFound},
		{"stats unknown", func() error {
			_, err := a.StatsContainer(ctx, &protocol.ContainerRequest{ContainerId: "nosuch"})
			return err
		}, codes.NotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := status.Code(tc.call()); got != tc.want {
				t.Fatalf("code %v, want %v", got, tc.want)
			}
		})
	}
}

func TestProcReaders(t *testing.T) {
	ppid, uid := procStatus(os.Getpid())
	if ppid != strconv.Itoa(os.Getppid()) || uid != strconv.Itoa(os.Getuid()) {
		t.Fatalf("procStatus: ppid %s uid %s, want %d and %d", ppid, uid, os.Getppid(), os.Getuid())
	}
	if cmd := procCmdline(os.Getpid()); !strings.Contains(cmd, os.Args[0]) {
		t.Fatalf("procCmdline %q lacks %q", cmd, os.Args[0])
	}
	if ppid, uid := procStatus(-1); ppid != "?" || uid != "?" {
		t.Fatalf("procStatus of no process: %s %s, want ?", ppid, uid)
	}
}

func TestValidID(t *testing.T) {
	for id, want := range map[string]bool{"abc": true, "a-b_c.1": true, "": false, "..": false, ".": false, "a/b": false, "a\x00": false} {
		if validID(id) != want {
			t.Errorf("validID(%q) = %v, want %v", id, !want, want)
		}
	}
}

func TestFindVirtioPortMissing(t *testing.T) {
	if _, err := findVirtioPort("no-such-port.0"); err == nil {
		t.Fatal("findVirtioPort of a missing port: no error")
	}
}

func TestParseCPUList(t *testing.T) {
	for in, want := range map[string][]int{"": nil, "0": {0}, "0-3": {0, 1, 2, 3}, "0,2-3": {0, 2, 3}} {
		got, err := parseCPUList(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("parseCPUList(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"x", "3-1", "0-99999999", "-1", "1-"} {
		if got, err := parseCPUList(bad); err == nil {
			t.Errorf("parseCPUList(%q) = %v, want an error", bad, got)
		}
	}
}
