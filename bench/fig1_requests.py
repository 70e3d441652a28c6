#!/usr/bin/python3
"""Figure 1 of Feng & Hand (SciPy 2016), re-measured on slowfs.

Counts the file-system requests that one `python3 -c 'import MODULE'` makes when its environment
lives on a shared file system (slowfs: bench/slowfs), as the number of extra PYTHONPATH entries
(empty directories on the same file system) grows: 0, 5, 10, 20, 40.  Two measures per point:

  * requests that reach the file system: slowfs's metadata requests (lookup, getattr, open,
    opendir, readdir, readlink, release, ...: what a metadata server would serve);
  * file system calls as the paper counted them: `strace -f -e trace=%file` lines.

One point is cross-checked in detail (every system call on slowfs against every FUSE request
kind), and the wall time of the 0 and 40 points is taken with a per-request delay of 0, 0.2 and
1 ms, and on local disk.  Writes bench/results/fig1_requests.json and fig1_requests.png.

Run as root (FUSE mount): bench/run fig1  (or bench/fig1_requests.py --help)
"""
import argparse
import collections
import datetime
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time

from benchlib import SlowFS, cpu_model

BENCH = os.path.dirname(os.path.abspath(__file__))
EXTRA = [0, 5, 10, 20, 40]
IMPORTS = ["numpy", "scipy", "scipy.stats"]
CACHED = "entry_timeout=86400,attr_timeout=86400,negative_timeout=86400"
META_KINDS = ["lookup", "getattr", "open", "release", "opendir", "readdir", "releasedir",
              "readlink", "statfs", "access", "getxattr", "listxattr", "lseek"]


def log(*a):
    print("fig1:", *a, file=sys.stderr, flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def py_env(prefix, extra_root, n):
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": "/nonexistent",  # no user site-packages: the environment alone
        "LANG": "C.UTF-8",
        "PYTHONHOME": prefix,
        "LD_LIBRARY_PATH": os.path.join(prefix, "lib"),
    }
    if n:
        env["PYTHONPATH"] = ":".join(os.path.join(extra_root, "p%02d" % i) for i in range(n))
    return env


def python_cmd(prefix, module):
    return [os.path.join(prefix, "bin", "python3"), "-c", "import " + module]


