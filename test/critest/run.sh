#!/usr/bin/env bash
# critest, the CRI conformance suite of sigs.k8s.io/cri-tools v1.37.0,
# against a private vc-cri. See test/critest/README.md.
#
#   test/critest/run.sh [extra critest flags...]
#
# Environment (besides lib.sh's):
#   CRITEST_HANDLER    runtime handler every spec's pods ask for (default
#                      "": the VM one); its results go to _output/critest-NAME
#   CRITEST_PARALLEL   ginkgo processes (default 1; >1 runs critest -parallel N)
#   CRITEST_TIMEOUT    ginkgo suite timeout (default 50m)
#   CRITEST_FOCUS      regex: run only these specs (debugging)
#   CRITEST_SKIP_LIST  skip list file (default test/critest/skip.list, or
#                      skip-NAME.list for CRITEST_HANDLER=NAME)
#   CRITEST_NO_SKIP    1: run the skip-listed specs too (their failures are
#                      reported as expected and do not fail the run)
#   CRITEST_VERBOSE    1: ginkgo -v (every spec's name and steps)
#
# Last line of output: `N passed, N failed, N skipped`. Exit status 0 only
# when no spec outside the skip list failed.
set -euo pipefail
# shellcheck source=test/critest/lib.sh
source "$(dirname "$0")/lib.sh"

handler=${CRITEST_HANDLER:-}
mkdir -p /run/vcct
vc_env "critest${handler:+-$handler}" 0
vc_lock

skip_list=${CRITEST_SKIP_LIST:-$VC_REPO/test/critest/skip${handler:+-$handler}.list}
report=$VC_RESULTS/junit.xml
summary=$VC_RESULTS/summary.txt
critest_log=$VC_RESULTS/critest.log

# critest binds these host ports itself (port mapping and port-forward specs).
for port in 12000 12001 12002 12003; do
	if ss -Htln "sport = :$port" | grep -c . >/dev/null; then
		vc_die "host port $port is in use: another critest run? (critest binds 12000-12003)"
	fi
done

rm -f "$report" "$summary" "$critest_log" "$VC_DAEMON_LOG"
trap vc_teardown EXIT
trap 'exit 130' INT TERM

start=$(date +%s)
vc_up

args=(
	-runtime-endpoint "$VC_ENDPOINT"
	-image-endpoint "$VC_ENDPOINT"
	-nri-socket "$VC_BASE/nri.sock"
	-ginkgo.junit-report "$report"
	-ginkgo.timeout "${CRITEST_TIMEOUT:-50m}"
	-ginkgo.no-color
	-ginkgo.poll-progress-after 180s
	# A spec that fails once and then passes is reported as flaky in the
	# JUnit report and the summary, not as a failure: see README.md for
	# the one seen so far.
	-ginkgo.flake-attempts "${CRITEST_FLAKE_ATTEMPTS:-2}"
)
if [ -n "$handler" ]; then
	args+=(-runtime-handler "$handler")
fi
# The test binary's own flags; critest passes them on to its ginkgo nodes.
skip_re=$(junitsum -skip-regex "$skip_list") || vc_die "bad skip list $skip_list"
if [ -n "$skip_re" ] && [ "${CRITEST_NO_SKIP:-0}" != 1 ]; then
	args+=(-ginkgo.skip "$skip_re")
fi
if [ -n "${CRITEST_FOCUS:-}" ]; then
	args+=(-ginkgo.focus "$CRITEST_FOCUS")
fi
if [ "${CRITEST_VERBOSE:-0}" = 1 ]; then
	args+=(-ginkgo.v)
fi
if [ "${CRITEST_PARALLEL:-1}" -gt 1 ]; then
	args+=(-parallel "$CRITEST_PARALLEL")
fi

vc_log "critest ${args[*]} $*"
# critest creates host paths for volumes and logs in its working directory
# and under /tmp; run it from the results directory.
set +e
(cd "$VC_RESULTS" && critest -config "$VC_BASE/crictl.yaml" "${args[@]}" "$@") 2>&1 | tee "$critest_log"
critest_rc=${PIPESTATUS[0]}
set -e
vc_log "critest exited with $critest_rc after $(($(date +%s) - start))s"

vc_teardown
trap - EXIT
wall=$(($(date +%s) - start))

if [ ! -s "$report" ]; then
	echo "no JUnit report in $report: critest did not run (exit $critest_rc)" | tee "$summary"
	echo "0 passed, 1 failed, 0 skipped"
	exit 1
fi
set +e
junitsum -skip-list "$skip_list" -o "$summary" "$report" >"$VC_RESULTS/junitsum.out"
rc=$?
set -e
{
	echo "critest wall time: ${wall}s (parallel ${CRITEST_PARALLEL:-1}); report $report; daemon log $VC_DAEMON_LOG"
	cat "$VC_RESULTS/junitsum.out"
} | tee "$summary"
exit "$rc"
