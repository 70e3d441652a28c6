#!/usr/bin/python3
"""Node cache: job arrays (issue 16).

A job array on N nodes (16), T tasks per node (8) run one after another, every task
`python3 -c 'import numpy'`, four ways side by side in one hold of the test cluster:

  nobundle  no --pybundle: Debian's /usr/bin/python3 and its numpy from the local disk (page
            cache): the baseline, a task when nothing is staged
  localenv  no --pybundle: the bundle's own environment, its unpacked copy on the local disk
            (PYTHONHOME=...): the same interpreter and files as the bundle's, so that what is
            left between it and `cache` is the plugin's part and where the files live
  nocache   --pybundle=B, B the numpy + scipy environment (start-up's, bench/make-env.sh: 193 MB
            in 6,879 files, .tar.zst 62 MB) on slowfs, with cache.enabled: no: every task's
            prolog reads B and extracts it anew, and its epilog removes the tree
  cache     the same with cache.enabled: yes: the first task per node stages (stage line
            outcome=staged), the others start from the kept tree (outcome=cached)

Method.  Per node one `sbatch --array=1-T%1 -w nodeI` (the %1 throttle runs a node's tasks in
sequence; one array per node rather than one of N x T tasks so that every node gets exactly T).
The N arrays are submitted held and released together: submission opens B once per array to
check it, so slowfs's counters are reset between the two.  B's mount has slowfs's read cap
(--read-mbps) and direct_io (the simulated nodes share one page cache: without it a node could
read another's pages unseen), and its per-request delay (--delay-us).

Every task prints its clock ($EPOCHREALTIME: no fork) when its script starts, just before Python,
and at its end; Python prints its own once numpy is imported ("ready").  Per task:

  start   ready minus its reference: the release for a node's first task, the end of the node's
          previous task for the others.  Scheduling, the previous task's epilog, the prolog
          (staging, or the cache lookup), the batch step's launch, the interpreter and the import
          are all in it: what a user waits between two tasks of the array.
  node    ready minus the plugin's first prolog line for the job (slurmd's log, in ms; the stage
          line's own start when it is earlier): the node's part alone, without slurmctld's.
  gap     that prolog line minus the reference: slurmctld's part and the previous epilog.

Time to the last task's start: the last ready minus the release.  From slurmd's logs also the
stage lines (outcome, seconds, shared_bytes) and every epilog's duration; from slowfs the opens and
bytes of B in each mode (expected: N x T opens without the cache, N with it, none without a bundle).

Target (issue 16): every task after the first per node starts within 1.1 x the time of a task
without --pybundle.  Reported: the median start of the later tasks with the cache over the median
start of the later tasks without a bundle (the same reference: the previous task's end), measured
in the same run, the same for p90 and for the node's part, and the share of the later cached tasks
within 1.1 x the baseline's median; each against nobundle (the issue's baseline) and against
localenv; with --reps, also per repetition.  This machine is shared and noisy: only ratios of one
run mean anything.

Run as root: bench/run cache-array [options]  ->  bench/results/cache_array.{json,png}
"""
import argparse
import collections
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

import benchlib as bl
import startup

MODES = {"nobundle": "no --pybundle: /usr/bin/python3 and numpy from the local disk",
         "localenv": "no --pybundle: the bundle's environment, unpacked on the local disk",
         "nocache": "--pybundle on slowfs, cache.enabled: no (every task stages)",
         "cache": "--pybundle on slowfs, cache.enabled: yes (the first task per node stages)"}
CACHE_YAML = {"nobundle": "", "localenv": "", "nocache": "cache:\n  enabled: no\n", "cache": "cache:\n  enabled: yes\n"}
PACKAGES = ["python3-numpy", "python3-scipy"]  # start-up's environment ("small")
LOCAL_PYTHON = "/usr/bin/python3"  # Debian's, with python3-numpy: what the bundle holds a copy of
BUNDLE = "env.tar.zst"
BUNDLE_MODES = ("nocache", "cache")
TARGET_RATIO = 1.1
CODE = "import time, sys, numpy; print('R', repr(time.time()), sys.prefix, flush=True)"
SCRIPT = """#!/bin/bash
# One task of the array: clocks when the script starts (B), before Python (P), at the end (E);
# Python prints its own once numpy is imported (R).
echo "B $EPOCHREALTIME $SLURM_JOB_ID $SLURM_ARRAY_JOB_ID $SLURM_ARRAY_TASK_ID $SLURMD_NODENAME"
p=$EPOCHREALTIME
{python} -c "{code}"
rc=$?
echo "P $p"
echo "E $EPOCHREALTIME $rc"
"""
# slurmd's log: the plugin's first prolog line for every job (a job without a pylaunch option
# gets "no pylaunch option" at debug level, the cluster's SlurmdDebug), its epilog's duration,
# and Slurm's own launch of the batch step.
PROLOG_LINE = re.compile(r"^\[(?P<ts>[0-9T:.-]+)\] .*?pylaunch: (?:debug: )?prolog job (?P<job>\d+) on ")
EPILOG_LINE = re.compile(r"^\[(?P<ts>[0-9T:.-]+)\] .*?pylaunch: epilog job (?P<job>\d+) on \S+: "
                         r"done in (?P<sec>[0-9.]+) s")