def timed(cmd, env, cwd):
    """Wall time of the command; its CPU time (user + system) is left in timed.cpu."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    run(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    timed.cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return wall


def timing_point(fn, reps):
    """reps runs of fn() (which calls timed): median, minimum and CPU time."""
    ts, cpus, extra = [], [], []
    for _ in range(reps):
        x = fn()
        ts.append(timed.last_wall)
        cpus.append(timed.cpu)
        extra.append(x)
    return {"median_s": round(statistics.median(ts), 4), "min_s": round(min(ts), 4),
            "runs_s": [round(t, 4) for t in ts], "cpu_s": round(statistics.median(cpus), 4)}, extra


SYSCALL = re.compile(r"^\d+\s+(?:<\.\.\. )?(\w+)\(")


def parse_strace(path, mnt):
    """Counts per system call: all, and those naming a path or descriptor on slowfs."""
    total, on_fs = {}, {}
    with open(path, errors="replace") as f:
        for line in f:
            if "resumed>" in line or line.startswith("+++") or " --- " in line:
                continue
            m = SYSCALL.match(line)
            if not m:
                continue
            name = m.group(1)
            total[name] = total.get(name, 0) + 1
            # the arguments (and, with -y, the paths of descriptors), not the result
            args = line.split(") = ")[0]
            if mnt + "/" in args or mnt + ">" in args or ('"' + mnt + '"') in args:
                on_fs[name] = on_fs.get(name, 0) + 1
    return total, on_fs


def strace_point(fs, prefix, extra_root, module, n, cwd, work, trace):
    logf = os.path.join(work, "strace.log")
    fs.reset()
    # strace itself runs with a clean environment: with the tracee's LD_LIBRARY_PATH its own
    # loader would search slowfs for strace's libraries (169 requests, none of them traced)
    setenv = []
    for k, v in py_env(prefix, extra_root, n).items():
        setenv += ["-E", f"{k}={v}"]
    run(["strace", "-f", "-qq", "-y", "-e", "trace=" + trace, "-o", logf] + setenv
        + python_cmd(prefix, module), env={"PATH": "/usr/bin:/bin"}, cwd=cwd,
        stdout=subprocess.DEVNULL)
    st = fs.settled()
    total, on_fs = parse_strace(logf, fs.mnt)
    return total, on_fs, st, logf


def predicted_from_strace(logf, mnt, src, program=None):
    """The FUSE requests the kernel should send for the system calls in an
    `strace -f -y -e trace=%file,%desc` log, by the rules of a FUSE mount with entry_timeout=0,
    attr_timeout=0 and default_permissions:
      * a path walk sends, per component below the mount root, one GETATTR of the directory it
        searches (the search-permission check wants fresh attributes) and one LOOKUP (no dentry is
        trusted), up to the first missing one (LOOKUP answered ENOENT); a symbolic link on the way
        (or at the end, when followed) costs a READLINK and the walk goes on through its target;
      * stat of a found path, fstat of a descriptor: one GETATTR;
      * open: one GETATTR (read-permission check) and one OPEN, or OPENDIR for a directory;
        execve: two GETATTR (execute, then read permission), one OPEN, and one RELEASE at exit;
      * readlink(2) of a symbolic link: one READLINK;
      * read(2) that reaches the end of the file: one GETATTR (is the cached size still right?);
        other reads and mmap page faults: READ requests of up to 128 KiB or none (page cache);
      * getdents64: one READDIR; close: one RELEASE or RELEASEDIR (sent after the process let go).
    program: strace's own stat(2) of the program before it starts it, which is not in the log."""
    p = collections.Counter()
    sysc = re.compile(r"^\d+\s+(\w+)\((.*)$")

    def walk(rel, follow_last):
        comps = [c for c in rel.split("/") if c]
        cur = src
        hops = 0
        while comps:
            comp = comps.pop(0)
            p["getattr"] += 1  # search permission on the directory cur
            if comp == ".":
                continue
            if comp == "..":
                cur = os.path.dirname(cur) if cur != src else cur
                continue
            p["lookup"] += 1
            nxt = os.path.join(cur, comp)
            if not os.path.lexists(nxt):
                p["lookup_enoent"] += 1
                return None
            if os.path.islink(nxt) and (comps or follow_last) and hops < 40:
                hops += 1
                p["readlink"] += 1
                target = os.readlink(nxt)
                if target.startswith("/"):
                    return None  # leaves the file system
                comps = [c for c in target.split("/") if c] + comps
                continue
            cur = nxt
        return cur

    if program and program.startswith(mnt + "/") and walk(program[len(mnt):], True):
        p["getattr"] += 1
    with open(logf, errors="replace") as f:
        for line in f:
            if "resumed>" in line:
                continue
            m = sysc.match(line)
            if not m:
                continue
            name, rest = m.groups()
            args, _, result = rest.partition(") = ")
            pm = re.match(r'(?:[^,"]*, )?"(' + re.escape(mnt) + r'(?:/[^"]*)?)"', args)
            if pm and name in ("openat", "open", "newfstatat", "stat", "lstat", "readlink",
                               "execve", "access", "faccessat", "statfs"):
                nofollow = name in ("lstat", "readlink") or "AT_SYMLINK_NOFOLLOW" in args \
                    or "O_NOFOLLOW" in args
                target = walk(pm.group(1)[len(mnt):], not nofollow)
                if target is None:
                    continue
                if name in ("newfstatat", "stat", "lstat", "statfs"):
                    p["getattr"] += 1
                elif name in ("openat", "open"):
                    p["getattr"] += 1
                    p["opendir" if os.path.isdir(target) else "open"] += 1
                elif name == "execve":
                    p["getattr"] += 2  # may_open(MAY_EXEC), then would_dump's MAY_READ
                    p["open"] += 1
                    p["release"] += 1  # at exit, with no close(2)
                elif name == "readlink" and os.path.islink(target):
                    p["readlink"] += 1
                continue
            fd = re.match(r"\d+<(" + re.escape(mnt) + r"(?:/[^>]*)?)>", args)
            if not fd:
                continue  # not a descriptor on slowfs
            if name == "newfstatat" and '""' in args:
                p["getattr"] += 1
            elif name == "read":
                r = re.search(r", (\d+)$", args)
                if r and result.split()[0].isdigit() and int(result.split()[0]) < int(r.group(1)):
                    p["getattr"] += 1
            elif name == "getdents64":
                p["readdir"] += 1
            elif name == "close":
                p["releasedir" if os.path.isdir(src + fd.group(1)[len(mnt):]) else "release"] += 1
    return dict(p)


