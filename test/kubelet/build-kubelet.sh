#!/usr/bin/env bash
# Builds an upstream kubelet from the Go module proxy (no git clone of
# kubernetes) and caches it outside the repository, so that every clone on
# this machine reuses it. Prints the binary's path on stdout.
#
#   test/kubelet/build-kubelet.sh [VERSION]      (default v1.37.2)
#
# k8s.io/kubernetes cannot be built as a dependency as it is: its go.mod
# requires the staging modules (k8s.io/api, client-go, cri-api, kubelet...)
# at v0.0.0 and replaces them with ./staging/src paths. A scratch module
# requires k8s.io/kubernetes at VERSION and replaces each staging module by
# its published tag (v1.37.2 -> v0.37.2), then builds cmd/kubelet as a
# release build does (cgo, tags selinux,notest,grpcnotrace, version ldflags).
#
# Environment:
#   VC_KUBELET_CACHE  cache directory (default /var/cache/vc-cri/kubelet);
#                     the binary is CACHE/VERSION/kubelet
#   VC_KUBELET_FORCE  1: rebuild even when the cached binary is current
#
# The binary is rebuilt only when it is absent or when the stamp beside it
# (this script but its comments, VERSION, the Go version) differs. First
# build: about 7 min and 2 GiB of RAM on 2 cores; later ones reuse Go's
# module and build caches.
set -euo pipefail

VERSION=${1:-v1.37.2}
case $VERSION in v1.*.*) ;; *) echo "build-kubelet: version must be v1.Y.Z, not $VERSION" >&2; exit 2 ;; esac
STAGING_VERSION=v0.${VERSION#v1.}
CACHE=${VC_KUBELET_CACHE:-/var/cache/vc-cri/kubelet}/$VERSION
BIN=$CACHE/kubelet
STAMP=$CACHE/kubelet.stamp
SRC=$CACHE/src

export GOFLAGS=-mod=mod GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=1
log() { printf '%s [build-kubelet] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

want=$( (grep -v '^[[:space:]]*#' "${BASH_SOURCE[0]}"; echo "$VERSION"; go env GOVERSION) | sha256sum | cut -d' ' -f1)

mkdir -p "$CACHE"
# One build at a time (two clones may ask together).
exec {lock}>"$CACHE/.lock"
flock "$lock"

if [ "${VC_KUBELET_FORCE:-0}" != 1 ] && [ -x "$BIN" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$want" ]; then
	echo "$BIN"
	exit 0
fi

log "building kubelet $VERSION from the Go module proxy into $BIN (first time: ~5 min, 2 GiB)"
t0=$(date +%s)
rm -rf "$SRC"
mkdir -p "$SRC"
cd "$SRC"

# 1. The kubernetes go.mod: its go line and its staging modules (v0.0.0).
kmod=$(go mod download -json "k8s.io/kubernetes@$VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
[ -f "$kmod" ] || { log "cannot download k8s.io/kubernetes@$VERSION"; exit 1; }
goline=$(awk '$1 == "go" { print $2; exit }' "$kmod")
staging=$(awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" { print $1 }' "$kmod" | sort -u)
[ -n "$staging" ] || { log "no staging modules in $kmod"; exit 1; }

# 2. The scratch module.
{
	printf 'module kubeletbuild\n\ngo %s\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n' "$goline" "$VERSION"
	for m in $staging; do printf '\t%s => %s %s\n' "$m" "$m" "$STAGING_VERSION"; done
	printf ')\n'
} >go.mod
log "scratch module: $(echo "$staging" | wc -w) staging modules at $STAGING_VERSION"
go get "k8s.io/kubernetes/cmd/kubelet@$VERSION" >&2

# 3. A release build (hack/lib/golang.sh): version stamped, not stripped of cgo.
major=$(echo "${VERSION#v}" | cut -d. -f1)
minor=$(echo "${VERSION#v}" | cut -d. -f2)
ldf="-s -w"
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
	ldf+=" -X '$pkg.gitVersion=$VERSION' -X '$pkg.gitMajor=$major' -X '$pkg.gitMinor=$minor'"
	ldf+=" -X '$pkg.gitTreeState=clean' -X '$pkg.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)'"
done
go build -trimpath -tags selinux,notest,grpcnotrace -ldflags "all=$ldf" -o "$BIN.new" k8s.io/kubernetes/cmd/kubelet >&2
"$BIN.new" --version >&2
mv -f "$BIN.new" "$BIN"
echo "$want" >"$STAMP"
log "built $BIN in $(($(date +%s) - t0))s"
echo "$BIN"
