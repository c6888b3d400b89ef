#!/usr/bin/env bash
# vc-cri benchmarks, in one run against one private daemon (the harness of
# test/critest/lib.sh):
#   1. critest -benchmark with hack/bench/critest-benchmark.yaml: pod,
#      container and image lifecycle latencies (JSON per benchmark);
#   2. hack/bench/crictl-timing.sh: the median of 5 of runp, create+start,
#      exec, stopp+rmp and the host RSS/PSS of an idle pod.
# Results: _output/bench/ (summary.txt is the headline).
#
#   hack/bench/run.sh
#
# Environment (besides lib.sh's): BENCH_PARAMS (default
# hack/bench/critest-benchmark.yaml), BENCH_SKIP_CRITEST=1,
# BENCH_SKIP_CRICTL=1.
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

if [ "${BENCH_SKIP_CRICTL:-0}" != 1 ]; then
	# The same daemon: crictl-timing.sh uses an endpoint it is given.
	VC_BENCH_ENDPOINT=$VC_ENDPOINT VC_BENCH_STATE=$VC_STATE \
		"$here/crictl-timing.sh" "$VC_RESULTS/crictl-timing.txt" || rc=1
fi

vc_teardown
trap - EXIT

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
	if [ -f "$VC_RESULTS/crictl-timing.txt" ]; then
		echo "## crictl timing (median of 5)"
		cat "$VC_RESULTS/crictl-timing.txt"
	fi
} >"$summary"
cat "$summary"
exit "$rc"
