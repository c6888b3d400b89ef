#!/usr/bin/env bash
# End-to-end test of vc-cri under a real upstream kubelet (v1.37.2, built
# from the Go module proxy by build-kubelet.sh and cached), in standalone
# mode: no API server, static pod manifests, against a private vc-cri
# (test/critest/lib.sh: offline test registry, private CNI bridge). Prints
# PASS/FAIL per step and a last line `N passed, N failed`; exits non-zero
# when a step failed.
#
#   test/kubelet/run.sh
#
# A warm-up pod through crictl first: the daemon's first VM pays for the
# accelerator choice, and is not the one measured. Then (every pod a VM):
#   web    nginx with an exec liveness and an exec readiness probe (kubelet's
#          default 1 s timeout): manifest -> Running and Ready; no probe fails
#          over 20 probe periods while nothing else boots, probe latencies
#          from vc-cri's log of each ExecSync (-v 4); /stats/summary; QEMU in
#          the pod's cgroup; not restarted while the next two pods boot
#   crash  a container that exits 3 after 2 s, restartPolicy Always:
#          restarted in the same VM, restartCount and last exit code
#   vols   an init container, then two app containers sharing an emptyDir,
#          and a hostPath directory updated as kubelet updates a ConfigMap
#          volume (..data symlink swapped by rename)
# Then the drain (manifests removed): kubelet stops every pod within its
# grace period and removes it, and nothing may be left on the host
# afterwards (QEMU, mounts, netns, taps, state files, kubelet's cgroups,
# the sysctls it changed). Figures go to _output/kubelet/summary.txt.
#
# Environment: VC_KUBELET (a kubelet binary instead of build-kubelet.sh's),
# VC_KUBELET_RO_PORT (read-only port, default 10455), VC_KUBELET_HEALTHZ_PORT
# (default 10448), VC_KEEP=1 (keep the kubelet and vc-cri directories), and
# those of test/critest/lib.sh.
set -o pipefail # not -e: every step runs; not -u: a step's bug must not end the run
HERE=$(cd "$(dirname "$0")" && pwd)
export VC_LOG_LEVEL=${VC_LOG_LEVEL:-4} # 4: vc-cri logs every CRI call with its duration
# shellcheck source=test/critest/lib.sh
source "$HERE/../critest/lib.sh"

mkdir -p /run/vcct
vc_env kubelet 4
vc_lock

BUSYBOX=registry.k8s.io/e2e-test-images/busybox:1.29-2
NGINX=registry.k8s.io/e2e-test-images/nginx:1.14-2
NODE=vccri-kubelet              # static pod NAME runs as NAME-$NODE
NS=vccri-kubelet                # namespace of every test pod
RO_PORT=${VC_KUBELET_RO_PORT:-10455}
HZ_PORT=${VC_KUBELET_HEALTHZ_PORT:-10448}
GRACE=10                        # terminationGracePeriodSeconds of every pod
PROBE_PERIOD=3                  # periodSeconds of both probes of web
HOSTWEB_PORT=18090              # hostweb's server on the host's network
PROBE_PERIODS=20                # the quiet window, in probe periods
KDIR=/var/lib/vcct/kubelet-node # kubelet root dir, logs, config, manifests
KROOT=$KDIR/root
MANIFESTS=$KDIR/manifests
CFGDIR=$KDIR/configmap          # the hostPath updated like a ConfigMap volume
STEPLOG=$VC_RESULTS/steps.log
KLOG=$VC_RESULTS/kubelet.log
SUMMARY=$VC_RESULTS/summary.txt

passed=0
failed=0
failures=()
kpid=
figures=()

rm -f "$VC_DAEMON_LOG" "$STEPLOG" "$KLOG" "$SUMMARY" "$VC_BASE/ids"

# --- host state kubelet changes, saved before it starts ----------------------
# kubelet's container manager sets these sysctls (protectKernelDefaults off).
SYSCTLS="vm/overcommit_memory vm/panic_on_oom kernel/panic kernel/panic_on_oops kernel/keys/root_maxkeys kernel/keys/root_maxbytes"
declare -A SAVED_SYSCTL=()
for s in $SYSCTLS; do SAVED_SYSCTL[$s]=$(cat "/proc/sys/$s" 2>/dev/null); done
# Host paths kubelet uses whatever its root dir: the device plugin socket
# and the /var/log/containers symlinks.
NEW_DIRS=()
for d in /var/lib/kubelet /var/lib/kubelet/device-plugins /var/log/containers; do
	[ -e "$d" ] || NEW_DIRS+=("$d")
done
# cgroupsPerQOS: kubelet makes kubepods/{burstable,besteffort}/pod<uid> in
# every hierarchy; removed at the end if this run made them.
NEW_CGROUPS=()
for h in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
	[ -e "$h/cgroup.procs" ] && [ ! -e "$h/kubepods" ] && NEW_CGROUPS+=("${h%/}/kubepods")
done

kubelet_stop() {
	[ -n "$kpid" ] || return 0
	local pid=$kpid i
	kpid=
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < 300; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$pid" 2>/dev/null && { vc_log "kubelet ignored SIGTERM for 30s: SIGKILL"; kill -KILL "$pid"; }
	wait "$pid" 2>/dev/null
	echo "=== kubelet stopped $(date -Is)" >>"$KLOG"
}

kdir_mounts() { awk -v d="$KDIR" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -ru; }

# kdir_remove: KDIR unmounted (kubelet bind-mounts its root dir onto
# itself, rshared; and volumes) and removed, unless a mount is left in it.
kdir_remove() {
	local m
	for m in $(kdir_mounts); do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || vc_log "could not unmount $m"
	done
	[ -z "$(kdir_mounts)" ] || { vc_log "mounts left under $KDIR: not removed"; return 1; }
	rm -rf "$KDIR"
}

