#!/usr/bin/env bash
# End-to-end test of vc-cri with crictl, as a user drives it: a private
# daemon (test/critest/lib.sh), the offline test registry, a private CNI
# bridge. Prints PASS/FAIL per step and a last line `N passed, N failed`;
# exits non-zero when a step failed.
#
#   test/e2e/run.sh
#
# Steps: version and status; pull; runp, create, start; exec without and
# with a tty; logs; a web server in the pod reached through port-forward,
# the pod IP and a host port; stats; stop and rm. Then a second pod is left
# running across a daemon restart (SIGTERM, start again) and exec'd into
# again. A third pod's QEMU is killed: the pod turns NOTREADY and its
# container EXITED. vc-cri is killed (SIGKILL) at steps of RunPodSandbox
# and CreateContainer, and while a VM boots: the next start takes apart
# what it left. Afterwards nothing may be left: no QEMU process, mount
# under the state dir, netns, tap or veth, IPAM reservation or state file.
set -o pipefail # not -e: every step runs; not -u: a step's bug must not end the run
# shellcheck source=test/critest/lib.sh
source "$(dirname "$0")/../critest/lib.sh"

mkdir -p /run/vcct
vc_env e2e 1
vc_lock

BUSYBOX=registry.k8s.io/e2e-test-images/busybox:1.29-2
NGINX=registry.k8s.io/e2e-test-images/nginx:1.14-2
HOST_PORT=18080     # pod port mapping 80 -> 127.0.0.1:18080 (portmap)
FWD_PORT=18081      # crictl port-forward local port
WORK=$VC_BASE/work
LOGDIR=$VC_BASE/podlogs
STEPLOG=$VC_RESULTS/steps.log

passed=0
failed=0
failures=()
pf_pid=

rm -f "$VC_DAEMON_LOG" "$STEPLOG" "$VC_BASE/ids" "$VC_RESULTS/figures.txt"
rm -rf "$WORK" "$LOGDIR"
mkdir -p "$WORK" "$LOGDIR"

cleanup() {
	[ -n "$pf_pid" ] && kill "$pf_pid" 2>/dev/null
	vc_teardown
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# expect WANT CMD...: CMD succeeds and its output contains WANT.
expect() {
	local want=$1 out
	shift
	out=$("$@" 2>&1)
	local rc=$?
	printf '%s\n' "$out"
	[ "$rc" = 0 ] || { echo "exit $rc"; return 1; }
	case $out in *"$want"*) return 0 ;; esac
	echo "output lacks: $want"
	return 1
}

# retry SECONDS CMD...: until CMD succeeds.
retry() {
	local deadline=$(($(date +%s) + $1))
	shift
	until "$@"; do
		[ "$(date +%s)" -lt "$deadline" ] || return 1
		sleep 1
	done
}

field() { crictl_ "$1" -o go-template --template "$3" "$2"; }

pod_config() { # NAME [PORTMAP]; POD_LINUX: the pod's "linux" object
	local pm="" linux=${POD_LINUX:-"{}"}
	[ -n "${2:-}" ] && pm=", \"port_mappings\": [{ \"container_port\": 80, \"host_port\": $HOST_PORT, \"host_ip\": \"127.0.0.1\" }]"
	cat >"$WORK/$1-pod.json" <<EOF
{
  "metadata": { "name": "$1", "namespace": "vccri-e2e", "uid": "$1-$$", "attempt": 0 },
  "hostname": "$1",
  "log_directory": "$LOGDIR/$1",
  "linux": $linux$pm
}
EOF
	mkdir -p "$LOGDIR/$1"
	echo "$WORK/$1-pod.json"
}

# host_pod_config NAME: a pod in the host's network and PID namespace,
# which host_namespace_pods sends to the runc handler.
host_pod_config() {
	cat >"$WORK/$1-pod.json" <<EOF
{
  "metadata": { "name": "$1", "namespace": "vccri-e2e", "uid": "$1-$$", "attempt": 0 },
  "log_directory": "$LOGDIR/$1",
  "linux": { "security_context": { "namespace_options": { "network": 2, "pid": 2 } } }
}
EOF
	mkdir -p "$LOGDIR/$1"
	echo "$WORK/$1-pod.json"
}

