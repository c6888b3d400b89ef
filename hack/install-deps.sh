#!/usr/bin/env bash
# Installs, from Debian's packages, what vc-cri needs on the host and what
# the guest image is built from. Idempotent: a package already present is
# not fetched again.
set -euo pipefail

packages=(
	qemu-system-x86    # the VM monitor (TCG or KVM)
	qemu-utils
	linux-image-amd64  # the generic guest kernel and its modules (GUEST_KERNEL=debian)
	linux-source-6.1   # the lean guest kernel's source (hack/guest/build-kernel.sh)
	make flex bison bc libelf-dev libssl-dev # ... and what building it needs
	busybox            # test images (the dynamic build: see ARCHITECTURE.md)
	cpio xz-utils kmod # initramfs assembly
	protobuf-compiler  # make proto
	containernetworking-plugins
	iproute2 iptables
	skopeo             # pull benchmark baseline
	runc conmon        # the runc handler's OS containers and their monitors
	containerd         # make bench's peer (hack/bench/peer-containerd.sh)
	gcc libc6-dev      # static cgo build of vc-agent (runc's nsenter)
	libseccomp-dev     # the agent's seccomp filters (static libseccomp.a)
	util-linux         # unshare and nsenter: vc-cri's mount namespace
	bsdutils curl      # the end-to-end test (script for a tty, curl)
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