# kubelet_cleanup_host: what kubelet leaves on the host, put back.
kubelet_cleanup_host() {
	local s cur cg i d m
	for s in $SYSCTLS; do
		cur=$(cat "/proc/sys/$s" 2>/dev/null)
		if [ -n "${SAVED_SYSCTL[$s]}" ] && [ "$cur" != "${SAVED_SYSCTL[$s]}" ]; then
			echo "${SAVED_SYSCTL[$s]}" >"/proc/sys/$s" && vc_log "restored $s=${SAVED_SYSCTL[$s]} (kubelet had set $cur)"
		fi
	done
	for cg in "${NEW_CGROUPS[@]}"; do
		[ -d "$cg" ] || continue
		find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null || vc_log "could not remove all of $cg (processes still inside?)"
	done
	for ((i = ${#NEW_DIRS[@]} - 1; i >= 0; i--)); do
		d=${NEW_DIRS[$i]}
		case $d in
		/var/log/containers) find "$d" -maxdepth 1 -type l -name "*_${NS}_*" -delete 2>/dev/null ;;
		/var/lib/kubelet/device-plugins) rm -f "$d/kubelet.sock" "$d/kubelet_internal_checkpoint" ;;
		esac
		rmdir "$d" 2>/dev/null
	done
	if [ "${VC_KEEP:-0}" = 1 ]; then
		for m in $(kdir_mounts); do umount -l "$m" 2>/dev/null; done
	else
		kdir_remove
	fi
}

cleanup() {
	kubelet_stop
	vc_teardown
	kubelet_cleanup_host
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# figure TEXT: a measured figure, printed now and in the summary.
figure() {
	figures+=("$*")
	printf '      %s\n' "$*"
	echo "figure: $*" >>"$STEPLOG"
}

# retry SECONDS CMD...: until CMD succeeds (every half second).
retry() {
	local deadline=$(($(date +%s) + $1))
	shift
	until "$@"; do
		[ "$(date +%s)" -lt "$deadline" ] || return 1
		sleep 0.5
	done
}


has() { # WANT TEXT
	printf '%s\n' "$2"
	case $2 in *"$1"*) return 0 ;; esac
	echo "output lacks: $1"
	return 1
}

# --- kubelet -------------------------------------------------------------------

kget() { curl -sf --max-time 10 "http://127.0.0.1:$RO_PORT$1"; }
kpods() { kget /pods | kq pods; }
ksummary() { kget /stats/summary | kq summary; }
running_pods() { kget /metrics | awk '$1 == "kubelet_running_pods" { print $2 }'; }
# probe_count POD RESULT: kubelet's prober_probe_total for POD and RESULT, summed.
probe_count() {
	kget /metrics/probes | awk -v p="pod=\"$1\"" -v r="result=\"$2\"" '
		/^prober_probe_total\{/ && index($0, p) && index($0, r) { n += $NF } END { print n + 0 }'
}

port_free() { ! ss -ltnH "sport = :$1" | grep -c . >/dev/null; }

write_kubelet_config() {
	mkdir -p "$KROOT" "$KDIR/pod-logs" "$KDIR/pki" "$KDIR/volume-plugins" "$MANIFESTS" "$KDIR/src"
	cat >"$KDIR/kubelet-config.yaml" <<EOF
# Written by test/kubelet/run.sh: kubelet standalone against a private vc-cri.
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: "$VC_ENDPOINT"
imageServiceEndpoint: "$VC_ENDPOINT"
# Pod VMs boot in seconds under TCG; the default 2m is tight on a busy host.
runtimeRequestTimeout: 5m
staticPodPath: "$MANIFESTS"
fileCheckFrequency: 5s
podLogsDir: "$KDIR/pod-logs"
volumePluginDir: "$KDIR/volume-plugins"
# These hosts are cgroup v1: since 1.35 kubelet refuses v1 unless told.
failCgroupV1: false
# kubelet makes kubepods/<qos>/pod<uid> and passes it as cgroup_parent.
cgroupDriver: cgroupfs
cgroupsPerQOS: true
enforceNodeAllocatable: ["pods"]
failSwapOn: false
resolvConf: /etc/resolv.conf
# A shared test machine: no evictions for its disk or memory use.
evictionHard: {memory.available: "1Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
crashLoopBackOff: {maxContainerRestartPeriod: 10s}
address: 127.0.0.1
enableServer: false
readOnlyPort: $RO_PORT
healthzBindAddress: 127.0.0.1
healthzPort: $HZ_PORT
# The defaults (webhook authn/authz) need an API server client: kubelet
# refuses to start without one, even with enableServer: false.
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization:
  mode: AlwaysAllow
EOF
}

kubelet_start() {
	port_free "$RO_PORT" && port_free "$HZ_PORT" || { echo "port $RO_PORT or $HZ_PORT is taken"; return 1; }
	echo "=== kubelet start $(date -Is)" >>"$KLOG"
	"$KUBELET" --config="$KDIR/kubelet-config.yaml" --root-dir="$KROOT" --cert-dir="$KDIR/pki" \
		--hostname-override="$NODE" --v=2 >>"$KLOG" 2>&1 &
	kpid=$!
	local i
	for ((i = 0; i < 240; i++)); do
		kill -0 "$kpid" 2>/dev/null || { wait "$kpid"; echo "kubelet exited ($?)"; kpid=; tail -20 "$KLOG"; return 1; }
		if [ "$(curl -sf --max-time 2 "http://127.0.0.1:$HZ_PORT/healthz")" = ok ] && kget /pods >/dev/null; then
			echo "kubelet (PID $kpid) healthy after $((i / 4)).$((i % 4 * 25))s"
			return 0
		fi
		sleep 0.25
	done
	echo "kubelet not healthy after 60s"
	tail -20 "$KLOG"
	return 1
}

# --- static pods -----------------------------------------------------------------

# add_manifest NAME: moves a prepared manifest into kubelet's directory
# (a rename: kubelet never reads half a file); prints the time in ms.
add_manifest() {
	mv "$KDIR/src/$1.yaml" "$MANIFESTS/$1.yaml"
	vc_ms
}

prepare_manifests() {
	cat >"$KDIR/src/web.yaml" <<EOF
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: $NS}
spec:
  terminationGracePeriodSeconds: $GRACE
  containers:
  - name: nginx
    image: $NGINX
    imagePullPolicy: IfNotPresent
    livenessProbe:   # timeoutSeconds: kubelet's default, 1 s
      exec: {command: [cat, /proc/1/cmdline]}
      periodSeconds: $PROBE_PERIOD
    readinessProbe:
      exec: {command: [wget, -q, -O, /dev/null, "http://127.0.0.1:80/"]}
      periodSeconds: $PROBE_PERIOD
EOF
	# A hostNetwork pod, as kube-proxy's: it runs on the runc handler
	# (host_namespace_pods) and serves on the host's loopback.
	cat >"$KDIR/src/hostweb.yaml" <<EOF
apiVersion: v1
kind: Pod
metadata: {name: hostweb, namespace: $NS}
spec:
  terminationGracePeriodSeconds: $GRACE
  hostNetwork: true
  containers:
  - name: httpd
    image: $BUSYBOX
    imagePullPolicy: IfNotPresent
    command: [sh, -c, "mkdir -p /www && echo hostweb-on-the-host >/www/index.html && { httpd -f -p 127.0.0.1:$HOSTWEB_PORT -h /www & trap 'kill \$!; exit 0' TERM; wait; }"]
    readinessProbe:
      exec: {command: [wget, -q, -O, /dev/null, "http://127.0.0.1:$HOSTWEB_PORT/"]}
      periodSeconds: $PROBE_PERIOD
EOF
	cat >"$KDIR/src/crash.yaml" <<EOF
apiVersion: v1
kind: Pod
metadata: {name: crash, namespace: $NS}
spec:
  terminationGracePeriodSeconds: $GRACE
  restartPolicy: Always
  containers:
  - name: crasher
    image: $BUSYBOX
    imagePullPolicy: IfNotPresent
    command: [sh, -c, "echo crasher-ran; sleep 2; exit 3"]
EOF
	# Sleepers trap SIGTERM: PID 1 of a PID namespace ignores it otherwise,
	# and the drain would last the whole grace period.
	local sleeper='trap "exit 0" TERM; while :; do sleep 1; done'
	cat >"$KDIR/src/vols.yaml" <<EOF
apiVersion: v1
kind: Pod
metadata: {name: vols, namespace: $NS}
spec:
  terminationGracePeriodSeconds: $GRACE
  initContainers:
  - name: init
    image: $BUSYBOX
    imagePullPolicy: IfNotPresent
    command: [sh, -c, "sleep 1; echo from-init > /work/from-init; echo init-done"]
    volumeMounts: [{name: work, mountPath: /work}]
  containers:
  - name: writer
    image: $BUSYBOX
    imagePullPolicy: IfNotPresent
    command: [sh, -c, 'echo "writer saw: \$(cat /work/from-init)"; echo from-writer > /work/from-writer; $sleeper']
    volumeMounts: [{name: work, mountPath: /work}]
  - name: reader
    image: $BUSYBOX
    imagePullPolicy: IfNotPresent
    command: [sh, -c, 'until [ -f /work/from-writer ]; do sleep 1; done; echo "reader saw: \$(cat /work/from-writer)"; $sleeper']
    volumeMounts:
    - {name: work, mountPath: /work}
    - {name: config, mountPath: /config, readOnly: true}
  volumes:
  - name: work
    emptyDir: {}
  - name: config
    hostPath: {path: $CFGDIR, type: Directory}
EOF
}

# configmap_write VALUE: CFGDIR/key holds VALUE, the way kubelet's
# AtomicWriter updates a ConfigMap volume: a new timestamped directory,
# a ..data_tmp symlink to it renamed over ..data, the user-visible file
# a symlink key -> ..data/key made once, the old directory removed.
configmap_write() {
	local ts old
	mkdir -p "$CFGDIR"
	ts="..$(date -u +%Y_%m_%d_%H_%M_%S.%N)"
	mkdir "$CFGDIR/$ts"
	printf '%s\n' "$1" >"$CFGDIR/$ts/key"
	old=$(readlink "$CFGDIR/..data" 2>/dev/null)
	ln -s "$ts" "$CFGDIR/..data_tmp"
	mv -T "$CFGDIR/..data_tmp" "$CFGDIR/..data"
	[ -L "$CFGDIR/key" ] || ln -s ..data/key "$CFGDIR/key"
	[ -n "$old" ] && rm -rf "${CFGDIR:?}/$old"
	return 0
}

# --- what the checks read --------------------------------------------------------

full() { echo "$1-$NODE"; } # static pod NAME as kubelet names it

pod_line() { kpods | awk -v p="$(full "$1")" '$1 == "pod" && $2 == p'; }
# ctr_line POD CTR: "ctr POD KIND NAME READY RESTARTS STATE EXIT LASTEXIT STARTED FINISHED"
ctr_line() { kpods | awk -v p="$(full "$1")" -v c="$2" '$1 == "ctr" && $2 == p && $4 == c'; }
pod_uid() { pod_line "$1" | awk '{ print $3 }'; }

pod_running() { [ "$(pod_line "$1" | awk '{ print $4 }')" = Running ]; }

sandbox_ids() { crictl_ pods --label "io.kubernetes.pod.name=$(full "$1")" -q; }
ctr_ids() { crictl_ ps -a --pod "$1" --name "^$2\$" -q; } # SANDBOX NAME, newest first
cfield() { crictl_ inspect -o go-template --template "$2" "$1"; }
ns_of() { date -d "$1" +%s%N; } # RFC 3339 -> ns since the epoch

# wait_pod NAME T0 SECONDS: polls /pods every 0.2 s until the pod is
# Running and Ready; sets NAME_running_ms and NAME_ready_ms to the ms
# from T0 (the manifest's arrival) at which each was first seen.
wait_pod() {
	local name=$1 t0=$2 limit=$3 state run='' rdy=''
	while [ $(($(vc_ms) - t0)) -lt $((limit * 1000)) ]; do
		state=$(pod_line "$name" | awk '{ print $4, $5 }')
		[ -z "$run" ] && [ "${state% *}" = Running ] && run=$(($(vc_ms) - t0))
		[ -z "$rdy" ] && [ "$state" = "Running True" ] && rdy=$(($(vc_ms) - t0))
		[ -n "$run" ] && [ -n "$rdy" ] && break
		sleep 0.2
	done
	printf -v "${name}_running_ms" %s "$run"
	printf -v "${name}_ready_ms" %s "$rdy"
	kpods | grep -F "$(full "$name")"
	echo "manifest -> Running ${run:-never} ms, -> Ready ${rdy:-never} ms"
	[ -n "$run" ] && [ -n "$rdy" ] || { kubelet_errors "$name"; return 1; }
}

# kubelet_errors POD: kubelet's last error lines about the pod.
kubelet_errors() {
	echo "kubelet's last errors about $(full "$1"):"
	grep -E '^E[0-9]{4} ' "$KLOG" | grep -F "$NS/$(full "$1")" | tail -n 5 | cut -c1-600
}

# warm_up: one pod through crictl before kubelet starts, so that the
# daemon's first VM, which pays for the accelerator choice (auto: a KVM
# probe boot of up to 15 s where KVM is broken), is not the measured one.
warm_up() {
	local id t0
	t0=$(vc_ms)
	cat >"$KDIR/warmup-pod.json" <<EOF
{ "metadata": { "name": "warmup", "namespace": "vccri-kubelet-warmup", "uid": "warmup-$$", "attempt": 0 },
  "log_directory": "$KDIR/warmup-logs", "linux": {} }
EOF
	mkdir -p "$KDIR/warmup-logs"
	id=$(crictl_ runp "$KDIR/warmup-pod.json") || return 1
	echo "$id" >>"$VC_BASE/ids"
	warmup_ms=$(($(vc_ms) - t0))
	echo "warm-up pod $id up after $warmup_ms ms"
	grep -F '"VM started"' "$VC_DAEMON_LOG" | tail -n 1 | sed -E 's/.*(accel=.*)/\1/'
	crictl_ stopp "$id" && crictl_ rmp "$id"
}

# --- checks ----------------------------------------------------------------------

check_web_up() {
	wait_pod web "$web_t0" 180 || return 1
	web_sandbox=$(sandbox_ids web)
	echo "sandbox $web_sandbox"
	[ "$(echo "$web_sandbox" | wc -w)" = 1 ] && echo "$web_sandbox" >>"$VC_BASE/ids"
	curl -sS --max-time 10 "http://$(crictl_ inspectp -o go-template --template '{{.status.network.ip}}' "$web_sandbox"):80/" | grep -c "Welcome to nginx" >/dev/null
}

# execsync_ms FROM TO: the duration (ms) of every ExecSync vc-cri served
# between lines FROM and TO of its log, failed ones included.
execsync_ms() {
	sed -n "$(($1 + 1)),$2p" "$VC_DAEMON_LOG" |
		grep -E '"CRI call( failed)?" method="[^"]*ExecSync"' |
		sed -E 's/.*duration="([^"]+)".*/\1/' |
		awk '{ v = $1
			if (v ~ /ms$/) { sub(/ms$/, "", v); print v + 0 }
			else if (v ~ /µs$/) { sub(/µs$/, "", v); print v / 1000 }
			else if (v ~ /ns$/) { sub(/ns$/, "", v); print v / 1e6 }
			else if (v ~ /^[0-9.]+s$/) { sub(/s$/, "", v); print v * 1000 }
			else print 999999 }'
}

# execsync_overlaps FROM TO: how many of those ExecSync calls ran while
# another one was running (liveness and readiness of one container share
# its VM's single vCPU), and how many of those took 1 s or more.
execsync_overlaps() {
	sed -n "$(($1 + 1)),$2p" "$VC_DAEMON_LOG" |
		grep -E '"CRI call( failed)?" method="[^"]*ExecSync"' |
		awk '{ split($2, t, ":"); end = t[1] * 3600 + t[2] * 60 + t[3]
			d = $0; sub(/.*duration="/, "", d); sub(/".*/, "", d)
			if (d ~ /ms$/) { sub(/ms$/, "", d); d /= 1000 } else if (d ~ /µs$/) { sub(/µs$/, "", d); d /= 1e6 } else { sub(/s$/, "", d); d += 0 }
			printf "%.6f %.6f %.6f\n", end - d, end, d }' |
		sort -n | awk '{ s[NR] = $1; e[NR] = $2; d[NR] = $3 }
			END { for (i = 1; i <= NR; i++) { o = 0
				for (j = 1; j <= NR; j++) if (j != i && s[j] < e[i] && s[i] < e[j]) o = 1
				if (o) { n++; if (d[i] >= 1) slow++ } }
				printf "%d of %d overlapped another, %d of those took >= 1 s\n", n, NR, slow }'
}

# stats_line NUMBERS: "n N median M worst W" of one number per line (ms).
stats_of() {
	sort -n | awk '{ a[NR] = $1 } END {
		if (NR == 0) { print "n 0"; exit }
		m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
		printf "n %d median %.0f worst %.0f\n", NR, m, a[NR] }'
}

