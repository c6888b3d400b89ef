# shellcheck shell=bash
# Shared harness of test/critest/run.sh, test/e2e/run.sh and hack/bench:
# build the CRI tools, start the offline test registry and a vc-cri on a
# private socket with private root, state, CNI and log directories, and
# tear everything down again. Source it, then call vc_env NAME INDEX.
#
# Environment (all optional):
#   VC_OUTPUT           output directory (default REPO/_output)
#   VC_CRI_BIN          daemon binary (default _output/bin/vc-cri; built by `make build` if absent)
#   VC_GUEST_DIR        guest kernel + initramfs (default _output/guest; `make guest` if absent)
#   VC_ACCELERATOR      auto | kvm | tcg (default auto)
#   VC_LOG_LEVEL        vc-cri klog verbosity (default 2)
#   VC_CNI_BIN_DIRS     colon-separated CNI plugin dirs (default /usr/lib/cni:/opt/cni/bin)
#   VC_REGISTRY_ADDR    address of the test registry (default 127.0.0.1:505N, per harness)
#   VC_REGISTRY_START   command that starts the test registry (hook; default: hack/testregistry start)
#   VC_REGISTRY_STOP    command that stops it (hook; default: hack/testregistry stop)
#   VC_REGISTRIES_CONF  use this registries.conf as is instead of hack/testregistry/registries.conf
#   VC_KEEP             1: keep the private root/state directories after the run

VC_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VC_OUT=${VC_OUTPUT:-$VC_REPO/_output}
VC_TOOLS=$VC_OUT/tools
VC_CRI_BIN=${VC_CRI_BIN:-$VC_OUT/bin/vc-cri}
VC_GUEST_DIR=${VC_GUEST_DIR:-$VC_OUT/guest}
export PATH=$VC_TOOLS:$PATH

vc_log() { printf '%s [%s] %s\n' "$(date +%H:%M:%S)" "${VC_NAME:-harness}" "$*" >&2; }
vc_die() { vc_log "ERROR: $*"; exit 1; }

# vc_env NAME INDEX: the private paths of one harness. INDEX (0..9) keeps
# concurrent harnesses of different kinds apart (subnet, bridge, registry
# port). The state directory is short: QEMU's sockets live under
# STATE/sandboxes/<64-hex id>/vm/ and a unix socket path has at most 107
# bytes (/run/vcct/N/s/sandboxes/<id>/vm/virtiofsd.sock is 106).
vc_env() {
	VC_NAME=$1
	local idx=$2
	VC_RESULTS=$VC_OUT/$VC_NAME              # logs, reports, summaries
	VC_BASE=/run/vcct/$idx                   # harness files (CNI conf, IPAM, pidfiles)
	VC_STATE=$VC_BASE/s                      # vc-cri --state
	VC_ROOT=/var/lib/vcct/$VC_NAME           # vc-cri --root (image store)
	VC_SOCK=$VC_STATE/vc-cri.sock
	VC_ENDPOINT=unix://$VC_SOCK
	VC_CNI_CONF_DIR=$VC_BASE/net.d
	VC_CNI_IPAM_DIR=$VC_BASE/ipam
	VC_BRIDGE=vccri-test$idx
	VC_SUBNET=10.89.$idx.0/24
	VC_REGISTRY_ADDR=${VC_REGISTRY_ADDR:-127.0.0.1:505$idx}
	VC_CONFIG=$VC_BASE/config.toml
	VC_DAEMON_LOG=$VC_RESULTS/vc-cri.log
	VC_DAEMON_PID=
	mkdir -p "$VC_RESULTS" "$VC_BASE" "$VC_STATE" "$VC_ROOT"
	vc_crictl_config
}

# vc_crictl_config: crictl with its own config file (no /etc/crictl.yaml).
vc_crictl_config() {
	printf 'runtime-endpoint: %s\nimage-endpoint: %s\ntimeout: 300\n' "$VC_ENDPOINT" "$VC_ENDPOINT" >"$VC_BASE/crictl.yaml"
	VC_CRICTL=(crictl --config "$VC_BASE/crictl.yaml" --runtime-endpoint "$VC_ENDPOINT" --image-endpoint "$VC_ENDPOINT" --timeout 300s)
}

