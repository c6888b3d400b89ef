#!/usr/bin/env bash
# The README's quick start, word for word, on a private daemon
# (test/critest/lib.sh) with the offline test registry: the lines between
# README.md's quickstart:begin and quickstart:end markers run one by one in
# this shell, with the crictl that `make install` installs
# (hack/install-crictl.sh, here into a private prefix) and the crictl.yaml
# it writes (here a private one, pointing at the private socket). Then
# the ID prefix flows with crictl, the examples kubelet uses, the metrics
# endpoint after the pods' lives, and `vc-cri env` and `vc-cri check`.
# Prints PASS/FAIL per step and a last line `N passed, N failed`; exits
# non-zero when a step failed.
#
#   test/quickstart/run.sh
set -o pipefail # not -e: every step runs
# shellcheck source=test/critest/lib.sh
source "$(dirname "$0")/../critest/lib.sh"

mkdir -p /run/vcct
vc_env quickstart 5
vc_lock

METRICS_ADDR=127.0.0.1:19105
STEPLOG=$VC_RESULTS/steps.log
PREFIX_DIR=$VC_BASE/prefix       # where install-crictl.sh installs crictl
CRICTL_YAML=$VC_BASE/installed-crictl.yaml
EXAMPLE_DIR=/srv/vc-cri-example  # the README's host directory
LOG_DIRS=(/var/log/pods/default_quickstart_quickstart-0001 /var/log/pods/default_nginx_nginx-0001)
HOST_PORTS=(8080 8081)           # the README's host port and port-forward port

passed=0
failed=0
failures=()
made_example_dir=0

rm -f "$VC_DAEMON_LOG" "$STEPLOG" "$VC_BASE/ids"

cleanup() {
	local j
	for j in $(jobs -p); do
		[ "$j" = "$VC_DAEMON_PID" ] || kill "$j" 2>/dev/null
	done
	vc_teardown
	rm -rf "${LOG_DIRS[@]}"
	[ "$made_example_dir" = 1 ] && rm -rf "$EXAMPLE_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

has() { # WANT TEXT
	printf '%s\n' "$2"
	case $2 in *"$1"*) return 0 ;; esac
	echo "output lacks: $1"
	return 1
}
expect() { # WANT CMD...: CMD succeeds and prints WANT
	local want=$1 out rc
	shift
	out=$("$@" 2>&1)
	rc=$?
	printf '%s\n' "$out"
	[ "$rc" = 0 ] || { echo "exit $rc"; return 1; }
	has "$want" "$out" >/dev/null || { echo "output lacks: $want"; return 1; }
}
fails_with() { # WANT CMD...: CMD fails and says WANT
	local want=$1 out rc
	shift
	out=$("$@" 2>&1)
	rc=$?
	printf '%s\n' "$out"
	[ "$rc" != 0 ] || { echo "succeeded, want a failure"; return 1; }
	has "$want" "$out" >/dev/null || { echo "output lacks: $want"; return 1; }
}

# --- the README's lines -------------------------------------------------------

# readme_lines: the quick start's commands, one a line, as the README has
# them (indented code, 4 spaces).
readme_lines() {
	awk '/<!-- quickstart:begin/ { on = 1; next } /<!-- quickstart:end/ { on = 0 } on && /^    [^ ]/ { print substr($0, 5) }' "$VC_REPO/README.md"
}

# What some README lines must print (the first pattern a line matches);
# every other line must just succeed. Each expectation must be used, so
# that a README change shows here.
declare -A WANT=(
	['crictl pods']='quickstart'
	['crictl exec $CTR uname -r']='' # set below: the guest's kernel release
	['crictl logs $CTR']='hello from a pod VM'
	['crictl inspectp ${POD:0:6}']='SANDBOX_READY'
	['curl -s --retry 5 --retry-connrefused http://127.0.0.1:8080/']='Hello from a pod VM'
	['curl -s --retry 5 --retry-connrefused http://127.0.0.1:8081/']='Hello from a pod VM'
)
declare -A USED=()

