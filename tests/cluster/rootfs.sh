#!/usr/bin/env bash
# A Debian root file system with another release's Slurm, for the test cluster.
#
#   rootfs.sh SUITE DIR    unpack the root file system of SUITE (trixie: Slurm 24.11,
#                          sid: Slurm 26.05) into the empty or absent DIR
#   rootfs.sh suite-of REL the Debian suite that ships Slurm REL (24.11, 26.05)
#
# Built with debootstrap from the Debian archive with the packages of rootfs.packages, then
# cached as /var/cache/pylaunch/rootfs-SUITE-HASH.tar.zst (HASH: of rootfs.packages and the
# build steps of this script), so a second run on the same machine unpacks it in a minute. Nothing depends on the
# cache: a fresh machine builds it (some 5-10 minutes per suite). Must run as root.
set -euo pipefail
umask 022

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly MIRROR=${ROOTFS_MIRROR:-http://deb.debian.org/debian}
readonly CACHE=${ROOTFS_CACHE:-/var/cache/pylaunch}

say() { echo "rootfs.sh: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

suite_of() {
	case $1 in
	24.11) echo trixie ;;
	26.05) echo sid ;;
	*) die "no root file system for Slurm $1 (known: 24.11 trixie, 26.05 sid)" ;;
	esac
}

packages() { sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$here/rootfs.packages"; }

# Of what goes into the tarball: the package list and the build steps (not the rest of this
# script, whose edits must not throw a good cache away).
cache_key() {
	{
		cat "$here/rootfs.packages"
		declare -f build mount_chroot umount_chroot
	} | sha256sum | cut -c1-16
}

# Mounts the chroot needs for apt's maintainer scripts; undone by umount_chroot.
mount_chroot() { mount -t proc proc "$1/proc"; }

umount_chroot() { umount "$1/proc" 2>/dev/null || true; }

build() {
	local suite=$1 out=$2 dir log=$CACHE/rootfs-$suite.build.log
	dir=$(mktemp -d /var/tmp/pylaunch-rootfs-build.XXXXXX)
	# It becomes /: every user must be able to search it (munge's postinst runs as munge).
	chmod 0755 "$dir"
	# shellcheck disable=SC2064 # expand now: dir is local
	trap "umount_chroot '$dir'; rm -rf --one-file-system '$dir'" EXIT
	say "debootstrap $suite from $MIRROR (a few minutes)"
	debootstrap --variant=minbase "$suite" "$dir" "$MIRROR" >"$log" 2>&1 ||
		{ tail -n 30 "$log" >&2; die "debootstrap $suite failed (log: $log)"; }
	# unstable's Release files carry a Valid-Until that a cached or mirrored copy may pass.
	echo 'Acquire::Check-Valid-Until "false";' >"$dir/etc/apt/apt.conf.d/99pylaunch-valid-until"
	# Package scripts must not start slurmd/slurmctld/munged: the cluster runs its own.
	printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
	chmod 755 "$dir/usr/sbin/policy-rc.d"
	mount_chroot "$dir"
	# shellcheck disable=SC2046 # one word per package
	chroot "$dir" env DEBIAN_FRONTEND=noninteractive sh -c \
		'apt-get update -q && apt-get install -y -q --no-install-recommends "$@" && apt-get clean' \
		sh $(packages) >>"$log" 2>&1 ||
		{ grep -B3 -A8 -i 'error' "$log" | tail -n 60 >&2; die "apt-get install in $suite failed (log: $log)"; }
	umount_chroot "$dir"
	chroot "$dir" dpkg-query -W -f '${Version}\n' slurmd >"$dir/etc/pylaunch-rootfs-slurm"
	tar -C "$dir" --numeric-owner --xattrs -cf - . | zstd -q -T2 -o "$out.tmp"
	mv "$out.tmp" "$out"
	say "cached $out (Slurm $(cat "$dir/etc/pylaunch-rootfs-slurm"))"
	umount_chroot "$dir"
	rm -rf --one-file-system "$dir"
	trap - EXIT
}

cmd_unpack() {
	local suite=$1 dest=$2 key tarball
	[[ $suite == @(trixie|sid) ]] || die "unknown suite '$suite' (trixie or sid)"
	[[ $dest == /* ]] || die "DIR must be an absolute path"
	[[ ! -e $dest || -z $(ls -A "$dest") ]] || die "$dest is not empty"
	key=$(cache_key)
	tarball=$CACHE/rootfs-$suite-$key.tar.zst
	install -d -m 0755 "$CACHE" "$dest"
	(
		# Two runs building the same suite at once would race on the tarball.
		flock 8
		if [[ -s $tarball ]]; then
			say "using the cached $tarball"
		else
			build "$suite" "$tarball"
		fi
	) 8>"$CACHE/rootfs-$suite.lock"
	zstd -dcq "$tarball" | tar -C "$dest" --numeric-owner --xattrs -xf -
}

shopt -s extglob
case ${1:-} in
suite-of) [[ $# -eq 2 ]] || die "usage: rootfs.sh suite-of RELEASE"; suite_of "$2" ;;
trixie | sid) [[ $# -eq 2 ]] || die "usage: rootfs.sh SUITE DIR"; [[ $(id -u) -eq 0 ]] || die "must run as root"; cmd_unpack "$1" "$2" ;;
*) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2; exit 2 ;;
esac
