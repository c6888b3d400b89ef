package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// runHooks runs OCI hooks in order, each given the sandbox's OCI state on
// its stdin. The first failure stops the rest.
func (l *lockedSandbox) runHooks(ctx context.Context, hooks []Hook, status string) error {
	if len(hooks) == 0 {
		return nil
	}
	state, err := json.Marshal(specs.State{
		Version: specs.Version, ID: l.Config.ID, Status: specs.ContainerState(status),
		Pid: l.VMPid, Bundle: l.dir(),
	})
	if err != nil {
		return err
	}
	for _, h := range hooks {
		if err := runHook(ctx, h, state); err != nil {
			return err
		}
	}
	return nil
}

func runHook(ctx context.Context, h Hook, state []byte) error {
	if h.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(h.Timeout)*time.Second)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, h.Path)
	if len(h.Args) > 0 {
		cmd.Args = h.Args // OCI: Args includes argv[0]
	}
	cmd.Env = h.Env
	cmd.Stdin = bytes.NewReader(state)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("hook %s: %w: %s", h.Path, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return nil
}
