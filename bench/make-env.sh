#!/bin/bash
# Build a relocatable Python environment from Debian's own packages, laid out as a prefix:
#
#   bench/make-env.sh [--tar FILE.tar.zst] [--force] DEST [DEBIAN-PACKAGE...]
#
#   DEST/bin/python3.11 (python3, python)       Debian's interpreter
#   DEST/lib/python3.11/                        its standard library (without test/, idlelib/, ...)
#   DEST/lib/python3/dist-packages/             the packages named and their python3-* dependencies
#   DEST/lib/*.so*                              every shared library they need except glibc's
#
# so that  PYTHONHOME=DEST LD_LIBRARY_PATH=DEST/lib DEST/bin/python3 -c 'import scipy'  runs
# without reading any Python file of /usr (checked with strace when it is installed).
# Default packages: python3-numpy python3-scipy python3-pandas python3-matplotlib python3-sklearn
# python3-statsmodels python3-skimage (they must be installed: apt-get install ...), about 650 MB
# in 21,000 files, the "realistic bundle" of the --pybundle tests.  --tar also writes DEST as a tarball, compressed
# by suffix (.tar.zst via zstd, .tar.gz, ...; members relative, "bin/python3.11"), mtimes kept so
# the .pyc files stay valid.  --force replaces a DEST built before by this script.
set -euo pipefail

tar_out="" force=0
while [ $# -gt 0 ]; do
	case $1 in
	--tar) tar_out=$2; shift 2 ;;
	--tar=*) tar_out=${1#--tar=}; shift ;;
	--force) force=1; shift ;;
	-h|--help) sed -n '2,18s/^# \{0,1\}//p' "$0"; exit 0 ;;
	-*) echo "make-env.sh: unknown option $1" >&2; exit 2 ;;
	*) break ;;
	esac