ctr_config() { # NAME IMAGE [COMMAND-JSON]
	local cmd=""
	[ -n "${3:-}" ] && cmd="\"command\": $3,"
	cat >"$WORK/$1-ctr.json" <<EOF
{
  "metadata": { "name": "$1" },
  "image": { "image": "$2" },
  $cmd
  "log_path": "$1.log",
  "linux": {}
}
EOF
	echo "$WORK/$1-ctr.json"
}

ctr_running() { [ "$(field inspect "$1" '{{.status.state}}')" = CONTAINER_RUNNING ]; }
pod_ready() { [ "$(field inspectp "$1" '{{.status.state}}')" = SANDBOX_READY ]; }

# --- checks (each one step; they run in this shell) ---------------------------

has() { # WANT TEXT
	printf '%s\n' "$2"
	case $2 in *"$1"*) return 0 ;; esac
	echo "output lacks: $1"
	return 1
}
check_status() {
	local out
	out=$(crictl_ info -o go-template --template '{{range .status.conditions}}{{.type}}={{.status}} {{end}}') || return 1
	has RuntimeReady=true "$out" && has NetworkReady=true "$out"
}
check_images() {
	local out
	out=$(crictl_ images) || return 1
	has e2e-test-images/busybox "$out" && has e2e-test-images/nginx "$out"
}
runp() { # VAR CONFIG: VAR is set to the pod ID
	local _runp_id
	_runp_id=$(crictl_ runp "$2") || return 1
	printf -v "$1" %s "$_runp_id"
	echo "$_runp_id" | tee -a "$VC_BASE/ids"
}
create_start() { # VAR POD CTR-CONFIG POD-CONFIG: VAR is set to the container ID
	local _cs_id
	_cs_id=$(crictl_ create "$2" "$3" "$4") || return 1
	printf -v "$1" %s "$_cs_id"
	echo "$_cs_id" | tee -a "$VC_BASE/ids"
	crictl_ start "$_cs_id"
}
check_pod_ready() {
	pod_ready "$1" || return 1
	pod1_ip=$(field inspectp "$1" '{{.status.network.ip}}') || return 1
	echo "pod IP $pod1_ip"
	[[ $pod1_ip =~ ^10\.89\.1\.[0-9]+$ ]]
}
exec_exit_code() {
	local rc=0
	crictl_ exec -s "$1" sh -c 'exit 3' || rc=$?
	echo "exit $rc"
	[ "$rc" -ne 0 ]
}
exec_stdin() { echo piped-in | crictl_ exec -i "$1" cat; }
exec_tty() { # CTR: script(1) gives crictl the terminal `exec -it` needs
	script -qec "${VC_CRICTL[*]} exec -it $1 sh -c '[ -t 0 ] && [ -t 1 ] && echo tty-yes; tty'" /dev/null </dev/null
}
exec_tty_interactive() { # the shell's output, not the terminal's echo of the input
	# shellcheck disable=SC2016 # expanded by the shell in the container
	printf 'echo interactive-$((1+0))ok | tr -d 1\nexit\n' | script -qec "${VC_CRICTL[*]} exec -it $1 sh" /dev/null
}
check_logs() {
	local out
	out=$(crictl_ logs "$1" 2>&1) || return 1
	has hello-e2e "$out" && has err-e2e "$out"
}
check_log_file() {
	local f
	f=$(field inspect "$1" '{{.status.logPath}}') || return 1
	echo "$f"
	grep -E '^[0-9T:.+Z-]+ stdout F hello-e2e$' "$f" && grep -E '^[0-9T:.+Z-]+ stderr F err-e2e$' "$f"
}
check_stats() {
	local out
	out=$(crictl_ stats -o json "$1") || return 1
	has '"workingSetBytes"' "$out" && has '"usageCoreNanoSeconds"' "$out" || return 1
	# The table: two samples a second apart, whose CPU times must differ.
	out=$(crictl_ stats "$1") || return 1
	has "${1:0:13}" "$out"
}
check_statsp() {
	local out
	out=$(crictl_ statsp -o json "$1") || return 1
	has "$1" "$out"
}
ctr_exited() { [ "$(field inspect "$1" '{{.status.state}}')" = CONTAINER_EXITED ]; }
pod_gone() { ! crictl_ pods -q | grep -c "$1" >/dev/null; }
no_answer() { ! curl -sS --max-time 3 "http://$1:80/"; }
pids_alive() { # PIDS
	[ -n "$1" ] || { echo "no process found"; return 1; }
	local p
	for p in $1; do kill -0 "$p" || return 1; done
}
found_again() { # POD CTR
	crictl_ pods -q | grep -c "$1" >/dev/null && crictl_ ps -q | grep -c "$2" >/dev/null && pod_ready "$1" && ctr_running "$2"
}
same() { echo "before: $1 after: $2"; [ "$1" = "$2" ]; }
# second_daemon_refused: another vc-cri with the same configuration
# exits with an error naming the lock, and the first still serves.
second_daemon_refused() {
	local out rc
	out=$(timeout 60 "$VC_CRI_BIN" --config "$VC_CONFIG" --listen "$VC_ENDPOINT" --root "$VC_ROOT" --state "$VC_STATE" \
		--cni-conf-dir "$VC_CNI_CONF_DIR" --registries-conf "$VC_REGISTRIES" 2>&1)
	rc=$?
	printf '%s\n' "$out" | tail -n 3
	[ "$rc" != 0 ] && [ "$rc" != 124 ] || { echo "the second daemon exited $rc"; return 1; }
	case $out in *"another vc-cri serves it"*) ;; *) echo "no word of the lock"; return 1 ;; esac
	crictl_ --timeout 20s pods -q | grep -c . >/dev/null || { echo "the first daemon no longer answers"; return 1; }
}
exec_tty_simple() { script -qec "${VC_CRICTL[*]} exec -it $1 sh -c '[ -t 1 ] && echo tty-yes'" /dev/null </dev/null; }
new_container() { # POD CONFIG POD-CONFIG
	local nid=''
	create_start nid "$1" "$2" "$3" || return 1
	expect new-ok crictl_ exec "$nid" echo new-ok
}
stop_remove_pod() { crictl_ stopp "$1" && crictl_ rmp "$1"; }
# on_runc POD: the pod runs on the runc handler, and says so.
on_runc() { expect '"io.vc-cri.runtime-handler": "runc"' crictl_ inspectp "$1"; }
# in_host_pid CTR: the container sees the host's PID 1.
in_host_pid() { expect "$(tr '\0' ' ' </proc/1/cmdline | cut -c1-20)" crictl_ exec "$1" sh -c "tr '\\0' ' ' </proc/1/cmdline"; }
nothing_listed() { [ -z "$(crictl_ pods -q)" ] && [ -z "$(crictl_ ps -aq)" ]; }

