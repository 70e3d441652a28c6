#!/bin/bash
# Mount slowfs: bench/slowfs/mount.sh MOUNTPOINT SOURCE [delay_us] [read_mbps]
#
# SOURCE is served read-only at MOUNTPOINT with allow_other (as root).  Metadata requests are
# serialised with delay_us microseconds each (default 0), reads capped at read_mbps 10^6 bytes/s
# (default 0 = uncapped).  SLOWFS_OPTS adds slowfs/FUSE options (e.g. "entry_timeout=1,keep_cache").
# State (pid, stats.json, log) goes to $SLOWFS_STATE/<mountpoint with / as _>, default /run/slowfs.
# Counters: bench/slowfs/stats.sh MOUNTPOINT [dump|reset]; unmount: bench/slowfs/umount.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ $# -lt 2 ] || [ $# -gt 4 ]; then
	sed -n '2,9s/^# \{0,1\}//p' "$0" >&2
	exit 2
fi
mnt=$1 src=$2 delay=${3:-0} mbps=${4:-0}
[ -d "$src" ] || { echo "mount.sh: $src: not a directory" >&2; exit 1; }
[[ $delay =~ ^[0-9]+$ && $mbps =~ ^[0-9]+$ ]] || { echo "mount.sh: delay_us and read_mbps are integers" >&2; exit 2; }
[ -x "$here/slowfs" ] && [ "$here/slowfs" -nt "$here/slowfs.c" ] || make -s -C "$here" >&2
mkdir -p "$mnt"
mnt=$(realpath "$mnt")
if mountpoint -q "$mnt"; then
	echo "mount.sh: $mnt is already a mount point" >&2
	exit 1
fi
state=$("$here/statedir.sh" "$mnt")
mkdir -p "$state"
rm -f "$state/pid" "$state/stats.json" "$state/dev"
opts="allow_other,delay_us=$delay,read_mbps=$mbps,stats=$state/stats.json,pidfile=$state/pid"
[ -n "${SLOWFS_OPTS:-}" ] && opts="$opts,$SLOWFS_OPTS"
# foreground in its own session, so its messages go to the log and it outlives this shell
setsid "$here/slowfs" -f -o "$opts" "$src" "$mnt" >"$state/log" 2>&1 </dev/null &
for _ in $(seq 200); do
	if [ -s "$state/pid" ] && mountpoint -q "$mnt"; then
		mountpoint -d "$mnt" >"$state/dev" # major:minor, to find copies in other namespaces
		echo "slowfs: $src on $mnt (delay_us=$delay read_mbps=$mbps) pid $(cat "$state/pid"), stats $state/stats.json"
		exit 0
	fi
	kill -0 $! 2>/dev/null || break
	sleep 0.05
done
echo "mount.sh: slowfs did not mount $mnt:" >&2
cat "$state/log" >&2
exit 1