check_probes_window() { # FROM-LINE TO-LINE FAILED-BEFORE KLOG-FROM-LINE
	local lat n fails_k fails_cri fails_log
	lat=$(execsync_ms "$1" "$2")
	n=$(echo "$lat" | grep -c .)
	fails_k=$(($(probe_count "$(full web)" failed) - $3))
	fails_cri=$(sed -n "$(($1 + 1)),$2p" "$VC_DAEMON_LOG" | grep -c '"CRI call failed" method="[^"]*ExecSync"')
	fails_log=$(sed -n "$(($4 + 1)),\$p" "$KLOG" | grep -c '"Probe failed"')
	echo "ExecSync calls in the window: $n; probes failed: kubelet metric $fails_k, CRI errors $fails_cri, 'Probe failed' in kubelet's log $fails_log"
	echo "latencies (ms): $(echo "$lat" | tr '\n' ' ')"
	probe_failed="$fails_k of $n"
	probe_overlap=$(execsync_overlaps "$1" "$2")
	echo "overlaps: $probe_overlap"
	probe20=$(echo "$lat" | head -n 20 | stats_of)
	probe_all=$(echo "$lat" | stats_of)
	echo "first 20: $probe20; all: $probe_all"
	kget /metrics/probes | grep -F "pod=\"$(full web)\"" | grep -E '^prober_probe_(total|duration_seconds_(sum|count))'
	[ "$n" -ge 20 ] && [ "$fails_k" = 0 ] && [ "$fails_cri" = 0 ] && [ "$fails_log" = 0 ] &&
		[ "$(echo "$lat" | awk '$1 >= 1000' | wc -l)" = 0 ]
}