done
[ $# -ge 1 ] || { sed -n '2,18s/^# \{0,1\}//p' "$0" >&2; exit 2; }
dest=$(realpath -m "$1"); shift
pkgs=("$@")
[ ${#pkgs[@]} -gt 0 ] || pkgs=(python3-numpy python3-scipy python3-pandas python3-matplotlib python3-sklearn python3-statsmodels python3-skimage)

py=$(readlink -f /usr/bin/python3)          # /usr/bin/python3.11
pyver=$(basename "$py"); pyver=${pyver#python}  # 3.11
arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "make-env.sh: not installed: ${missing[*]} (apt-get install ${missing[*]})" >&2
	exit 1
fi

if [ -e "$dest" ] && [ -n "$(ls -A "$dest" 2>/dev/null)" ]; then
	if [ $force = 1 ] && [ -f "$dest/.make-env" ]; then
		rm -rf "$dest"
	else
		echo "make-env.sh: $dest exists and is not empty (--force replaces an earlier build)" >&2
		exit 1
	fi
fi
mkdir -p "$dest/bin" "$dest/lib/python$pyver" "$dest/lib/python3/dist-packages"

# --- the closure of the packages over python3-* dependencies, and their dist-packages entries
entries=$(python3 - "${pkgs[@]}" <<'EOF'
import re, subprocess, sys
out = subprocess.run(["dpkg-query", "-W", "-f=${Package}\t${Status}\t${Provides}\t${Depends}\t${Pre-Depends}\n"],
                     capture_output=True, text=True, check=True).stdout
installed, provides, deps = set(), {}, {}
for line in out.splitlines():
    name, status, prov, dep, pre = (line.split("\t") + [""] * 5)[:5]
    if not status.endswith("installed") or "not-installed" in status or "config-files" in status:
        continue
    installed.add(name)
    deps[name] = ",".join(x for x in (dep, pre) if x)
    for p in prov.split(","):
        p = re.sub(r"\(.*?\)", "", p).strip()
        if p:
            provides.setdefault(p, []).append(name)
def resolve(alt):
    n = re.sub(r"\(.*?\)|\[.*?\]|<.*?>", "", alt).strip().split(":")[0]
    if n in installed:
        return n
    for q in provides.get(n, []):
        return q
    return None
want = [p for p in sys.argv[1:]]
seen = set()
while want:
    p = want.pop()
    if p in seen:
        continue
    seen.add(p)
    for group in deps.get(p, "").split(","):
        for alt in group.split("|"):
            q = resolve(alt)
            if q:
                if q.startswith("python3-") and q not in seen:
                    want.append(q)
                break
top = set()
for p in sorted(seen):
    files = subprocess.run(["dpkg", "-L", p], capture_output=True, text=True).stdout.split("\n")
    for f in files:
        m = re.match(r"^/usr/lib/python3/dist-packages/([^/]+)", f)
        if m:
            top.add(m.group(1))
print("#packages " + " ".join(sorted(seen)))
for t in sorted(top):
    print(t)
EOF
)
closure=$(sed -n 's/^#packages //p' <<<"$entries")
echo "make-env.sh: packages: $closure" >&2

# --- interpreter, standard library, packages; symlinks are followed (Debian points some into
# /usr/share and /etc), timestamps kept (the .pyc files record their source's mtime)
cp -L --preserve=mode,timestamps "$py" "$dest/bin/python$pyver"
ln -s "python$pyver" "$dest/bin/python3"
ln -s "python$pyver" "$dest/bin/python"
(cd "/usr/lib/python$pyver" && for e in * .[!.]*; do
	[ -e "$e" ] || continue
	case $e in test|idlelib|turtledemo|tkinter|__phello__|dist-packages|site-packages|config-*) continue ;; esac
	cp -RL --preserve=mode,timestamps "$e" "$dest/lib/python$pyver/"
done)
rm -rf "$dest/lib/python$pyver"/lib2to3/tests "$dest/lib/python$pyver"/ctypes/test \
	"$dest/lib/python$pyver"/sqlite3/test "$dest/lib/python$pyver"/unittest/test
while read -r e; do
	[ -n "$e" ] && [ "${e#\#}" = "$e" ] || continue
	[ -e "/usr/lib/python3/dist-packages/$e" ] || continue
	cp -RL --preserve=mode,timestamps "/usr/lib/python3/dist-packages/$e" "$dest/lib/python3/dist-packages/"
done <<<"$entries"

# --- shared libraries: everything ldd resolves for the interpreter and the extension modules,
# except the C library's own (present on every node)
glibc='^(libc|libm|libdl|libpthread|librt|libutil|libresolv|libanl|libnsl|libBrokenLocale|libmvec|ld-linux-x86-64|ld-linux)\.so'
find "$dest" -type f \( -name '*.so' -o -name '*.so.*' -o -path "$dest/bin/*" \) -print0 |
	xargs -0 -n 64 ldd 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $1 "\t" $3 }' | sort -u |
	while IFS=$'\t' read -r name path; do
		[[ $name =~ $glibc ]] && continue
		[ -e "$dest/lib/$name" ] || cp -L --preserve=mode,timestamps "$path" "$dest/lib/$name"
	done
# libraries of the copied libraries that only resolve through $dest/lib
for _ in 1 2 3; do
	new=$(find "$dest/lib" -maxdepth 1 -name '*.so*' -print0 | LD_LIBRARY_PATH=$dest/lib xargs -0 ldd 2>/dev/null |
		awk '$2 == "=>" && $3 ~ /^\// { print $1 "\t" $3 }' | sort -u | while IFS=$'\t' read -r name path; do
			[[ $name =~ $glibc ]] || [ -e "$dest/lib/$name" ] || { cp -L --preserve=mode,timestamps "$path" "$dest/lib/$name"; echo "$name"; }
		done)
	[ -z "$new" ] && break
done
missing=$(find "$dest" -type f -name '*.so*' -print0 | LD_LIBRARY_PATH=$dest/lib xargs -0 -n 64 ldd 2>/dev/null | grep 'not found' | sort -u || true)
[ -z "$missing" ] || echo "make-env.sh: warning: unresolved libraries: $missing" >&2

cat >"$dest/.make-env" <<EOF
built by bench/make-env.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ) from Debian $(cat /etc/debian_version)
python: $("$py" -V 2>&1)
requested: ${pkgs[*]}
packages: $closure
use: PYTHONHOME=PREFIX LD_LIBRARY_PATH=PREFIX/lib PREFIX/bin/python3
EOF

# --- check: the packages import, and nothing of /usr's Python is read (the C library's own
# libraries, $glibc above, are the node's: numpy loads libmvec from Debian 13 on)
mods=()
for p in "${pkgs[@]}"; do
	m=${p#python3-}
	mods+=("${m//-/_}")
done
code="import $(IFS=,; echo "${mods[*]}")"
run=(env -i PATH=/usr/bin:/bin HOME=/nonexistent PYTHONHOME="$dest" LD_LIBRARY_PATH="$dest/lib"
	MPLCONFIGDIR=/tmp PYTHONDONTWRITEBYTECODE=1 "$dest/bin/python$pyver" -c "$code")
if command -v strace >/dev/null; then
	log=$(mktemp)
	strace -f -qq -e trace=openat,open,stat,newfstatat,execve -o "$log" "${run[@]}"
	leaks=$(grep -E '"/usr/lib/python3|"/usr/lib/'"$arch"'/[^"]*\.so' "$log" | grep -v ' = -1 ' |
		grep -vE '/(libc|libm|libdl|libpthread|librt|libutil|libresolv|libanl|libnsl|libBrokenLocale|libmvec|ld-linux-x86-64|ld-linux)\.so' || true)
	rm -f "$log"
	if [ -n "$leaks" ]; then
		echo "make-env.sh: $code read files outside $dest:" >&2
		echo "$leaks" | head -20 >&2
		exit 1
	fi
else
	"${run[@]}"
fi
echo "make-env.sh: $code: ok" >&2

size=$(du -sb "$dest" | cut -f1)
files=$(find "$dest" -type f | wc -l)
echo "make-env.sh: $dest: $((size / 1000000)) MB, $files files, $(find "$dest" | wc -l) entries" >&2

if [ -n "$tar_out" ]; then
	tar_out=$(realpath -m "$tar_out")
	mkdir -p "$(dirname "$tar_out")"
	(cd "$dest" && tar -a --sort=name --owner=0 --group=0 --numeric-owner -cf "$tar_out" -- $(ls -A))
	echo "make-env.sh: $tar_out: $(($(stat -c %s "$tar_out") / 1000000)) MB" >&2
fi
