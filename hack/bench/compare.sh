#!/usr/bin/env bash
# vc-cri against its peer, containerd 1.6 with runc (Debian 12's packages,
# hack/bench/peer-containerd.sh), in the same run, the same steps
# alternating between the two (vc-cri first in odd samples, containerd
# first in even ones), on the same images from the offline test registry,
# with the same CNI plugins on private bridges. Each figure is printed with
# its ratio vc-cri / containerd. Figures are reported, never asserted.
#
#   hack/bench/compare.sh [OUTPUT-FILE]   (default _output/bench-peer/compare.txt)
#
# Rows (median of BENCH_N samples, min and max beside it):
#   crictl runp to ready; create+start of a busybox container; crictl exec
#   echo hi; ExecSync echo hi (exec -s); stopp+rmp;
#   BENCH_PARALLEL (10) pods started in parallel, all ready, and that time
#   over one pod's; the host PSS of one idle pod (all its processes: QEMU
#   and virtiofsd for vc-cri; shim, pause and container for containerd)
#   while 10 idle pods run; their CPU (% of one core over
#   BENCH_CPU_SECONDS, from utime+stime in /proc/PID/stat); the first runp
#   after a daemon restart;
#   and the server-side time of each CRI call and pod-start phase, from
#   each daemon's metrics (vc_cri_operations_latency_seconds and
#   vc_cri_pod_start_phase_seconds; containerd's grpc_server_handling_seconds
#   and containerd_cri_*), sampled around each step;
#   and the median of each phase of vc-cri's calls in the sequential
#   samples, from its phase log lines (hack/bench/phases.awk);
#   BENCH_MANY_PODS (100) pods with an idle busybox container each, started
#   one after another: the time to the first BENCH_SEQ_PODS (50) and to all,
#   then their PSS in all (every pod's processes) and CPU, once per runtime
#   (BENCH_MANY_PODS=0 skips it);
#   then the sequential rows again for vc-cri's runc handler (crictl runp
#   --runtime runc: OS containers under conmon) beside containerd, in
#   samples of their own, with the ratio of each to the VM handler's.
#
# Environment: BENCH_N (5), BENCH_PARALLEL (10), BENCH_IDLE_SECONDS (10,
# idle time before PSS), BENCH_CPU_SECONDS (30), BENCH_DENSITY_ROUNDS (1:
# how many of the BENCH_N parallel rounds also measure PSS and CPU),
# BENCH_SKIP_RESTART=1, and lib.sh's. The vc-cri side is lib.sh's harness
# `bench-peer`, index 9 (10.89.9.0/24, registry 127.0.0.1:5059); the peer
# is on 10.89.8.0/24, bridge vcbench-ctd8.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=test/critest/lib.sh
source "$here/../../test/critest/lib.sh"
# shellcheck source=hack/bench/peer-containerd.sh
source "$here/peer-containerd.sh"

N=${BENCH_N:-5}
PAR=${BENCH_PARALLEL:-10}
IDLE=${BENCH_IDLE_SECONDS:-10}
CPU_S=${BENCH_CPU_SECONDS:-30}
DENSITY_ROUNDS=${BENCH_DENSITY_ROUNDS:-1}
MANY=${BENCH_MANY_PODS:-100}
SEQ=${BENCH_SEQ_PODS:-50}
BUSYBOX=registry.k8s.io/e2e-test-images/busybox:1.29-2
TCK=$(getconf CLK_TCK)

mkdir -p /run/vcct
vc_env bench-peer 9
vc_lock
PEER_LOG=$VC_RESULTS/containerd.log
VC_CGROUP=/vcbench-vc9
out=${1:-$VC_RESULTS/compare.txt}
samples_file=$VC_RESULTS/samples.txt
mkdir -p "$(dirname "$out")"
rm -f "$VC_DAEMON_LOG" "$PEER_LOG"
work=$(mktemp -d /run/vcct/compare.XXXXXX)
# vc-cri's log is marked around the sequential samples: their phase lines
# alone are summed, not the warm-up's or the parallel pods'.
mark="=== compare.sh sequential $$"