# kill_qemu POD: kill -9 of the pod's QEMU; prints the ms until the pod
# is NOTREADY (polled every 100 ms, for 20 s at most).
kill_qemu() {
	local pid t0 i
	pid=$(vc_qemu_of "$1")
	[ -n "$pid" ] || { echo "no QEMU of pod $1"; return 1; }
	t0=$(vc_ms)
	kill -KILL "$pid" || return 1
	for ((i = 0; i < 200; i++)); do
		if [ "$(field inspectp "$1" '{{.status.state}}')" = SANDBOX_NOTREADY ]; then
			echo "pod NOTREADY $(($(vc_ms) - t0)) ms after kill -9 of QEMU $pid" | tee -a "$VC_RESULTS/figures.txt"
			return 0
		fi
		sleep 0.1
	done
	return 1
}
exited_by_vm() { # CTR: EXITED, exit code 255, reason VMExited
	[ "$(field inspect "$1" '{{.status.state}} {{.status.exitCode}} {{.status.reason}}')" = "CONTAINER_EXITED 255 VMExited" ]
}
# crash_at STEP: vc-cri kills itself (SIGKILL) at that step of the call
# that STEP names; the call fails, and the daemon is started again.
crash_at() { # STEP [HANDLER]
	local cfg pod='' rc
	local -a handler=()
	[ -n "${2:-}" ] && handler=(--runtime "$2")
	cfg=$(pod_config e2e-crash)
	vc_daemon_stop
	VC_CRI_CRASH_AT=$1 vc_daemon_start || return 1
	case $1 in
	pod-*) crictl_ runp "${handler[@]}" "$cfg" && { echo "runp succeeded"; return 1; } ;;
	container-*)
		pod=$(crictl_ runp "${handler[@]}" "$cfg") || return 1
		crictl_ create "$pod" "$(ctr_config crashed "$BUSYBOX" '["sleep", "36000"]')" "$cfg" && { echo "create succeeded"; return 1; }
		;;
	esac
	wait "$VC_DAEMON_PID" 2>/dev/null
	rc=$?
	VC_DAEMON_PID=
	[ "$rc" = 137 ] || { echo "vc-cri exited $rc, want 137 (SIGKILL)"; return 1; }
	vc_daemon_start || return 1
	if [ -n "$pod" ]; then
		# The pod was made: it stays, the container is gone.
		[ -z "$(crictl_ ps -aq)" ] || { echo "container left: $(crictl_ ps -a)"; return 1; }
		stop_remove_pod "$pod" || return 1
	fi
	retry 30 state_clean
}
# crash_during_runp: kill -9 of vc-cri while it boots a pod's VM.
crash_during_runp() {
	# A VM shape of its own (a memory limit): no template of it is ready,
	# so the VM boots cold, and its template is built meanwhile.
	crictl_ runp "$(POD_LINUX='{"resources": {"memory_limit_in_bytes": 134217728}}' pod_config e2e-killed)" &
	local runp=$!
	sleep "${1:-1}"
	kill -KILL "$VC_DAEMON_PID" || return 1
	wait "$VC_DAEMON_PID" 2>/dev/null
	VC_DAEMON_PID=
	wait "$runp" && { echo "runp succeeded"; return 1; }
	vc_daemon_start || return 1
	[ -z "$(crictl_ pods -q)" ] || { echo "pods listed: $(crictl_ pods)"; return 1; }
	retry 30 state_clean
}
# state_clean: nothing of a pod is left, whatever its ID: no QEMU, conmon,
# runc container or runc pod, mount, tap, IPAM lease, sandbox, netns, pod
# files or intent.
state_clean() {
	empty "$(vc_qemu_pids)" &&
		empty "$(vc_conmon_pids)" &&
		empty "$(vc_runc_containers)" &&
		empty "$(find "$VC_STATE"/runc/*/pods -mindepth 1 -maxdepth 1 2>/dev/null)" &&
		empty "$(vc_mounts_under "$VC_STATE")" &&
		empty "$(ip -o link show master "$VC_BRIDGE" 2>/dev/null)" &&
		empty "$(find "$VC_CNI_IPAM_DIR" -type f -regex '.*/[0-9.]+' 2>/dev/null)" &&
		empty "$(find "$VC_STATE/sandboxes" -mindepth 1 -maxdepth 1 ! -name .vm ! -name '*.json' 2>/dev/null)" &&
		empty "$(find "$VC_STATE/sandboxes/.vm" "$VC_STATE/netns" "$VC_STATE/cri/intents" "$VC_STATE/cri/pod-files" -mindepth 1 2>/dev/null)"
}

