#!/usr/bin/env bash
# make bench's peer: a private containerd (Debian 12's containerd 1.6 and
# runc 1.1) with its CRI plugin, on its own socket, state and root, its
# own CNI conf dir, bridge and subnet, and a registry mirror of
# registry.k8s.io (and the other hosts critest names) to the offline test
# registry. It shares nothing with other daemons on the host and leaves
# nothing behind: `down` removes its pods, stops containerd, kills what a
# shim left, unmounts, deletes the bridge and every directory it made.
#
#   hack/bench/peer-containerd.sh up REGISTRY-ADDR   start (the registry runs already)
#   hack/bench/peer-containerd.sh down               stop and remove everything
#   hack/bench/peer-containerd.sh leaks              what a peer left behind, if anything
#   hack/bench/peer-containerd.sh crictl ARGS...     crictl against the peer
#
# Sourced (by hack/bench/compare.sh), it defines peer_up, peer_down,
# peer_start, peer_stop, peer_leaks and peer_crictl.
#
# Environment: PEER_BASE (default /run/vcbench-containerd: socket, config,
# CNI conf, IPAM, containerd's state under state/), PEER_ROOT (default
# /var/lib/vcbench-containerd), PEER_BRIDGE (vcbench-ctd8), PEER_SUBNET
# (10.89.8.0/24), PEER_CGROUP (/vcbench-ctd: the pods' cgroup_parent, so
# that their cgroups are removed with the peer), PEER_METRICS (a free
# 127.0.0.1 port from 15098 on), PEER_LOG (default _output/bench/containerd.log),
# PEER_CNI_BIN (/usr/lib/cni), PEER_SANDBOX_IMAGE (registry.k8s.io/pause:3.9).
#
# containerd 1.6 keeps two paths that no setting moves: its shims'
# sockets under /run/containerd/s/. `down` removes /run/containerd when
# `up` created it and nothing else is in it.

PEER_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PEER_BASE=${PEER_BASE:-/run/vcbench-containerd}
PEER_ROOT=${PEER_ROOT:-/var/lib/vcbench-containerd}
PEER_STATE=$PEER_BASE/state
PEER_SOCK=$PEER_BASE/containerd.sock
PEER_ENDPOINT=unix://$PEER_SOCK
PEER_CONFIG=$PEER_BASE/config.toml
PEER_CNI_CONF_DIR=$PEER_BASE/net.d
PEER_CNI_IPAM_DIR=$PEER_BASE/ipam
PEER_CERTS_DIR=$PEER_BASE/certs.d
PEER_BRIDGE=${PEER_BRIDGE:-vcbench-ctd8}
PEER_SUBNET=${PEER_SUBNET:-10.89.8.0/24}
PEER_CGROUP=${PEER_CGROUP:-/vcbench-ctd}
PEER_CNI_BIN=${PEER_CNI_BIN:-/usr/lib/cni}
PEER_SANDBOX_IMAGE=${PEER_SANDBOX_IMAGE:-registry.k8s.io/pause:3.9}
PEER_LOG=${PEER_LOG:-${VC_OUTPUT:-$PEER_REPO/_output}/bench/containerd.log}
PEER_PIDFILE=$PEER_BASE/containerd.pid
PEER_CRICTL_CONFIG=$PEER_BASE/crictl.yaml
PEER_PID=

peer_log() { printf '%s [peer-containerd] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

peer_crictl() {
	crictl --config "$PEER_CRICTL_CONFIG" --runtime-endpoint "$PEER_ENDPOINT" --image-endpoint "$PEER_ENDPOINT" --timeout 300s "$@"
}

# peer_port_free PORT: nothing listens on 127.0.0.1:PORT.
peer_port_free() { ! ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

# peer_write_config REGISTRY-ADDR
peer_write_config() {
	local reg=$1 h port=${PEER_METRICS_PORT:-}
	if [ -z "$port" ]; then
		for ((port = 15098; port < 15198; port++)); do peer_port_free "$port" && break; done
	fi
	PEER_METRICS=127.0.0.1:$port
	mkdir -p "$PEER_BASE" "$PEER_STATE" "$PEER_ROOT" "$PEER_CNI_CONF_DIR" "$PEER_CNI_IPAM_DIR" "$(dirname "$PEER_LOG")"
	cat >"$PEER_CONFIG" <<EOF
# Written by hack/bench/peer-containerd.sh: make bench's private containerd.
version = 2
root = "$PEER_ROOT"
state = "$PEER_STATE"
oom_score = 0
# Snapshotters and plugins this peer does not use, and the OTLP exporter.
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "$PEER_SOCK"

[ttrpc]
  address = "$PEER_SOCK.ttrpc"

[debug]
  address = ""
  level = "info"

[metrics]
  address = "$PEER_METRICS"
  grpc_histogram = true

[plugins."io.containerd.internal.v1.opt"]
  path = "$PEER_ROOT/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PEER_SANDBOX_IMAGE"
  # These hosts lack CAP_SYS_RESOURCE: lowering oom_score_adj fails and
  # runc with it ("can't get final child's PID from pipe").
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$PEER_CNI_BIN"
    conf_dir = "$PEER_CNI_CONF_DIR"
    max_conf_num = 1

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        Root = "$PEER_STATE/runc"
        SystemdCgroup = false

  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$PEER_CERTS_DIR"
EOF
	# hosts.toml per mirrored host (containerd 1.6 config_path layout):
	# the test registry, plain HTTP, serves the same paths.
	for h in registry.k8s.io k8s.gcr.io gcr.io public.ecr.aws; do
		mkdir -p "$PEER_CERTS_DIR/$h"
		cat >"$PEER_CERTS_DIR/$h/hosts.toml" <<EOF
server = "http://$reg"

[host."http://$reg"]
  capabilities = ["pull", "resolve"]
  skip_verify = true
EOF
	done
	cat >"$PEER_CNI_CONF_DIR/10-vcbench-containerd.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "vcbench-containerd",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$PEER_BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$PEER_CNI_IPAM_DIR",
        "routes": [{ "dst": "0.0.0.0/0" }],
        "ranges": [[{ "subnet": "$PEER_SUBNET" }]]
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } },
    { "type": "loopback" }
  ]
}
EOF
	printf 'runtime-endpoint: %s\nimage-endpoint: %s\ntimeout: 300\n' "$PEER_ENDPOINT" "$PEER_ENDPOINT" >"$PEER_CRICTL_CONFIG"
}

