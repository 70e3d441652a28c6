#!/usr/bin/env bash
# The integration suite on one Slurm release, as root:
#
#   suite.sh RELEASE [PYTEST ARGS...]
#
# 22.05 is this machine's own Slurm (Debian 12). 24.11 and 26.05 run in a root file system of
# Debian 13 / unstable (rootfs.sh): a private mount namespace pivots into it with the source
# tree bind-mounted at the same path, builds the plugin there against that release's
# libslurm-dev, and runs the tests, whose cluster (slurmctld, munged and every node's slurmd,
# entered with nsenter --root) then runs that release's daemons. The host's cluster lock is
# bind-mounted in, so the run queues with every other user of the test cluster.
# Without PYTEST ARGS: the whole suite, the non-tree tests, then the tree tests on 16 nodes.
# SUITE_PARTS (env) chooses of these two parts ("suite", "tree" or both); the PYTEST ARGS are
# then added to each (e.g. -x). With PYTEST ARGS and no SUITE_PARTS, pytest runs with them alone.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
readonly LOCK=/run/pylaunch-cluster.lock

say() { echo "suite.sh: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

# Runs inside: builds the plugin against the Slurm in / and runs pytest (or the given args).
# The build happens in a copy: autoreconf of this release's autotools must not touch the tree.
inside() {
	local src=/tmp/pylaunch-src build=/tmp/pylaunch-src/_build rc=0 rc_tree=0
	shift
	if [[ -e /etc/pylaunch-rootfs-slurm ]]; then
		rm -rf "$src" && mkdir -p "$src"
		tar -C "$top" --exclude='./_build*' --exclude=./autom4te.cache -cf - . | tar -C "$src" -xf -
	else
		src=$top build=$top/_build-host
	fi
	(cd "$src" && { autoreconf -fi >/dev/null 2>&1 || autoreconf -fi; })
	rm -rf "$build" && mkdir "$build"
	(cd "$build" && ../configure -q --enable-werror >/dev/null && make -s -j2 >/dev/null)
	say "built $(grep -o 'PL_BUILT_SLURM_RELEASE "[^"]*"' "$build/pl_build.h")"
	cd "$top/tests/integration"
	export PYLAUNCH_PLUGIN=$build/.libs/pylaunch.so
	if [[ -z ${SUITE_PARTS:-} && $# -gt 0 ]]; then
		/usr/bin/python3 -m pytest -p no:cacheprovider "$@"
		return
	fi
	if [[ ${SUITE_PARTS:-suite tree} == *suite* ]]; then
		/usr/bin/python3 -m pytest -p no:cacheprovider -m "not tree and not open_issue" "$@" || rc=$?
	fi
	if [[ ${SUITE_PARTS:-suite tree} == *tree* ]]; then
		NODES=16 /usr/bin/python3 -m pytest -p no:cacheprovider -m "tree and not open_issue" "$@" ||
			rc_tree=$?
	fi
	bash "$top/tests/cluster/cluster.sh" down >/dev/null 2>&1 || true
	((rc == 0)) && rc=$rc_tree
	return "$rc"
}

# The machine's name must resolve inside as outside: srun tells slurmctld its host name, and
# slurmctld, failing to resolve it as the job ends (srun_job_complete), retries getaddrinfo for
# some 10 s holding its job lock - step completion messages time out then ("Rank 0 failed sending step completion message
# directly to slurmctld"), retried only after 60 s, and the job stays COMPLETING. The root file
# system's /etc/hosts knows only localhost: take the machine's, and its own name's address.
host_names() {
	local root=$1 name addr
	cp /etc/hosts "$root/etc/hosts"
	for name in "$(hostname)" "$(hostname -s)"; do
		grep -Eq "[[:space:]]$name([[:space:]]|\$)" "$root/etc/hosts" && continue
		addr=$(getent ahostsv4 "$name" | awk 'NR == 1 { print $1 }')
		echo "${addr:-127.0.1.1} $name" >>"$root/etc/hosts"
	done
}

# Runs in the private mount namespace, as the root file system's own mounts are made.
enter() {
	local root=$1 release=$2
	shift 2
	# A mount point of its own: `ip -n` remounts / (make-rslave), which needs one.
	mount --bind "$root" "$root"
	mount -t proc proc "$root/proc"
	mount --rbind /sys "$root/sys"
	mount --rbind /dev "$root/dev"
	mount -t tmpfs -o mode=0755 tmpfs "$root/run"
	mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
	mkdir -p "$root$top"
	mount --bind "$top" "$root$top"
	# The machine's slowfs binary is linked against its own libfuse: build another from a copy.
	mkdir -p "$root/tmp/slowfs"
	cp "$top"/bench/slowfs/{Makefile,*.c,*.sh} "$root/tmp/slowfs/"
	mount --bind "$root/tmp/slowfs" "$root$top/bench/slowfs"
	touch "$root$LOCK"
	mount --bind "$LOCK" "$root$LOCK"
	cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
	host_names "$root"
	# pivot_root, not chroot: a job's namespace (job_container/tmpfs, namespace/tmpfs) is joined
	# with setns, which puts a process at the root of the mount namespace - the root file
	# system only if it is that root.
	mkdir -p "$root/.pl-oldroot"
	cd "$root"
	pivot_root . .pl-oldroot
	cd /
	umount -l /.pl-oldroot
	exec /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
		LANG=C.UTF-8 ${NODES:+NODES=$NODES} ${SUITE_PARTS:+SUITE_PARTS="$SUITE_PARTS"} bash "$top/tests/cluster/suite.sh" --inside "$release" "$@"
}

main() {
	[[ $(id -u) -eq 0 ]] || die "must run as root"
	if [[ ${1:-} == --inside ]]; then
		shift
		inside "$@"
		return
	fi
	if [[ ${1:-} == --enter ]]; then
		shift
		enter "$@"
		return
	fi
	local release=${1:-} suite root rc=0 t0=$SECONDS
	[[ -n $release ]] || die "usage: suite.sh RELEASE [PYTEST ARGS...]"
	shift
	if [[ $release == 22.05 ]]; then
		inside "$release" "$@"
		return
	fi
	suite=$("$here/rootfs.sh" suite-of "$release")
	root=/var/tmp/pylaunch-rootfs-$release
	# A fresh copy every run: nothing a previous run left (users, keys, logs) carries over.
	rm -rf --one-file-system "$root"
	"$here/rootfs.sh" "$suite" "$root"
	touch "$LOCK"
	unshare --mount --propagation private -- bash "$here/suite.sh" --enter "$root" "$release" "$@" ||
		rc=$?
	rm -rf --one-file-system "$root"
	say "Slurm $release ($suite): exit $rc after $((SECONDS - t0)) s"
	return "$rc"
}

main "$@"