# check_summary POD...: /stats/summary has had non-zero CPU (usageNanoCores
# or usageCoreNanoSeconds) and memory (workingSetBytes) for each pod and
# each of its containers that /pods says is running, in this answer or an
# earlier one of the same step (vc-cri leaves out of a stats list a guest
# that does not answer within 2 s: on a loaded host one answer may lack a
# pod). summary_seen is reset by summary_step.
declare -A summary_seen=()
summary_scrapes=0
summary_partial=0
check_summary() {
	local s p c ok=0 line partial=0 running
	s=$(ksummary) || { echo "no /stats/summary"; return 1; }
	summary_scrapes=$((summary_scrapes + 1))
	echo "$s"
	good() { [ -n "$1" ] && echo "$1" | awk '($4 > 0 || $5 > 0) && $6 > 0 { ok = 1 } END { exit !ok }'; }
	for p in "$@"; do
		# kubelet lists a pod only while one of its containers runs (crash
		# is mostly between two attempts): it must have been seen once.
		running=$(kpods | awk -v p="$(full "$p")" '$1 == "ctr" && $2 == p && $3 == "app" && $7 == "running" { print $4 }')
		line=$(echo "$s" | awk -v p="$(full "$p")" '$1 == "pod" && $2 == p')
		if good "$line"; then
			summary_seen[pod/$p]=1
		else
			[ -n "$running" ] && partial=1
			[ -n "${summary_seen[pod/$p]:-}" ] || { echo "pod $(full "$p"): no CPU or memory yet: ${line:-absent}"; ok=1; }
		fi
		for c in $running; do
			line=$(echo "$s" | awk -v p="$(full "$p")" -v c="$c" '$1 == "ctr" && $2 == p && $3 == c')
			if good "$line"; then
				summary_seen[ctr/$p/$c]=1
			else
				partial=1
				[ -n "${summary_seen[ctr/$p/$c]:-}" ] || { echo "container $(full "$p")/$c: no CPU or memory yet: ${line:-absent}"; ok=1; }
			fi
		done
	done
	summary_partial=$((summary_partial + partial))
	return "$ok"
}
summary_step() { # SECONDS POD...
	local t=$1 rc
	shift
	summary_seen=() summary_scrapes=0 summary_partial=0
	retry "$t" check_summary "$@"
	rc=$?
	echo "answers read: $summary_scrapes, of which lacked a pod or container: $summary_partial"
	return "$rc"
}