# peer_start: containerd in the background; returns once its CRI answers.
peer_start() {
	local i
	echo "=== containerd start $(date -Is)" >>"$PEER_LOG"
	containerd --config "$PEER_CONFIG" >>"$PEER_LOG" 2>&1 &
	PEER_PID=$!
	echo "$PEER_PID" >"$PEER_PIDFILE"
	for ((i = 0; i < 600; i++)); do
		if ! kill -0 "$PEER_PID" 2>/dev/null; then
			wait "$PEER_PID" 2>/dev/null || true
			PEER_PID=
			tail -n 30 "$PEER_LOG" >&2
			peer_log "containerd exited during startup"
			return 1
		fi
		if [ -S "$PEER_SOCK" ] && peer_crictl --timeout 5s info >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.1
	done
	peer_log "containerd did not answer on $PEER_SOCK within 60s"
	return 1
}

# peer_stop: SIGTERM (containerd leaves its shims running), SIGKILL after 30 s.
peer_stop() {
	local pid=${PEER_PID:-} i
	[ -n "$pid" ] || pid=$(cat "$PEER_PIDFILE" 2>/dev/null) || true
	PEER_PID=
	[ -n "$pid" ] || return 0
	rm -f "$PEER_PIDFILE"
	kill -TERM "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 300; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		peer_log "containerd (PID $pid) ignored SIGTERM for 30s: SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
	echo "=== containerd stopped $(date -Is)" >>"$PEER_LOG"
}

# peer_up REGISTRY-ADDR: config written, containerd started, the sandbox
# image pulled (so that no pod start pulls it).
peer_up() {
	local reg=$1
	command -v containerd >/dev/null && command -v containerd-shim-runc-v2 >/dev/null && command -v runc >/dev/null ||
		{ peer_log "containerd or runc missing: hack/install-deps.sh installs Debian's packages"; return 1; }
	if [ -n "$(peer_leaks)" ]; then
		peer_log "a previous peer left things behind; removing them first"
		peer_down
	fi
	[ -d /run/containerd ] || { mkdir -p "$PEER_BASE" && touch "$PEER_BASE/made-run-containerd"; }
	peer_write_config "$reg"
	peer_log "starting containerd $(containerd --version | awk '{print $3}') on $PEER_ENDPOINT (log $PEER_LOG, metrics $PEER_METRICS)"
	peer_start || return 1
	peer_crictl pull "$PEER_SANDBOX_IMAGE" >/dev/null || { peer_log "pulling $PEER_SANDBOX_IMAGE failed"; return 1; }
}

# peer_shims: PIDs of containerd shims of this peer (their -address is our socket).
peer_shims() {
	local p cmd
	for p in /proc/[0-9]*; do
		cmd=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
		case $cmd in *containerd-shim*"-address $PEER_SOCK "*) echo "${p#/proc/}" ;; esac
	done
}

# peer_descendants PID...: the PIDs and all their descendants.
peer_descendants() {
	ps -e -o pid=,ppid= | awk -v roots="$*" '
		BEGIN { n = split(roots, r, " "); for (i = 1; i <= n; i++) keep[r[i]] = 1 }
		{ kids[$2] = kids[$2] " " $1 }
		END {
			for (i = 1; i <= n; i++) q[++qt] = r[i]
			for (h = 1; h <= qt; h++) {
				print q[h]; m = split(kids[q[h]], k, " ")
				for (j = 1; j <= m; j++) if (!(k[j] in keep)) { keep[k[j]] = 1; q[++qt] = k[j] }
			}
		}'
}