# ----------------------------------------------------------------------------

t_start=$(date +%s)
vc_up
vc_log "daemon up; steps log: $STEPLOG"

step "version reports vc-cri" expect vc-cri crictl_ version
step "status: RuntimeReady and NetworkReady" check_status
step "pull $BUSYBOX" crictl_ pull "$BUSYBOX"
step "pull $NGINX" crictl_ pull "$NGINX"
step "images lists both" check_images

# --- pod 1: the whole lifecycle ---------------------------------------------
pod1='' ctr1='' ctr2='' pod1_ip=''
POD=$(pod_config e2e-web portmap)
step "runp" runp pod1 "$POD"
step "pod is SANDBOX_READY with an IP" check_pod_ready "$pod1"

CTR=$(ctr_config busybox "$BUSYBOX" '["sh", "-c", "echo hello-e2e; echo err-e2e >&2; exec sleep 36000"]')
step "create + start busybox" create_start ctr1 "$pod1" "$CTR" "$POD"
step "busybox is CONTAINER_RUNNING" retry 30 ctr_running "$ctr1"

step "exec (no tty): echo hi" expect hi crictl_ exec "$ctr1" echo hi
step "exec --sync: exit code passes through" exec_exit_code "$ctr1"
step "exec -i (no tty): stdin passes through" expect piped-in exec_stdin "$ctr1"
step "exec -it: the process has a tty" expect tty-yes exec_tty "$ctr1"
step "exec -it: interactive shell reads input" expect interactive-ok exec_tty_interactive "$ctr1"
step "logs: stdout and stderr" check_logs "$ctr1"
step "log file is in the CRI format" check_log_file "$ctr1"

