package cri

import (
	"fmt"

	utilexec "k8s.io/utils/exec"
)

// exitError reports a process's exit code to the streaming server, which
// passes it on to the client.
func exitError(code int32) error {
	return utilexec.CodeExitError{Err: fmt.Errorf("command terminated with exit code %d", code), Code: int(code)}
}
