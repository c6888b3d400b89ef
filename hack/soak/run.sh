#!/usr/bin/env bash
# Soak runs of vc-cri on a private daemon (test/critest/lib.sh), too long
# for `make test`; `make soak` runs them all and prints their figures
# (also in _output/soak/figures.txt). Each part passes or fails:
#
#   parallel   SOAK_ROUNDS (5) rounds of SOAK_PARALLEL (10) `crictl runp`
#              at once: every pod must become ready; the round's time
#              against one pod alone (a global lock shows as a ratio near
#              the number of pods)
#   cycles     SOAK_CYCLES (100) pods made, a container started, stopped
#              and removed one after another; then nothing may be left
#   stats      SOAK_IDLE_PODS (50) idle pods with a container each; the
#              time of ListContainerStats and ListPodSandboxStats (crictl
#              stats / statsp): the first call, then the median of 5 two
#              seconds apart
#
#   hack/soak/run.sh [parallel|cycles|stats ...]   (default: all three)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=test/critest/lib.sh
source "$here/../../test/critest/lib.sh"

ROUNDS=${SOAK_ROUNDS:-5}
PARALLEL=${SOAK_PARALLEL:-10}
CYCLES=${SOAK_CYCLES:-100}
IDLE_PODS=${SOAK_IDLE_PODS:-50}
BUSYBOX=registry.k8s.io/e2e-test-images/busybox:1.29-2

mkdir -p /run/vcct
vc_env soak 7
vc_lock
work=$(mktemp -d /run/vcct/soak.XXXXXX)
figures=$VC_RESULTS/figures.txt
: >"$figures"
failed=0

cleanup() {
	remove_all
	rm -rf "$work"
	vc_teardown
}
trap cleanup EXIT
trap 'exit 130' INT TERM

figure() { echo "$*" | tee -a "$figures"; }
fail() { figure "FAIL: $*"; failed=$((failed + 1)); }

