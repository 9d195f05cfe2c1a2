#!/bin/sh
# Installs the Debian packages the build and tests need, once. Runs as root
# on a fresh Debian 12 machine; does nothing when everything is present.
set -eu

need=""
command -v node >/dev/null 2>&1 || need="$need nodejs npm"
command -v useradd >/dev/null 2>&1 || need="$need passwd"
command -v ps >/dev/null 2>&1 || need="$need procps"
command -v bash >/dev/null 2>&1 || need="$need bash"
command -v curl >/dev/null 2>&1 || need="$need curl"
# Sandboxes: templates, networking, writable layers.
# The minimal template copies /bin/busybox into sandboxes: it must be static.
if [ ! -x /bin/busybox ] || ldd /bin/busybox >/dev/null 2>&1; then need="$need busybox-static"; fi
command -v debootstrap >/dev/null 2>&1 || need="$need debootstrap"
command -v nft >/dev/null 2>&1 || need="$need nftables"
command -v ip >/dev/null 2>&1 || need="$need iproute2"
command -v mkfs.ext4 >/dev/null 2>&1 || need="$need e2fsprogs"
command -v mount >/dev/null 2>&1 || need="$need mount"

if [ -n "$need" ]; then
	echo "installing Debian packages:$need"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need
fi
