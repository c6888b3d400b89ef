#!/usr/bin/env bash
# Installs crictl (sigs.k8s.io/cri-tools, at the version the tests pin in
# test/critest/tools/go.mod) into PREFIX/bin, and an /etc/crictl.yaml that
# points at vc-cri's socket, as CRI-O installs its own. An existing
# crictl.yaml is left alone: the script says what it should hold.
#
#   hack/install-crictl.sh [PREFIX]        (default /usr/local)
#
# Environment (all optional):
#   CRICTL_CONFIG    the file to write (default /etc/crictl.yaml)
#   VC_CRI_ENDPOINT  the CRI endpoint (default unix:///run/vc-cri/vc-cri.sock)
#   CRICTL_TIMEOUT   crictl's timeout in seconds (default 120: the first pod
#                    after a daemon start boots a KVM probe and then its VM)
#   VC_OUTPUT        the build directory (default REPO/_output)
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=${1:-/usr/local}
CONFIG=${CRICTL_CONFIG:-/etc/crictl.yaml}
ENDPOINT=${VC_CRI_ENDPOINT:-unix:///run/vc-cri/vc-cri.sock}
TIMEOUT=${CRICTL_TIMEOUT:-120}
OUT=${VC_OUTPUT:-$REPO/_output}
MOD=$REPO/test/critest/tools

log() { echo "install-crictl: $*" >&2; }

version=$(awk '$1 == "sigs.k8s.io/cri-tools" { print $2 }' "$MOD/go.mod")
[ -n "$version" ] || { log "no sigs.k8s.io/cri-tools in $MOD/go.mod"; exit 1; }

# has_version BINARY: it is crictl at the pinned version.
has_version() { [ -x "$1" ] && [ "$("$1" --version 2>/dev/null)" = "crictl version $version" ]; }

target=$PREFIX/bin/crictl
if has_version "$target"; then
	log "crictl $version is in $target"
else
	# The test harness's build (test/critest/lib.sh) when it is current;
	# else a build of crictl alone, the same way.
	src=$OUT/tools/crictl
	if ! has_version "$src"; then
		tmp=$(mktemp -d)
		trap 'rm -rf "$tmp"' EXIT
		log "building crictl $version (sigs.k8s.io/cri-tools, see $MOD/go.mod)"
		(cd "$MOD" && GOWORK=off go build -ldflags "-X sigs.k8s.io/cri-tools/pkg/version.Version=$version" \
			-o "$tmp/crictl" sigs.k8s.io/cri-tools/cmd/crictl)
		src=$tmp/crictl
	fi
	install -d "$PREFIX/bin"
	install -m 0755 "$src" "$target"
	log "installed crictl $version in $target"
fi

want="runtime-endpoint: $ENDPOINT
image-endpoint: $ENDPOINT
timeout: $TIMEOUT"
if [ -e "$CONFIG" ]; then
	if grep -qF "$ENDPOINT" "$CONFIG" && grep -qE '^timeout: *([6-9][0-9]|[1-9][0-9]{2,})' "$CONFIG"; then
		log "$CONFIG points at $ENDPOINT"
	else
		log "$CONFIG exists and is left as it is; for vc-cri it needs:"
		echo "$want" | sed 's/^/    /' >&2
		log "(or run crictl with --runtime-endpoint $ENDPOINT --image-endpoint $ENDPOINT --timeout ${TIMEOUT}s)"
	fi
else
	install -d "$(dirname "$CONFIG")"
	printf '# Written by vc-cri'"'"'s hack/install-crictl.sh: crictl talks to vc-cri.\n# The timeout fits pods that boot a VM.\n%s\n' "$want" >"$CONFIG"
	log "wrote $CONFIG"
fi
