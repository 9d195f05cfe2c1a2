#!/bin/sh
# Installs the Debian packages Nestbox needs, once. Runs as root on a fresh
# Debian 12 machine; does nothing when everything is present.
#
#   ensure-packages.sh        what `make run` needs: the platform itself
#   ensure-packages.sh test   that, plus what `make test` needs (Node.js and
#                             npm for the E2B SDK tests, nft and ip to
#                             inspect the host after a test, useradd)
set -eu

need=""
command -v bash >/dev/null 2>&1 || need="$need bash"
# The README's examples use curl.
command -v curl >/dev/null 2>&1 || need="$need curl"
# Sandboxes: templates, writable layers. Networking is done over netlink.
# The minimal template copies /bin/busybox into sandboxes: it must be static.
if [ ! -x /bin/busybox ] || ldd /bin/busybox >/dev/null 2>&1; then need="$need busybox-static"; fi
command -v debootstrap >/dev/null 2>&1 || need="$need debootstrap"
command -v mkfs.ext4 >/dev/null 2>&1 || need="$need e2fsprogs"
command -v mount >/dev/null 2>&1 || need="$need mount"

if [ "${1:-}" = test ]; then
	command -v node >/dev/null 2>&1 || need="$need nodejs npm"
	command -v useradd >/dev/null 2>&1 || need="$need passwd"
	command -v ps >/dev/null 2>&1 || need="$need procps"
	command -v nft >/dev/null 2>&1 || need="$need nftables"
	command -v ip >/dev/null 2>&1 || need="$need iproute2"
fi

if [ -n "$need" ]; then
	echo "installing Debian packages:$need"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need
fi