teardown() {
	peer_down || true
	vc_teardown || true
	local m
	for m in /sys/fs/cgroup/*"$VC_CGROUP" /sys/fs/cgroup"$VC_CGROUP"; do
		[ -d "$m" ] && { find "$m" -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null; rmdir "$m" 2>/dev/null; }
	done
	rm -rf "$work"
	return 0
}
reported=0
on_exit() {
	# An interrupted run still reports what it measured.
	if [ "$reported" = 0 ] && [ -n "${start:-}" ]; then
		vc_log "run incomplete: reporting the samples taken"
		incomplete=" (INCOMPLETE RUN)"
		report || true
	fi
	teardown
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# --- the two daemons ---------------------------------------------------------

vc_build_tools
vc_build_daemon
vc_registry_start
vc_write_cni
vc_write_config
# Metrics on a free port (read back from the log), for the phase breakdown.
sed -i 's|^streaming_address = .*|&\nmetrics_address = "127.0.0.1:0"|' "$VC_CONFIG"
vc_daemon_start || vc_die "vc-cri did not start, see $VC_DAEMON_LOG"
peer_up "$VC_REGISTRY_ADDR" || vc_die "containerd did not start, see $PEER_LOG"

vc_metrics_url() {
	grep -o 'Serving metrics" address="[^"]*"' "$VC_DAEMON_LOG" | tail -n 1 | sed 's/.*address="//; s/"$//'
}
VC_METRICS_URL=$(vc_metrics_url)
[ -n "$VC_METRICS_URL" ] || vc_log "vc-cri logged no metrics address: no phase breakdown for vc-cri"

# The runtimes: vc (vc-cri, VM pods), vr (vc-cri's runc handler, OS
# containers), ctd and ctd2 (containerd, the second for the samples taken
# beside vr).
cri() { # RT ARGS...
	local rt=$1
	shift
	case $rt in vc | vr) crictl_ "$@" ;; *) peer_crictl "$@" ;; esac
}
vcish() { [ "$1" = vc ] || [ "$1" = vr ]; }

cri vc pull "$BUSYBOX" >/dev/null
cri ctd pull "$BUSYBOX" >/dev/null

# --- samples -------------------------------------------------------------------

declare -A S
add() { S[$1]+="$2 "; }

scrape() { # RT FILE
	local url
	if vcish "$1"; then url=$VC_METRICS_URL; else url=http://$PEER_METRICS/v1/metrics; fi
	if [ -n "$url" ]; then curl -s --max-time 5 "$url" >"$2" 2>/dev/null || : >"$2"; else : >"$2"; fi
}

# mdelta BEFORE AFTER NAME [LABEL-FRAGMENT]: the growth of a metric's
# series (name, label fragment) between two scrapes, in ms.
mdelta() {
	awk -v name="$3" -v frag="${4:-}" '
		($1 == name || index($1, name "{") == 1) && (frag == "" || index($1, frag) > 0) {
			if (FILENAME == ARGV[1]) b[$1] = $2; else { d += $2 - b[$1]; seen = 1 }
		}
		END { if (seen) printf "%d", d * 1000 + 0.5; else print "" }' "$1" "$2"
}

grpc() { echo "grpc_method=\"$1\",grpc_service=\"runtime.v1.RuntimeService\""; }

# phases RT STEP BEFORE AFTER: server-side times of a step's calls.
phases() {
	local rt=$1 step=$2 b=$3 a=$4 m v
	local -a calls
	case $step in
	runp) calls=(RunPodSandbox) ;;
	create_start) calls=(CreateContainer StartContainer) ;;
	exec) calls=(Exec) ;;
	exec_sync) calls=(ExecSync) ;;
	stopp_rmp) calls=(StopPodSandbox RemovePodSandbox) ;;
	esac
	for m in "${calls[@]}"; do
		if vcish "$rt"; then
			v=$(mdelta "$b" "$a" vc_cri_operations_latency_seconds_sum "operation=\"$m\"")
		else
			v=$(mdelta "$b" "$a" grpc_server_handling_seconds_sum "$(grpc "$m")")
		fi
		[ -z "$v" ] || add "ph_${rt}_$m" "$v"
	done
	if [ "$step" = runp ]; then
		if vcish "$rt"; then
			v=$(mdelta "$b" "$a" vc_cri_pod_start_phase_seconds_sum 'phase="network"'); [ -z "$v" ] || add "ph_${rt}_network" "$v"
			v=$(mdelta "$b" "$a" vc_cri_pod_start_phase_seconds_sum 'phase="sandbox"'); [ -z "$v" ] || add "ph_${rt}_sandbox" "$v"
		else
			v=$(mdelta "$b" "$a" containerd_cri_sandbox_create_network_seconds_sum); [ -z "$v" ] || add "ph_${rt}_network" "$v"
			# containerd_cri_sandbox_runtime_create_seconds spans the
			# whole call, network included: the rest is the call less CNI.
			local all
			all=$(mdelta "$b" "$a" grpc_server_handling_seconds_sum "$(grpc RunPodSandbox)")
			[ -z "$v" ] || [ -z "$all" ] || add "ph_${rt}_sandbox" $((all - v))
		fi
	fi
}

podjson() { # RT NAME FILE
	local cg=$VC_CGROUP
	vcish "$1" || cg=$PEER_CGROUP
	mkdir -p "$work/logs-$2"
	cat >"$3" <<EOF
{
  "metadata": { "name": "$2", "namespace": "vccri-bench", "uid": "$2-$$", "attempt": 0 },
  "labels": { "vccri-bench": "1" },
  "log_directory": "$work/logs-$2",
  "linux": { "cgroup_parent": "$cg" }
}
EOF
}
cat >"$work/ctr.json" <<EOF
{
  "metadata": { "name": "busybox" },
  "image": { "image": "$BUSYBOX" },
  "command": ["sleep", "36000"],
  "log_path": "busybox.log",
  "linux": {}
}
EOF

ready() { # RT POD
	local st
	st=$(cri "$1" inspectp -o go-template --template '{{.status.state}}' "$2")
	[ "$st" = SANDBOX_READY ] || vc_die "$1: pod $2 is $st after runp"
}

declare -A POD CTR DENS

# timed RT STEP CMD...: CMD's wall time in ms as a sample of STEP_RT, with
# the daemon's metrics scraped around it.
timed() {
	local rt=$1 step=$2 t0 t1
	shift 2
	scrape "$rt" "$work/m0"
	t0=$(vc_ms)
	"$@"
	t1=$(vc_ms)
	scrape "$rt" "$work/m1"
	add "${step}_$rt" $((t1 - t0))
	phases "$rt" "$step" "$work/m0" "$work/m1"
}

do_runp() {
	if [ "$1" = vr ]; then POD[$1]=$(cri "$1" runp --runtime runc "$2"); else POD[$1]=$(cri "$1" runp "$2"); fi
}
do_create_start() { CTR[$1]=$(cri "$1" create "${POD[$1]}" "$work/ctr.json" "$2") && cri "$1" start "${CTR[$1]}" >/dev/null; }
do_exec() { local o; o=$(cri "$1" exec "${CTR[$1]}" echo hi) && [ "$o" = hi ] || vc_die "$1: exec printed '$o'"; }
do_exec_sync() { local o; o=$(cri "$1" exec -s "${CTR[$1]}" echo hi) && [ "$o" = hi ] || vc_die "$1: exec -s printed '$o'"; }
do_stopp_rmp() { cri "$1" stopp "${POD[$1]}" >/dev/null && cri "$1" rmp "${POD[$1]}" >/dev/null; }

order() { if (($1 % 2)); then echo vc ctd; else echo ctd vc; fi; }

# --- pods' processes -------------------------------------------------------------

# pod_pids RT POD: vc-cri: the QEMU and virtiofsd processes that name the
# pod; containerd: the pod's shim and everything under it.
pod_pids() {
	local p cmd shim=""
	for p in /proc/[0-9]*; do
		cmd=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
		if [ "$1" = vc ]; then
			case $cmd in *qemu-system*"$2"* | *virtiofsd*"$2"*) echo "${p#/proc/}" ;; esac
		else
			case $cmd in *containerd-shim*"-id $2 "*) shim+=" ${p#/proc/}" ;; esac
		fi
	done
	if [ -n "$shim" ]; then
		# shellcheck disable=SC2086
		peer_descendants $shim
	fi
}
pss_kib() { # PID...
	local p t=0 v
	for p in "$@"; do
		v=$(awk '$1 == "Pss:" { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null) || v=0
		t=$((t + ${v:-0}))
	done
	echo "$t"
}
ticks() { # PID...
	local p t=0 v
	for p in "$@"; do
		v=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 }') || v=0
		t=$((t + ${v:-0}))
	done
	echo "$t"
}
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# density RT PODS...: a busybox container in each pod, idle, then the
# pods' PSS and CPU and the daemon's PSS.
density() {
	local rt=$1 p c i t0 t1 dpid
	shift
	local -a pods=("$@") pids
	local -A before
	i=1
	for p in "${pods[@]}"; do # in the order of their configs, par-RT-K.json
		c=$(cri "$rt" create "$p" "$work/ctr.json" "$work/par-$rt-$i.json") && cri "$rt" start "$c" >/dev/null ||
			vc_die "$rt: container in pod $p did not start"
		i=$((i + 1))
	done
	vc_log "$rt: ${#pods[@]} idle pods with a busybox container each: ${IDLE}s idle, then ${CPU_S}s of CPU"
	sleep "$IDLE"
	for p in "${pods[@]}"; do
		# shellcheck disable=SC2046
		add "pss_$rt" "$(mib "$(pss_kib $(pod_pids "$rt" "$p"))")"
	done
	if [ "$rt" = vc ]; then dpid=$VC_DAEMON_PID; else dpid=$PEER_PID; fi
	add "daemon_pss_$rt" "$(mib "$(pss_kib "$dpid")")"
	i=0
	for p in "${pods[@]}"; do
		pids[i]=$(pod_pids "$rt" "$p" | tr '\n' ' ')
		# shellcheck disable=SC2086
		before[$i]=$(ticks ${pids[i]})
		i=$((i + 1))
	done
	t0=$(vc_ms)
	sleep "$CPU_S"
	t1=$(vc_ms)
	local total=0 d
	for ((i = 0; i < ${#pods[@]}; i++)); do
		# shellcheck disable=SC2086
		d=$(($(ticks ${pids[i]}) - before[$i]))
		total=$((total + d))
		add "cpu_pod_$rt" "$(awk -v d="$d" -v hz="$TCK" -v ms=$((t1 - t0)) 'BEGIN { printf "%.2f", d / hz / (ms / 1000) * 100 }')"
	done
	add "cpu10_$rt" "$(awk -v d="$total" -v hz="$TCK" -v ms=$((t1 - t0)) 'BEGIN { printf "%.1f", d / hz / (ms / 1000) * 100 }')"
}

# many RT: MANY pods with an idle container each, one after another; the
# time to the first SEQ and to all; their PSS in all and CPU.
many() {
	local rt=$1 i p c t0 pss=0 total=0 d
	local -a pods pids
	t0=$(vc_ms)
	for ((i = 1; i <= MANY; i++)); do
		podjson "$rt" "many-$rt-$i" "$work/many-$rt.json"
		p=$(cri "$rt" runp "$work/many-$rt.json") && c=$(cri "$rt" create "$p" "$work/ctr.json" "$work/many-$rt.json") &&
			cri "$rt" start "$c" >/dev/null || { vc_log "$rt: pod $i of $MANY did not start"; break; }
		pods+=("$p")
		[ "$i" != "$SEQ" ] || add "seq_$rt" $((($(vc_ms) - t0) / 1000))
	done
	add "many_$rt" $((($(vc_ms) - t0) / 1000))
	add "many_ok_$rt" "${#pods[@]}"
	vc_log "$rt: ${#pods[@]} pods one after another in $((($(vc_ms) - t0) / 1000)) s; ${IDLE}s idle, then ${CPU_S}s of CPU"
	sleep "$IDLE"
	for p in "${pods[@]}"; do
		# shellcheck disable=SC2046
		pids+=($(pod_pids "$rt" "$p"))
	done
	add "many_pss_$rt" "$(awk -v k="$(pss_kib "${pids[@]}")" 'BEGIN { printf "%.2f", k / 1048576 }')"
	d=$(ticks "${pids[@]}")
	t0=$(vc_ms)
	sleep "$CPU_S"
	total=$(($(ticks "${pids[@]}") - d))
	add "many_cpu_$rt" "$(awk -v d="$total" -v hz="$TCK" -v ms=$(($(vc_ms) - t0)) 'BEGIN { printf "%.1f", d / hz / (ms / 1000) * 100 }')"
	[ ${#pods[@]} = 0 ] || cri "$rt" rmp -f "${pods[@]}" >/dev/null
}

# parallel RT ROUND: PAR pods at once, time until every runp returned.
parallel() {
	local rt=$1 j=$2 k t0 t1 fail=0 p last=0 e
	local -a jobs pods
	for ((k = 1; k <= PAR; k++)); do podjson "$rt" "par-$rt-$j-$k" "$work/par-$rt-$k.json"; done
	t0=$(vc_ms)
	for ((k = 1; k <= PAR; k++)); do
		{
			r=0
			cri "$rt" runp "$work/par-$rt-$k.json" >"$work/par-$rt-$k.id" 2>"$work/par-$rt-$k.err" || r=$?
			vc_ms >"$work/par-$rt-$k.end"
			exit "$r"
		} &
		jobs[k]=$!
	done
	for ((k = 1; k <= PAR; k++)); do
		if ! wait "${jobs[k]}"; then
			fail=$((fail + 1))
			vc_log "$rt: parallel runp $k of $PAR failed: $(tail -c 600 "$work/par-$rt-$k.err")"
		fi
	done
	t1=$(vc_ms)
	# A failed pod start is reported (par_fail), not fatal: figures are
	# never assertions. The time is until every runp returned.
	add "par_fail_$rt" "$fail"
	for ((k = 1; k <= PAR; k++)); do
		p=$(cat "$work/par-$rt-$k.id")
		[ -n "$p" ] || continue
		e=$(cat "$work/par-$rt-$k.end")
		[ "$e" -le "$last" ] || last=$e
		ready "$rt" "$p"
		pods+=("$p")
	done
	add "par_$rt" $((t1 - t0))
	[ "$last" = 0 ] || add "par_ok_$rt" $((last - t0))
	vc_log "$rt: $PAR pods in parallel in $((t1 - t0)) ms ($fail failed)"
	# Density on the first rounds where every pod started.
	if [ "$fail" = 0 ] && [ "${DENS[$rt]:-0}" -lt "$DENSITY_ROUNDS" ]; then
		density "$rt" "${pods[@]}"
		DENS[$rt]=$((${DENS[$rt]:-0} + 1))
	fi
	t0=$(vc_ms)
	[ ${#pods[@]} = 0 ] || cri "$rt" rmp -f "${pods[@]}" >/dev/null
	t1=$(vc_ms)
	add "par_rmp_$rt" $((t1 - t0))
}

restart() { # RT: the daemon restarted, then the first runp timed.
	local rt=$1 t0 t1
	if [ "$rt" = vc ]; then
		vc_daemon_stop
		t0=$(vc_ms)
		vc_daemon_start || vc_die "vc-cri did not restart"
		t1=$(vc_ms)
		VC_METRICS_URL=$(vc_metrics_url)
	else
		peer_stop
		t0=$(vc_ms)
		peer_start || vc_die "containerd did not restart"
		t1=$(vc_ms)
	fi
	add "restart_$rt" $((t1 - t0))
	t0=$(vc_ms)
	POD[$rt]=$(cri "$rt" runp "$work/pod-$rt.json")
	t1=$(vc_ms)
	add "firstpod_$rt" $((t1 - t0))
	ready "$rt" "${POD[$rt]}"
	cri "$rt" rmp -f "${POD[$rt]}" >/dev/null
}

# --- the run ---------------------------------------------------------------------

start=$(date +%s)
# One pod each first, not counted in the rows: the first pod after a
# daemon's start (vc-cri's KVM probe when no verdict is kept, cold caches).
for rt in vc ctd; do
	podjson "$rt" "warmup-$rt" "$work/pod-$rt.json"
	t0=$(vc_ms)
	POD[$rt]=$(cri "$rt" runp "$work/pod-$rt.json")
	add "warmup_$rt" $(($(vc_ms) - t0))
	ready "$rt" "${POD[$rt]}"
	cri "$rt" rmp -f "${POD[$rt]}" >/dev/null
done
load0=$(cut -d' ' -f1-3 /proc/loadavg)
others0=$(pgrep -c qemu-system || true)
vc_log "comparing vc-cri and containerd: $N samples, $PAR pods in parallel"

# sample I RT...: one sample of each step, the runtimes alternating step
# by step in the order given.
sample() {
	local i=$1 rt
	shift
	for rt in "$@"; do podjson "$rt" "seq-$rt-$i" "$work/pod-$rt.json"; done
	for rt in "$@"; do timed "$rt" runp do_runp "$rt" "$work/pod-$rt.json"; ready "$rt" "${POD[$rt]}"; done
	for rt in "$@"; do timed "$rt" create_start do_create_start "$rt" "$work/pod-$rt.json"; done
	for rt in "$@"; do timed "$rt" exec do_exec "$rt"; done
	for rt in "$@"; do timed "$rt" exec_sync do_exec_sync "$rt"; done
	for rt in "$@"; do timed "$rt" stopp_rmp do_stopp_rmp "$rt"; done
	vc_log "sample $i/$N: runp $1 $(awk '{print $NF}' <<<"${S[runp_$1]}") ms, $2 $(awk '{print $NF}' <<<"${S[runp_$2]}") ms"
}

echo "$mark begin" >>"$VC_DAEMON_LOG"
for ((i = 1; i <= N; i++)); do
	# shellcheck disable=SC2046
	sample "$i" $(order "$i")
done
echo "$mark end" >>"$VC_DAEMON_LOG"

# The runc handler's pods, alternating with containerd's again, after the
# marked samples: its phase lines stay out of the VM pods' medians.
vc_log "comparing vc-cri's runc handler and containerd: $N samples"
for ((i = 1; i <= N; i++)); do
	if ((i % 2)); then sample "$i" vr ctd2; else sample "$i" ctd2 vr; fi
done

for ((i = 1; i <= N; i++)); do
	read -ra rts <<<"$(order "$i")"
	for rt in "${rts[@]}"; do parallel "$rt" "$i"; done
done

if [ "$MANY" -gt 0 ]; then
	for rt in vc ctd; do many "$rt"; done
fi

if [ "${BENCH_SKIP_RESTART:-0}" != 1 ]; then
	for ((i = 1; i <= N; i++)); do
		read -ra rts <<<"$(order "$i")"
		for rt in "${rts[@]}"; do podjson "$rt" "restart-$rt-$i" "$work/pod-$rt.json"; done
		for rt in "${rts[@]}"; do restart "$rt"; done
		vc_log "restart $i/$N: first runp vc-cri $(awk '{print $NF}' <<<"${S[firstpod_vc]}") ms, containerd $(awk '{print $NF}' <<<"${S[firstpod_ctd]}") ms"
	done
fi
load1=$(cut -d' ' -f1-3 /proc/loadavg)
others1=$(pgrep -c qemu-system || true)

# --- the report ------------------------------------------------------------------

stats() { # SAMPLES: median min max (n/a when none)
	tr ' ' '\n' <<<"${1:-}" | grep . | sort -g | awk '{ a[NR] = $1 } END {
		if (NR == 0) { print "n/a n/a n/a"; exit }
		m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
		print m, a[1], a[NR] }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "n/a" || b == "n/a" || b + 0 == 0) print "n/a"; else if (a / b >= 10) printf "%.1f\n", a / b; else printf "%.2f\n", a / b }'; }
fmt() { awk -v v="$1" 'BEGIN { if (v == "n/a") print v; else if (v == int(v)) printf "%d\n", v; else if (v < 10) printf "%.2f\n", v; else printf "%.1f\n", v }'; }
row() { # LABEL KEY [RT PEER-RT]: RT's samples beside PEER-RT's (vc, ctd)
	local vm vl vh cm cl ch
	read -r vm vl vh <<<"$(stats "${S[$2_${3:-vc}]:-}")"
	read -r cm cl ch <<<"$(stats "${S[$2_${4:-ctd}]:-}")"
	printf '%-46s %9s %17s %9s %17s %7s\n' "$1" "$(fmt "$vm")" "($(fmt "$vl")..$(fmt "$vh"))" "$(fmt "$cm")" "($(fmt "$cl")..$(fmt "$ch"))" "$(ratio "$vm" "$cm")"
}
median() { stats "${S[$1]:-}" | cut -d' ' -f1; }

report() {
	reported=1
	load1=${load1:-$(cut -d' ' -f1-3 /proc/loadavg)}
	others1=${others1:-$(pgrep -c qemu-system || true)}
	{
	printf '# vc-cri / containerd%s, %s, %s CPUs, %s samples, wall time %ss\n' "${incomplete:-}" "$(date -Is)" "$(nproc)" "$N" "$(($(date +%s) - start))"
	printf '# vc-cri %s (accelerator %s, guest %s, %s kernel); containerd %s, runc %s\n' \
		"$(git -C "$VC_REPO" describe --always --dirty 2>/dev/null || echo '?')" "${VC_ACCELERATOR:-auto}" "$VC_GUEST_DIR" \
		"$(awk '{ print $1; exit }' "$VC_GUEST_DIR/.inputs" 2>/dev/null || echo '?')" \
		"$(containerd --version | awk '{print $3}')" "$(runc --version | awk 'NR == 1 {print $3}')"
	printf '# host load %s at start, %s at end; QEMU processes on the host (other runs included): %s at start, %s at end\n' \
		"${load0:-?}" "$load1" "${others0:-?}" "$others1"
	printf '# alternating step by step; ratio = vc-cri median / containerd median\n\n'
	printf '%-46s %9s %17s %9s %17s %7s\n' figure vc-cri "(min..max)" containerd "(min..max)" ratio
	row "crictl runp to ready (ms)" runp
	row "create+start busybox container (ms)" create_start
	row "crictl exec echo hi (ms)" exec
	row "ExecSync echo hi, exec -s (ms)" exec_sync
	row "stopp+rmp (ms)" stopp_rmp
	row "$PAR pods in parallel, all ready (ms)" par
	row "  of which failed to start (count)" par_fail
	row "  until the last pod that started (ms)" par_ok
	vr=$(ratio "$(median par_vc)" "$(median runp_vc)")
	cr=$(ratio "$(median par_ctd)" "$(median runp_ctd)")
	printf '%-46s %9s %17s %9s %17s %7s\n' "  the same over one pod alone (x)" "$vr" "" "$cr" "" "$(ratio "$vr" "$cr")"
	row "host PSS of one idle pod, $PAR running (MiB)" pss
	row "CPU of $PAR idle pods (% of a core, ${CPU_S}s)" cpu10
	row "  CPU per idle pod (% of a core)" cpu_pod
	if [ "${BENCH_SKIP_RESTART:-0}" != 1 ]; then
		row "first runp after a daemon restart (ms)" firstpod
		row "  daemon restart to answering (ms)" restart
	fi
	if [ "$MANY" -gt 0 ]; then
		row "$SEQ pods+containers one after another (s)" seq
		row "$MANY pods+containers one after another (s)" many
		row "  of which started (count)" many_ok
		row "  their host PSS in all (GiB)" many_pss
		row "  their CPU, idle (% of a core, ${CPU_S}s)" many_cpu
	fi
	row "first pod after the daemon's start (warm-up, ms)" warmup
	row "rmp -f of $PAR pods (ms)" par_rmp
	row "daemon PSS with $PAR idle pods (MiB)" daemon_pss
	echo
	echo "## vc-cri's runc handler (OS containers, conmon) beside containerd, alternating in their own samples"
	printf '%-46s %9s %17s %9s %17s %7s\n' figure "vc-cri runc" "(min..max)" containerd "(min..max)" ratio
	row "crictl runp --runtime runc to ready (ms)" runp vr ctd2
	row "create+start busybox container (ms)" create_start vr ctd2
	row "crictl exec echo hi (ms)" exec vr ctd2
	row "ExecSync echo hi, exec -s (ms)" exec_sync vr ctd2
	row "stopp+rmp (ms)" stopp_rmp vr ctd2
	for m in RunPodSandbox CreateContainer StartContainer ExecSync StopPodSandbox RemovePodSandbox; do
		S[phx_vr]=${S[ph_vr_$m]:-}
		S[phx_ctd2]=${S[ph_ctd2_$m]:-}
		row "  server side: $m (ms)" phx vr ctd2
	done
	unset 'S[phx_vr]' 'S[phx_ctd2]'
	echo "runc handler against the VM handler (medians): runp $(ratio "$(median runp_vr)" "$(median runp_vc)"), create+start $(ratio "$(median create_start_vr)" "$(median create_start_vc)"), exec $(ratio "$(median exec_vr)" "$(median exec_vc)"), stopp+rmp $(ratio "$(median stopp_rmp_vr)" "$(median stopp_rmp_vc)")"
	echo
	echo "## server-side time of each call, from the daemons' metrics (ms)"
	printf '%-46s %9s %17s %9s %17s %7s\n' call vc-cri "(min..max)" containerd "(min..max)" ratio
	for m in RunPodSandbox network sandbox CreateContainer StartContainer Exec ExecSync StopPodSandbox RemovePodSandbox; do
		case $m in
		network) l="  network: CNI ADD (both)" ;;
		sandbox) l="  the rest: VM, agent / shim, runc, pause" ;;
		Exec) l="Exec (returns the stream URL)" ;;
		*) l=$m ;;
		esac
		# row() reads S[KEY_vc] and S[KEY_ctd].
		S[phx_vc]=${S[ph_vc_$m]:-}
		S[phx_ctd]=${S[ph_ctd_$m]:-}
		row "$l" phx
	done
	unset 'S[phx_vc]' 'S[phx_ctd]'
	echo
	echo "vc-cri's pod-start phases are vc_cri_pod_start_phase_seconds (network, sandbox); containerd's network"
	echo "is containerd_cri_sandbox_create_network_seconds, its rest RunPodSandbox's time less that."
	echo "The peer's pause image is the test registry's (a shell loop, not the static pause binary)."
	echo
	echo "## vc-cri's phases of each call in the sequential samples, from its log (ms)"
	awk -v from="$mark begin" -v to="$mark end" -f "$here/phases.awk" "$VC_DAEMON_LOG" || echo "(no phases: cannot read $VC_DAEMON_LOG)"
	leaks=$(peer_down >/dev/null 2>&1; peer_leaks)
	echo "peer left behind: ${leaks:-nothing}"
	} >"$out"
	{
		echo "# raw samples"
		for k in $(printf '%s\n' "${!S[@]}" | sort); do printf '%-24s %s\n' "$k" "${S[$k]}"; done
	} >"$samples_file"
	cat "$out"
}
report