# pod_json NAME: a pod config file, printed as its path.
pod_json() {
	cat >"$work/$1.pod.json" <<JSON
{ "metadata": { "name": "$1", "namespace": "vccri-soak", "uid": "soak-$$-$1", "attempt": 0 },
  "labels": { "vccri-soak": "1" }, "linux": {} }
JSON
	echo "$work/$1.pod.json"
}
ctr_json() {
	cat >"$work/ctr.json" <<JSON
{ "metadata": { "name": "idle" }, "image": { "image": "$BUSYBOX" }, "command": ["sleep", "36000"], "linux": {} }
JSON
	echo "$work/ctr.json"
}
remove_all() {
	local p
	for p in $(crictl_ --timeout 60s pods -q --label vccri-soak=1 2>/dev/null); do
		crictl_ rmp -f "$p" >/dev/null 2>&1 || true
	done
}
median() { tr ' ' '\n' | grep . | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

soak_parallel() {
	local t0 alone round i ok pids=() totals=""
	t0=$(vc_ms)
	crictl_ runp "$(pod_json alone)" >/dev/null || { fail "one pod alone did not start"; return; }
	alone=$(($(vc_ms) - t0))
	remove_all
	for ((round = 1; round <= ROUNDS; round++)); do
		pids=()
		t0=$(vc_ms)
		for ((i = 1; i <= PARALLEL; i++)); do
			crictl_ runp "$(pod_json "par-$round-$i")" >"$work/par-$round-$i.out" 2>&1 &
			pids+=($!)
		done
		ok=0
		for i in "${pids[@]}"; do wait "$i" && ok=$((ok + 1)); done
		local took=$(($(vc_ms) - t0))
		totals+="$took "
		figure "parallel round $round: $ok of $PARALLEL pods ready in $took ms (one alone: $alone ms, ratio $(awk -v a="$took" -v b="$alone" 'BEGIN { printf "%.1f", a / b }'))"
		[ "$ok" = "$PARALLEL" ] || fail "round $round: $((PARALLEL - ok)) pods failed: $(cat "$work"/par-"$round"-*.out | grep -v '^[0-9a-f]\{64\}$' | head -3)"
		remove_all
	done
	figure "parallel: median $(echo "$totals" | median) ms for $PARALLEL pods, one alone $alone ms"
}

soak_cycles() {
	local i pod ctr t0 ctr_cfg
	ctr_cfg=$(ctr_json)
	t0=$(vc_ms)
	for ((i = 1; i <= CYCLES; i++)); do
		local cfg
		cfg=$(pod_json "cycle-$i")
		pod=$(crictl_ runp "$cfg") &&
			ctr=$(crictl_ create "$pod" "$ctr_cfg" "$cfg") &&
			crictl_ start "$ctr" >/dev/null &&
			crictl_ stop --timeout 0 "$ctr" >/dev/null &&
			crictl_ rm "$ctr" >/dev/null &&
			crictl_ stopp "$pod" >/dev/null &&
			crictl_ rmp "$pod" >/dev/null || { fail "cycle $i failed"; return; }
	done
	figure "cycles: $CYCLES create/start/stop/remove cycles in $((($(vc_ms) - t0) / 1000)) s"
	local left
	left="$(vc_qemu_pids)$(vc_mounts_under "$VC_STATE")$(ip -o link show master "$VC_BRIDGE" 2>/dev/null)"
	left+="$(find "$VC_CNI_IPAM_DIR" -type f -regex '.*/[0-9.]+' 2>/dev/null)"
	left+="$(find "$VC_STATE/sandboxes" "$VC_STATE/netns" "$VC_STATE/cri/pods" "$VC_STATE/cri/containers" "$VC_STATE/cri/intents" "$VC_STATE/cri/pod-files" -mindepth 1 ! -name .vm 2>/dev/null)"
	if [ -n "$left" ]; then fail "left after the cycles: $left"; else figure "cycles: nothing left (QEMU, mounts, taps, IPAM leases, records, files)"; fi
}

# idle_cpu SECONDS: the CPU the QEMU processes use over SECONDS, in
# percent of one core (utime + stime from /proc/PID/stat).
idle_cpu() {
	local pids before after
	pids=$(vc_qemu_pids)
	ticks() { for p in $pids; do awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null; done | awk '{ s += $1 } END { print s + 0 }'; }
	before=$(ticks)
	sleep "$1"
	after=$(ticks)
	awk -v d=$((after - before)) -v hz="$(getconf CLK_TCK)" -v s="$1" 'BEGIN { printf "%.1f", 100 * d / hz / s }'
}

soak_stats() {
	local i pod cfg ctr_cfg t0 s="" p="" pss
	ctr_cfg=$(ctr_json)
	t0=$(vc_ms)
	for ((i = 1; i <= IDLE_PODS; i++)); do
		cfg=$(pod_json "idle-$i")
		pod=$(crictl_ runp "$cfg") && ctr=$(crictl_ create "$pod" "$ctr_cfg" "$cfg") && crictl_ start "$ctr" >/dev/null ||
			{ fail "idle pod $i did not start"; return; }
	done
	figure "stats: $IDLE_PODS idle pods started one after another in $((($(vc_ms) - t0) / 1000)) s"
	sleep 10
	# The first call asks every guest; the next ones answer from the
	# stats cache, which each call refreshes in the background.
	t0=$(vc_ms)
	crictl_ stats -o json >/dev/null || fail "crictl stats failed"
	figure "stats: the first crictl stats, every guest asked: $(($(vc_ms) - t0)) ms"
	sleep 6
	for ((i = 0; i < 5; i++)); do
		t0=$(vc_ms)
		crictl_ stats -o json >"$work/stats.json" || fail "crictl stats failed"
		s+="$(($(vc_ms) - t0)) "
		t0=$(vc_ms)
		crictl_ statsp -o json >"$work/statsp.json" || fail "crictl statsp failed"
		p+="$(($(vc_ms) - t0)) "
		sleep 2
	done
	local n
	n=$(grep -c '"attributes"' "$work/stats.json")
	figure "stats: crictl stats (ListContainerStats) median $(echo "$s" | median) ms ($n containers), crictl statsp (ListPodSandboxStats) median $(echo "$p" | median) ms, with $IDLE_PODS idle pods"
	t0=$(vc_ms)
	for ((i = 0; i < 5; i++)); do crictl_ version >/dev/null; done
	figure "stats: a crictl call that asks nothing of a guest (version) takes $((($(vc_ms) - t0) / 5)) ms"
	pss=0
	for i in $(vc_qemu_pids); do pss=$((pss + $(awk '$1 == "Pss:" { print $2 }' "/proc/$i/smaps_rollup"))); done
	figure "stats: QEMU PSS of $IDLE_PODS idle pods: $((pss / 1024)) MiB in all, $((pss / 1024 / IDLE_PODS)) MiB each"
	figure "stats: CPU of $IDLE_PODS idle pods (QEMU, 30 s): $(idle_cpu 30)% of one core"
	remove_all
}

vc_up
crictl_ pull "$BUSYBOX" >/dev/null
for part in "${@:-parallel cycles stats}"; do
	for p in $part; do
		vc_log "soak: $p"
		"soak_$p"
	done
done
echo "figures in $figures; $failed failed"
[ "$failed" = 0 ]