BATCH_LINE = re.compile(r"^\[(?P<ts>[0-9T:.-]+)\] .*?Launching batch job (?P<job>\d+)")


def clock(text):
    """$EPOCHREALTIME follows LC_NUMERIC: a decimal comma in some locales."""
    return float(text.replace(",", "."))


def parse_task_output(text):
    """The clocks one task printed, or None if its script never started."""
    rec = {}
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 6 and f[0] == "B":
            rec.update(begin=clock(f[1]), job=int(f[2]), array_job=int(f[3]), index=int(f[4]), node=f[5])
        elif len(f) >= 2 and f[0] == "P":
            rec["python_at"] = clock(f[1])
        elif len(f) >= 3 and f[0] == "R":
            rec.update(ready=float(f[1]), prefix=f[2])
        elif len(f) >= 3 and f[0] == "E":
            rec.update(end=clock(f[1]), rc=int(f[2]))
    return rec if "begin" in rec else None


def node_events(lines):
    """Per job, what one node's slurmd log says of it."""
    ev = collections.defaultdict(dict)
    for line in lines:
        rec = bl.parse_stage_line(line)
        if rec:
            ev[rec["job"]].setdefault("stage", {k: rec.get(k) for k in
                                                ("outcome", "mode", "seconds", "shared_bytes", "start", "end")})
            continue
        m = PROLOG_LINE.match(line)
        if m:
            ev[int(m.group("job"))].setdefault("prolog_at", bl.log_time(m.group("ts")))
            continue
        m = EPILOG_LINE.match(line)
        if m:
            ev[int(m.group("job"))].update(epilog_at=bl.log_time(m.group("ts")), epilog_s=float(m.group("sec")))
            continue
        m = BATCH_LINE.match(line)
        if m:
            ev[int(m.group("job"))].setdefault("batch_at", bl.log_time(m.group("ts")))
    return ev


# ---------------------------------------------------------------- figures

