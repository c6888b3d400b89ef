// Package exitcode names the exit codes a container's process is given
// when it did not exit on its own, as a shell reports them: the guest
// agent, the sandbox layer and the CRI service all use these.
package exitcode

import "syscall"

const (
	// Unknown is the exit code of a process whose end was never
	// reported.
	Unknown int32 = 255
	// Killed is the exit code of a process killed by SIGKILL: that of a
	// container stopped without a word from its guest, too.
	Killed = signaledBase + int32(syscall.SIGKILL)

	// signaledBase plus the signal's number is the exit code of a process
	// a signal ended.
	signaledBase int32 = 128
)

// Signaled is the exit code of a process ended by sig.
func Signaled(sig syscall.Signal) int32 { return signaledBase + int32(sig) }