# peer_cgroup_pids: processes in a cgroup below PEER_CGROUP.
peer_cgroup_pids() {
	{ grep -l -E ":$PEER_CGROUP(/|\$)" /proc/[0-9]*/cgroup 2>/dev/null || true; } | sed -E 's|/proc/([0-9]+)/cgroup|\1|'
}

# peer_mounts: mount points under our dirs, deepest first.
peer_mounts() {
	awk -v a="$PEER_BASE" -v b="$PEER_ROOT" '$5 == a || index($5, a "/") == 1 || $5 == b || index($5, b "/") == 1 { print $5 }' /proc/self/mountinfo | sort -ru
}

# peer_down: everything this peer made, removed, whatever state it is in.
peer_down() {
	local ids p m pids i live
	if [ -S "$PEER_SOCK" ] && peer_crictl --timeout 10s version >/dev/null 2>&1; then
		ids=$(peer_crictl --timeout 20s pods -q 2>/dev/null) || true
		if [ -n "$ids" ]; then
			peer_log "removing $(echo "$ids" | wc -l) pod(s)"
			# shellcheck disable=SC2086
			peer_crictl --timeout 120s rmp -f $ids >/dev/null 2>&1 || peer_log "crictl rmp -f failed"
		fi
	fi
	peer_stop
	pids=$( { p=$(peer_shims | tr '\n' ' '); [ -z "$p" ] || peer_descendants $p; peer_cgroup_pids; } | sort -u)
	for p in $pids; do
		[ "$p" != $$ ] && kill -KILL "$p" 2>/dev/null || true
	done
	for ((i = 0; i < 50; i++)); do # until they are reaped
		live=""
		for p in $pids; do [ ! -e "/proc/$p" ] || live+=" $p"; done
		[ -n "$live" ] || break
		sleep 0.1
	done
	# A shim killed leaves its socket, /run/containerd/s/sha256(address/ns/id).
	for m in "$PEER_STATE"/io.containerd.runtime.v2.task/*/*; do
		[ -d "$m" ] || continue
		p=$(printf '%s' "$PEER_SOCK/$(basename "$(dirname "$m")")/$(basename "$m")" | sha256sum | cut -d' ' -f1)
		[ ! -S "/run/containerd/s/$p" ] || rm -f "/run/containerd/s/$p"
	done
	for m in $(peer_mounts); do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || peer_log "could not unmount $m"
	done
	ip link del "$PEER_BRIDGE" 2>/dev/null || true
	for m in /sys/fs/cgroup/*"$PEER_CGROUP" /sys/fs/cgroup"$PEER_CGROUP"; do
		[ -d "$m" ] || continue
		find "$m" -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null || true
		rmdir "$m" 2>/dev/null || true
	done
	if [ -f "$PEER_BASE/made-run-containerd" ]; then
		rmdir /run/containerd/s /run/containerd/runc/k8s.io /run/containerd/runc /run/containerd 2>/dev/null || true
	fi
	rm -rf "$PEER_BASE" "$PEER_ROOT" 2>/dev/null || peer_log "could not remove $PEER_BASE or $PEER_ROOT"
}

# peer_leaks: one line for each thing a peer left (nothing: all clean).
peer_leaks() {
	local p
	for p in $(peer_shims) $(peer_cgroup_pids); do echo "process $p: $(tr '\0' ' ' </proc/"$p"/cmdline 2>/dev/null | cut -c1-120)"; done
	for p in /proc/[0-9]*; do
		case $(tr '\0' ' ' 2>/dev/null <"$p/cmdline") in
		containerd\ --config\ "$PEER_CONFIG"*) echo "containerd ${p#/proc/}" ;;
		esac
	done
	peer_mounts | sed 's/^/mount /'
	ip link show "$PEER_BRIDGE" >/dev/null 2>&1 && echo "bridge $PEER_BRIDGE"
	for p in /sys/fs/cgroup/*"$PEER_CGROUP" /sys/fs/cgroup"$PEER_CGROUP"; do [ -d "$p" ] && echo "cgroup $p"; done
	for p in "$PEER_BASE" "$PEER_ROOT"; do [ -e "$p" ] && echo "dir $p"; done
	return 0
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	set -euo pipefail
	export PATH=${VC_OUTPUT:-$PEER_REPO/_output}/tools:$PATH
	case ${1:-} in
	up)
		[ -n "${2:-}" ] || { echo "usage: $0 up REGISTRY-ADDR" >&2; exit 2; }
		peer_up "$2"
		PEER_PID= # leave it running
		;;
	down) peer_down ;;
	leaks) peer_leaks ;;
	crictl) shift; peer_crictl "$@" ;;
	*) echo "usage: $0 up REGISTRY-ADDR | down | leaks | crictl ARGS..." >&2; exit 2 ;;
	esac
fi
