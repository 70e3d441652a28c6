#!/usr/bin/env bash
# Makes headers.tar.xz, the public headers of the Slurm releases between those the integration
# suite runs on (tests/check-slurm-headers.sh compiles the plugin against each):
#
#   make-fixture.sh SLURM_GIT_DIR
#
# SLURM_GIT_DIR: a clone of https://github.com/SchedMD/slurm. Each release's slurm/slurm.h,
# slurm_errno.h and spank.h as tagged; slurm_version.h made from slurm_version.h.in the way
# Slurm's configure makes it. The headers are Slurm's: GPL-2.0-or-later with the OpenSSL
# exception (the notice is in each file); SOURCES lists the tags and their commits.
set -euo pipefail
readonly TAGS="slurm-23-02-8-1 slurm-23-11-11-1 slurm-24-05-8-1 slurm-25-05-8-1"
git_dir=${1:?usage: make-fixture.sh SLURM_GIT_DIR}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
: >"$work/SOURCES"
for tag in $TAGS; do
	IFS=- read -r _ major minor micro _ <<<"$tag"
	dir=$work/$major.$minor/include/slurm
	mkdir -p "$dir"
	for h in slurm.h slurm_errno.h spank.h; do
		git --git-dir="$git_dir" show "$tag:slurm/$h" >"$dir/$h"
	done
	git --git-dir="$git_dir" show "$tag:slurm/slurm_version.h.in" |
		sed "s/^#undef SLURM_VERSION_NUMBER$/#define SLURM_VERSION_NUMBER $(printf '0x%02x%02x%02x' "$((10#$major))" "$((10#$minor))" "$((10#$micro))")/" \
			>"$dir/slurm_version.h"
	echo "$major.$minor: https://github.com/SchedMD/slurm tag $tag, commit $(git --git-dir="$git_dir" rev-parse "$tag^{commit}")" >>"$work/SOURCES"
done
cp "$work/SOURCES" "$here/SOURCES"
tar -C "$work" --owner=0 --group=0 --numeric-owner --sort=name --mtime=@0 -cf - . | xz -9 >"$here/headers.tar.xz"
echo "make-fixture.sh: $(du -h "$here/headers.tar.xz" | cut -f1) headers.tar.xz"
