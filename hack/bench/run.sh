#!/usr/bin/env bash
# vc-cri benchmarks, in one run against one private daemon (the harness of
# test/critest/lib.sh):
#   1. critest -benchmark with hack/bench/critest-benchmark.yaml: pod,
#      container and image lifecycle latencies (JSON per benchmark);
#   2. hack/bench/compare.sh: vc-cri beside its peer, containerd with runc
#      (hack/bench/peer-containerd.sh), step by step in the same run, each
#      figure with its ratio: runp, create+start, exec, ExecSync,
#      stopp+rmp, 10 pods in parallel, PSS and CPU of idle pods, the first
#      pod after a daemon restart, and each call's server-side time
#      (its own daemon, harness bench-peer, results in _output/bench-peer/);
#      with BENCH_SKIP_PEER=1, hack/bench/crictl-timing.sh instead: vc-cri
#      alone, on the critest daemon. Either ends with the median of each
#      phase of vc-cri's calls (RunPodSandbox: CNI, VM start, agent...),
#      from the daemon's phase log lines (hack/bench/phases.awk).
# Results: _output/bench/ (summary.txt is the headline).
#
#   hack/bench/run.sh
#
# Environment (besides lib.sh's and compare.sh's, e.g. BENCH_N): BENCH_PARAMS
# (default hack/bench/critest-benchmark.yaml), BENCH_SKIP_CRITEST=1,
# BENCH_SKIP_CRICTL=1 (neither comparison nor crictl timing), BENCH_SKIP_PEER=1.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=test/critest/lib.sh
source "$here/../../test/critest/lib.sh"

mkdir -p /run/vcct
vc_env bench 2
vc_lock

params=${BENCH_PARAMS:-$here/critest-benchmark.yaml}
cb=$VC_RESULTS/critest-benchmark
summary=$VC_RESULTS/summary.txt
rm -rf "$cb" "$VC_DAEMON_LOG"
mkdir -p "$cb"

trap vc_teardown EXIT
trap 'exit 130' INT TERM
start=$(date +%s)
vc_up

rc=0
if [ "${BENCH_SKIP_CRITEST:-0}" != 1 ]; then
	vc_log "critest -benchmark (params $params, results $cb)"
	set +e
	(cd "$cb" && critest -benchmark \
		-config "$VC_BASE/crictl.yaml" -runtime-endpoint "$VC_ENDPOINT" -image-endpoint "$VC_ENDPOINT" \
		-benchmarking-params-file "$params" -benchmarking-output-dir "$cb" \
		-ginkgo.json-report "$cb/ginkgo-report.json" -ginkgo.no-color \
		-ginkgo.timeout 40m) >"$cb/critest.log" 2>&1
	crc=$?
	set -e
	vc_log "critest -benchmark exited with $crc (log $cb/critest.log)"
	[ "$crc" = 0 ] || rc=1
fi

if [ "${BENCH_SKIP_CRICTL:-0}" != 1 ] && [ "${BENCH_SKIP_PEER:-0}" = 1 ]; then
	# The same daemon: crictl-timing.sh uses an endpoint it is given.
	VC_BENCH_ENDPOINT=$VC_ENDPOINT VC_BENCH_STATE=$VC_STATE \
		"$here/crictl-timing.sh" "$VC_RESULTS/crictl-timing.txt" || rc=1
fi

vc_teardown
trap - EXIT

if [ "${BENCH_SKIP_CRICTL:-0}" != 1 ] && [ "${BENCH_SKIP_PEER:-0}" != 1 ]; then
	# Its own vc-cri (with metrics) and the private containerd.
	rm -f "$VC_RESULTS/compare.txt"
	"$here/compare.sh" "$VC_RESULTS/compare.txt" || rc=1
fi

{
	echo "vc-cri benchmark, $(date -Is), $(nproc) CPUs, wall time $(($(date +%s) - start))s"
	echo "accelerator setting: ${VC_ACCELERATOR:-auto}; guest: $VC_GUEST_DIR"
	echo
	if [ "${BENCH_SKIP_CRITEST:-0}" != 1 ]; then
		echo "## critest -benchmark ($(basename "$params"))"
		benchsum "$cb" 2>&1 || true
		# gmeasure's table of the pod+container-from-scratch benchmark.
		grep -A12 'create PodSandbox and container' "$cb/critest.log" | grep -E 'Name|Mean|Median|Min|Max|create PodSandbox' | head -n 12 || true
		echo
	fi
	if [ -f "$VC_RESULTS/compare.txt" ]; then
		echo "## vc-cri beside containerd + runc (hack/bench/compare.sh)"
		cat "$VC_RESULTS/compare.txt"
	elif [ -f "$VC_RESULTS/crictl-timing.txt" ]; then
		echo "## crictl timing (median of ${BENCH_N:-5})"
		cat "$VC_RESULTS/crictl-timing.txt"
	fi
} >"$summary"
cat "$summary"
exit "$rc"
