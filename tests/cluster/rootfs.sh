#!/usr/bin/env bash
# A Debian root file system with another release's Slurm, for the test cluster.
#
#   rootfs.sh SUITE DIR     unpack the root file system of SUITE (trixie: Slurm 24.11,
#                           sid: Slurm 26.05) into the empty or absent DIR
#   rootfs.sh build SUITE   only make sure SUITE's tarball is there (run-all.sh builds both
#                           in the background while the tests on 22.05 run)
#   rootfs.sh suite-of REL  the Debian suite that ships Slurm REL (24.11, 26.05)
#
# Built with mmdebstrap from the Debian archive with the packages of rootfs.packages, as
# /var/cache/pylaunch/rootfs-SUITE-HASH.tar.zst (HASH: of rootfs.packages and the build step of
# this script), so a second run on the same machine only unpacks it (under a minute). Nothing
# depends on the cache: a fresh machine builds it (some 3-5 minutes per suite). Must run as root.
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

# Of what goes into the tarball: the package list and the build step (not the rest of this
# script, whose edits must not throw a good cache away).
cache_key() {
	{
		cat "$here/rootfs.packages"
		declare -f build
	} | sha256sum | cut -c1-16
}

# mmdebstrap, not debootstrap: apt downloads all packages at once and dpkg installs them in one
# run (some 3-5 minutes a suite, where debootstrap and a later apt-get took 8-17). Straight to the
# compressed tarball that is both the cache and what cmd_unpack unpacks.
# --variant=apt: Essential packages and apt, then the list. Documentation, manual pages and
# translations are left out (smaller, faster to unpack). The archive's Valid-Until is not checked
# (unstable's Release file may have passed it on a mirror). mmdebstrap keeps package scripts from
# starting daemons while it installs; the cluster runs its own. Debian's own PATH: its helper
# mmtarfilter runs once per package under the first python3 found.
build() {
	local suite=$1 out=$2 log=$CACHE/rootfs-$suite.build.log tmp
	tmp=${out%.tar.zst}.tmp.tar.zst
	say "mmdebstrap $suite from $MIRROR (a few minutes)"
	# shellcheck disable=SC2016 # $1 is the hook's argument, expanded by mmdebstrap's shell
	PATH=/usr/sbin:/usr/bin:/sbin:/bin mmdebstrap --variant=apt --include="$(packages | paste -sd,)" \
		--aptopt='Acquire::Check-Valid-Until "false"' \
		--dpkgopt=force-unsafe-io \
		--dpkgopt='path-exclude=/usr/share/doc/*' \
		--dpkgopt='path-exclude=/usr/share/man/*' \
		--dpkgopt='path-exclude=/usr/share/locale/*' \
		--customize-hook='chroot "$1" dpkg-query -W -f "\${Version}\n" slurmd >"$1/etc/pylaunch-rootfs-slurm"' \
		"$suite" "$tmp" "$MIRROR" >"$log" 2>&1 ||
		{ rm -f "$tmp"; tail -n 40 "$log" >&2; die "mmdebstrap $suite failed (log: $log)"; }
	mv "$tmp" "$out"
	say "cached $out"
}

check_suite() { [[ $1 == @(trixie|sid) ]] || die "unknown suite '$1' (trixie or sid)"; }

# SUITE's tarball, built unless cached: its path on stdout.
cmd_build() {
	local suite=$1 tarball
	check_suite "$suite"
	tarball=$CACHE/rootfs-$suite-$(cache_key).tar.zst
	install -d -m 0755 "$CACHE"
	(
		# Two runs building the same suite at once would race on the tarball.
		flock 8
		if [[ -s $tarball ]]; then
			say "using the cached $tarball"
		else
			build "$suite" "$tarball"
		fi
	) 8>"$CACHE/rootfs-$suite.lock"
	echo "$tarball"
}

cmd_unpack() {
	local suite=$1 dest=$2 tarball
	check_suite "$suite"
	[[ $dest == /* ]] || die "DIR must be an absolute path"
	[[ ! -e $dest || -z $(ls -A "$dest") ]] || die "$dest is not empty"
	tarball=$(cmd_build "$suite")
	install -d -m 0755 "$dest"
	zstd -dcq "$tarball" | tar -C "$dest" --numeric-owner --xattrs -xf -
}

shopt -s extglob
case ${1:-} in
suite-of) [[ $# -eq 2 ]] || die "usage: rootfs.sh suite-of RELEASE"; suite_of "$2" ;;
build) [[ $# -eq 2 ]] || die "usage: rootfs.sh build SUITE"; [[ $(id -u) -eq 0 ]] || die "must run as root"; cmd_build "$2" >/dev/null ;;
trixie | sid) [[ $# -eq 2 ]] || die "usage: rootfs.sh SUITE DIR"; [[ $(id -u) -eq 0 ]] || die "must run as root"; cmd_unpack "$1" "$2" ;;
*) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2; exit 2 ;;
esac