crictl_() { "${VC_CRICTL[@]}" "$@"; }

# vc_lock: one harness of a kind at a time (critest binds fixed host ports).
vc_lock() {
	exec {VC_LOCK_FD}>"/run/vcct/$VC_NAME.lock"
	flock -n "$VC_LOCK_FD" || vc_die "another $VC_NAME run holds /run/vcct/$VC_NAME.lock"
}

# vc_build_tools: crictl, critest, ginkgo and junitsum/benchsum at the
# versions pinned by test/critest/tools/go.mod, into _output/tools, rebuilt
# only when that module changes.
vc_build_tools() {
	local mod=$VC_REPO/test/critest/tools stamp=$VC_TOOLS/.cri-tools.stamp want t
	local ver ldflags
	ver=$(awk '$1 == "sigs.k8s.io/cri-tools" { print $2 }' "$mod/go.mod")
	ldflags="-X sigs.k8s.io/cri-tools/pkg/version.Version=$ver"
	want=$( (cat "$mod/go.mod" "$mod/go.sum" "$mod"/*/*.go; echo "$ldflags") | sha256sum | cut -d' ' -f1)
	local ok=1
	for t in crictl critest ginkgo junitsum benchsum; do
		[ -x "$VC_TOOLS/$t" ] || ok=0
	done
	if [ "$ok" = 1 ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
		return 0
	fi
	vc_log "building crictl, critest, ginkgo (sigs.k8s.io/cri-tools, see $mod/go.mod)"
	mkdir -p "$VC_TOOLS"
	(
		cd "$mod"
		export GOWORK=off
		go build -ldflags "$ldflags" -o "$VC_TOOLS/crictl" sigs.k8s.io/cri-tools/cmd/crictl
		go test -c -ldflags "$ldflags" -o "$VC_TOOLS/critest" sigs.k8s.io/cri-tools/cmd/critest
		go build -o "$VC_TOOLS/ginkgo" github.com/onsi/ginkgo/v2/ginkgo
		go build -o "$VC_TOOLS/junitsum" ./junitsum
		go build -o "$VC_TOOLS/benchsum" ./benchsum
	) || vc_die "building the CRI tools failed"
	echo "$want" >"$stamp"
}

# vc_build_daemon: the daemon and the guest image, when absent (the
# Makefile targets depend on `build` and `guest` and so keep them fresh).
vc_build_daemon() {
	if [ ! -x "$VC_CRI_BIN" ] || [ ! -x "$(dirname "$VC_CRI_BIN")/vc-pause" ]; then
		vc_log "no $VC_CRI_BIN: make build"
		make -C "$VC_REPO" build >&2 || vc_die "make build failed"
	fi
	if [ ! -f "$VC_GUEST_DIR/vmlinux" ] || [ ! -f "$VC_GUEST_DIR/initramfs.cpio" ]; then
		vc_log "no guest image in $VC_GUEST_DIR: make guest"
		make -C "$VC_REPO" guest >&2 || vc_die "make guest failed"
	fi
}

# --- test registry ---------------------------------------------------------

vc_registry_start() {
	VC_REGISTRY_PIDFILE=$VC_BASE/registry.pid
	if [ -n "${VC_REGISTRY_START:-}" ]; then
		vc_log "starting the test registry: $VC_REGISTRY_START"
		eval "$VC_REGISTRY_START" || vc_die "test registry did not start"
	else
		[ -f "$VC_REPO/hack/testregistry/main.go" ] || vc_die "hack/testregistry is missing: set VC_REGISTRY_START/VC_REGISTRY_STOP"
		(cd "$VC_REPO" && GOWORK=off go build -o "$VC_TOOLS/testregistry" ./hack/testregistry) || vc_die "building hack/testregistry failed"
		vc_log "starting the test registry on $VC_REGISTRY_ADDR"
		"$VC_TOOLS/testregistry" start -addr "$VC_REGISTRY_ADDR" -pidfile "$VC_REGISTRY_PIDFILE" \
			-log "$VC_RESULTS/registry.log" >&2 || vc_die "test registry did not start, see $VC_RESULTS/registry.log"
	fi
	VC_REGISTRY_STARTED=1
	# registries.conf: every registry critest names is mirrored to ours.
	VC_REGISTRIES=$VC_BASE/registries.conf
	if [ -n "${VC_REGISTRIES_CONF:-}" ]; then
		cp "$VC_REGISTRIES_CONF" "$VC_REGISTRIES"
	else
		sed "s/127\.0\.0\.1:5000/$VC_REGISTRY_ADDR/g" "$VC_REPO/hack/testregistry/registries.conf" >"$VC_REGISTRIES"
	fi
}

vc_registry_stop() {
	[ "${VC_REGISTRY_STARTED:-0}" = 1 ] || return 0
	VC_REGISTRY_STARTED=0
	if [ -n "${VC_REGISTRY_STOP:-}" ]; then
		eval "$VC_REGISTRY_STOP" || vc_log "stopping the test registry failed"
	else
		"$VC_TOOLS/testregistry" stop -pidfile "$VC_REGISTRY_PIDFILE" || vc_log "stopping the test registry failed"
	fi
}

# --- CNI and daemon configuration -------------------------------------------

vc_write_cni() {
	rm -rf "$VC_CNI_CONF_DIR"
	mkdir -p "$VC_CNI_CONF_DIR" "$VC_CNI_IPAM_DIR"
	cat >"$VC_CNI_CONF_DIR/10-vccri-test.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "vccri-$VC_NAME",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$VC_BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$VC_CNI_IPAM_DIR",
        "routes": [{ "dst": "0.0.0.0/0" }],
        "ranges": [[{ "subnet": "$VC_SUBNET" }]]
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } },
    { "type": "loopback" }
  ]
}
EOF
}

# The KVM probe's verdicts (hypervisor.AccelVerdictFileName), shared by
# the harnesses' daemons: each state dir is removed after its run, and a
# probe costs each first pod 15 s on hosts where nested KVM hangs.
VC_VERDICTS=/run/vcct/kvm-verdicts.json

vc_write_config() {
	cp "$VC_VERDICTS" "$VC_STATE/" 2>/dev/null || true
	local bins=${VC_CNI_BIN_DIRS:-/usr/lib/cni:/opt/cni/bin} d list=""
	IFS=: read -ra dirs <<<"$bins"
	for d in "${dirs[@]}"; do list+="${list:+, }\"$d\""; done
	cat >"$VC_CONFIG" <<EOF
# Written by test/critest/lib.sh for the $VC_NAME harness.
listen = "$VC_ENDPOINT"
root = "$VC_ROOT"
state = "$VC_STATE"
log_level = ${VC_LOG_LEVEL:-2}
streaming_address = "127.0.0.1:0"

[vm]
kernel = "$VC_GUEST_DIR/vmlinux"
image = "$VC_GUEST_DIR/initramfs.cpio"
accelerator = "${VC_ACCELERATOR:-auto}"
# VC_TEMPLATES=false boots every pod VM cold.
templates = ${VC_TEMPLATES:-true}

[cni]
conf_dir = "$VC_CNI_CONF_DIR"
bin_dirs = [$list]

[image]
registries_conf = "$VC_REGISTRIES"

# The harness's own NRI socket, which critest's NRI specs connect to
# (run.sh's -nri-socket). Those specs hold a plugin's Synchronize open for
# 2s: the default request timeout would drop the plugin just then.
[nri]
enable = true
socket_path = "$VC_BASE/nri.sock"
plugin_path = "$VC_BASE/nri-plugins"
plugin_config_path = "$VC_BASE/nri-conf.d"
plugin_request_timeout = "10s"
EOF
}

# --- the daemon -------------------------------------------------------------

# vc_daemon_start: vc-cri in the background, logs appended to
# VC_DAEMON_LOG; returns once the socket answers crictl version.
vc_daemon_start() {
	vc_log "starting vc-cri on $VC_ENDPOINT (log: $VC_DAEMON_LOG)"
	echo "=== vc-cri start $(date -Is)" >>"$VC_DAEMON_LOG"
	"$VC_CRI_BIN" --config "$VC_CONFIG" --listen "$VC_ENDPOINT" --root "$VC_ROOT" --state "$VC_STATE" \
		--cni-conf-dir "$VC_CNI_CONF_DIR" --registries-conf "$VC_REGISTRIES" \
		--log-level "${VC_LOG_LEVEL:-2}" >>"$VC_DAEMON_LOG" 2>&1 &
	VC_DAEMON_PID=$!
	local i
	for ((i = 0; i < 600; i++)); do
		if ! kill -0 "$VC_DAEMON_PID" 2>/dev/null; then
			wait "$VC_DAEMON_PID" || true
			VC_DAEMON_PID=
			tail -n 30 "$VC_DAEMON_LOG" >&2
			vc_log "vc-cri exited during startup"
			return 1
		fi
		if [ -S "$VC_SOCK" ] && crictl_ --timeout 5s version >/dev/null 2>&1; then
			vc_log "vc-cri is up (PID $VC_DAEMON_PID) after $((i / 10)).$((i % 10))s"
			return 0
		fi
		sleep 0.1
	done
	vc_log "vc-cri did not answer on $VC_SOCK within 60s"
	return 1
}

# vc_daemon_stop: SIGTERM (vc-cri leaves VMs running), SIGKILL after 30s.
vc_daemon_stop() {
	[ -n "$VC_DAEMON_PID" ] || return 0
	local pid=$VC_DAEMON_PID i
	VC_DAEMON_PID=
	kill -TERM "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
	for ((i = 0; i < 300; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		vc_log "vc-cri (PID $pid) ignored SIGTERM for 30s: SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
	echo "=== vc-cri stopped $(date -Is)" >>"$VC_DAEMON_LOG"
}

# --- what a run may leave behind --------------------------------------------

# vc_qemu_pids: QEMU processes of this harness: their command line names
# a path under our state directory (QMP and agent sockets).
# vc_pids_of PROGRAM: the PIDs of PROGRAM's processes that name this
# harness's state dir.
vc_pids_of() {
	local p cmd
	for p in /proc/[0-9]*; do
		cmd=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
		case $cmd in
		*"$1"*"$VC_STATE/"*) echo "${p#/proc/}" ;;
		esac
	done
}

# vc_conmon_pids: the conmon monitors of this harness's runc pods.
vc_conmon_pids() { vc_pids_of conmon; }

# vc_runc_containers: "ROOT ID" of each runc container under the state dir.
vc_runc_containers() {
	local f dir
	find "$VC_STATE/runc" -name state.json 2>/dev/null | while read -r f; do
		dir=$(dirname "$f")
		echo "$(dirname "$dir") $(basename "$dir")"
	done
}

# vc_runc_cgroups IDS: the cgroups the runc handler made for the pods (or
# containers) of IDS without a cgroup parent, still there.
vc_runc_cgroups() {
	local id
	for id in $1; do
		ls -d /sys/fs/cgroup/*/vc-cri/"$id" /sys/fs/cgroup/vc-cri/"$id" 2>/dev/null
	done
}

# vc_qemu_pids: the QEMU processes of this harness's VM pods.
vc_qemu_pids() { vc_pids_of qemu-system; }

# vc_qemu_of POD: the PID of the QEMU that runs the pod (its -name is
# vc-<pod ID>).
vc_qemu_of() {
	local p
	for p in $(vc_qemu_pids); do
		tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -cF -- "-name vc-$1" >/dev/null && echo "$p"
	done
}

# vc_mntns: the daemon's own mount namespace (vc-cri runs its pods'
# mounts, netns and QEMU in it, pinned under its state dir).
vc_mntns() { echo "$VC_STATE/ns/mnt"; }

# vc_in_mntns CMD...: run a command in the daemon's mount namespace, or
# in ours when it has none (yet, or any more).
vc_in_mntns() {
	if [ "$(stat -f -c %T "$(vc_mntns)" 2>/dev/null)" = nsfs ]; then
		nsenter --mount="$(vc_mntns)" -- "$@"
	else
		"$@"
	fi
}

# vc_mountinfo: the mount table the daemon's mounts are in.
vc_mountinfo() { vc_in_mntns cat /proc/self/mountinfo; }

# vc_mounts_under DIR...: mount points under the directories, deepest
# first, the pin of the daemon's namespace left out.
vc_mounts_under() {
	local d
	for d in "$@"; do
		vc_mountinfo | awk -v d="$d" -v ns="$VC_STATE/ns" '($5 == d || index($5, d "/") == 1) && index($5, ns) != 1 { print $5 }'
	done | sort -ru
}

# vc_netns_mounts: network namespaces of this harness's pods: nsfs mounts
# under our state dir or named vc-<id> for an ID that our state knows.
vc_netns_mounts() {
	local ids
	ids=$(vc_known_ids | tr '\n' '|')
	awk -v st="$VC_STATE/" -v ids="|$ids" '{
		fs = ""
		for (i = 7; i < NF; i++) if ($i == "-") { fs = $(i + 1); break }
		if (fs != "nsfs") next
		n = split($5, a, "/"); b = a[n]
		if (index($5, st) == 1) { print $5; next }
		if (b ~ /^vc-/ && index(ids, "|" substr(b, 4) "|") > 0) print $5
	}' <(vc_mountinfo) | sort -u
}

# vc_known_ids: pod and container IDs this harness's daemon has seen:
# recorded by vc_record_ids and found under the state directory.
vc_known_ids() {
	{
		cat "$VC_BASE/ids" 2>/dev/null || true
		find "$VC_STATE" -maxdepth 3 -regextype posix-extended -regex '.*/[0-9a-f]{64}(\.[a-z]+)?' 2>/dev/null |
			sed -E 's|.*/([0-9a-f]{64}).*|\1|'
	} | sort -u
}

# vc_record_ids: remember the IDs the daemon lists now (for leak checks).
vc_record_ids() {
	{
		crictl_ --timeout 20s pods -q 2>/dev/null || true
		crictl_ --timeout 20s ps -aq 2>/dev/null || true
	} >>"$VC_BASE/ids"
}

# vc_remove_pods: every pod removed through CRI (StopPodSandbox runs CNI
# DEL, RemovePodSandbox removes the VM and its state).
vc_remove_pods() {
	[ -n "$VC_DAEMON_PID" ] || return 0
	vc_record_ids
	local ids
	ids=$(crictl_ --timeout 20s pods -q 2>/dev/null) || return 0
	[ -n "$ids" ] || return 0
	vc_log "removing $(echo "$ids" | wc -l) pod(s)"
	# shellcheck disable=SC2086
	crictl_ --timeout 120s rmp -f $ids >&2 || vc_log "crictl rmp -f failed"
}

# vc_cleanup_host: the last resort after the daemon stopped: kill this
# run's QEMU processes, unmount what is left under state and root, remove
# netns and the test bridge.
vc_cleanup_host() {
	local p m
	for p in $(vc_qemu_pids); do
		vc_log "killing stray QEMU PID $p"
		kill -KILL "$p" 2>/dev/null || true
	done
	local root id
	vc_runc_containers | while read -r root id; do
		vc_log "removing stray runc container $id"
		vc_in_mntns runc --root "$root" delete --force "$id" >/dev/null 2>&1 || true
	done
	for p in $(vc_conmon_pids); do
		vc_log "killing stray conmon PID $p"
		kill -KILL "$p" 2>/dev/null || true
	done
	for m in $(vc_netns_mounts); do
		vc_log "removing leftover netns $m"
		vc_in_mntns umount -l "$m" 2>/dev/null || true
		rm -f "$m"
	done
	for m in $(vc_mounts_under "$VC_STATE" "$VC_ROOT"); do
		vc_in_mntns umount -l "$m" 2>/dev/null || true
	done
	# The daemon's namespace itself: its pin, then the pin's directory.
	umount -l "$(vc_mntns)" 2>/dev/null || true
	umount -l "$VC_STATE/ns" 2>/dev/null || true
	ip link del "$VC_BRIDGE" 2>/dev/null || true
	cp "$VC_STATE/kvm-verdicts.json" "$VC_VERDICTS" 2>/dev/null || true
	if [ "${VC_KEEP:-0}" != 1 ]; then
		rm -rf "$VC_STATE" "$VC_ROOT" 2>/dev/null || vc_log "could not remove $VC_STATE or $VC_ROOT"
		rm -rf "$VC_CNI_IPAM_DIR"
	fi
}

# vc_teardown: everything, whatever happened, in order. Safe to call twice.
vc_teardown() {
	vc_remove_pods || true
	vc_daemon_stop || true
	vc_cleanup_host || true
	vc_registry_stop || true
}

# vc_up: tools, daemon, registry, CNI, config, daemon started. Call
# `trap vc_teardown EXIT` first.
vc_up() {
	vc_build_tools
	vc_build_daemon
	vc_registry_start
	vc_write_cni
	vc_write_config
	vc_daemon_start || vc_die "vc-cri did not start, see $VC_DAEMON_LOG"
}

# vc_ms: milliseconds since the epoch.
vc_ms() { echo $(($(date +%s%N) / 1000000)); }

# --- steps of the end-to-end tests ------------------------------------------

# step NAME CMD...: runs CMD in this shell, its output to $STEPLOG; prints
# PASS or FAIL with its time and counts it in passed, failed and failures
# (the caller's, set to 0, 0 and () first).
step() {
	local name=$1 t0 rc
	shift
	t0=$(vc_ms)
	echo "=== $(date +%T) $name: $*" >>"$STEPLOG"
	"$@" >>"$STEPLOG" 2>&1
	rc=$?
	if [ "$rc" = 0 ]; then
		passed=$((passed + 1))
		printf 'PASS  %-58s %6d ms\n' "$name" "$(($(vc_ms) - t0))"
	else
		failed=$((failed + 1))
		failures+=("$name")
		printf 'FAIL  %-58s %6d ms  (see %s)\n' "$name" "$(($(vc_ms) - t0))" "$STEPLOG"
		echo "--- FAIL $name (exit $rc)" >>"$STEPLOG"
	fi
	return "$rc"
}

# Leak checks, each passing when nothing is left.
empty() { # WHAT: passes when WHAT is empty
	[ -z "$1" ] || { echo "left: $1"; return 1; }
}
# no_links BRIDGE IDS: no interface on the bridge, none named after a pod.
no_links() {
	empty "$(ip -o link show master "$1" 2>/dev/null)" || return 1
	local id
	for id in $2; do
		empty "$(ip -o link | grep -F "${id:0:8}")" || return 1
	done
}
# no_state_files DIR IDS: no file under DIR names one of the IDS.
no_state_files() {
	local id left=""
	for id in $2; do left+=$(find "$1" -path "*$id*" 2>/dev/null); done
	empty "$left"
}
# netns_left: the network namespaces of this harness's pods still there.
netns_left() {
	local id
	vc_netns_mounts
	for id in $(vc_known_ids); do ip netns list 2>/dev/null | grep -F "${id:0:12}"; done
}

# vc_leak_steps: once the daemon stopped, a step for each thing a run must
# not leave: QEMU, mounts, netns, taps, IPAM leases, state files.
vc_leak_steps() {
	local ids
	ids=$(vc_known_ids | tr '\n' ' ')
	echo "known IDs: $ids" >>"$STEPLOG"
	step "no QEMU process left" empty "$(vc_qemu_pids)"
	step "no conmon process left" empty "$(vc_conmon_pids)"
	step "no runc container left" empty "$(vc_runc_containers)"
	step "no cgroup of a runc pod left" empty "$(vc_runc_cgroups "$ids")"
	step "no mount left under the state dir" empty "$(vc_mounts_under "$VC_STATE")"
	step "no netns left" empty "$(netns_left)"
	step "no tap or veth left on the test bridge" no_links "$VC_BRIDGE" "$ids"
	step "no IPAM reservation left" empty "$(find "$VC_CNI_IPAM_DIR" -type f -regex '.*/[0-9.]+' 2>/dev/null)"
	step "no state file of a pod or container left" no_state_files "$VC_STATE" "$ids"
}
