#!/usr/bin/env bash
# Builds the lean guest kernel from Debian's linux-source-6.1 with the
# options of hack/guest/kernel.config, everything built in (no modules),
# and prints the directory that holds it:
#   DIR/vmlinux   uncompressed ELF, booted by QEMU through PVH
#   DIR/bzImage   the same kernel, gzip-compressed, for a SeaBIOS boot
#   DIR/config    its final .config
#   DIR/build.log the build's output
# DIR is $VC_KERNEL_CACHE/<key> (default /var/cache/vc-cri/guest-kernel),
# the key a hash of kernel.config, this script, the linux-source package's
# version and the compiler's: a clean clone on the same machine, or
# another checkout, reuses the kernel, and any change to its inputs builds
# a new one. Builds take a lock, so that two at once build it once.
#
# The configuration is `make tinyconfig` with our fragment: merge_config.sh
# -n runs allnoconfig over tinyconfig's own fragments and ours, so that an
# option neither names stays off (a plain merge over tinyconfig followed by
# olddefconfig would turn on the defaults of every option our fragment
# makes visible: wireless, input, VGA console, cpuidle haltpoll...). Then
# olddefconfig, and a check that every option of the fragment has the
# value it asks for: the build fails when Kconfig dropped one.
#
# Environment: VC_KERNEL_CACHE (cache root), VC_KERNEL_JOBS (make -j,
# default the number of CPUs).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
fragment=$here/kernel.config
self=$here/$(basename "$0")
src_pkg=linux-source-6.1
tarball=/usr/src/$src_pkg.tar.xz
cache=${VC_KERNEL_CACHE:-/var/cache/vc-cri/guest-kernel}
jobs=${VC_KERNEL_JOBS:-$(nproc)}

log() { echo "build-kernel.sh: $*" >&2; }
die() { log "$*"; exit 1; }

src_ver=$(dpkg-query -W -f='${Version}' "$src_pkg" 2>/dev/null) && [ -f "$tarball" ] ||
	die "no $tarball (install $src_pkg: make deps)"
for tool in make gcc flex bison bc; do
	command -v "$tool" >/dev/null || die "no $tool (make deps)"
done
[ -f /usr/include/libelf.h ] || die "no libelf headers (install libelf-dev: make deps)"
cc_ver=$(gcc --version | head -n 1)

key=$({
	echo "$src_pkg $src_ver"
	echo "$cc_ver"
	cat "$fragment" "$self"
} | sha256sum | cut -c1-16)
dir=$cache/$key

built() { [ -f "$dir/vmlinux" ] && [ -f "$dir/bzImage" ] && [ -f "$dir/config" ]; }
if built; then
	echo "$dir"
	exit 0
fi

mkdir -p "$cache"
exec {lock}>"$cache/.lock"
if ! flock -n "$lock"; then
	log "another build holds $cache/.lock: waiting"
	flock "$lock"
fi
if built; then
	echo "$dir"
	exit 0
fi

# check_config FRAGMENT CONFIG: every CONFIG_X=v and "# CONFIG_X is not
# set" line of FRAGMENT holds in CONFIG.
check_config() {
	local line opt bad=0
	while IFS= read -r line; do
		case $line in
		CONFIG_*=*)
			opt=${line%%=*}
			if ! grep -qxF -- "$line" "$2"; then
				log "option dropped: asked $line, got '$(grep -E "^$opt=|^# $opt is not set" "$2" || true)'"
				bad=1
			fi
			;;
		"# CONFIG_"*" is not set")
			opt=${line#\# }
			opt=${opt%% *}
			if grep -q "^$opt=" "$2"; then
				log "option forced on: asked it off, got '$(grep "^$opt=" "$2")'"
				bad=1
			fi
			;;
		esac
	done <"$1"
	return $bad
}

start=$(date +%s)
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
log "building the lean guest kernel ($src_pkg $src_ver, $jobs jobs) in $work"
src=$work/src
mkdir -p "$src"
tar -xJf "$tarball" -C "$src" --strip-components=1
buildlog=$work/build.log
(
	cd "$src"
	# Reproducible: no build host, user or time in the image.
	export KBUILD_BUILD_TIMESTAMP="@0" KBUILD_BUILD_USER=vc-cri KBUILD_BUILD_HOST=vc-cri
	scripts/kconfig/merge_config.sh -n \
		kernel/configs/tiny-base.config kernel/configs/tiny.config arch/x86/configs/tiny.config \
		"$fragment"
	make olddefconfig
	check_config "$fragment" .config || { log "the configuration lacks options of $fragment"; exit 1; }
	nice -n 10 make -j"$jobs" bzImage
) >"$buildlog" 2>&1 || {
	tail -n 40 "$buildlog" >&2
	die "kernel build failed (log above; the whole of it was in $buildlog)"
}
grep -E "^build-kernel.sh: " "$buildlog" >&2 || true

mkdir -p "$dir.tmp"
cp "$src/vmlinux" "$dir.tmp/vmlinux"
cp "$src/arch/x86/boot/bzImage" "$dir.tmp/bzImage"
cp "$src/.config" "$dir.tmp/config"
cp "$buildlog" "$dir.tmp/build.log"
rm -rf "$dir"
mv "$dir.tmp" "$dir"
log "built $(strings "$dir/vmlinux" | grep -m 1 '^Linux version' | cut -d' ' -f3) in $(($(date +%s) - start))s: vmlinux $(du -h "$dir/vmlinux" | cut -f1), bzImage $(du -h "$dir/bzImage" | cut -f1)"
echo "$dir"