# check_qemu_cgroup POD...: the QEMU of each pod is in that pod's cgroup:
# its /proc/PID/cgroup names kubepods/.../pod<uid> in the cpu, cpuacct,
# memory and pids hierarchies (cgroup v1) or the unified one (v2).
check_qemu_cgroup() {
	local p sb uid pid bad=0 ctl path
	for p in "$@"; do
		uid=$(pod_uid "$p")
		sb=$(sandbox_ids "$p" | head -n 1)
		pid=$(vc_qemu_of "$sb")
		echo "pod $(full "$p") uid $uid sandbox ${sb:0:13} QEMU PID ${pid:-none}"
		[ -n "$uid" ] && [ -n "$pid" ] || { bad=1; continue; }
		sed 's/^/  /' "/proc/$pid/cgroup"
		if [ -e /sys/fs/cgroup/cgroup.controllers ]; then # v2
			path=$(awk -F: '$1 == "0" { print $3 }' "/proc/$pid/cgroup")
			case $path in */kubepods*/pod"$uid"*) ;; *) echo "  unified: $path is not pod$uid's"; bad=1 ;; esac
			continue
		fi
		for ctl in cpu cpuacct memory pids; do
			path=$(awk -F: -v c="$ctl" '{ n = split($2, a, ","); for (i = 1; i <= n; i++) if (a[i] == c) print $3 }' "/proc/$pid/cgroup")
			case $path in
			*/kubepods*/pod"$uid"*) ;;
			*) echo "  $ctl: ${path:-none} is not under kubepods/.../pod$uid"; bad=1 ;;
			esac
		done
	done
	return "$bad"
}

