#!/bin/bash
# Unmount a slowfs: bench/slowfs/umount.sh MOUNTPOINT
# Waits for the daemon to exit; its final counters are then in the stats file (path printed).
#
# A mount namespace created while the file system was mounted (unshare --mount, the test
# cluster's nodes) holds its own copy of the mount, which keeps the file system alive after the
# unmount here.  So if the daemon does not exit, the copies of THIS mount (found by its device
# number in /proc/*/mountinfo) are detached in those namespaces too (umount -l, nothing else
# there is touched); as a last resort the FUSE connection is aborted.  Unmount after
# `cluster.sh down` to avoid all this.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ $# -eq 1 ] || { echo "usage: $0 MOUNTPOINT" >&2; exit 2; }
mnt=$(realpath -m "$1")
state=$("$here/statedir.sh" "$mnt")
pid=$(cat "$state/pid" 2>/dev/null || true)
dev=$(cat "$state/dev" 2>/dev/null || true)
alive() { [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; }
wait_exit() { # wait_exit TENTHS
	for _ in $(seq "$1"); do alive || return 0; sleep 0.1; done
	! alive
}

if mountpoint -q "$mnt"; then
	fusermount3 -u "$mnt" 2>/dev/null || umount "$mnt"
fi
if alive && ! wait_exit 30 && [ -n "$dev" ]; then
	self=$(readlink /proc/self/ns/mnt)
	declare -A done_ns=()
	for mi in /proc/[0-9]*/mountinfo; do
		p=${mi#/proc/}; p=${p%/mountinfo}
		ns=$(readlink "/proc/$p/ns/mnt" 2>/dev/null) || continue
		[ "$ns" != "$self" ] && [ -z "${done_ns[$ns]:-}" ] || continue
		# field 3 is major:minor, field 4 the root, field 5 the mount point in that namespace
		where=$(awk -v d="$dev" '$3 == d && / - fuse.slowfs / { print $5; exit }' "$mi" 2>/dev/null) || continue
		[ -n "$where" ] || continue
		done_ns[$ns]=1
		echo "umount.sh: detaching the copy of $mnt in mount namespace $ns (pid $p: $(tr '\0' ' ' <"/proc/$p/cmdline" | cut -c1-60))" >&2
		nsenter -t "$p" -m umount -l "$where" || true
	done
	if ! wait_exit 50; then
		minor=${dev#*:}
		if [ -w "/sys/fs/fuse/connections/$minor/abort" ]; then
			echo "umount.sh: aborting FUSE connection $minor" >&2
			echo 1 >"/sys/fs/fuse/connections/$minor/abort"
		fi
		wait_exit 50 || true
	fi
fi
if alive; then
	echo "umount.sh: slowfs $pid still running" >&2
	exit 1
fi
echo "slowfs: unmounted $mnt, final counters in $state/stats.json"
