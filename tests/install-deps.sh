#!/usr/bin/env bash
# Installs everything pylaunch needs to build and test, and its test cluster, on
# Debian 12, as root. Idempotent: packages already present are not fetched again.
set -euo pipefail

packages=(
	build-essential autoconf automake libtool pkg-config
	libslurm-dev libarchive-dev libyaml-dev libmunge-dev libcmocka-dev libssl-dev
	valgrind clang-format python3 python3-pytest
	pyflakes3 # the format step: unused imports and names in the Python of tests/, bench/, share/
	tar zstd xz-utils bzip2 lz4 strace
	python3-numpy python3-scipy python3-matplotlib rsyslog
	libfuse3-dev fuse3 util-linux iproute2
	inotify-tools # test_tree.py: opens of a bundle on a local disk
	mmdebstrap # tests/cluster/rootfs.sh: root file systems of the other Slurm releases (RELEASES)
	python3-pandas python3-ujson chromium # pylaunch-report (ujson: faster loads), its page in a test
	openmpi-bin # test_monitor.py: mpirun ranks
	# test_kinds.py: a real venv with a wheel built offline, pip install --target
	python3-venv python3-pip python3-setuptools python3-wheel
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
	echo "install-deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The cluster's own packages (Slurm daemons, MUNGE, iproute2, ...).
bash "$(dirname "$0")/cluster/cluster.sh" deps