def versions(prefix):
    out = subprocess.run(
        python_cmd(prefix, "numpy, scipy, sys; print(sys.version.split()[0], numpy.__version__, "
                           "scipy.__version__)"),
        env=py_env(prefix, "", 0), stdout=subprocess.PIPE, text=True, check=True).stdout.split()
    cpu = cpu_model()
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    def cmd_out(c):
        try:
            return subprocess.run(c, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout.strip()
        except OSError:
            return ""
    with open("/etc/debian_version") as f:
        debian = f.read().strip()
    nbytes = nfiles = 0
    for root, _, files in os.walk(prefix):
        for fn in files:
            nfiles += 1
            nbytes += os.lstat(os.path.join(root, fn)).st_size
    with open(os.path.join(prefix, ".make-env")) as f:
        pk = [l.split(":", 1)[1].split() for l in f if l.startswith("requested:")]
    return {
        "environment": {"bytes": nbytes, "files": nfiles, "requested_packages": pk[0] if pk else []},
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "kernel": platform.release(),
        "debian": debian,
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "python": out[0],
        "numpy": out[1],
        "scipy": out[2],
        "libfuse": cmd_out(["pkg-config", "--modversion", "fuse3"]),
        "strace": cmd_out(["strace", "-V"]).splitlines()[0] if shutil.which("strace") else "",
    }


def fit_slope(xs, ys):
    mx, my = statistics.mean(xs), statistics.mean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    return slope, my - slope * mx


def plot(res, png):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, cx, bx) = plt.subplots(1, 3, figsize=(18, 5.8))
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]
    col = {mod: colours[i % len(colours)] for i, mod in enumerate(res["imports"])}
    xs = res["extra_paths"]

    def lines(axis, key, style, marker, label_fmt):
        for mod in res["imports"]:
            tab = res[key] if key != "strace" else res["strace"]
            field = "file_syscalls" if key == "strace" else "metadata_requests"
            ys = [tab[mod][str(n)][field] for n in xs]
            slope = res["slope"][mod][{"counts": "metadata_requests",
                                       "counts_cached_cold": "metadata_requests_cached_cold",
                                       "strace": "file_syscalls"}[key]]
            axis.plot(xs, ys, linestyle=style, marker=marker, color=col[mod],
                      label=label_fmt.format(mod=mod, slope=slope))

    # left: what reaches a file system whose client caches nothing (slowfs's default)
    lines(ax, "counts", "-", "o", "import {mod}  (+{slope:.0f} per entry)")
    ax.set_title("Requests at the file system, client without cache\n"
                 "(slowfs: entry/attr/negative timeouts 0; metadata requests)", fontsize=10)
    # middle: the paper's measure, and a client that caches but starts cold
    lines(cx, "strace", "--", "s", "import {mod}: file syscalls, strace (+{slope:.0f})")
    lines(cx, "counts_cached_cold", ":", "^", "import {mod}: requests, caching client, cold (+{slope:.0f})")
    cx.plot([10], [2000], "k*", markersize=13, linestyle="none",
            label="paper: Python 3, import scipy, 10 entries (~2,000)")
    cx.set_title("File system calls (strace -f -e trace=%file, as the paper)\n"
                 "and requests of a client that caches, starting cold", fontsize=10)
    for axis in (ax, cx):
        axis.set_xlabel("extra PYTHONPATH entries (empty directories on the file system)")
        axis.set_ylabel("per Python start-up")
        axis.set_xticks(xs)
        axis.set_ylim(bottom=0)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8, loc="upper left")

    # right: start-up time at the 0 and 40 points against the per-request delay
    wt = res["wall_time"]
    groups = ["local disk", "slowfs\n0 ms", "slowfs\n0.2 ms", "slowfs\n1 ms"]
    keys = ["local", "0", "200", "1000"]
    nbar = 2 * len(res["imports"])
    width = 0.85 / nbar
    i = 0
    for mod in res["imports"]:
        for n, hatch, alpha in ((0, None, 1.0), (40, "///", 0.55)):
            vals = [wt[k][mod][str(n)]["median_s"] for k in keys]
            pos = [g + (i - (nbar - 1) / 2) * width for g in range(len(groups))]
            bx.bar(pos, vals, width, color=col[mod], alpha=alpha, hatch=hatch, edgecolor="white",
                   label=f"import {mod}, {n} extra entries")
            i += 1
    bx.set_xticks(range(len(groups)))
    bx.set_xticklabels(groups, fontsize=9)
    bx.set_xlabel("environment on local disk, or on slowfs with this time per metadata request")
    bx.set_ylabel("wall time of one start-up (s, median; log scale)")
    bx.set_yscale("log")
    bx.grid(axis="y", alpha=0.3, which="both")
    bx.legend(fontsize=8, loc="upper left")
    bx.set_title("Start-up time of one process alone\n(client without cache)", fontsize=10)
    m = res["machine"]
    fig.suptitle(f"Fig. 1 of Feng & Hand (2016) re-measured: Python {m['python']}, numpy {m['numpy']}, "
                 f"scipy {m['scipy']} from Debian {m['debian']}, environment on slowfs (FUSE), "
                 f"{m['date'][:10]}", fontsize=11)
    fig.tight_layout()
    fig.savefig(png, dpi=100)