check_restarts() {
	local line rc last sb qemu_now
	line=$(ctr_line crash crasher)
	echo "$line"
	rc=$(echo "$line" | awk '{ print $6 }')
	last=$(echo "$line" | awk '{ print $9 }')
	[ "${rc:-0}" -ge 2 ] && [ "$last" = 3 ] || { echo "restartCount ${rc:-?} (want >= 2), last exit ${last:-?} (want 3)"; return 1; }
	sb=$(sandbox_ids crash)
	qemu_now=$(vc_qemu_of "$crash_sandbox")
	echo "sandboxes now: $sb (first: $crash_sandbox); QEMU $qemu_now (first: $crash_qemu)"
	[ "$sb" = "$crash_sandbox" ] && [ -n "$qemu_now" ] && [ "$qemu_now" = "$crash_qemu" ]
}

check_crash_logs() { # an exited attempt: exit code 3, its log has the command's output
	local id st n=0
	for id in $(ctr_ids "$crash_sandbox" crasher); do
		st=$(cfield "$id" '{{.status.state}} {{.status.exitCode}} attempt {{.status.metadata.attempt}}')
		echo "${id:0:13}: $st"
		case $st in "CONTAINER_EXITED 3 "*) crictl_ logs "$id" 2>&1 | grep -c crasher-ran >/dev/null && n=$((n + 1)) ;; esac
	done
	[ "$n" -ge 1 ]
}

check_init_order() {
	local init writer reader fin cw cr
	init=$(ctr_ids "$vols_sandbox" init | head -n 1)
	writer=$(ctr_ids "$vols_sandbox" writer | head -n 1)
	reader=$(ctr_ids "$vols_sandbox" reader | head -n 1)
	[ -n "$init" ] && [ -n "$writer" ] && [ -n "$reader" ] || { echo "containers: init=$init writer=$writer reader=$reader"; crictl_ ps -a --pod "$vols_sandbox"; return 1; }
	crictl_ ps -a --pod "$vols_sandbox"
	echo "init: $(cfield "$init" '{{.status.state}} exit {{.status.exitCode}} started {{.status.startedAt}} finished {{.status.finishedAt}}')"
	echo "writer: $(cfield "$writer" '{{.status.state}} created {{.status.createdAt}}')"
	echo "reader: $(cfield "$reader" '{{.status.state}} created {{.status.createdAt}}')"
	[ "$(cfield "$init" '{{.status.state}} {{.status.exitCode}}')" = "CONTAINER_EXITED 0" ] || return 1
	crictl_ logs "$init" 2>&1 | grep -c init-done >/dev/null || { echo "init's log lacks init-done"; return 1; }
	fin=$(ns_of "$(cfield "$init" '{{.status.finishedAt}}')")
	cw=$(ns_of "$(cfield "$writer" '{{.status.createdAt}}')")
	cr=$(ns_of "$(cfield "$reader" '{{.status.createdAt}}')")
	echo "writer created $(((cw - fin) / 1000000)) ms, reader $(((cr - fin) / 1000000)) ms after init finished"
	[ "$cw" -gt "$fin" ] && [ "$cr" -gt "$fin" ] || return 1
	# and kubelet's view: the init container terminated with 0, the app ones run.
	kpods | grep -F "$(full vols)"
	[ "$(ctr_line vols init | awk '{ print $7, $8 }')" = "terminated 0" ]
}

vols_ctr() { ctr_ids "$vols_sandbox" "$1" | head -n 1; }

check_init_file() { crictl_ logs "$(vols_ctr writer)" 2>&1 | grep -x "writer saw: from-init"; }

reader_saw() { crictl_ logs "$1" 2>&1 | grep -x "reader saw: from-writer"; }
check_emptydir() {
	local w r
	w=$(vols_ctr writer)
	r=$(vols_ctr reader)
	retry 30 reader_saw "$r" || { echo "reader did not see writer's file in 30 s"; crictl_ logs "$r"; return 1; }
	crictl_ exec "$r" sh -c 'echo from-reader-$$ > /work/from-reader; cat /work/from-reader' >"$KDIR/from-reader" || return 1
	cat "$KDIR/from-reader"
	[ "$(crictl_ exec "$w" cat /work/from-reader)" = "$(cat "$KDIR/from-reader")" ]
}

config_is() { [ "$(crictl_ exec "$(vols_ctr reader)" cat /config/key 2>&1)" = "$1" ]; }

check_configmap_update() {
	local r t0 ms
	r=$(vols_ctr reader)
	echo "before: $(crictl_ exec "$r" cat /config/key 2>&1)"
	crictl_ exec "$r" ls -la /config/ 2>&1
	config_is value-1 || return 1
	configmap_write value-2
	t0=$(vc_ms)
	retry 60 config_is value-2
	local rc=$?
	ms=$(($(vc_ms) - t0))
	echo "after ${ms} ms: $(crictl_ exec "$r" cat /config/key 2>&1)"
	crictl_ exec "$r" ls -la /config/ 2>&1
	configmap_ms=$ms
	return "$rc"
}

# cri_ms FROM METHOD: durations (ms) of the calls of METHOD vc-cri served
# after line FROM of its log.
cri_ms() {
	sed -n "$(($1 + 1)),\$p" "$VC_DAEMON_LOG" |
		grep -E "\"CRI call( failed)?\" method=\"/runtime.v1.RuntimeService/$2\"" |
		sed -E 's/.*duration="([^"]+)".*/\1/' |
		awk '{ v = $1
			if (v ~ /ms$/) { sub(/ms$/, "", v); print int(v) }
			else if (v ~ /µs$/ || v ~ /ns$/) print 0
			else if (v ~ /^[0-9.]+s$/) { sub(/s$/, "", v); print int(v * 1000) }
			else print 999999 }'
}