WEB=$(ctr_config web "$NGINX")
step "create + start web server (nginx:1.14-2)" create_start ctr2 "$pod1" "$WEB" "$POD"
step "web server answers inside the pod" retry 30 expect "Welcome to nginx" crictl_ exec "$ctr1" wget -qO- http://127.0.0.1:80/

crictl_ port-forward "$pod1" "$FWD_PORT:80" >>"$STEPLOG" 2>&1 &
pf_pid=$!
step "port-forward: curl 127.0.0.1:$FWD_PORT" retry 20 expect "Welcome to nginx" curl -sS --max-time 10 "http://127.0.0.1:$FWD_PORT/"
step "port-forward: second connection" expect "Welcome to nginx" curl -sS --max-time 10 "http://127.0.0.1:$FWD_PORT/"
kill "$pf_pid" 2>/dev/null
wait "$pf_pid" 2>/dev/null
pf_pid=

step "curl the pod IP from the host" retry 20 expect "Welcome to nginx" curl -sS --max-time 10 "http://$pod1_ip:80/"
step "curl the host port (portmap 127.0.0.1:$HOST_PORT)" retry 10 expect "Welcome to nginx" curl -sS --max-time 10 "http://127.0.0.1:$HOST_PORT/"
step "hostname in the guest" expect e2e-web crictl_ exec "$ctr1" hostname

step "stats: container CPU and memory" check_stats "$ctr1"
step "statsp: pod stats" check_statsp "$pod1"

step "stop busybox" crictl_ stop --timeout 10 "$ctr1"
step "busybox is CONTAINER_EXITED" ctr_exited "$ctr1"
step "rm busybox" crictl_ rm "$ctr1"
step "rm -f running web server" crictl_ rm -f "$ctr2"
step "stopp" crictl_ stopp "$pod1"
step "stopp again (idempotent)" crictl_ stopp "$pod1"
step "rmp" crictl_ rmp "$pod1"
# (crictl looks a pod up before RemovePodSandbox, so a second rmp fails in
# crictl itself; critest checks the runtime's idempotence.)
step "pod is gone" pod_gone "$pod1"
step "pod IP no longer answers" no_answer "$pod1_ip"