def count_section(res, fs, prefix, extra_root, cwd, imports, reps_n):
    log("counting (delay 0)")
    for mod in imports:
        res["counts"][mod] = {}
        for n in EXTRA:
            reps = []
            for _ in range(reps_n):
                fs.reset()
                t = timed(python_cmd(prefix, mod), py_env(prefix, extra_root, n), cwd)
                st = fs.settled()
                st["wall_s"] = t
                reps.append(st)
            md = [r["metadata_requests"] for r in reps]
            med = sorted(reps, key=lambda r: r["metadata_requests"])[len(reps) // 2]
            point = {k: med[k] for k in META_KINDS + ["lookup_enoent", "read", "forget", "batch_forget",
                                                       "flush", "ioctl", "requests", "metadata_requests",
                                                       "read_bytes"]}
            point["metadata_requests_reps"] = md
            point["files_opened"] = len(med["opens_by_path"])
            point["opens_max_per_file"] = max(med["opens_by_path"].values(), default=0)
            res["counts"][mod][str(n)] = point
            log(f"  import {mod:12s} +{n:2d} entries: {point['metadata_requests']:6d} metadata requests "
                f"(reps {md}), {point['read']} reads, {point['read_bytes'] / 1e6:.1f} MB")

    log("counting with a caching client, cold: a fresh mount per run, cache timeouts of a day")
    for mod in imports:
        res["counts_cached_cold"][mod] = {}
        for n in EXTRA:
            reps = []
            for _ in range(reps_n):
                fs.mount(0, 0, CACHED)
                timed(python_cmd(prefix, mod), py_env(prefix, extra_root, n), cwd)
                reps.append(fs.settled())
            med = sorted(reps, key=lambda r: r["metadata_requests"])[len(reps) // 2]
            point = {k: med[k] for k in META_KINDS + ["lookup_enoent", "read", "requests",
                                                       "metadata_requests", "read_bytes"]}
            point["metadata_requests_reps"] = [r["metadata_requests"] for r in reps]
            res["counts_cached_cold"][mod][str(n)] = point
            log(f"  import {mod:12s} +{n:2d} entries: {point['metadata_requests']:6d} metadata requests "
                f"({point['lookup']} lookups)")
    fs.mount(0, 0, "")


def strace_section(res, fs, prefix, extra_root, cwd, imports, work, src, mnt):
    log("strace -f -e trace=%file (the paper's measure)")
    for mod in imports:
        res["strace"][mod] = {}
        for n in EXTRA:
            total, on_fs, st, _ = strace_point(fs, prefix, extra_root, mod, n, cwd, work, "%file")
            res["strace"][mod][str(n)] = {
                "file_syscalls": sum(total.values()),
                "file_syscalls_on_slowfs": sum(on_fs.values()),
                "by_syscall": total,
                "by_syscall_on_slowfs": on_fs,
                "metadata_requests_same_run": st["metadata_requests"],
            }
            log(f"  import {mod:12s} +{n:2d} entries: {sum(total.values()):6d} file syscalls, "
                f"{sum(on_fs.values())} on slowfs")

    for mod in imports:
        sl = {}
        for name, key, tab in (("metadata_requests", "metadata_requests", res["counts"]),
                               ("metadata_requests_cached_cold", "metadata_requests", res["counts_cached_cold"]),
                               ("file_syscalls", "file_syscalls", res["strace"])):
            s, b = fit_slope(EXTRA, [tab[mod][str(n)][key] for n in EXTRA])
            sl[name] = round(s, 2)
            sl[name + "_at_0"] = round(b, 1)
        res["slope"][mod] = sl

    log("cross-check: every syscall on slowfs (-e trace=%file,%desc) vs FUSE requests")
    for mod in imports:
        n = 10
        total, on_fs, st, logf = strace_point(fs, prefix, extra_root, mod, n, cwd, work, "%file,%desc")
        pred = predicted_from_strace(logf, mnt, src, program=python_cmd(prefix, mod)[0])
        kinds = [k for k in META_KINDS + ["lookup_enoent"] if st[k] or pred.get(k)]
        res["crosscheck"][mod] = {
            "extra_paths": n,
            "syscalls_on_slowfs": dict(sorted(on_fs.items(), key=lambda kv: -kv[1])),
            "syscalls_on_slowfs_total": sum(on_fs.values()),
            "fuse_requests": {k: st[k] for k in kinds + ["read", "ioctl", "flush", "forget", "batch_forget"]},
            "fuse_metadata_requests": st["metadata_requests"],
            "fuse_metadata_requests_without_strace": res["counts"][mod][str(n)]["metadata_requests"],
            "predicted_from_strace": {k: pred.get(k, 0) for k in kinds},
            "predicted_metadata_requests": sum(pred.get(k, 0) for k in kinds if k != "lookup_enoent"),
        }
        shutil.copy(logf, os.path.join(work, f"strace-{mod}-{n}.log"))
        c = res["crosscheck"][mod]
        log(f"  import {mod:12s} +{n}: {c['syscalls_on_slowfs_total']} syscalls on slowfs -> "
            f"{c['fuse_metadata_requests']} metadata requests, {c['predicted_metadata_requests']} predicted")


def timing_section(res, fs, prefix, extra_root, cwd, imports, reps, src):
    log("wall time")
    res["machine"]["loadavg_before_timing"] = os.getloadavg()
    for delay in (0, 200, 1000):
        fs.mount(delay, 0, "")
        res["wall_time"][str(delay)] = {}
        for mod in imports:
            res["wall_time"][str(delay)][mod] = {}
            timed(python_cmd(prefix, mod), py_env(prefix, extra_root, 0), cwd)  # warm
            for n in (0, 40):
                def one():
                    fs.reset()
                    timed.last_wall = timed(python_cmd(prefix, mod), py_env(prefix, extra_root, n), cwd)
                    return fs.settled()["metadata_requests"]
                point, mds = timing_point(one, reps)
                point["metadata_requests"] = mds
                res["wall_time"][str(delay)][mod][str(n)] = point
                log(f"  delay {delay:4d} us import {mod:12s} +{n:2d}: {point['median_s']:.3f} s median, "
                    f"{point['min_s']:.3f} min, {point['cpu_s']:.3f} s CPU ({mds[0]} requests)")
    fs.umount()
    # the same on local disk (no FUSE): the CPU floor
    res["wall_time"]["local"] = {}
    lprefix, lextra = os.path.join(src, "env"), os.path.join(src, "extra")
    for mod in imports:
        res["wall_time"]["local"][mod] = {}
        timed(python_cmd(lprefix, mod), py_env(lprefix, lextra, 0), cwd)
        for n in (0, 40):
            def one():
                timed.last_wall = timed(python_cmd(lprefix, mod), py_env(lprefix, lextra, n), cwd)
            point, _ = timing_point(one, reps)
            res["wall_time"]["local"][mod][str(n)] = point
            log(f"  local disk          import {mod:12s} +{n:2d}: {point['median_s']:.3f} s median, "
                f"{point['min_s']:.3f} min, {point['cpu_s']:.3f} s CPU")
    res["machine"]["loadavg_after_timing"] = os.getloadavg()


def markdown(res):
    """The tables of bench/README.md, from the JSON."""
    xs = res["extra_paths"]
    out = ["| import | what is counted | " + " | ".join(f"+{n}" for n in xs) + " | per entry |",
           "| --- | --- |" + " ---: |" * (len(xs) + 1)]
    rows = (("requests at the file system, client without cache", "counts", "metadata_requests", "metadata_requests"),
            ("file system calls (strace, the paper's measure)", "strace", "file_syscalls", "file_syscalls"),
            ("requests, caching client starting cold", "counts_cached_cold", "metadata_requests",
             "metadata_requests_cached_cold"))
    for mod in res["imports"]:
        for i, (label, tab, key, sl) in enumerate(rows):
            out.append(f"| {'`' + mod + '`' if i == 0 else ''} | {label} | "
                       + " | ".join(f"{res[tab][mod][str(n)][key]:,}" for n in xs)
                       + f" | +{res['slope'][mod][sl]:.0f} |")
    out += ["", "| import | extra entries | local disk | slowfs 0 ms | slowfs 0.2 ms | slowfs 1 ms | requests |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    wt = res["wall_time"]
    for mod in res["imports"]:
        for n in (0, 40):
            cells = []
            for k in ("local", "0", "200", "1000"):
                p = wt[k][mod][str(n)]
                cells.append(f"{p['median_s']:.2f} s ({p.get('cpu_s', 0):.2f})")
            out.append(f"| `{mod}` | {n} | " + " | ".join(cells)
                       + f" | {res['counts'][mod][str(n)]['metadata_requests']:,} |")
    out += ["", "| import (+10 entries) | syscalls on slowfs | lookup | lookup_enoent | getattr | open | release | "
            "opendir | readdir | releasedir | readlink | metadata requests |",
            "| --- | ---: |" + " ---: |" * 10]
    for mod, c in res["crosscheck"].items():
        f, p = c["fuse_requests"], c["predicted_from_strace"]
        cells = [f"{f.get(k, 0):,} / {p.get(k, 0):,}" for k in
                 ("lookup", "lookup_enoent", "getattr", "open", "release", "opendir", "readdir", "releasedir", "readlink")]
        out.append(f"| `{mod}` | {c['syscalls_on_slowfs_total']:,} | " + " | ".join(cells)
                   + f" | {c['fuse_metadata_requests']:,} / {c.get('predicted_metadata_requests', 0):,} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default=os.environ.get("BENCH_WORK", "/var/tmp/pylaunch-bench"),
                    help="scratch directory: the file system's source, the mount point (%(default)s)")
    ap.add_argument("--out", default=os.path.join(BENCH, "results"), help="results directory")
    ap.add_argument("--reps", type=int, default=3, help="repetitions per point (%(default)s)")
    ap.add_argument("--imports", default=",".join(IMPORTS), help="modules (%(default)s)")
    ap.add_argument("--plot-only", action="store_true", help="redraw the PNG from the JSON")
    ap.add_argument("--markdown", action="store_true", help="print the tables of bench/README.md from the JSON")
    ap.add_argument("--timing-only", action="store_true",
                    help="measure the wall times again (a quieter machine) into the existing JSON")
    args = ap.parse_args()

    os.makedirs(args.out, exist_ok=True)
    out_json = os.path.join(args.out, "fig1_requests.json")
    out_png = os.path.join(args.out, "fig1_requests.png")
    if args.plot_only:
        with open(out_json) as f:
            plot(json.load(f), out_png)
        log("wrote", out_png)
        return
    if args.markdown:
        with open(out_json) as f:
            print(markdown(json.load(f)))
        return
    if os.geteuid() != 0:
        sys.exit("fig1: run as root (FUSE mount with allow_other)")
    for tool in ("strace", "fusermount3", "mountpoint"):
        if not shutil.which(tool):
            sys.exit(f"fig1: {tool} missing: bench/run deps")
    imports = args.imports.split(",")

    work = os.path.abspath(args.work)
    src = os.path.join(work, "fs")          # what slowfs serves
    mnt = os.path.join(work, "mnt")         # where it is mounted
    cwd = os.path.join(work, "cwd")         # the processes' working directory: local disk
    os.makedirs(cwd, exist_ok=True)
    os.makedirs(src, exist_ok=True)
    env_src = os.path.join(src, "env")
    if not os.path.exists(os.path.join(env_src, ".make-env")):
        log("building the environment in", env_src)
        run([os.path.join(BENCH, "make-env.sh"), "--force", env_src])
    for i in range(max(EXTRA)):
        os.makedirs(os.path.join(src, "extra", "p%02d" % i), exist_ok=True)

    fs = SlowFS(src, mnt)
    prefix = os.path.join(mnt, "env")
    extra_root = os.path.join(mnt, "extra")
    if args.timing_only:
        with open(out_json) as f:
            res = json.load(f)
        imports = res["imports"]
        res["wall_time"] = {}
        res["machine"]["timing_date"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    else:
        res = None
    res = res or {
        "what": "Requests made by one `python3 -c 'import MODULE'` whose environment (PYTHONHOME, "
                "LD_LIBRARY_PATH) and n extra PYTHONPATH entries (empty directories) are on slowfs",
        "machine": versions(os.path.join(src, "env")),
        "imports": imports,
        "extra_paths": EXTRA,
        "reps": args.reps,
        "slowfs": "entry_timeout=0, attr_timeout=0, negative_timeout=0, default_permissions, no keep_cache; "
                  "metadata_requests = all requests but read, forget, flush and ioctl (those are not queued)",
        "counts_cached_cold_what": "the same with a caching client that starts cold: slowfs mounted afresh "
                                   "for each run with " + CACHED + " (each name looked up once)",
        "counts": {}, "counts_cached_cold": {}, "strace": {}, "slope": {}, "wall_time": {}, "crosscheck": {},
    }
    try:
        if not args.timing_only:
            fs.mount(0, 0, "")
            for mod in imports:  # warm the local page cache under the source
                timed(python_cmd(prefix, mod), py_env(prefix, extra_root, 0), cwd)
            count_section(res, fs, prefix, extra_root, cwd, imports, args.reps)
            strace_section(res, fs, prefix, extra_root, cwd, imports, work, src, mnt)
        timing_section(res, fs, prefix, extra_root, cwd, imports, args.reps, src)
    finally:
        if fs.mounted():
            fs.umount()
        complete = all(k in res["wall_time"] for k in ("local", "0", "200", "1000")) and res["counts"]
        with open(out_json if complete else out_json + ".partial", "w") as f:
            json.dump(res, f, indent=1)
            f.write("\n")
    plot(res, out_png)
    log("wrote", out_json, "and", out_png)


if __name__ == "__main__":
    main()
