#!/bin/bash
# Counters of a slowfs: bench/slowfs/stats.sh MOUNTPOINT [dump|reset]
#   dump  (default) SIGUSR1: the daemon writes its counters; they are printed (JSON)
#   reset           SIGUSR2: the daemon zeroes its counters (and writes the zeroed ones)
# Waits until the daemon has written the file (its "seq" grows), so the counters printed are
# complete up to the moment of the call.  After unmount, prints the final counters.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 1 ] || { sed -n '2,6s/^# \{0,1\}//p' "$0" >&2; exit 2; }
state=$("$here/statedir.sh" "$1")
what=${2:-dump}
case $what in dump) sig=USR1 ;; reset) sig=USR2 ;; *) echo "stats.sh: dump or reset" >&2; exit 2 ;; esac
seqof() { sed -n 's/^  "seq": \([0-9]*\),$/\1/p' "$state/stats.json" 2>/dev/null || true; }
if [ ! -s "$state/pid" ] || ! kill -0 "$(cat "$state/pid")" 2>/dev/null; then
	[ -s "$state/stats.json" ] || { echo "stats.sh: no slowfs at $1 ($state)" >&2; exit 1; }
	[ "$what" = dump ] || { echo "stats.sh: no slowfs running at $1" >&2; exit 1; }
	cat "$state/stats.json"
	exit 0
fi
old=$(seqof)
kill -"$sig" "$(cat "$state/pid")"
for _ in $(seq 1000); do
	new=$(seqof)
	if [ -n "$new" ] && [ "$new" != "$old" ]; then
		cat "$state/stats.json"
		exit 0
	fi
	sleep 0.01
done
echo "stats.sh: slowfs at $1 did not write $state/stats.json" >&2
exit 1