# run_line LINE: eval it here (variables and background jobs stay), and
# check what it printed when WANT says.
run_line() {
	local line=$1 cmd want out rc
	cmd=${line%%#*}                   # the comment, for the lookup only
	cmd=${cmd%"${cmd##*[![:space:]]}"} # trailing blanks
	out=$VC_BASE/line.out
	eval "$line" >"$out" 2>&1
	rc=$?
	cat "$out"
	[ "$rc" = 0 ] || { echo "exit $rc"; return 1; }
	if [ -n "${WANT[$cmd]+set}" ]; then
		USED[$cmd]=1
		want=${WANT[$cmd]}
		[ -z "$want" ] || grep -qF -- "$want" "$out" || { echo "output lacks: $want"; return 1; }
	fi
	case $cmd in
	'crictl exec $CTR uname -r')
		# The guest's kernel, not the host's.
		grep -qvxF "$(uname -r)" "$out" || { echo "the host's kernel release"; return 1; }
		;;
	esac
}

# --- checks after the README -----------------------------------------------------

free_ports() {
	local p
	for p in "${HOST_PORTS[@]}"; do
		if ss -ltnH "sport = :$p" | grep -q .; then
			echo "port $p is taken: $(ss -ltnpH "sport = :$p")"
			return 1
		fi
	done
}
installed_crictl() {
	local ver
	ver=$(awk '$1 == "sigs.k8s.io/cri-tools" { print $2 }' "$VC_REPO/test/critest/tools/go.mod")
	[ "$(command -v crictl)" = "$PREFIX_DIR/bin/crictl" ] || { echo "crictl is $(command -v crictl)"; return 1; }
	expect "crictl version $ver" crictl --version || return 1
	expect "timeout: 120" cat "$CRICTL_YAML" || return 1
	expect "$VC_ENDPOINT" crictl config --get runtime-endpoint
}
nothing_left() {
	[ -z "$(crictl pods -q)" ] && [ -z "$(crictl ps -aq)" ] || { crictl pods; crictl ps -a; return 1; }
}

# The examples kubelet gets: the static pod is the crictl nginx pod
# (grep, not a YAML parser: the host has no python).
json_val() { sed -n "s/.*\"$2\": *\"\{0,1\}\([^\",]*\)\"\{0,1\}.*/\1/p" "$1" | head -n1; }
yaml_val() { sed -n "s/^ *-\{0,1\} *$2: *\(.*\)$/\1/p" "$1" | head -n1; }
same_val() { # WHAT A B
	[ -n "$2" ] && [ "$2" = "$3" ] || { echo "$1: static-pod.yaml has '$3', the crictl example '$2'"; return 1; }
	echo "$1: $2"
}
static_pod_matches() {
	local d=$VC_REPO/examples y=$VC_REPO/examples/static-pod.yaml
	grep -qx 'kind: Pod' "$y" && grep -qx 'apiVersion: v1' "$y" || { echo "no v1 Pod"; return 1; }
	same_val image "$(json_val "$d/nginx-container.json" image)" "$(yaml_val "$y" image)" &&
		same_val containerPort "$(json_val "$d/nginx-pod.json" container_port)" "$(yaml_val "$y" containerPort)" &&
		same_val hostPort "$(json_val "$d/nginx-pod.json" host_port)" "$(yaml_val "$y" hostPort)" &&
		same_val hostIP "$(json_val "$d/nginx-pod.json" host_ip)" "$(yaml_val "$y" hostIP)" &&
		same_val mountPath "$(json_val "$d/nginx-container.json" container_path)" "$(yaml_val "$y" mountPath)" &&
		same_val hostPath "$(json_val "$d/nginx-container.json" host_path)" "$(yaml_val "$y" path)"
}

# --- ID prefixes with crictl ----------------------------------------------------

pod_state() { crictl inspectp -o go-template --template '{{.status.state}}' "$1"; }
ctr_state() { crictl inspect -o go-template --template '{{.status.state}}' "$1"; }
# unknown_prefix IDS...: 12 hex digits that start none of the IDs.
unknown_prefix() {
	local c p id taken
	for c in 0 1 2 3 4 5 6 7 8 9 a b c d e f; do
		p=$(printf "%.0s$c" {1..12})
		taken=0
		for id in "$@"; do [[ $id == "$p"* ]] && taken=1; done
		[ "$taken" = 0 ] && { echo "$p"; return; }
	done
}
still_ready() { # POD: a failed stop or remove left it running
	[ "$(pod_state "$1")" = SANDBOX_READY ] || { echo "pod $1 is $(pod_state "$1")"; return 1; }
}

