#!/usr/bin/env bash
# The centre report from the test cluster's own records, as root on Debian 12 with the test
# dependencies installed (tests/install-deps.sh): boots the 3-node Slurm of the tests, runs a
# few --pymonitor jobs as the test user, loads their records with pylaunch-report, writes the
# page and a screenshot of it (headless chromium).
#
#   sudo contrib/report-demo.sh [OUT_DIR]    # default: a temporary directory; prints the paths
#
# SCREENSHOT=FILE also copies the screenshot there (README.md's is made with
# SCREENSHOT=contrib/report-screenshot.png).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
[ "$(id -u)" = 0 ] || { echo "report-demo: must run as root (it boots a Slurm cluster)" >&2; exit 1; }
out=${1:-$(mktemp -d /var/tmp/pylaunch-report-demo.XXXXXX)}
mkdir -p "$out"
out=$(cd "$out" && pwd)

export CLUSTER_DIR=${CLUSTER_DIR:-/run/pylaunch-cluster}
export TEST_USER=${TEST_USER:-pltest}
sink_dir=/run/pylaunch-report-demo
cluster() { bash "$top/tests/cluster/cluster.sh" "$@"; }

if [ "${REPORT_DEMO_LOCKED:-}" != 1 ]; then
	if [ ! -f _build/.libs/pylaunch.so ]; then
		autoreconf -fi >/dev/null 2>&1
		mkdir -p _build
		(cd _build && { [ -f Makefile ] || ../configure -q >/dev/null; } && make -s -j2)
	fi
	# One cluster per machine: wait for whoever holds it; -o: the daemons do not inherit the lock.
	REPORT_DEMO_LOCKED=1 flock -o /run/pylaunch-cluster.lock "$0" "$out"
	records="$out/records.jsonl"
	lib="$top/tools/report"
	PYTHONPATH="$lib" /usr/bin/python3 -m pylaunch_report load "$out/centre.db" "$records"
	PYTHONPATH="$lib" /usr/bin/python3 -m pylaunch_report html "$out/centre.db" \
		-o "$out/report.html" --title "Python packages on the test cluster"
	profile=$(mktemp -d)
	chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
		--disable-background-networking --disable-component-update --disable-sync \
		--hide-scrollbars --user-data-dir="$profile" --window-size=1100,1500 \
		--screenshot="$out/report.png" "file://$out/report.html" 2>/dev/null
	rm -rf "$profile"
	[ -z "${SCREENSHOT:-}" ] || cp "$out/report.png" "$SCREENSHOT"
	echo "records:    $records"
	echo "page:       $out/report.html"
	echo "screenshot: $out/report.png"
	exit 0
fi

# ---- under the cluster lock: boot, run the jobs, keep their records, tear down.
install -d -m 0755 /run/pylaunch-test-plugin "$sink_dir"
install -m 0755 _build/.libs/pylaunch.so /run/pylaunch-test-plugin/pylaunch.so
rm -f "$sink_dir/records.jsonl"
work=""
cleanup() {
	[ -z "$work" ] || rm -rf "$work"
	cluster down >/dev/null 2>&1 || true
}
trap cleanup EXIT
PLUGIN=/run/pylaunch-test-plugin/pylaunch.so \
	PLUGIN_ARGS="config=$CLUSTER_DIR/etc/pylaunch.yaml" NODES=3 cluster up >/dev/null
eval "$(cluster env)"
cat >"$CLUSTER_DIR/etc/pylaunch.yaml" <<YAML
monitor:
  default: off
  hook_dir: $top/share/monitor
  sinks:
    - type: file
      path: $sink_dir/records.jsonl
YAML
chmod 0644 "$CLUSTER_DIR/etc/pylaunch.yaml"

home=$(getent passwd "$TEST_USER" | cut -d: -f6)
work=$(runuser -u "$TEST_USER" -- mktemp -d "$home/report-demo-XXXXXX")
job() {
	echo "\$ srun $*"
	runuser -u "$TEST_USER" -- env SLURM_CONF="$SLURM_CONF" sh -c "cd '$work' && srun --pymonitor $*" \
		>/dev/null
}
# What a small centre's week might hold: the same few packages at different scales.
job "-N3 --ntasks-per-node=2 python3 -c 'import numpy, json'"
job "-N3 python3 -c 'import numpy, scipy.linalg'"
job "-N2 --ntasks-per-node=2 python3 -c 'import scipy.optimize, multiprocessing'"
job "-N2 python3 -c 'import numpy, concurrent.futures'"
job "-N1 python3 -c 'import matplotlib; matplotlib.use(\"Agg\"); import matplotlib.pyplot'"
job "-N1 python3 -c 'import pandas'"
job "-N1 --ntasks-per-node=4 python3 -c 'import asyncio, ctypes, numpy'"
job "-N1 python3 -c 'import yaml, json'"
# The epilog writes the records after the job is reported done.
want=14
for _ in $(seq 60); do
	[ "$(wc -l <"$sink_dir/records.jsonl" 2>/dev/null || echo 0)" -ge "$want" ] && break
	sleep 0.5
done
cp "$sink_dir/records.jsonl" "$out/records.jsonl"
rm -rf "$sink_dir"
