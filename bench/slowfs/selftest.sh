#!/bin/bash
# Self-test of slowfs (as root): counts of known workloads, the metadata delay, the read cap,
# reset, per-path opens, access by another user and from another mount namespace, unmount stats.
#   bench/slowfs/selftest.sh        prints one line per check and "N passed, N failed"
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ "$(id -u)" = 0 ] || { echo "selftest.sh: run as root" >&2; exit 2; }
make -s -C "$here" || exit 1

work=$(mktemp -d /tmp/slowfs-selftest.XXXXXX)
chmod 755 "$work" # other users must reach the mount point
export SLOWFS_STATE=$work/state
src=$work/src mnt=$work/mnt
pass=0 fail=0
cleanup() {
	"$here/umount.sh" "$mnt" >/dev/null 2>&1
	rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$src/d" "$mnt"
for i in $(seq 1 100); do printf 'file %03d\n' "$i" >"$src/f$i"; done
for i in $(seq 1 20); do : >"$src/d/e$i"; done
head -c $((20 * 1000 * 1000)) /dev/zero >"$src/big"
ln -s f1 "$src/link"
chmod 0600 "$src/f100"

check() { # check NAME ACTUAL OP EXPECTED
	if [ "$2" "$3" "$4" ]; then
		pass=$((pass + 1))
		echo "ok    $1 ($2 $3 $4)"
	else
		fail=$((fail + 1))
		echo "FAIL  $1 (got $2, want $3 $4)"
	fi
}
stats() { "$here/stats.sh" "$mnt" "${1:-dump}"; }
get() { # get KEY from the JSON on stdin
	python3 -c 'import json,sys; d=json.load(sys.stdin); k=sys.argv[1].split("."); [d:=d.get(x, 0) if isinstance(d, dict) else 0 for x in k]; print(d)' "$1"
}
secs() { python3 -c 'import sys,time; t=time.monotonic(); import subprocess; subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True); print(f"{time.monotonic()-t:.3f}")' "$@"; }
ge() { python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) >= float(sys.argv[2]) else 1)' "$1" "$2"; }

"$here/mount.sh" "$mnt" "$src" 0 0 >/dev/null || { echo "FAIL  mount"; echo "0 passed, 1 failed"; exit 1; }

# 1. stat of 100 files: one LOOKUP each (entry_timeout=0: no dentry is trusted), one GETATTR
#    each for the file's attributes (attr_timeout=0) and one each for the root directory, whose
#    search permission the kernel checks against fresh attributes (default_permissions)
stats reset >/dev/null
stat "$mnt"/f{1..100} >/dev/null
s=$(stats)
check "stat x100: lookup" "$(get lookup <<<"$s")" -eq 100
check "stat x100: getattr" "$(get getattr <<<"$s")" -eq 200
check "stat x100: nothing opened or read" "$(get open <<<"$s")$(get read <<<"$s")" = 00

# 2. the same again: still 100 lookups, nothing is cached in the kernel
stats reset >/dev/null
stat "$mnt"/f{1..100} >/dev/null
check "stat x100 again: lookup (no kernel cache)" "$(get lookup <<<"$(stats)")" -eq 100

# 3. a missing name: one LOOKUP answered ENOENT
stats reset >/dev/null
stat "$mnt/missing" >/dev/null 2>&1
s=$(stats)
check "stat missing: lookup_enoent" "$(get lookup_enoent <<<"$s")" -eq 1
check "stat missing: lookup" "$(get lookup <<<"$s")" -eq 1

# 4. cat of 10 files: 10 OPEN, 10 RELEASE, 9 bytes each read, opens_by_path f1..f10 = 1
stats reset >/dev/null
cat "$mnt"/f{1..10} >/dev/null
s=$(stats)
check "cat x10: open" "$(get open <<<"$s")" -eq 10
check "cat x10: release" "$(get release <<<"$s")" -eq 10
check "cat x10: read_bytes" "$(get read_bytes <<<"$s")" -eq 90
check "cat x10: opens_by_path.f7" "$(get opens_by_path.f7 <<<"$s")" -eq 1
check "cat x10: read_bytes_by_path.f10" "$(get read_bytes_by_path.f10 <<<"$s")" -eq 9

