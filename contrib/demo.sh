#!/usr/bin/env bash
# Demonstration on a fresh Debian 12 machine, as root: build pylaunch, boot a
# 3-node Slurm (one slurmd per network namespace), run a Python job with
# --pybundle and show what the plugin logged on every node. KEEP=1 leaves the
# cluster running afterwards (tear it down with tests/cluster/cluster.sh down).
# It is also a check: it exits non-zero unless every node was staged by the
# fan-out tree (stage line mode=tree ... outcome=staged) and the bundle, in the
# user's home on the local disk, was opened once (inotify) and read once.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
[ "$(id -u)" = 0 ] || { echo "demo: must run as root (it boots a Slurm cluster)" >&2; exit 1; }

export CLUSTER_DIR=${CLUSTER_DIR:-/run/pylaunch-cluster}
export TEST_USER=${TEST_USER:-pltest}
cluster() { bash "$top/tests/cluster/cluster.sh" "$@"; }

bash tests/install-deps.sh
autoreconf -fi >/dev/null 2>&1
rm -rf _build && mkdir _build
(cd _build && ../configure -q >/dev/null && make -s -j2)

# One cluster per machine: wait for a test run or benchmark that holds it.
exec 9>/run/pylaunch-cluster.lock
flock 9
install -d -m 0755 /run/pylaunch-test-plugin
install -m 0755 _build/.libs/pylaunch.so /run/pylaunch-test-plugin/pylaunch.so
work=""
inotify_pid=""
cleanup() {
	[ -z "$inotify_pid" ] || kill "$inotify_pid" 2>/dev/null || true
	[ -z "$work" ] || rm -rf "$work"
	[ "${KEEP:-0}" = 1 ] || cluster down >/dev/null 2>&1
}
trap cleanup EXIT
PLUGIN=/run/pylaunch-test-plugin/pylaunch.so \
	PLUGIN_ARGS="config=$CLUSTER_DIR/etc/pylaunch.yaml" NODES=3 cluster up
eval "$(cluster env)"

home=$(getent passwd "$TEST_USER" | cut -d: -f6)
work=$(runuser -u "$TEST_USER" -- mktemp -d "$home/demo-XXXXXX")
# A real Python environment bundle: Debian's interpreter, numpy and scipy laid
# out as a relocatable prefix (what conda-pack makes of a conda environment).
envdir=$(mktemp -d)
bash bench/make-env.sh --tar "$work/env.tar.zst" "$envdir/env" python3-numpy python3-scipy >/dev/null
rm -rf "$envdir"
chown "$TEST_USER:" "$work/env.tar.zst"
ls -l "$work/env.tar.zst"

bundle_size=$(stat -c %s "$work/env.tar.zst")

# Every open of the bundle by any process of any node (inotify sees the inode,
# whatever the mount namespace), stamped with the time it was seen: srun's check
# of the archive at submission (its first 16 KiB) comes before the job's
# prologs start, the nodes' opens after. The nodes' log lines from here on are
# this job's.
opens_log=$(mktemp)
(
	echo "$BASHPID" >"$opens_log.pid"
	exec stdbuf -oL inotifywait -m -e open --format %e "$work/env.tar.zst" 2>"$opens_log.err"
) | while read -r event; do echo "$(date +%s.%N) $event"; done >"$opens_log" &
until [ -s "$opens_log.pid" ]; do sleep 0.1; done
inotify_pid=$(cat "$opens_log.pid")
for _ in $(seq 100); do grep -qs established "$opens_log.err" && break || sleep 0.1; done
grep -q established "$opens_log.err" || { echo "demo: inotifywait: $(cat "$opens_log.err")" >&2; exit 1; }
declare -A log_from
for n in node1 node2 node3; do
	log_from[$n]=$(($(stat -c %s "$CLUSTER_DIR/log/slurmd-$n.log") + 1))
done

echo
echo "\$ srun -N3 --pybundle=env.tar.zst python3 -c 'import numpy, scipy, socket, sys; print(...)'"
runuser -u "$TEST_USER" -- env SLURM_CONF="$SLURM_CONF" sh -c "cd '$work' && srun -N3 --pybundle=env.tar.zst \
	python3 -c 'import numpy, scipy, socket, sys; print(socket.gethostname(), \"python\", sys.executable, \"numpy\", numpy.__file__)'" | sort
sleep 0.5
kill "$inotify_pid"
wait "$inotify_pid" 2>/dev/null || true
inotify_pid=""
sleep 0.2

echo
echo "What pylaunch logged in each node's slurmd log:"
sleep 1
for n in node1 node2 node3; do
	tail -c "+${log_from[$n]}" "$CLUSTER_DIR/log/slurmd-$n.log" | grep -h "pylaunch: " |
		grep -E "prolog|stage|step|epilog" | sed "s/^/  $n | /" || true
done

# The check: every node staged by the tree, the bundle opened and read once.
echo
failed=0
read_bytes=0
job_start=""
for n in node1 node2 node3; do
	line=$(tail -c "+${log_from[$n]}" "$CLUSTER_DIR/log/slurmd-$n.log" | grep -h "pylaunch: stage job=" | head -n1 || true)
	if [[ $line == *" mode=tree "*" outcome=staged "* ]]; then
		echo "  $n: mode=tree outcome=staged"
	else
		echo "  $n: NOT staged by the tree: ${line:-no stage line}"
		failed=1
	fi
	shared=$(sed -n 's/.* shared_bytes=\([0-9]*\) .*/\1/p' <<<"$line")
	read_bytes=$((read_bytes + ${shared:-0}))
	start=$(sed -n 's/.* start=\([0-9.]*\) .*/\1/p' <<<"$line")
	[ -z "$start" ] || job_start=$(awk -v a="${job_start:-$start}" -v b="$start" 'BEGIN { print (b < a ? b : a) }')
done
# Opens before the first prolog started are srun's (submission); the rest are the nodes'.
submit_opens=$(awk -v t="${job_start:-0}" '/OPEN/ && $1 < t' "$opens_log" | wc -l)
opens=$(awk -v t="${job_start:-0}" '/OPEN/ && $1 >= t' "$opens_log" | wc -l)
rm -f "$opens_log" "$opens_log.err" "$opens_log.pid"
ratio=$(awk -v r="$read_bytes" -v s="$bundle_size" 'BEGIN { printf "%.2f", r / s }')
echo "bundle opened $opens time(s) by the job's nodes, read $read_bytes bytes = $ratio x its size" \
	"($bundle_size bytes; srun's check of the archive at submission opened it $submit_opens time(s) before)"
[ "$opens" = 1 ] && [ "$read_bytes" = "$bundle_size" ] && [ "$submit_opens" -le 1 ] || failed=1
echo
echo "Left in each node's /dev/shm/pylaunch after the job (the epilog purges it):"
for n in node1 node2 node3; do
	left=$(cluster exec "$n" find /dev/shm/pylaunch -mindepth 1 -not -name .state | tr '\n' ' ')
	echo "  $n: ${left:-nothing}"
done
echo
echo "Tests: sudo tests/run-all.sh"
if [ "$failed" != 0 ]; then
	echo "demo: FAILED: not every node was staged by the tree from one read of the bundle" >&2
	exit 1
fi