# --- pod 2: across a daemon restart -----------------------------------------
pod2='' ctr3=''
POD2=$(pod_config e2e-restart)
step "runp second pod" runp pod2 "$POD2"
CTR3=$(ctr_config sleeper "$BUSYBOX" '["sh", "-c", "echo before-restart; exec sleep 36000"]')
step "create + start container in second pod" create_start ctr3 "$pod2" "$CTR3" "$POD2"
step "exec before restart" expect before-exec crictl_ exec "$ctr3" echo before-exec
qemu_before=$(vc_qemu_pids | sort | tr '\n' ' ')
# ... and a host-network, host-PID pod beside it, on the runc handler.
hpod='' hctr=''
HPOD=$(host_pod_config e2e-hostns)
step "runp host-namespace pod" runp hpod "$HPOD"
step "host-namespace pod runs on the runc handler" on_runc "$hpod"
HCTR=$(ctr_config hostsleeper "$BUSYBOX" '["sh", "-c", "echo runc-before-restart; exec sleep 36000"]')
step "create + start container in the runc pod" create_start hctr "$hpod" "$HCTR" "$HPOD"
step "runc container sees the host's PID 1" in_host_pid "$hctr"
conmon_before=$(vc_conmon_pids | sort | tr '\n' ' ')

vc_daemon_stop
step "the VM survives SIGTERM of vc-cri" pids_alive "$qemu_before"
step "conmon survives SIGTERM of vc-cri" pids_alive "$conmon_before"
step "restart vc-cri" vc_daemon_start
step "pod and container found again, same state" found_again "$pod2" "$ctr3"
step "same VM after restart" same "$qemu_before" "$(vc_qemu_pids | sort | tr '\n' ' ')"
step "exec after restart" expect after-restart crictl_ exec "$ctr3" echo after-restart
step "exec -it after restart" expect tty-yes exec_tty_simple "$ctr3"
step "logs after restart" expect before-restart crictl_ logs "$ctr3"
step "runc pod and container found again" found_again "$hpod" "$hctr"
step "same conmon after restart" same "$conmon_before" "$(vc_conmon_pids | sort | tr '\n' ' ')"
step "exec into the runc container after restart" expect runc-after-restart crictl_ exec "$hctr" echo runc-after-restart
step "exec -it into the runc container after restart" expect tty-yes exec_tty_simple "$hctr"
step "runc container logs after restart" expect runc-before-restart crictl_ logs "$hctr"
step "stopp + rmp runc pod" stop_remove_pod "$hpod"
step "no conmon left of the runc pod" empty "$(vc_conmon_pids)"
step "new container after restart" new_container "$pod2" "$(ctr_config sleeper2 "$BUSYBOX" '["sleep", "36000"]')" "$POD2"
step "a second vc-cri on the same state dir is refused" second_daemon_refused
step "the CRI socket is 0660" expect 660 stat -c %a "$VC_SOCK"
vc_record_ids
step "stopp + rmp second pod" stop_remove_pod "$pod2"
step "no pods or containers left" nothing_listed

# --- pod 3: its QEMU killed -------------------------------------------------
pod3='' ctr4=''
POD3=$(pod_config e2e-vm-killed)
step "runp third pod" runp pod3 "$POD3"
step "create + start container in third pod" create_start ctr4 "$pod3" "$(ctr_config doomed "$BUSYBOX" '["sleep", "36000"]')" "$POD3"
step "kill -9 of its QEMU: the pod is NOTREADY" kill_qemu "$pod3"
step "its container is EXITED 255 VMExited" exited_by_vm "$ctr4"
step "stopp + rmp of the pod whose VM died" stop_remove_pod "$pod3"
step "nothing of it left" state_clean

# --- vc-cri killed in the middle of its calls -------------------------------
for at in pod-network pod-sandbox container-rootfs container-created; do
	step "kill -9 of vc-cri at $at: nothing left after the restart" crash_at "$at"
done
for at in pod-sandbox container-created; do
	step "kill -9 of vc-cri at $at of a runc pod: nothing left after the restart" crash_at "$at" runc
done
step "kill -9 of vc-cri while a VM boots: nothing left after the restart" crash_during_runp 1
step "no pods or containers left after the crashes" nothing_listed

# --- nothing left behind -----------------------------------------------------
vc_daemon_stop
vc_leak_steps

vc_teardown
trap - EXIT
echo "e2e wall time: $(($(date +%s) - t_start))s; steps log $STEPLOG; daemon log $VC_DAEMON_LOG"
for f in "${failures[@]}"; do echo "FAILED: $f"; done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
