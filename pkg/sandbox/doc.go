// Package sandbox is the virtcontainers 1.0 API of vc-cri: sandboxes,
// each a VM, and the containers that run in their guests.
//
// # The API
//
// The functions of the specification (CreateSandbox, RunSandbox,
// DeleteSandbox, StartSandbox, StopSandbox, ListSandbox, StatusSandbox,
// PauseSandbox, ResumeSandbox, CreateContainer, DeleteContainer,
// StartContainer, StopContainer, EnterContainer, StatusContainer,
// KillContainer, ProcessListContainer) keep its signatures, as do the
// structures and VCSandbox and VCContainer. They are a facade over
// Default, the process's Runtime, made with NewRuntime() on first use;
// a program that needs another state root or hypervisor calls
// SetDefault once, before the first call. A Runtime has each of them as
// a method that takes a context.Context first; a caller that holds its
// own Runtime (the CRI service, the tests) uses those.
//
// # State on disk
//
// A sandbox lives in files, not in the process: any process can act on
// a sandbox by its ID, and a restarted daemon finds every sandbox again.
// Below the runtime's state root (DefaultStateRoot, on a tmpfs as VMs do
// not outlive the host):
//
//	<id>/sandbox.json     the sandbox and its containers, rewritten whole by rename
//	                      (fsync'd, unless the state root is on a tmpfs)
//	<id>/lock             the flock half of the sandbox's lock
//	<id>/staging/         the host's binds: <container>/rootfs, <container>/mounts/<i>, volumes/<tag>
//	<id>/shared/          the guest's read-only view of staging/ (older sandboxes: the binds themselves)
//	.vm/<hash of id>/     the VM's runtime files: QMP and agent sockets, pidfile, logs
//
// and beside the state root, kvm-verdicts.json, the KVM probes' verdicts.
// mounts.go tells how the host keeps the guest from reaching beyond its
// binds.
//
// # Locking
//
// Every call holds the sandbox's lock while it reads, changes and saves
// the sandbox: calls on one sandbox are serialised across goroutines and
// processes, and a call holds one sandbox's lock at a time (ListSandbox
// takes them in turn). It is held across a round trip to the guest only
// where the guest's answer changes what is saved in the same step:
// creating, starting and deleting a container, and a sandbox's own
// lifecycle, each bounded by its call's deadline. The rest take it only
// to check the state and find the agent, then ask the guest without it
// (IOStream, WaitProcess, SignalProcess, WinsizeProcess, StatsContainer,
// PortForward, EnterContainer, KillContainer, ProcessListContainer), or
// take it again to record the answer (StopContainer, whose wait for the
// killed container's exit lasts up to 10 s, and the statuses, which ask
// whether running containers have exited): an exec or a status in a pod
// never waits behind another container's stop.
//
// The lock is in two halves, taken in this order and given back in the
// other: the Runtime's in-process lock of the sandbox ID, then an flock
// of <id>/lock for the other processes on the state root. Both honour
// the call's context: a call that waits for either past its ctx's end
// fails with an error that wraps ctx.Err() (context.DeadlineExceeded or
// context.Canceled, which pkg/cri answers with the gRPC codes of those
// names), and the holder goes on undisturbed. A free lock is taken
// whatever the context. The functions of the facade, Sandbox's
// SetAnnotations (the interface gives it no context) and RunSandbox's
// deletion of a sandbox it failed to start wait as long as it takes.
// The in-process lock is a channel with room for one, waited on with
// select; the flock is tried without blocking, again
// every few milliseconds. The Runtime keeps an in-process lock only while
// a call holds it or waits for it; the mutex of that map is held only to
// look a lock up or drop it, never while waiting for one.
//
// A Runtime caches this process's VM handles and agent links, each
// cache behind a mutex of its own, taken only under a sandbox's lock.
// The order is: the in-process lock, the flock, then the VM cache's
// mutex, held while attaching to a VM; the agent cache's mutex is held only to read or
// change its map, never across a dial, which waits for the guest to
// boot. The sandbox's lock is what keeps two dials of one sandbox apart.
// Neither mutex is ever held while taking a sandbox's lock or the other
// mutex.
//
// # The pod network
//
// The network namespace is the caller's (pkg/cri's, as containerd's CRI
// keeps it): it creates the namespace and has CNI configure it before
// RunSandbox or CreateSandbox, whose NetworkConfig.NetNSPath names it.
// A sandbox only joins its VM to the interfaces it finds there, with its
// interworking model (pkg/cni's Connect: the taps), and StopSandbox
// unjoins them once the VM is down, before it returns. The caller runs
// CNI DEL and removes the namespace only after that.
//
// # Errors
//
// Refusals wrap ErrNotFound, ErrAlreadyExists, ErrInvalidState or
// ErrInvalidConfig with their details: test them with errors.Is. Each
// wraps its kind of github.com/containerd/errdefs (NotFound,
// AlreadyExists, FailedPrecondition, InvalidArgument). Errors of the
// guest come as pkg/agent's client words them (agent.GuestError: a
// sanitized message, the kind of the guest's NotFound, AlreadyExists,
// InvalidArgument or FailedPrecondition, else none), those of the
// hypervisor wrapping pkg/hypervisor's.
//
// # Beyond the specification
//
//   - Runtime, its options (WithStateRoot, WithHypervisor,
//     WithAgentDialer), Default and SetDefault, and the Agent and
//     AgentDialer interfaces a Runtime reaches guests through.
//   - What a container manager needs: IOStream, WaitProcess,
//     SignalProcess and WinsizeProcess (a process named by its token),
//     StatsContainer, UpdateContainer, PortForward, and DefaultSpec.
//   - Fields marked as such in the structures: SandboxConfig.Sysctls and
//     CgroupParent, ContainerConfig.Resources and CustomSpec,
//     ContainerStatus.ExitCode, FinishedAt and OOMKilled, and the
//     NetXConnectTCFilterModel interworking model.
package sandbox
