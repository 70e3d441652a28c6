#!/usr/bin/env bash
# The whole test suite, as root on a fresh Debian 12 machine:
#   format check (clang-format, pyflakes), unit tests under ASan/UBSan, the same under valgrind, the
#   monitor hook's tests, pylaunch-report's tests, make distcheck, a compile check against the headers of the
#   Slurm releases between those tested, and the integration tests on a real multi-node
#   Slurm of each release in RELEASES.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
[ "$(id -u)" = 0 ] || { echo "run-all: must run as root (it boots a Slurm cluster)" >&2; exit 1; }

step() { printf '\n=== [%d s] %s\n' "$SECONDS" "$*"; }

# RELEASES: the Slurm releases to run the integration suite on. 22.05 is this machine's own
# (Debian 12); 24.11 and 26.05 run in a Debian 13 / unstable root file system
# (tests/cluster/suite.sh), built with mmdebstrap in the background while the steps before the
# integration tests run (cached in /var/cache/pylaunch for later runs; CI has no cache).
# What runs where, to keep CI within its hour (README, "Slurm releases"): the whole suite, the
# 16-node tree tests included, on all three (some 35 minutes in all); the benchmark smoke on 22.05.
RELEASES=${RELEASES:-22.05 24.11 26.05}
TREE_RELEASES=${TREE_RELEASES:-22.05 24.11 26.05}

step "dependencies"
bash tests/install-deps.sh

rootfs_pid=""
rootfs_log=$(mktemp /tmp/pylaunch-rootfs-build.XXXXXX)
suites=()
for release in $RELEASES; do
	[ "$release" = 22.05 ] || suites+=("$(bash tests/cluster/rootfs.sh suite-of "$release")")
done
if [ "${#suites[@]}" -gt 0 ]; then
	step "building the root file systems of ${suites[*]} in the background"
	(
		for suite in "${suites[@]}"; do
			t0=$SECONDS
			bash tests/cluster/rootfs.sh build "$suite" &&
				echo "run-all: root file system of $suite ready after $((SECONDS - t0)) s"
		done
	) >"$rootfs_log" 2>&1 &
	rootfs_pid=$!
fi

step "autoreconf"
autoreconf -fi >/dev/null 2>&1 || autoreconf -fi

step "format"
clang-format --dry-run -Werror $(find src -name '*.[ch]') tests/unit/*.c
pyflakes3 tests bench share contrib

step "a private munged for the unit tests of MUNGE credentials"
munge_dir=$(mktemp -d /run/pylaunch-unit-munge.XXXXXX)
chown munge: "$munge_dir"
chmod 0755 "$munge_dir" # munged wants its socket directory searchable by all
runuser -u munge -- munged --socket="$munge_dir/sock" --pid-file="$munge_dir/pid" \
	--log-file="$munge_dir/log" --seed-file="$munge_dir/seed"
stop_munged() {
	local pid
	pid=$(cat "$munge_dir/pid" 2>/dev/null) || pid=""
	# munged writes its seed file as it exits: wait for it before removing the directory.
	if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
		while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
	fi
	rm -rf "$munge_dir"
}
trap stop_munged EXIT
export PL_TEST_MUNGE_SOCKET="$munge_dir/sock"

step "unit tests under AddressSanitizer and UBSan"
rm -rf _build-asan && mkdir _build-asan
(cd _build-asan && ../configure -q --enable-werror --enable-sanitizers >/dev/null &&
	make -s -j2 && make -s -j2 check || { cat tests/unit/*.log 2>/dev/null; exit 1; })

step "unit tests under valgrind; the plugin for the integration tests"
rm -rf _build && mkdir _build
(cd _build && ../configure -q --enable-werror >/dev/null && make -s -j2 && make -s check-valgrind)

step "the --pymonitor hook under real interpreters"
/usr/bin/python3 -m pytest -p no:cacheprovider -q tests/unit/test_sitecustomize.py

step "pylaunch-report: loading, aggregates, the page in headless chromium"
/usr/bin/python3 -m pytest -p no:cacheprovider -q tests/report

step "make distcheck"
(cd _build && make -s distcheck >/dev/null 2>&1 || { make distcheck; exit 1; })
echo "distcheck: ok"

step "compile check against the headers of Slurm 23.02, 23.11, 24.05 and 25.05"
bash tests/check-slurm-headers.sh

has_tree() { [[ " $TREE_RELEASES " == *" $1 "* ]]; }

rc=0
for release in $RELEASES; do
	step "integration tests on a real multi-node Slurm $release"
	t0=$SECONDS
	if [ "$release" = 22.05 ]; then
		cd tests/integration
		set +e
		# Debian's interpreter: it is the one python3-pytest installs into.
		PYLAUNCH_PLUGIN="$top/_build/.libs/pylaunch.so" /usr/bin/python3 -m pytest \
			-p no:cacheprovider -m "not tree and not open_issue" "$@"
		rc_one=$?
		if has_tree "$release"; then
			step "the fan-out tree on a 16-node Slurm $release"
			NODES=16 PYLAUNCH_PLUGIN="$top/_build/.libs/pylaunch.so" /usr/bin/python3 -m pytest \
				-p no:cacheprovider -m "tree and not open_issue" "$@"
			rc_tree=$?
			[ $rc_one -eq 0 ] && rc_one=$rc_tree
		fi
		set -e
		bash "$top/tests/cluster/cluster.sh" down >/dev/null 2>&1 || true
		cd "$top"
	else
		if [ -n "$rootfs_pid" ]; then
			# A failed build is built again (and its error shown) by suite.sh's rootfs.sh.
			wait "$rootfs_pid" || true
			rootfs_pid=""
			cat "$rootfs_log"
		fi
		parts="suite"
		has_tree "$release" && parts="suite tree"
		set +e
		SUITE_PARTS=$parts bash tests/cluster/suite.sh "$release" "$@"
		rc_one=$?
		set -e
	fi
	echo "run-all: Slurm $release: exit $rc_one in $((SECONDS - t0)) s"
	[ $rc -eq 0 ] && rc=$rc_one
done

# The start-up benchmark's command must run on a fresh machine (issue 6): one point each way.
step "benchmark harness: self-checks, and start-up of 2 nodes with and without --pybundle"
cd "$top"
bench/run unit
bench_out=$(mktemp -d)
bench/run startup --nodes 2 --ranks 1 --delays-us 200 --cases shared,tree --shared-points 2x1 \
	--no-launch --plugin "$top/_build/.libs/pylaunch.so" --out "$bench_out"
/usr/bin/python3 tests/check-bench-smoke.py "$bench_out/startup.json" || rc=1
rm -rf "$bench_out" "$rootfs_log"
echo "run-all: exit $rc after $SECONDS s"
exit $rc
