#!/usr/bin/env bash
# Builds the pod VM's guest image:
#   OUT/vmlinux         uncompressed kernel, booted by QEMU through PVH
#   OUT/vmlinuz         the same kernel compressed (a SeaBIOS boot)
#   OUT/initramfs.cpio  vc-agent as /init, plus, with Debian's kernel, the
#                       kernel modules the guest needs, in load order
#                       (lib/modules/load-order)
# GUEST_KERNEL chooses the kernel:
#   lean    (the default) our own build of Debian's linux-source-6.1 with
#           hack/guest/kernel.config, everything built in, no modules
#           (hack/guest/build-kernel.sh, cached in
#           /var/cache/vc-cri/guest-kernel); vmlinuz is its bzImage (gzip)
#   debian  Debian's generic kernel (linux-image-amd64) as installed, its
#           modules in the initramfs; vmlinuz is Debian's own
# Uncompressed on purpose: under TCG, decompressing costs more boot time
# than copying. Rebuilt only when the agent, the kernel, the choice or
# this script change.
set -euo pipefail

agent=${1:?usage: build.sh AGENT_BINARY OUT_DIR}
out=${2:?usage: build.sh AGENT_BINARY OUT_DIR}
kernel=${GUEST_KERNEL:-lean}

# Modules the guest loads at boot with Debian's kernel, with their
# dependencies, each group only when its virtio device is there (a PCI
# device ID less 0x1040, as /sys/bus/virtio/devices/*/device shows it; "-"
# for always). The lean kernel has all of them built in.
module_groups=(
	"- virtio_pci virtio_console"   # the PCI transport and the agent's port
	"- bridge"                      # privileged containers may make bridges
	"0x0001 virtio_net"             # the pod's NICs
	"0x0005 virtio_balloon"         # free page reporting to the host
	"0x0009 9pnet_virtio 9p"        # the shared filesystem, virtio-9p
	"0x001a virtiofs"               # the shared filesystem, virtio-fs
	"0x0013 vmw_vsock_virtio_transport" # the agent's link where the host has vsock
)

case $kernel in
lean)
	kdir=$("$(dirname "$0")/build-kernel.sh")
	vmlinux=$kdir/vmlinux
	vmlinuz=$kdir/bzImage
	kver=$(LC_ALL=C grep -a -m 1 -o 'Linux version [^ ]*' "$vmlinux" | cut -d' ' -f3)
	;;
debian)
	kver=$(cd /lib/modules && ls -1 | grep -- '-amd64$' | sort -V | tail -n 1)
	vmlinuz=/boot/vmlinuz-$kver
	[ -n "$kver" ] && [ -f "$vmlinuz" ] || {
		echo "build.sh: no Debian kernel found (install linux-image-amd64: make deps)" >&2
		exit 1
	}
	;;
*)
	echo "build.sh: GUEST_KERNEL=$kernel: want lean or debian" >&2
	exit 1
	;;
esac

mkdir -p "$out"
stamp=$out/.inputs
inputs="$kernel $(sha256sum "$agent" "$vmlinuz" "$0" | awk '{print $1}' | tr '\n' ' ')"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$inputs" ] &&
	[ -f "$out/vmlinux" ] && [ -f "$out/vmlinuz" ] && [ -f "$out/initramfs.cpio" ]; then
	echo "guest image up to date ($kernel kernel $kver)"
	exit 0
fi

cp "$vmlinuz" "$out/vmlinuz.tmp"
mv "$out/vmlinuz.tmp" "$out/vmlinuz"
if [ "$kernel" = lean ]; then
	cp "$vmlinux" "$out/vmlinux.tmp"
else
	# Debian's bzImage wraps an xz stream that holds the ELF vmlinux; xz
	# complains about the data after the stream, the ELF is complete.
	offset=$(LC_ALL=C grep -aboP '\xfd7zXZ\x00' "$vmlinuz" | head -n 1 | cut -d: -f1)
	[ -n "$offset" ] || { echo "build.sh: no xz stream in $vmlinuz" >&2; exit 1; }
	tail -c +$((offset + 1)) "$vmlinuz" | xz -dc >"$out/vmlinux.tmp" 2>/dev/null || true
fi
head -c 4 "$out/vmlinux.tmp" | grep -q 'ELF' || { echo "build.sh: kernel extraction failed" >&2; exit 1; }
mv "$out/vmlinux.tmp" "$out/vmlinux"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/dev" "$stage/proc" "$stage/sys"
install -m 0755 "$agent" "$stage/init"
modules=0
if [ "$kernel" = debian ]; then
	# vc-agent loads these; without lib/modules/load-order (the lean
	# kernel) it loads none.
	mkdir -p "$stage/lib/modules"
	: >"$stage/lib/modules/load-order"
	declare -A loaded
	for group in "${module_groups[@]}"; do
		read -r device names <<<"$group"
		for m in $names; do
			for ko in $(modprobe -S "$kver" --show-depends "$m" | awk '$1 == "insmod" {print $2}'); do
				name=$(basename "$ko")
				[ -n "${loaded[$name]:-}" ] && continue
				loaded[$name]=1
				cp "$ko" "$stage/lib/modules/"
				echo "$name $device" >>"$stage/lib/modules/load-order"
			done
		done
	done
	modules=$(wc -l <"$stage/lib/modules/load-order")
fi

(cd "$stage" && find . -print0 | LC_ALL=C sort -z |
	cpio --quiet --null -o -H newc -R 0:0 --reproducible) >"$out/initramfs.cpio.tmp"
mv "$out/initramfs.cpio.tmp" "$out/initramfs.cpio"
echo "$inputs" >"$stamp"
echo "guest image built: $kernel kernel $kver, $modules modules, initramfs $(du -h "$out/initramfs.cpio" | cut -f1)"
