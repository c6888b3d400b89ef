#!/usr/bin/env bash
# crictl timings of vc-cri, each the median of 5 (min and max beside it):
#   runp to ready           crictl runp (returns when the sandbox is ready)
#   create+start            crictl create + start of a busybox container
#   exec echo hi            crictl exec (streaming) and exec -s (ExecSync)
#   stopp+rmp               crictl stopp + rmp of the pod with its container
#   RSS/PSS per idle pod    the pod's QEMU process from /proc/PID/smaps_rollup,
#                           after the pod sat idle for BENCH_IDLE_SECONDS
# and the median of each phase of the calls these steps made, from the
# daemon's phase log lines (hack/bench/phases.awk).
#
#   hack/bench/crictl-timing.sh [OUTPUT-FILE]   (default _output/bench/crictl-timing.txt)
#
# Against a running daemon when VC_BENCH_ENDPOINT (and VC_BENCH_STATE, its
# state dir, to find QEMU) are set, as hack/bench/run.sh does; otherwise it
# starts its own private daemon with test/critest/lib.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=test/critest/lib.sh
source "$here/../../test/critest/lib.sh"

N=${BENCH_N:-5}
IDLE=${BENCH_IDLE_SECONDS:-10}
BUSYBOX=registry.k8s.io/e2e-test-images/busybox:1.29-2

mkdir -p /run/vcct
if [ -n "${VC_BENCH_ENDPOINT:-}" ]; then
	vc_env bench 2
	VC_ENDPOINT=$VC_BENCH_ENDPOINT
	VC_STATE=${VC_BENCH_STATE:-$VC_STATE}
	vc_crictl_config
	own=0
else
	vc_env bench-crictl 3
	vc_lock
	own=1
fi
out=${1:-$VC_OUT/bench/crictl-timing.txt}
mkdir -p "$(dirname "$out")"
work=$(mktemp -d /run/vcct/crictl-timing.XXXXXX)

cleanup() {
	local p
	for p in $(crictl_ --timeout 20s pods -q --label vccri-bench=1 2>/dev/null); do
		crictl_ rmp -f "$p" >/dev/null 2>&1 || true
	done
	rm -rf "$work"
	if [ "$own" = 1 ]; then vc_teardown; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
if [ "$own" = 1 ]; then vc_up; fi

crictl_ pull "$BUSYBOX" >/dev/null

# kib PID FIELD: a field of /proc/PID/smaps_rollup in KiB.
kib() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }

declare -A samples
add() { samples[$1]+="$2 "; }

# The daemon's log is marked around the samples: their phase lines alone
# are summed, not those of other calls to the same daemon.
mark="=== crictl-timing $$"
echo "$mark begin" >>"$VC_DAEMON_LOG"

for ((i = 1; i <= N; i++)); do
	cat >"$work/pod.json" <<EOF
{
  "metadata": { "name": "bench-$i", "namespace": "vccri-bench", "uid": "bench-$$-$i", "attempt": 0 },
  "labels": { "vccri-bench": "1" },
  "log_directory": "$work/logs-$i",
  "linux": {}
}
EOF
	cat >"$work/ctr.json" <<EOF
{
  "metadata": { "name": "busybox" },
  "image": { "image": "$BUSYBOX" },
  "command": ["sleep", "36000"],
  "log_path": "busybox.log",
  "linux": {}
}
EOF
	mkdir -p "$work/logs-$i"

	t0=$(vc_ms)
	pod=$(crictl_ runp "$work/pod.json")
	t1=$(vc_ms)
	state=$(crictl_ inspectp -o go-template --template '{{.status.state}}' "$pod")
	[ "$state" = SANDBOX_READY ] || vc_die "pod $pod is $state after runp"
	add runp_ms $((t1 - t0))

	t0=$(vc_ms)
	ctr=$(crictl_ create "$pod" "$work/ctr.json" "$work/pod.json")
	crictl_ start "$ctr" >/dev/null
	t1=$(vc_ms)
	add create_start_ms $((t1 - t0))

	t0=$(vc_ms)
	o=$(crictl_ exec "$ctr" echo hi)
	t1=$(vc_ms)
	[ "$o" = hi ] || vc_die "exec printed '$o'"
	add exec_ms $((t1 - t0))

	t0=$(vc_ms)
	o=$(crictl_ exec -s "$ctr" echo hi)
	t1=$(vc_ms)
	[ "$o" = hi ] || vc_die "exec -s printed '$o'"
	add exec_sync_ms $((t1 - t0))

	sleep "$IDLE"
	rss=0 pss=0 n=0
	for p in $(vc_qemu_of "$pod"); do
		rss=$((rss + $(kib "$p" Rss)))
		pss=$((pss + $(kib "$p" Pss)))
		n=$((n + 1))
	done
	[ "$n" -gt 0 ] || vc_log "no QEMU process names pod $pod: RSS not measured"
	add idle_pod_rss_mib $((rss / 1024))
	add idle_pod_pss_mib $((pss / 1024))

	t0=$(vc_ms)
	crictl_ stopp "$pod" >/dev/null
	crictl_ rmp "$pod" >/dev/null
	t1=$(vc_ms)
	add stopp_rmp_ms $((t1 - t0))
	vc_log "sample $i/$N: runp $(echo "${samples[runp_ms]}" | awk '{print $NF}') ms, pss $((pss / 1024)) MiB"
done
echo "$mark end" >>"$VC_DAEMON_LOG"

stats() { # SAMPLES: median min max
	tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{ a[NR] = $1 } END {
		m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
		printf "%s %s %s", m, a[1], a[NR] }'
}

{
	printf '# vc-cri crictl timing, %s, %s samples, idle %ss before RSS\n' "$(date -Is)" "$N" "$IDLE"
	printf '%-20s %10s %10s %10s   %s\n' metric median min max samples
	for k in runp_ms create_start_ms exec_ms exec_sync_ms stopp_rmp_ms idle_pod_rss_mib idle_pod_pss_mib; do
		read -r med lo hi <<<"$(stats "${samples[$k]}")"
		printf '%-20s %10s %10s %10s   %s\n' "$k" "$med" "$lo" "$hi" "${samples[$k]}"
	done
	printf '\n# phases of these calls, from the daemon log %s\n' "$VC_DAEMON_LOG"
	awk -v from="$mark begin" -v to="$mark end" -f "$here/phases.awk" "$VC_DAEMON_LOG" || echo "(no phases: cannot read $VC_DAEMON_LOG)"
} >"$out"
cat "$out"