prefix_flows() {
	local pod ctr img short_pod short_ctr unknown
	pod=$(crictl runp examples/pod.json 2>>"$STEPLOG") || return 1
	echo "$pod" >>"$VC_BASE/ids"
	short_pod=${pod:0:13}
	step "short ID: create in pod $short_pod" eval 'ctr=$(crictl create '"$short_pod"' examples/container.json examples/pod.json)'
	echo "$ctr" >>"$VC_BASE/ids"
	short_ctr=${ctr:0:13}
	unknown=$(unknown_prefix "$pod" "$ctr")
	step "short ID: start $short_ctr" crictl start "$short_ctr"
	step "short ID: inspectp $short_pod" expect "\"id\": \"$pod\"" crictl inspectp "$short_pod"
	step "short ID: inspect $short_ctr" expect "\"id\": \"$ctr\"" crictl inspect "$short_ctr"
	step "short ID: ps --pod $short_pod" expect "${ctr:0:13}" crictl ps --pod "$short_pod"
	step "short ID: exec $short_ctr" expect short-exec crictl exec "$short_ctr" echo short-exec
	step "short ID: logs $short_ctr" expect "hello from a pod VM" crictl logs "$short_ctr"
	step "unknown prefix: inspectp is NotFound" fails_with NotFound crictl inspectp "$unknown"
	step "unknown prefix: inspect is NotFound" fails_with NotFound crictl inspect "$unknown"
	step "unknown prefix: exec is NotFound" fails_with NotFound crictl exec "$unknown" true
	step "unknown prefix: stopp is NotFound, not stopped" fails_with NotFound crictl stopp "$unknown"
	step "unknown prefix: stop is NotFound, not stopped" fails_with NotFound crictl stop "$unknown"
	step "unknown prefix: rmp fails" fails_with NotFound crictl rmp -f "$unknown"
	step "unknown prefix: rm fails" fails_with NotFound crictl rm -f "$unknown"
	step "the pod runs on after them" still_ready "$pod"
	step "short ID: stop $short_ctr" crictl stop "$short_ctr"
	step "short ID: container exited" eval '[ "$(ctr_state '"$ctr"')" = CONTAINER_EXITED ]'
	step "short ID: rm $short_ctr" crictl rm "$short_ctr"
	step "short ID: stopp $short_pod" crictl stopp "$short_pod"
	step "short ID: pod not ready" eval '[ "$(pod_state '"$pod"')" = SANDBOX_NOTREADY ]'
	step "short ID: rmp $short_pod" crictl rmp "$short_pod"
	step "the removed pod's short ID is NotFound" fails_with NotFound crictl stopp "$short_pod"
	# Images: the busybox image by its short ID.
	img=$(crictl images -q registry.k8s.io/e2e-test-images/busybox:1.29-2 2>>"$STEPLOG") || return 1
	img=${img#sha256:}
	step "short ID: inspecti ${img:0:12}" expect "e2e-test-images/busybox" crictl inspecti "${img:0:12}"
	step "short ID: rmi ${img:0:12}" crictl rmi "${img:0:12}"
	step "image is gone" eval '! crictl images | grep -q "e2e-test-images/busybox "'
	step "unknown prefix: rmi says no such image" fails_with "no such image" crictl rmi "$(unknown_prefix "$img")"
	return 0
}

# --- the metrics, after the pods' lives ---------------------------------------------

scrape() { curl -sS --max-time 10 "http://$METRICS_ADDR/metrics"; }
# sample TEXT NAME: the value of a sample, 0 when absent.
sample() { awk -v n="$2" '$1 == n { print $2; found = 1 } END { if (!found) print 0 }' <<<"$1"; }
check_metrics() {
	local m ok=0 v
	m=$(scrape) || return 1
	grep '^vc_cri_' <<<"$m" | grep -v '_bucket{' | head -80
	atleast() { # NAME MIN
		v=$(sample "$m" "$1")
		awk -v v="$v" -v min="$2" 'BEGIN { exit !(v + 0 >= min + 0) }' || { echo "$1 = $v, want >= $2"; ok=1; }
	}
	atleast 'vc_cri_operations_total{operation="RunPodSandbox"}' 3
	atleast 'vc_cri_operations_total{operation="CreateContainer"}' 3
	atleast 'vc_cri_operations_total{operation="StopPodSandbox"}' 3
	atleast 'vc_cri_operations_total{operation="RemovePodSandbox"}' 2
	atleast 'vc_cri_operations_total{operation="PullImage"}' 2
	atleast 'vc_cri_operations_total{operation="PortForward"}' 1
	atleast 'vc_cri_operations_errors_total{code="NotFound",operation="StopPodSandbox"}' 2
	atleast 'vc_cri_operations_errors_total{code="NotFound",operation="PodSandboxStatus"}' 1
	atleast 'vc_cri_operations_latency_seconds_count{operation="RunPodSandbox"}' 3
	atleast 'vc_cri_operations_latency_seconds_sum{operation="RunPodSandbox"}' 1
	atleast 'vc_cri_operations_latency_seconds_bucket{operation="RunPodSandbox",le="+Inf"}' 3
	atleast 'vc_cri_pod_start_seconds_count' 3
	atleast 'vc_cri_pod_start_seconds_sum' 1
	atleast 'vc_cri_pod_start_phase_seconds_count{phase="network"}' 3
	atleast 'vc_cri_pod_start_phase_seconds_count{phase="sandbox"}' 3
	atleast 'vc_cri_pod_start_phase_seconds_sum{phase="sandbox"}' 1
	# The guests were asked: sandbox setup, container create, exec.
	atleast 'vc_cri_agent_call_latency_seconds_count{method="SetupNetwork"}' 3
	atleast 'vc_cri_agent_call_latency_seconds_count{method="CreateContainer"}' 3
	atleast 'vc_cri_agent_call_latency_seconds_count{method="ExecProcess"}' 1
	atleast 'process_resident_memory_bytes' 1
	# The pods are gone: nothing running, no VM left.
	[ "$(sample "$m" 'vc_cri_pods{state="ready"}')" = 0 ] || { echo "pods ready left"; ok=1; }
	[ "$(sample "$m" 'vc_cri_vms_running')" = 0 ] || { echo "VMs left"; ok=1; }
	grep -q '^vc_cri_build_info{' <<<"$m" || { echo "no build info"; ok=1; }
	return "$ok"
}
metrics_while_running() {
	local m pod
	pod=$(crictl runp examples/pod.json) || return 1
	echo "$pod" >>"$VC_BASE/ids"
	m=$(scrape) || return 1
	grep -E '^vc_cri_(pods|vms_running)' <<<"$m"
	crictl rmp -f "$pod" || return 1
	[ "$(sample "$m" 'vc_cri_pods{state="ready"}')" = 1 ] && [ "$(sample "$m" 'vc_cri_vms_running')" = 1 ]
}

# --- vc-cri env and check on this daemon's configuration -----------------------------

daemon_flags=(--config "$VC_CONFIG" --listen "$VC_ENDPOINT" --root "$VC_ROOT" --state "$VC_STATE"
	--cni-conf-dir "$VC_CNI_CONF_DIR" --registries-conf "$VC_REGISTRIES")
# toml_get FILE SECTION KEY: a value of `vc-cri env`'s TOML, unquoted.
toml_get() {
	awk -v sec="[$2]" -v key="$3" '
		/^\[/ { cur = $0; sub(/^\[\[/, "[", cur); sub(/\]\]$/, "]", cur); next }
		cur == sec && $1 == key && $2 == "=" { v = substr($0, index($0, "=") + 2); gsub(/^'"'"'|'"'"'$/, "", v); print v; exit }
	' "$1"
}
check_env() {
	local f=$VC_BASE/env.toml ok=0 k v sum
	"$VC_CRI_BIN" env "${daemon_flags[@]}" >"$f" || return 1
	"$VC_CRI_BIN" env "${daemon_flags[@]}" -o json >"$VC_BASE/env.json" || return 1
	grep -v '^\(bandwidth\|dhcp\|firewall\|host-device\|ipvlan\|macvlan\|ptp\|sbr\|static\|tuning\|vlan\|vrf\|dummy\|tap\) =' "$f"
	for k in '[meta]' '[runtime]' '[config]' '[hypervisor]' '[guest.kernel]' '[guest.image]' '[network]' '[[network.networks]]' '[host]' '[tools]'; do
		grep -qxF "$k" "$f" || { echo "no section $k"; ok=1; }
	done
	want() { # SECTION KEY VALUE
		v=$(toml_get "$f" "$1" "$2")
		[ "$v" = "$3" ] || { echo "$1 $2 = '$v', want '$3'"; ok=1; }
	}
	nonempty() { # SECTION KEY
		v=$(toml_get "$f" "$1" "$2")
		[ -n "$v" ] || { echo "$1 $2 is empty"; ok=1; }
	}
	want config listen "$VC_ENDPOINT"
	want config metrics_address "$METRICS_ADDR"
	want config.vm kernel "$VC_GUEST_DIR/vmlinux"
	sum=$(sha256sum "$VC_GUEST_DIR/vmlinux" | cut -d' ' -f1)
	want guest.kernel sha256 "$sum"
	sum=$(sha256sum "$VC_GUEST_DIR/initramfs.cpio" | cut -d' ' -f1)
	want guest.image sha256 "$sum"
	want network.networks name "vccri-$VC_NAME"
	want network missing_plugins "[]"
	want tools crictl "$(crictl --version)"
	nonempty hypervisor version
	nonempty hypervisor accelerator_reason
	nonempty host kernel
	nonempty runtime cri_api_version
	case $(toml_get "$f" hypervisor accelerator) in kvm | tcg) ;; *) echo "accelerator neither kvm nor tcg"; ok=1 ;; esac
	grep -q '"format_version": 1' "$VC_BASE/env.json" || { echo "JSON lacks meta.format_version"; ok=1; }
	return "$ok"
}
check_check() { expect "ok   accelerator" "$VC_CRI_BIN" check "${daemon_flags[@]}"; }