def dist(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    p90 = statistics.quantiles(xs, n=10, method="inclusive")[8] if len(xs) > 1 else xs[0]
    return {"n": len(xs), "median": round(statistics.median(xs), 3), "p90": round(p90, 3),
            "min": round(xs[0], 3), "max": round(xs[-1], 3)}


def sub(a, b):
    return None if a is None or b is None else round(a - b, 4)


def task_figures(pt):
    """Each task's start, node and gap (module docstring), in the order its node ran them."""
    by_node = collections.defaultdict(list)
    for t in pt["tasks"]:
        by_node[t["node"]].append(t)
    for ts in by_node.values():
        ts.sort(key=lambda t: (t.get("begin") is None, t.get("begin") or 0, t["index"]))
        ref = pt["released_at"]
        for k, t in enumerate(ts):
            t["first"] = k == 0
            t["position"] = k + 1
            prolog = t.get("prolog_at")
            if t.get("stage") and t["stage"].get("start") is not None:
                prolog = min(x for x in (prolog, t["stage"]["start"]) if x is not None)
            t["start_s"] = sub(t.get("ready"), ref)
            t["node_s"] = sub(t.get("ready"), prolog)
            t["gap_s"] = sub(prolog, ref)
            t["python_s"] = sub(t.get("ready"), t.get("python_at"))
            ref = t.get("end")  # None: the next task has no reference (this one failed)


def point_summary(pt):
    task_figures(pt)
    ts = pt["tasks"]
    groups = {"first": [t for t in ts if t["first"]], "later": [t for t in ts if not t["first"]]}
    readies = [t["ready"] for t in ts if t.get("ready") is not None]
    s = {"tasks": len(ts), "ready": len(readies),
         "last_start_s": round(max(readies) - pt["released_at"], 3) if readies else None}
    for g, sel in groups.items():
        s[g] = {"start_s": dist(t["start_s"] for t in sel), "node_s": dist(t["node_s"] for t in sel),
                "gap_s": dist(t["gap_s"] for t in sel), "python_s": dist(t["python_s"] for t in sel),
                "stage_s": dist(t.get("stage", {}).get("seconds") for t in sel),
                "outcomes": dict(collections.Counter(t.get("stage", {}).get("outcome", "-") for t in sel))}
    s["epilog_s"] = dist(t.get("epilog_s") for t in ts)
    return s


def expected_outcomes(mode):
    """The stage lines each group should show: none without a bundle."""
    return {"nocache": ("staged", "staged"), "cache": ("staged", "cached")}.get(mode, ("-", "-"))


def expected_opens(mode, nodes, tasks):
    return {"nocache": nodes * tasks, "cache": nodes}.get(mode, 0)


def check_point(pt):
    """ok: every task ran, from where it should, and the stage lines say what the mode means."""
    bad = []
    for t in pt["tasks"]:
        if t.get("ready") is None or t.get("rc") != 0:
            bad.append(f"{t['node']}[{t['index']}]: {t.get('error', 'no ready line, rc %s' % t.get('rc'))}")
        elif not t["prefix"].startswith(expected_prefix(pt["mode"], pt.get("env", ""))):
            bad.append(f"{t['node']}[{t['index']}]: python ran from {t['prefix']}")
    first, later = expected_outcomes(pt["mode"])
    s = pt["summary"]
    if set(s["first"]["outcomes"]) != {first} or (s["later"]["outcomes"] and set(s["later"]["outcomes"]) != {later}):
        bad.append(f"stage outcomes {s['first']['outcomes']} (first), {s['later']['outcomes']} (later): "
                   f"wanted {first}, {later}")
    return bad


def ratio(a, b):
    return round(a / b, 3) if a is not None and b else None


def derive(res):
    """Per point its figures; per mode the runs pooled; the targets of the issue."""
    nodes, tasks = res["config"]["nodes"], res["config"]["tasks_per_node"]
    size = res["environment"]["tarball_bytes"]
    for pt in res["points"]:
        if pt.get("skipped"):
            continue
        pt["summary"] = point_summary(pt)
        problems = check_point(pt)
        pt["ok"] = not problems and not pt.get("error")
        if problems:
            pt["problems"] = problems
        fs = pt.get("fs", {})
        pt["bundle_opens"] = fs.get("file_opens")
        pt["bundle_bytes_over_size"] = round(fs["file_read_bytes"] / size, 3) if fs.get("file_read_bytes") is not None else None
        pt["opens_expected"] = expected_opens(pt["mode"], pt["nodes"], pt["tasks_per_node"])
    modes = {}
    for mode in MODES:
        pts = [p for p in res["points"] if p["mode"] == mode and "summary" in p]
        if not pts:
            continue
        tsk = [t for p in pts for t in p["tasks"]]
        modes[mode] = {
            "points": len(pts), "ok": all(p["ok"] for p in pts),
            "last_start_s": dist(p["summary"]["last_start_s"] for p in pts),
            "first_start_s": dist(t["start_s"] for t in tsk if t["first"]),
            "later_start_s": dist(t["start_s"] for t in tsk if not t["first"]),
            "first_node_s": dist(t["node_s"] for t in tsk if t["first"]),
            "later_node_s": dist(t["node_s"] for t in tsk if not t["first"]),
            "later_gap_s": dist(t["gap_s"] for t in tsk if not t["first"]),
            "python_s": dist(t["python_s"] for t in tsk),
            "bundle_opens": [p["bundle_opens"] for p in pts], "opens_expected": pts[0]["opens_expected"],
            "bundle_bytes_over_size": [p["bundle_bytes_over_size"] for p in pts]}
    res["modes"] = modes
    t = {"target_ratio": TARGET_RATIO, "nodes": nodes, "tasks_per_node": tasks}
    cache, nocache = modes.get("cache"), modes.get("nocache")
    later_cached = [x["start_s"] for p in res["points"] if p["mode"] == "cache" and "summary" in p
                    for x in p["tasks"] if not x["first"] and x["start_s"] is not None]
    # nobundle is the baseline (a job without --pybundle from the local disk); localenv
    # the same interpreter and files as the bundle's
    for b in ("nobundle", "localenv"):
        base = modes.get(b)
        if not (base and cache and base["later_start_s"] and cache["later_start_s"]):
            continue
        bs, cs = base["later_start_s"], cache["later_start_s"]
        t[f"later_start_cache_over_{b}"] = {"median": ratio(cs["median"], bs["median"]), "p90": ratio(cs["p90"], bs["p90"])}
        if base["later_node_s"] and cache["later_node_s"]:
            t[f"later_node_cache_over_{b}"] = {"median": ratio(cache["later_node_s"]["median"], base["later_node_s"]["median"]),
                                               "p90": ratio(cache["later_node_s"]["p90"], base["later_node_s"]["p90"])}
        t[f"later_cache_within_target_of_{b}_share"] = (
            round(sum(x <= TARGET_RATIO * bs["median"] for x in later_cached) / len(later_cached), 3) if later_cached else None)
        t["meets_target" if b == "nobundle" else f"meets_target_against_{b}"] = \
            t[f"later_start_cache_over_{b}"]["median"] <= TARGET_RATIO
        # each repetition alone: how far the pooled ratio moves with the machine's load
        reps = {}
        for p in res["points"]:
            if p["mode"] in (b, "cache") and "summary" in p and p["summary"]["later"]["start_s"]:
                reps.setdefault(p["rep"], {})[p["mode"]] = p["summary"]["later"]["start_s"]["median"]
        t[f"later_start_cache_over_{b}_per_rep"] = [ratio(r["cache"], r[b]) for _, r in sorted(reps.items())
                                                    if len(r) == 2]
    base = modes.get("nobundle")
    for mode, m in modes.items():
        if m["last_start_s"] and base and base["last_start_s"] and mode != "nobundle":
            t[f"last_start_{mode}_over_nobundle"] = ratio(m["last_start_s"]["median"], base["last_start_s"]["median"])
        t[f"opens_{mode}_as_expected"] = all(o == m["opens_expected"] for o in m["bundle_opens"])
    if cache and nocache and cache["last_start_s"] and nocache["last_start_s"]:
        t["last_start_nocache_over_cache"] = ratio(nocache["last_start_s"]["median"], cache["last_start_s"]["median"])
    res["targets"] = t


# ---------------------------------------------------------------- running

def est_seconds(pt, bundle_bytes, read_mbps, cores):
    """Rough duration of a point, to pack points into holds (small runs: ~2.5 s a task for
    scheduling, prolog, launch, Python and epilog; ~0.6 CPU-s to extract the bundle)."""
    n, t = pt["nodes"], pt["tasks_per_node"]
    read = n * bundle_bytes / (read_mbps * 1e6) if read_mbps else 0.5
    stage = max(read, n * 0.6 / cores)  # every node's staging at once
    rounds = {"nocache": t, "cache": 1}.get(pt["mode"], 0)
    return 10 + 2.5 * t + rounds * stage


def task_dir(mode, rep):
    """Where a point's scripts and outputs go: the test user's home (the nodes share the host's
    file systems but /dev/shm and /run/pylaunch)."""
    base = os.path.join(bl.user_home(), "bench-cache-array")
    d = os.path.join(base, f"{mode}-{rep}")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for x in (base, d):
        shutil.chown(x, bl.TEST_USER, bl.TEST_USER)
    return d


def python_command(mode, env):
    """How a mode's task calls Python: with a bundle, the plugin's PATH finds the tree's."""
    if mode == "nobundle":
        return LOCAL_PYTHON
    if mode == "localenv":
        return f"PYTHONHOME={env} LD_LIBRARY_PATH={env}/lib {env}/bin/python3"
    return "python3"


def expected_prefix(mode, env):
    return {"nobundle": "/usr", "localenv": env}.get(mode, "/dev/shm/")


def write_script(d, mode, env):
    path = os.path.join(d, "task.sh")
    with open(path, "w") as f:
        f.write(SCRIPT.format(python=python_command(mode, env), code=CODE))
    os.chmod(path, 0o755)
    return path


def squeue_empty(c):
    out = subprocess.run(["squeue", "-h", "-o", "%i"], env=c.env(), text=True, capture_output=True)
    return out.returncode == 0 and not out.stdout.strip()


def wait_done(c, timeout):
    """No job left, epilogs included.  Polled once a second: squeue costs CPU on a 2-core machine
    whose tasks are being timed."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if squeue_empty(c):
            return True
        time.sleep(1)
    return False


def flush_cache(c, n):
    """A cold cache: a job's epilog with cache.enabled: no empties the cache of its nodes."""
    c.write_config(bl.config_text(CACHE_YAML["nocache"]))
    r = c.as_user(["srun", f"-N{n}", "--ntasks-per-node=1", "true"], timeout=120)
    if r.returncode:
        raise RuntimeError(f"flushing the cache: {r.stderr.strip()[-300:]}")
    c.wait_idle()


def submit(c, pt, d, script, bundle, nodes):
    """One held array per node; {node: array job id}."""
    ids = {}
    for node in nodes:
        cmd = ["sbatch", "--hold", "--parsable", f"--array=1-{pt['tasks_per_node']}%1", "-w", node, "-N1", "-n1",
               f"--job-name=ca-{pt['mode']}", "-o", os.path.join(d, "%A_%a.out")]
        if pt["mode"] in BUNDLE_MODES:
            cmd.append(f"--pybundle={bundle}")
        r = c.as_user(cmd + [script], timeout=120, cwd=d)
        if r.returncode:
            cancel(c, ids.values())
            raise RuntimeError(f"sbatch on {node}: {r.stderr.strip()[-300:]}")
        ids[node] = int(r.stdout.strip().split(";")[0])
    return ids


def cancel(c, ids):
    if ids:
        subprocess.run(["scancel"] + [str(i) for i in ids], env=c.env(), capture_output=True)


def collect(pt, d, ids, watch):
    """Every task's clocks, joined with what its node's slurmd log says of its job."""
    events = {node: node_events(watch.lines(node)) for node in ids}
    tasks = []
    for node, aid in ids.items():
        for index in range(1, pt["tasks_per_node"] + 1):
            t = {"node": node, "index": index, "array_job": aid}
            path = os.path.join(d, f"{aid}_{index}.out")
            text = open(path, errors="replace").read() if os.path.exists(path) else ""
            rec = parse_task_output(text)
            if rec is None:
                t["error"] = "no output" if not text else text.strip()[-200:]
            else:
                t.update(rec)
                if rec["node"] != node:
                    t["error"] = f"ran on {rec['node']}"
                t.update(events.get(node, {}).get(rec["job"], {}))
            tasks.append(t)
    return tasks


def run_point(c, pt, ctx):
    out = dict(pt, env=ctx["env"])
    nodes = c.node_names(pt["nodes"])
    fs = ctx["fs"]
    bundle = os.path.join(fs.mnt, BUNDLE)
    c.wait_idle()
    if pt["mode"] == "cache":
        flush_cache(c, pt["nodes"])
    c.write_config(bl.config_text(CACHE_YAML[pt["mode"]]))
    d = task_dir(pt["mode"], pt["rep"])
    script = write_script(d, pt["mode"], ctx["env"])
    ids = submit(c, pt, d, script, bundle, nodes)
    fs.reset()  # submission's checks of the bundle are not the nodes' reads
    watch = bl.LogWatch(nodes)
    cpu0 = bl.cpu_busy_s()
    out["released_at"] = time.time()
    bl.run(["scontrol", "release"] + [str(i) for i in ids.values()], env=c.env(), stdout=subprocess.DEVNULL)
    done = wait_done(c, ctx["timeout"](pt))
    out["wall_s"] = round(time.time() - out["released_at"], 3)
    out["machine_cpu_s"] = round(bl.cpu_busy_s() - cpu0, 2)
    if not done:
        cancel(c, ids.values())
        c.wait_idle()
        out["error"] = f"not done after {out['wall_s']:.0f} s (cancelled)"
    out["fs"] = bl.counters(fs.settled(), BUNDLE)
    out["array_jobs"] = ids
    out["tasks"] = collect(pt, d, ids, watch)
    ctx["res"]["points"].append(out)
    s = point_summary(out)
    bl.save_json(ctx["json"] + ".partial", ctx["res"])
    fmt = lambda x: "-" if not x else f"{x['median']:.2f}/{x['p90']:.2f} s"
    bl.log(f"  {pt['mode']:8s} {pt['nodes']}x{pt['tasks_per_node']} rep {pt['rep']}: last start "
           f"{s['last_start_s']} s, start first {fmt(s['first']['start_s'])}, later {fmt(s['later']['start_s'])} "
           f"(median/p90), outcomes {s['first']['outcomes']} / {s['later']['outcomes']}, "
           f"{out['fs']['file_opens']} opens of the bundle{'  ' + out['error'] if out.get('error') else ''}")


# ---------------------------------------------------------------- output

def plot(res, png):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    colour = {"nobundle": "tab:gray", "localenv": "tab:blue", "nocache": "tab:red", "cache": "tab:green"}
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(14, 5.5))
    for mode in MODES:
        pts = [p for p in res["points"] if p["mode"] == mode and "summary" in p]
        tsk = [t for p in pts for t in p["tasks"] if t.get("start_s") is not None]
        if not tsk:
            continue
        off = {"nobundle": -0.2, "localenv": -0.07, "nocache": 0.07, "cache": 0.2}[mode]
        ax.plot([t["position"] + off for t in tsk], [t["start_s"] for t in tsk], ".", color=colour[mode], alpha=0.4)
        pos = sorted({t["position"] for t in tsk})
        ax.plot(pos, [statistics.median(t["start_s"] for t in tsk if t["position"] == k) for k in pos],
                "-", color=colour[mode], label=f"{mode}: {MODES[mode]} (line: median)")
        for p in pts:
            ready = sorted(t["ready"] - p["released_at"] for t in p["tasks"] if t.get("ready") is not None)
            bx.step(ready, range(1, len(ready) + 1), where="post", color=colour[mode],
                    label=mode if p is pts[0] else None)
    ax.set_yscale("log")
    ax.set_xlabel("task's place in its node's sequence")
    ax.set_ylabel("start: ready minus release (first) or previous task's end (s)")
    ax.set_title("Start of each task", fontsize=10)
    bx.set_xlabel("seconds since the release")
    bx.set_ylabel("tasks ready (numpy imported)")
    bx.set_title("Tasks started over time: the last one is the array's time to its last start", fontsize=10)
    for a in (ax, bx):
        a.grid(alpha=0.3, which="both")
        a.legend(fontsize=7)
    m, c = res["machine"], res["config"]
    fig.suptitle(f"Job array, {c['nodes']} nodes x {c['tasks_per_node']} tasks in sequence, "
                 f"python3 -c 'import numpy'; bundle {res['environment']['tarball_bytes'] / 1e6:.0f} MB on slowfs "
                 f"({c['read_mbps']} MB/s, {c['delay_us'] / 1000:g} ms); {m['cores']} cores (shared), {m['date'][:10]}",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(png, dpi=100)


def markdown(res):
    f = lambda x: "-" if not x else f"{x['median']:.2f} / {x['p90']:.2f} s"
    base = res["modes"].get("nobundle", {}).get("later_start_s")
    local = res["modes"].get("localenv", {}).get("later_start_s")
    out = ["| mode | time to the last task's start | first task per node: start (median / p90) | "
           "later tasks: start | later tasks: node's part | later start / nobundle's (median) | / localenv's | stage outcomes (first; later) | "
           "bundle opens | bundle bytes |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |"]
    for mode, m in res["modes"].items():
        pts = [p for p in res["points"] if p["mode"] == mode and "summary" in p]
        oc = lambda g: ", ".join(f"{k} {v}" for k, v in sorted(collections.Counter(
            t.get("stage", {}).get("outcome", "-") for p in pts for t in p["tasks"] if t.get("first") == (g == "first")).items()))
        last = "-" if not m["last_start_s"] else f"{m['last_start_s']['median']:.1f} s"
        out.append(f"| {mode} | {last} | {f(m['first_start_s'])} | "
                   f"{f(m['later_start_s'])} | {f(m['later_node_s'])} | "
                   f"{ratio(m['later_start_s']['median'], base['median']) if base and m['later_start_s'] else '-'} | "
                   f"{ratio(m['later_start_s']['median'], local['median']) if local and m['later_start_s'] else '-'} | "
                   f"{oc('first')}; {oc('later')} | {', '.join(map(str, m['bundle_opens']))} (expected {m['opens_expected']}) | "
                   f"{', '.join('-' if x is None else f'{x:.2f}x' for x in m['bundle_bytes_over_size'])} |")
    return "\n".join(out)


# ---------------------------------------------------------------- self-check (bench/run unit)

def check_figures():
    """The parsers and the figures on made-up tasks: cheap, no cluster."""
    n = 0
    rec = parse_task_output("B 100,50 7 5 1 node1\nR 101.25 /dev/shm/pylaunch/.view/ab/t\nP 100.75\nE 101.5 0\n")
    assert rec == {"begin": 100.5, "job": 7, "array_job": 5, "index": 1, "node": "node1", "ready": 101.25,
                   "prefix": "/dev/shm/pylaunch/.view/ab/t", "python_at": 100.75, "end": 101.5, "rc": 0}, rec
    assert parse_task_output("slurmstepd: error: something\n") is None
    n += 2
    ev = node_events([
        "[2026-12-06T21:00:00.100] debug:  pylaunch: prolog job 7 on node1: no pylaunch option",
        "[2026-12-06T21:00:00.300] pylaunch: stage job=8 node=node1 mode=direct role=single parent=- outcome=cached "
        "bytes=0 shared_bytes=0 kind=venv start=1795300000.125 end=1795300000.250 seconds=0.13 reason=\"\"",
        "[2026-12-06T21:00:00.400] pylaunch: debug: prolog job 8 on node1: staging runs in slurmd's cgroup",
        "[2026-12-06T21:00:01.000] Launching batch job 7 for UID 1001",
        "[2026-12-06T21:00:02.000] pylaunch: epilog job 7 on node1: done in 0.05 s (epilog.timeout 60 s)"])
    assert ev[7]["prolog_at"] == bl.log_time("2026-12-06T21:00:00.100"), ev
    assert ev[7]["epilog_s"] == 0.05 and ev[7]["batch_at"] == bl.log_time("2026-12-06T21:00:01.000"), ev
    assert ev[8]["stage"]["outcome"] == "cached" and ev[8]["stage"]["start"] == 1795300000.125, ev
    n += 3

    def task(node, index, begin, ready, end, prolog, outcome=None, prefix="/dev/shm/x"):
        t = {"node": node, "index": index, "begin": begin, "python_at": begin + 0.01, "ready": ready, "end": end,
             "rc": 0, "prefix": prefix, "prolog_at": prolog}
        if outcome:
            t["stage"] = {"outcome": outcome, "seconds": 0.1, "start": prolog + 0.05}
        return t

    def point(mode, tasks, opens):
        return {"mode": mode, "nodes": 2, "tasks_per_node": 3, "rep": 0, "released_at": 100.0, "tasks": tasks,
                "fs": {"file_opens": opens, "file_read_bytes": 1000 * opens}}
    # node1 ran its tasks out of index order (3 before 2): the reference is the one that ran before
    cache = point("cache", [task("node1", 1, 110, 111, 112, 109, "staged"), task("node1", 3, 113, 113.5, 114, 112.5, "cached"),
                            task("node1", 2, 115, 115.4, 116, 114.6, "cached"),
                            task("node2", 1, 108, 109, 110, 107, "staged"), task("node2", 2, 111, 111.6, 112, 110.8, "cached"),
                            task("node2", 3, 113, 113.4, 114, 112.7, "cached")], 2)
    base = point("nobundle", [task("node1", i, 100 + 2 * i, 100.5 + 2 * i, 101 + 2 * i, 99.8 + 2 * i, prefix="/usr")
                              for i in (1, 2, 3)] + [task("node2", i, 100 + 2 * i, 100.5 + 2 * i, 101 + 2 * i, 99.8 + 2 * i,
                                                          prefix="/usr") for i in (1, 2, 3)], 0)
    res = {"config": {"nodes": 2, "tasks_per_node": 3}, "environment": {"tarball_bytes": 1000}, "points": [base, cache]}
    derive(res)
    by = {(t["node"], t["index"]): t for t in cache["tasks"]}
    assert by[("node1", 1)]["first"] and by[("node1", 1)]["start_s"] == 11.0, by[("node1", 1)]
    assert by[("node1", 3)]["position"] == 2 and by[("node1", 3)]["start_s"] == 1.5, by[("node1", 3)]
    assert by[("node1", 2)]["start_s"] == 1.4 and by[("node1", 2)]["node_s"] == 0.8, by[("node1", 2)]
    assert by[("node2", 2)]["gap_s"] == 0.8, by[("node2", 2)]
    n += 4
    m = res["modes"]
    assert m["cache"]["later_start_s"]["median"] == 1.45 and m["nobundle"]["later_start_s"]["median"] == 1.5, m
    assert cache["ok"] and base["ok"] and cache["summary"]["last_start_s"] == 15.4, cache
    t = res["targets"]
    assert t["later_start_cache_over_nobundle"]["median"] == round(1.45 / 1.5, 3) and t["meets_target"], t
    assert t["opens_cache_as_expected"] and t["opens_nobundle_as_expected"], t
    assert t["later_cache_within_target_of_nobundle_share"] == 1.0, t
    n += 5
    cache["tasks"][4]["stage"]["outcome"] = "staged"  # a later task staged again: the cache missed
    derive(res)
    assert not cache["ok"] and "stage outcomes" in cache["problems"][0], cache.get("problems")
    n += 1
    return f"cache-array: parsers and figures: {n} checks passed"


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=16, help="nodes, one array per node (16)")
    ap.add_argument("--tasks-per-node", type=int, default=8, help="array tasks per node, run in sequence (8)")
    ap.add_argument("--modes", default=",".join(MODES), help="of " + ",".join(MODES) + " (all)")
    ap.add_argument("--reps", type=int, default=1, help="times every mode is run, interleaved (1)")
    ap.add_argument("--read-mbps", type=int, default=100, help="slowfs aggregate read cap, 10^6 B/s (100)")
    ap.add_argument("--delay-us", type=int, default=200, help="slowfs per-request delay (200)")
    ap.add_argument("--max-hold", type=float, default=540, help="seconds one hold of the cluster may last (540)")
    ap.add_argument("--plugin", default=bl.DEFAULT_PLUGIN, help="the built plugin (%(default)s)")
    ap.add_argument("--work", default=bl.WORK, help="scratch directory (%(default)s)")
    ap.add_argument("--out", default=os.path.join(bl.BENCH, "results"), help="results directory")
    ap.add_argument("--dry-run", action="store_true", help="print the plan and its estimated duration")
    ap.add_argument("--plot-only", action="store_true", help="redraw the PNG from the JSON")
    ap.add_argument("--markdown", action="store_true", help="print the README table from the JSON")
    ap.add_argument("--check", action="store_true", help="self-check of the parsers and figures (no cluster)")
    args = ap.parse_args()
    if args.check:
        print(check_figures())
        return
    modes = args.modes.split(",")
    if set(modes) - set(MODES):
        sys.exit(f"cache-array: unknown modes {sorted(set(modes) - set(MODES))}")
    out_json, out_png = os.path.join(args.out, "cache_array.json"), os.path.join(args.out, "cache_array.png")
    if bl.redraw(args, out_json, out_png, derive, plot, markdown):
        return
    points = [{"mode": m, "nodes": args.nodes, "tasks_per_node": args.tasks_per_node, "rep": r}
              for r in range(args.reps) for m in modes]
    p = startup.paths(os.path.abspath(args.work))
    tarball = os.path.join(p["bundle_src"], BUNDLE)
    cores = os.cpu_count()
    size = os.path.getsize(tarball) if os.path.exists(tarball) else 62e6
    est = lambda pt: est_seconds(pt, size, args.read_mbps, cores)
    if args.dry_run:
        for pt in points:
            print(f"{pt['mode']:8s} {pt['nodes']}x{pt['tasks_per_node']} rep {pt['rep']}  ~{est(pt):4.0f} s")
        total = sum(map(est, points))
        print(f"about {(total + 60 * (1 + total // args.max_hold)) / 60:.0f} min (boot included)")
        return
    if os.geteuid() != 0:
        sys.exit("cache-array: run as root (FUSE mounts, the test cluster)")
    if not 1 <= args.nodes <= bl.MAX_NODES:
        sys.exit(f"cache-array: the test cluster has 1 to {bl.MAX_NODES} nodes")
    bl.sigterm_is_exit()
    os.makedirs(args.out, exist_ok=True)
    envinfo = startup.prepare(p, PACKAGES)
    bl.install_plugin(args.plugin)
    res = {"what": "job array: N nodes x T tasks per node in sequence, python3 -c 'import numpy'; "
                   "start of each task and time to the last task's start, without a bundle, with --pybundle "
                   "without and with the node cache",
           "modes": MODES, "machine": bl.machine(), "plugin": bl.plugin_info(args.plugin),
           "environment": dict(envinfo, name="small", local_python=LOCAL_PYTHON),
           "config": {"nodes": args.nodes, "tasks_per_node": args.tasks_per_node, "modes": modes, "reps": args.reps,
                      "read_mbps": args.read_mbps, "delay_us": args.delay_us, "max_hold_s": args.max_hold},
           "definitions": {"start_s": "ready (numpy imported) - release (a node's first task) or the node's previous "
                                      "task's end (the others)",
                           "node_s": "ready - the plugin's first prolog line for the job (slurmd's log)",
                           "gap_s": "that prolog line - the reference of start_s",
                           "last_start_s": "last ready - release"},
           "points": [], "holds": []}
    ctx = {"res": res, "json": out_json, "timeout": lambda pt: 120 + 4 * est(pt), "env": p["env_local"]}
    mnt = os.path.join(os.path.abspath(args.work), "cache-array", "mnt")

    @contextlib.contextmanager
    def make_hold(_key):
        ctx["fs"] = bl.SlowFS(p["bundle_src"], mnt, args.delay_us, args.read_mbps, opts="direct_io")
        t = time.time()
        with bl.hold(args.nodes, [ctx["fs"]], "cache-array") as c:
            yield c
        res["holds"].append({"seconds": round(time.time() - t, 1)})

    def run():
        return bl.run_holds([(None, points)], est, args.max_hold, lambda c, pt: run_point(c, pt, ctx), make_hold)

    bl.run_and_save(res, out_json, out_png, run, derive, plot)
    print(markdown(res))
    bad = [p for p in res["points"] if not p.get("ok")]
    if bad:
        sys.exit("cache-array: points not ok: " + json.dumps([{k: p.get(k) for k in ("mode", "rep", "error", "problems")}
                                                               for p in bad])[:2000])


if __name__ == "__main__":
    main()
