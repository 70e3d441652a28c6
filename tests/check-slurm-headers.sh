#!/usr/bin/env bash
# Compiles the plugin with -Werror against the public headers of Slurm 23.02, 23.11, 24.05 and
# 25.05 (tests/slurm-headers: where they come from is in its SOURCES), the releases between
# those the integration suite runs on. Needs a configured tree (autoreconf done).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar -C "$work" -xJf "$top/tests/slurm-headers/headers.tar.xz"
rc=0
for prefix in "$work"/*/; do
	release=$(basename "$prefix")
	build=$work/build-$release
	mkdir "$build"
	if (cd "$build" && "$top/configure" -q --enable-werror --with-slurm="${prefix%/}" \
		--with-plugindir="$build/plugins" >/dev/null && make -s -j2 pylaunch.la >/dev/null); then
		echo "check-slurm-headers: Slurm $release: built without warnings"
	else
		echo "check-slurm-headers: Slurm $release: FAILED" >&2
		rc=1
	fi
done
exit $rc
