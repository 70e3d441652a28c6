#!/usr/bin/env bash
# Demonstration on a fresh Debian 12 machine, as root: build pylaunch, boot a
# 3-node Slurm (one slurmd per network namespace), run a Python job with
# --pybundle and show what the plugin logged on every node. KEEP=1 leaves the
# cluster running afterwards (tear it down with tests/cluster/cluster.sh down).
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
cleanup() {
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

echo
echo "\$ srun -N3 --pybundle=env.tar.zst python3 -c 'import numpy, scipy, socket, sys; print(...)'"
runuser -u "$TEST_USER" -- env SLURM_CONF="$SLURM_CONF" sh -c "cd '$work' && srun -N3 --pybundle=env.tar.zst \
	python3 -c 'import numpy, scipy, socket, sys; print(socket.gethostname(), \"python\", sys.executable, \"numpy\", numpy.__file__)'" | sort

echo
echo "What pylaunch logged in each node's slurmd log:"
sleep 1
for n in node1 node2 node3; do
	grep -h "pylaunch: " "$CLUSTER_DIR/log/slurmd-$n.log" | grep -E "prolog|step|epilog" | sed "s/^/  $n | /"
done
echo
echo "Left in each node's /dev/shm/pylaunch after the job (the epilog purges it):"
for n in node1 node2 node3; do
	left=$(cluster exec "$n" find /dev/shm/pylaunch -mindepth 1 -not -name .state | tr '\n' ' ')
	echo "  $n: ${left:-nothing}"
done
echo
echo "Tests: sudo tests/run-all.sh"