# check_drain: the manifests removed, kubelet_running_pods reaches 0; every
# StopContainer vc-cri served returned within the grace period (kubelet's
# timeout: SIGTERM, then SIGKILL at its end; the nginx stand-in, busybox
# httpd as PID 1, ignores SIGTERM) plus 5 s, every StopPodSandbox within
# 10 s. In all at most GRACE + 10 s, or twice the grace period when a
# container was being restarted (its kill runs to its end first).
check_drain() {
	local t0 n ms from stops sbs worst_stop worst_sb limit
	from=$(wc -l <"$VC_DAEMON_LOG")
	rm -f "$MANIFESTS"/*.yaml
	t0=$(vc_ms)
	while :; do
		n=$(running_pods)
		[ "$n" = 0 ] && break
		[ $(($(vc_ms) - t0)) -lt $(((2 * GRACE + 60) * 1000)) ] || { echo "kubelet_running_pods still ${n:-?}"; return 1; }
		sleep 0.5
	done
	ms=$(($(vc_ms) - t0))
	drain_ms=$ms
	stops=$(cri_ms "$from" StopContainer | tr '\n' ' ')
	sbs=$(cri_ms "$from" StopPodSandbox | tr '\n' ' ')
	worst_stop=$(echo "$stops" | tr ' ' '\n' | sort -n | tail -n 1)
	worst_sb=$(echo "$sbs" | tr ' ' '\n' | sort -n | tail -n 1)
	echo "kubelet_running_pods 0 after $ms ms (grace ${GRACE}s); StopContainer (ms): $stops; StopPodSandbox (ms): $sbs"
	crictl_ pods
	limit=$(((GRACE + 10) * 1000))
	if grep -q 'failed liveness probe, will be restarted' "$KLOG"; then
		limit=$(((2 * GRACE + 10) * 1000))
		echo "a container was being restarted for its liveness probe: allowed $limit ms"
	fi
	drain_detail="StopContainer worst ${worst_stop:-?} ms, StopPodSandbox worst ${worst_sb:-?} ms"
	[ "${worst_stop:-0}" -le $(((GRACE + 5) * 1000)) ] && [ "${worst_sb:-0}" -le 10000 ] && [ "$ms" -le "$limit" ]
}

crictl_empty() { [ -z "$(crictl_ pods -q)" ] && [ -z "$(crictl_ ps -aq)" ]; }
check_removed() {
	local t0=$(vc_ms)
	retry 90 crictl_empty || { crictl_ pods; crictl_ ps -a; return 1; }
	echo "sandboxes and containers removed by kubelet $(($(vc_ms) - t0)) ms after the pods stopped"
}

pod_cgroups_left() { # kubelet removes the pod cgroups of the pods it stopped
	local h
	for h in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
		[ -d "$h" ] && find "$h" -type d -name 'pod*'
	done
}
sysctls_changed() {
	local s
	for s in $SYSCTLS; do
		[ "$(cat "/proc/sys/$s" 2>/dev/null)" = "${SAVED_SYSCTL[$s]}" ] || echo "$s=$(cat "/proc/sys/$s")"
	done
}

# ----------------------------------------------------------------------------------

t_start=$(date +%s)
vc_log "kubelet: building or reusing the cached binary"
t_kb=$(date +%s)
if [ -n "${VC_KUBELET:-}" ]; then
	KUBELET=$VC_KUBELET
else
	KUBELET=$("$HERE/build-kubelet.sh") || vc_die "building kubelet failed"
fi
kubelet_build_s=$(($(date +%s) - t_kb))
(cd "$VC_REPO" && GOWORK=off go build -o "$VC_TOOLS/kq" ./test/kubelet/kq) || vc_die "building test/kubelet/kq failed"
vc_up
vc_log "daemon up; steps log: $STEPLOG, kubelet log: $KLOG"

kdir_remove || vc_die "cannot clear $KDIR"
write_kubelet_config
prepare_manifests
configmap_write value-1

warmup_ms=''
step "warm-up: the daemon's first pod VM (crictl runp, rmp)" warm_up
figure "warm-up pod (first VM of the daemon, accelerator choice included): ${warmup_ms:-?} ms"
step "$("$KUBELET" --version) starts standalone, /healthz ok" kubelet_start || vc_die "kubelet did not start, see $KLOG"

# --- web: probes on an idle host ------------------------------------------------
web_sandbox=''
web_t0=$(add_manifest web)
step "web: manifest -> Running and Ready (probes pass)" check_web_up
figure "web (nginx): manifest -> Running ${web_running_ms:-?} ms, -> Ready ${web_ready_ms:-?} ms"

# The quiet window: PROBE_PERIODS probe periods with nothing else booting.
# Meanwhile only reads of kubelet's API and the host's /proc.
win_from=$(wc -l <"$VC_DAEMON_LOG")
win_fail0=$(probe_count "$(full web)" failed)
win_klog=$(wc -l <"$KLOG")
win_end=$(($(date +%s) + PROBE_PERIOD * PROBE_PERIODS))
win_load0=$(cut -d' ' -f1-3 /proc/loadavg)
step "web: /stats/summary has CPU and memory for pod and container" summary_step 40 web
step "web: QEMU runs in the pod's cgroup (kubepods/.../pod<uid>)" check_qemu_cgroup web
while [ "$(date +%s)" -lt "$win_end" ]; do sleep 1; done
win_to=$(wc -l <"$VC_DAEMON_LOG")
win_load1=$(cut -d' ' -f1-3 /proc/loadavg)
probe20='' probe_all='' probe_failed='' probe_overlap=''
step "web: no probe failed over $PROBE_PERIODS periods (${PROBE_PERIOD}s, timeout 1s)" check_probes_window "$win_from" "$win_to" "$win_fail0" "$win_klog"
figure "probe latency (ExecSync), first 20 of the quiet window: ${probe20:-?} ms; whole window: ${probe_all:-?} ms, ${probe_failed:-?} probes failed; ${probe_overlap:-?} (host load $win_load0 -> $win_load1)"

# --- crash and vols, together ------------------------------------------------
busy_from=$(wc -l <"$VC_DAEMON_LOG")
crash_sandbox='' crash_qemu='' vols_sandbox=''
crash_t0=$(add_manifest crash)
vols_t0=$(add_manifest vols)
hostweb_t0=$(add_manifest hostweb)
hostweb_up() {
	wait_pod hostweb "$hostweb_t0" 180 || return 1
	local id
	id=$(sandbox_ids hostweb)
	echo "$id" >>"$VC_BASE/ids"
	[ "$(echo "$id" | wc -w)" = 1 ] || return 1
	crictl_ inspectp "$id" | grep -F '"io.vc-cri.runtime-handler": "runc"' || { echo "not on the runc handler"; return 1; }
	[ -z "$(vc_qemu_of "$id")" ] || { echo "a QEMU runs for it"; return 1; }
}
hostweb_answers() {
	curl -sS --max-time 5 "http://127.0.0.1:$HOSTWEB_PORT/" | grep -F hostweb-on-the-host
}
crash_up() {
	retry 180 pod_running crash || { kpods; kubelet_errors crash; return 1; }
	crash_sandbox=$(sandbox_ids crash)
	crash_qemu=$(vc_qemu_of "$crash_sandbox")
	echo "sandbox $crash_sandbox QEMU $crash_qemu, Running after $(($(vc_ms) - crash_t0)) ms"
	echo "$crash_sandbox" >>"$VC_BASE/ids"
	[ "$(echo "$crash_sandbox" | wc -w)" = 1 ] && [ -n "$crash_qemu" ]
}
vols_up() {
	wait_pod vols "$vols_t0" 180 || return 1
	vols_sandbox=$(sandbox_ids vols)
	echo "sandbox $vols_sandbox"
	echo "$vols_sandbox" >>"$VC_BASE/ids"
	[ "$(echo "$vols_sandbox" | wc -w)" = 1 ]
}
step "crash: manifest -> Running" crash_up
step "vols: manifest -> Running and Ready (after its init container)" vols_up
step "hostweb (hostNetwork): manifest -> Running and Ready, on the runc handler, no VM" hostweb_up
figure "hostweb (hostNetwork, runc handler): manifest -> Running ${hostweb_running_ms:-?} ms, -> Ready ${hostweb_ready_ms:-?} ms"
step "hostweb: its server answers on the host's 127.0.0.1:$HOSTWEB_PORT" retry 20 hostweb_answers
figure "vols (init + 2 containers): manifest -> Running ${vols_running_ms:-?} ms (booted beside crash)"

step "vols: init container ran to completion before the app containers" check_init_order
step "vols: app container read the init container's file" check_init_file
step "vols: two containers share an emptyDir" check_emptydir
configmap_ms=''
step "vols: hostPath updated like a ConfigMap (..data swap) is seen" check_configmap_update
figure "hostPath ..data swap seen in the container after ${configmap_ms:-?} ms"

step "crash: restarted in the same VM, restartCount >= 2, last exit 3" retry 120 check_restarts
step "crash: every attempt ran and exited 3 (crictl ps -a, logs)" check_crash_logs
step "/stats/summary: CPU and memory for every pod and running container" summary_step 60 web crash vols hostweb
figure "/stats/summary: $summary_partial of $summary_scrapes answers lacked a pod or container that was running"
step "QEMU of every pod runs in that pod's cgroup" check_qemu_cgroup web crash vols

web_not_restarted() {
	local line
	line=$(ctr_line web nginx)
	echo "$line"
	grep -E '"Probe failed"|failed liveness probe' "$KLOG" | cut -c1-300
	[ "$(echo "$line" | awk '{ print $6 }')" = 0 ]
}
step "web: not restarted by its liveness probe while the others booted" web_not_restarted
busy_to=$(wc -l <"$VC_DAEMON_LOG")
busy=$(execsync_ms "$busy_from" "$busy_to" | stats_of)
figure "probes while crash and vols booted and ran: ExecSync $busy ms; web probes failed over the whole run: $(probe_count "$(full web)" failed) (kubelet metric)"
echo "kubelet: $(probe_count "$(full web)" successful) successful probes of web" >>"$STEPLOG"

# --- the drain ------------------------------------------------------------------
vc_record_ids
drain_ms='' drain_detail=''
step "drain: manifests removed, kubelet stops every pod (grace ${GRACE}s)" check_drain
figure "drain: kubelet_running_pods 0 after ${drain_ms:-?} ms; ${drain_detail:-?} (grace ${GRACE} s)"
step "drain: kubelet removes every sandbox and container (crictl)" check_removed
step "kubelet removed the pods' cgroups" empty "$(pod_cgroups_left)"
vc_record_ids
step "kubelet stops on SIGTERM" kubelet_stop

# --- nothing left behind -----------------------------------------------------------
vc_daemon_stop
vc_leak_steps
vc_teardown
kubelet_cleanup_host
trap - EXIT
step "kubelet's mounts, cgroups and sysctls are gone" empty "$(kdir_mounts; for c in "${NEW_CGROUPS[@]}"; do [ -e "$c" ] && echo "$c"; done; sysctls_changed)"

wall=$(($(date +%s) - t_start))
{
	echo "kubelet e2e $(date -Is): $passed passed, $failed failed"
	echo "kubelet binary: $KUBELET (build or cache check ${kubelet_build_s}s)"
	for f in "${figures[@]}"; do echo "$f"; done
	echo "wall time: ${wall}s"
} >"$SUMMARY"
echo "kubelet e2e wall time: ${wall}s (kubelet build/cache ${kubelet_build_s}s); summary $SUMMARY; steps $STEPLOG; kubelet log $KLOG; daemon log $VC_DAEMON_LOG"
for f in "${failures[@]}"; do echo "FAILED: $f"; done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