# ------------------------------------------------------------------------------------

t_start=$(date +%s)
step "host ports ${HOST_PORTS[*]} are free" free_ports || exit 1
vc_build_tools
vc_build_daemon
step "install crictl as make install does (private prefix)" \
	env CRICTL_CONFIG="$CRICTL_YAML" VC_CRI_ENDPOINT="$VC_ENDPOINT" "$VC_REPO/hack/install-crictl.sh" "$PREFIX_DIR"
export PATH=$PREFIX_DIR/bin:$PATH
export CRI_CONFIG_FILE=$CRICTL_YAML # what /etc/crictl.yaml is to a user
step "crictl and crictl.yaml as installed" installed_crictl

vc_registry_start
vc_write_cni
vc_write_config
sed -i "1a metrics_address = \"$METRICS_ADDR\"" "$VC_CONFIG"
vc_daemon_start || vc_die "vc-cri did not start, see $VC_DAEMON_LOG"
[ -d "$EXAMPLE_DIR" ] || made_example_dir=1

cd "$VC_REPO" || exit 1
mapfile -t LINES < <(readme_lines)
step "the README has a quick start" eval '[ "${#LINES[@]}" -ge 10 ]'
for line in "${LINES[@]}"; do
	name=${line%%  #*}
	step "README: ${name%"${name##*[![:space:]]}"}" run_line "$line"
done
for k in "${!WANT[@]}"; do
	step "README still has: $k" eval '[ -n "${USED[$k]:-}" ]'
done
vc_record_ids
step "README's pods and containers are all gone" nothing_left

prefix_flows || step "ID prefix flows: runp and images -q worked" false
step "examples/static-pod.yaml is the nginx example" static_pod_matches
step "metrics after the pods' lives" check_metrics
step "metrics while a pod runs" metrics_while_running
step "vc-cri env: keys and host facts" check_env
step "vc-cri check passes" check_check
step "nothing left" nothing_left

vc_teardown
trap - EXIT
cleanup >/dev/null 2>&1
echo "quickstart wall time: $(($(date +%s) - t_start))s; steps log $STEPLOG; daemon log $VC_DAEMON_LOG"
for f in "${failures[@]}"; do echo "FAILED: $f"; done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