# 5. a directory listing and a symlink
stats reset >/dev/null
ls "$mnt/d" >/dev/null
readlink "$mnt/link" >/dev/null
s=$(stats)
check "ls: opendir" "$(get opendir <<<"$s")" -eq 1
check "ls: readdir" "$(get readdir <<<"$s")" -ge 1
check "ls: releasedir" "$(get releasedir <<<"$s")" -eq 1
check "readlink: readlink" "$(get readlink <<<"$s")" -eq 1

# 6. a 20 MB file read twice: read_bytes 40 MB (no keep_cache: every open reads again)
stats reset >/dev/null
cat "$mnt/big" >/dev/null
cat "$mnt/big" >/dev/null
s=$(stats)
check "big x2: read_bytes" "$(get read_bytes <<<"$s")" -eq 40000000
check "big x2: opens_by_path.big" "$(get opens_by_path.big <<<"$s")" -eq 2
check "big x2: metadata requests stay few (no GETATTR per read)" "$(get metadata_requests <<<"$s")" -le 20

# 7. another user and another mount namespace see the mount
check "allow_other: nobody reads f1" "$(setpriv --reuid=65534 --regid=65534 --clear-groups cat "$mnt/f1" 2>&1)" = "file 001"
check "permissions: nobody cannot read a 0600 file" "$(setpriv --reuid=65534 --regid=65534 --clear-groups cat "$mnt/f100" >/dev/null 2>&1; echo $?)" -ne 0
check "new mount namespace (propagation private) lists the mount" \
	"$(unshare --mount --propagation private ls "$mnt" | wc -l)" -eq 103

# 8. read-only
check "read-only: writing fails" "$( (echo x >"$mnt/new") 2>/dev/null; echo $?)" -ne 0

# 9. reset zeroes
s=$(stats reset)
check "reset: requests" "$(get requests <<<"$s")" -eq 0
check "reset: opens_by_path empty" "$(get opens_by_path <<<"$s")" = "{}"

"$here/umount.sh" "$mnt" >/dev/null

# 10. delay: 100 stats = 300 metadata requests at 2 ms each take >= 0.6 s
"$here/mount.sh" "$mnt" "$src" 2000 0 >/dev/null
t=$(secs stat "$mnt"/f{1..100})
ge "$t" 0.6 && r=yes || r=no
check "delay_us=2000: 300 requests take >= 0.6 s (took $t s)" $r = yes
ge 1.0 "$t" && r=yes || r=no
check "delay_us=2000: ... and < 1.0 s (took $t s)" $r = yes
# concurrent clients are served one at a time: 4 x 75 requests still take >= 0.6 s
t=$(secs bash -c "for i in 1 2 3 4; do stat $mnt/f{1..25} >/dev/null & done; wait")
ge "$t" 0.6 && r=yes || r=no
check "delay_us=2000: 4 concurrent clients serialised (took $t s)" $r = yes
check "delay_us=2000: queue held several requests" "$(get metadata_max_queue <<<"$(stats)")" -ge 2
"$here/umount.sh" "$mnt" >/dev/null

# 11. direct_io: two readers of one file at once each reach slowfs (no shared page cache)
SLOWFS_OPTS=direct_io "$here/mount.sh" "$mnt" "$src" 0 0 >/dev/null
stats reset >/dev/null
cat "$mnt/big" >/dev/null & cat "$mnt/big" >/dev/null & wait
s=$(stats)
check "direct_io: 2 concurrent readers read 2 x 20 MB" "$(get read_bytes <<<"$s")" -eq 40000000
check "direct_io: config reports it" "$(get config.direct_io <<<"$s")" = True
"$here/umount.sh" "$mnt" >/dev/null

# 12. read cap: 20 MB at 40 MB/s takes >= 0.45 s (1 MiB of burst)
"$here/mount.sh" "$mnt" "$src" 0 40 >/dev/null
t=$(secs cat "$mnt/big")
ge "$t" 0.45 && r=yes || r=no
check "read_mbps=40: 20 MB take >= 0.45 s (took $t s)" $r = yes
ge 0.8 "$t" && r=yes || r=no
check "read_mbps=40: ... and < 0.8 s (took $t s)" $r = yes
cat "$mnt/f2" >/dev/null
"$here/umount.sh" "$mnt" >/dev/null

# 13. unmount wrote the final counters
s=$(cat "$("$here/statedir.sh" "$mnt")/stats.json")
check "unmount: final stats event" "$(get event <<<"$s")" = unmount
check "unmount: final stats count the last open" "$(get opens_by_path.f2 <<<"$s")" -eq 1

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
