#!/usr/bin/python3
"""Start-up at scale (issue 6, part 3).

`srun -N N --ntasks-per-node=R python3 -c 'import numpy, scipy'` on the test cluster, with the
numpy+scipy environment (bench/make-env.sh, 195 MB in 6,877 files) on slowfs at a per-request
delay of 0.2 and 1 ms, three ways:

  shared  (a) the environment on the shared file system: PYTHONHOME, LD_LIBRARY_PATH, PATH and the
              interpreter on the slowfs mount;
  direct  (b) --pybundle=env.tar.zst (on slowfs) with tree.enabled: no: every node reads it;
  tree    (c) --pybundle with the tree (the default configuration).

Per point: time from srun's start to the last rank's exit (each rank prints its clock last), when
every node was staged (the prolog's lines), and the requests and bytes slowfs saw.  Also
`srun ... true` per N x R (Slurm's own launch cost) and the CPU time of one rank run from a
local copy.  Floor = cpu x max(1, N x R / cores) + staging: ratio = job time / floor.

(a) serialises about 11,000 requests per rank at the metadata server: 16x4 at 1 ms is 13
minutes in one srun, longer than a hold of the shared cluster may last (--max-hold).  Such a
point is not run; its time is derived from the same N x R measured at a smaller delay
(time + requests x delay difference: the queue is saturated, each request costs its delay) and
marked "estimated".

Run as root: bench/run startup [options]  ->  bench/results/startup.{json,png}
"""
import argparse
import contextlib
import os
import resource
import statistics
import subprocess
import sys
import time

import benchlib as bl

CODE = ("import numpy, scipy, os, sys, time; "
        "print('END', repr(time.time()), os.environ.get('SLURM_JOB_ID'), sys.prefix, flush=True)")
CASES = {"shared": "(a) environment on the shared file system",
         "direct": "(b) --pybundle, tree.enabled: no",
         "tree": "(c) --pybundle, tree (default configuration)",
         "launch": "srun ... true (Slurm's launch cost)"}
REQ_PER_RANK = 11500  # import numpy, scipy without cache (fig1); replaced by what the run measures


def paths(work):
    w = os.path.join(work, "startup")
    return {"shared_src": os.path.join(w, "shared"), "shared_mnt": os.path.join(w, "mnt-shared"),
            "bundle_src": os.path.join(w, "bundle"), "bundle_mnt": os.path.join(w, "mnt-bundle"),
            "env_local": os.path.join(w, "shared", "env")}


def prepare(p, packages):
    """The environment (a directory for (a)) and its tarball (for (b), (c)), on two slowfs
    sources: the tarball's mount uses direct_io, the directory's is the one Fig. 1 measured."""
    env = p["env_local"]
    tarball = os.path.join(p["bundle_src"], "env.tar.zst")
    if not os.path.exists(os.path.join(env, ".make-env")) or not os.path.exists(tarball):
        os.makedirs(p["bundle_src"], exist_ok=True)
        bl.log("building the environment", env)
        bl.run([os.path.join(bl.BENCH, "make-env.sh"), "--force", "--tar", tarball, env] + packages)
    for d in (p["shared_src"], p["bundle_src"]):
        os.chmod(d, 0o755)
    nbytes = nfiles = 0
    for root, _, files in os.walk(env):
        for fn in files:
            nfiles += 1
            nbytes += os.lstat(os.path.join(root, fn)).st_size
    return {"bytes": nbytes, "files": nfiles, "tarball_bytes": os.path.getsize(tarball), "packages": packages}


def cpu_one_rank(env, reps=5):
    """User + system time of one `python3 -c 'import numpy, scipy'` from the local copy (page
    cache warm: what a node-local /dev/shm copy costs)."""
    cmd = [os.path.join(env, "bin", "python3"), "-c", "import numpy, scipy"]
    e = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "PYTHONHOME": env,
         "LD_LIBRARY_PATH": os.path.join(env, "lib")}
    subprocess.run(cmd, env=e, check=True)
    cpus, walls = [], []
    for _ in range(reps):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        subprocess.run(cmd, env=e, check=True)
        walls.append(time.perf_counter() - t)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
    return {"cpu_s": round(statistics.median(cpus), 4), "cpu_runs_s": [round(c, 4) for c in cpus],
            "wall_s": round(statistics.median(walls), 4)}


def est_seconds(pt, cpu, cores, req_per_rank):
    """Rough duration of a point, for packing points into holds."""
    case, n, r, d = pt["case"], pt["nodes"], pt["ranks"], pt["delay_us"]
    nr = n * r
    # constants: srun, waiting for the epilogs and for slowfs's counters to settle (small runs)
    if case == "launch":
        return 1.5 + 0.02 * nr
    if case == "shared":
        return 2 + nr * req_per_rank * (d + 40) / 1e6 + cpu * nr / cores
    return 3 + n * 0.6 / cores + cpu * nr / cores  # extraction ~0.6 s CPU per node


def expand_points(args):
    """The measured matrix: shared on --shared-points, direct/tree on every N x R, launch once."""
    pts = []
    shared = set()
    for spec in args.shared_points.split(","):
        ns, rs = spec.split("x")
        for n in (args.nodes if ns == "*" else [int(ns)]):
            for r in (args.ranks if rs == "*" else [int(rs)]):
                shared.add((n, r))
    for d in args.delays_us:
        for case in args.cases:
            if case == "shared":
                pts += [{"case": case, "nodes": n, "ranks": r, "delay_us": d} for n, r in sorted(shared)]
            else:
                pts += [{"case": case, "nodes": n, "ranks": r, "delay_us": d}
                        for n in args.nodes for r in args.ranks]
    if args.launch:
        pts += [{"case": "launch", "nodes": n, "ranks": r, "delay_us": args.delays_us[0]}
                for n in args.nodes for r in args.ranks]
    return pts


def tree_yaml(keys):
    return "tree:\n" + "".join(f"  {k}: {v}\n" for k, v in keys.items()) if keys else ""


def resolve_configs(c, bundle, cache):
    """The configuration of each case, by asking the plugin (srun --test-only) which keys it knows:
    a plugin without tree.enabled has only the direct path, which its default configuration is."""
    if cache:
        return cache
    tree_known, why = c.probe(bl.config_text(tree_yaml({"enabled": "yes"})), bundle)
    ok, _ = c.probe(bl.config_text(tree_yaml({"enabled": "no"})), bundle)
    cache["direct"] = (bl.config_text(tree_yaml({"enabled": "no"})) if ok else bl.config_text(),
                       "" if ok else "plugin without tree.enabled: its default configuration is the direct path")
    cache["tree"] = (bl.config_text(), "") if tree_known else (None, "plugin without the tree: " + why)
    bl.log("configurations:", {k: v[1] or "ok" for k, v in cache.items()})
    return cache


def run_point(c, pt, ctx):
    case, n, r = pt["case"], pt["nodes"], pt["ranks"]
    p, res = ctx["paths"], ctx["res"]
    nodes = c.node_names(n)
    c.wait_idle()
    env = os.path.join(p["shared_mnt"], "env")
    bundle = os.path.join(p["bundle_mnt"], "env.tar.zst")
    srun = ["srun", f"-N{n}", f"--ntasks-per-node={r}"]
    out = dict(pt)
    if case == "launch":
        cmd = srun + ["true"]
    elif case == "shared":
        cmd = srun + ["env", f"PYTHONHOME={env}", f"LD_LIBRARY_PATH={env}/lib", f"PATH={env}/bin:/usr/bin:/bin",
                      f"{env}/bin/python3", "-c", CODE]
    else:
        cfg, note = resolve_configs(c, bundle, ctx["configs"])[case]
        if cfg is None:
            out.update(ok=False, error=note, skipped=True)
            res["points"].append(out)
            bl.log(f"  {case} {n}x{r}: skipped: {note}")
            return
        out["config_note"] = note
        c.write_config(cfg)
        cmd = srun + [f"--pybundle={bundle}", "python3", "-c", CODE]
    fs = ctx["fs_shared"] if case == "shared" else ctx["fs_bundle"]
    fs.reset()
    watch = bl.LogWatch(nodes)
    t0 = time.time()
    try:
        proc = c.as_user(cmd, timeout=3600)
        rc, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired:
        rc, stdout, stderr = -1, "", "timeout"
    t1 = time.time()
    c.wait_idle()
    st = fs.settled()
    ends = [l.split() for l in stdout.splitlines() if l.startswith("END ")]
    out.update(rc=rc, srun_s=round(t1 - t0, 3), fs=bl.counters(st, "env.tar.zst" if case in ("direct", "tree") else None))
    out["ok"] = rc == 0 and (case == "launch" or len(ends) == n * r)
    if rc:
        out["error"] = stderr.strip()[-500:]
    if ends:
        out["job_s"] = round(max(float(e[1]) for e in ends) - t0, 3)
        out["job_id"] = int(ends[0][2])
        prefixes = sorted({e[3] for e in ends})
        out["prefixes"] = prefixes
        want = "/dev/shm/" if case in ("direct", "tree") else env
        if not all(x.startswith(want) for x in prefixes):
            out["ok"], out["error"] = False, f"python ran from {prefixes}, not {want}"
    elif case == "launch":
        out["job_s"] = out["srun_s"]
    if case in ("direct", "tree") and "job_id" in out:
        recs = watch.stage_records(out["job_id"], nodes)
        out["stage"] = bl.staging_summary(recs, t0)
        out["stage_records"] = recs
        want = "tree" if case == "tree" and n > 1 else "direct"  # one node has no tree
        if recs and want not in out["stage"]["modes"]:
            out["mode_mismatch"] = f"wanted {want}, the nodes logged {out['stage']['modes']}"
    if case == "shared" and out["ok"]:
        ctx["req_per_rank"] = st["metadata_requests"] / (n * r)
    res["points"].append(out)
    bl.save_json(ctx["json"] + ".partial", res)
    bl.log(f"  {case:6s} {n:2d}x{r} @{pt['delay_us']:4d} us: job {out.get('job_s', '-')} s, srun {out['srun_s']} s, "
           f"staged {out.get('stage', {}).get('span_s', '-')} s, {st['metadata_requests']} requests, "
           f"{st['read_bytes'] / 1e6:.1f} MB{'' if out['ok'] else '  FAILED: ' + out.get('error', '')[:200]}")


def derive(res):
    """Floors, ratios and estimated points, and the targets of the issue."""
    cpu, cores = res["cpu_one_rank"]["cpu_s"], res["machine"]["cores"]
    measured = {(p["case"], p["nodes"], p["ranks"], p["delay_us"]): p for p in res["points"] if p.get("ok")}
    for p in res["points"]:
        if not p.get("ok") or p["case"] == "launch":
            continue
        nr = p["nodes"] * p["ranks"]
        staging = p.get("stage", {}).get("span_s", 0.0)
        p["floor_s"] = round(cpu * max(1.0, nr / cores) + staging, 3)
        p["ratio"] = round(p["job_s"] / p["floor_s"], 2)
        launch = measured.get(("launch", p["nodes"], p["ranks"], res["launch_delay_us"]))
        if launch:
            p["launch_s"] = launch["job_s"]
    res["estimated"] = []
    for pt in res.get("not_run", []):
        if pt["case"] != "shared":
            continue
        lower = [q for (c, n, r, d), q in measured.items()
                 if (c, n, r) == ("shared", pt["nodes"], pt["ranks"]) and d < pt["delay_us"]]
        if lower:
            q = max(lower, key=lambda q: q["delay_us"])
            req = q["fs"]["metadata_requests"]
            e = dict(pt, estimated=True, from_delay_us=q["delay_us"], ok=True,
                     job_s=round(q["job_s"] + req * (pt["delay_us"] - q["delay_us"]) / 1e6, 1),
                     fs={"metadata_requests": req, "read_bytes": q["fs"]["read_bytes"]})
            res["estimated"].append(e)
    # the R=1 points measured at two delays check the estimate's rule
    res["estimate_check"] = []
    for (c, n, r, d), p in measured.items():
        if c != "shared":
            continue
        for (c2, n2, r2, d2), q in measured.items():
            if (c2, n2, r2) == (c, n, r) and d2 < d:
                pred = q["job_s"] + q["fs"]["metadata_requests"] * (d - d2) / 1e6
                res["estimate_check"].append({"nodes": n, "ranks": r, "delay_us": d, "from_delay_us": d2,
                                              "measured_s": p["job_s"], "estimated_s": round(pred, 1),
                                              "error": round(pred / p["job_s"] - 1, 3)})
    # targets
    t = {}
    bundled = [p for p in res["points"] if p.get("ok") and p["case"] in ("direct", "tree")]
    for case in ("direct", "tree"):
        pts = [p for p in bundled if p["case"] == case]
        if pts:
            t[case] = {"ratio_max": max(p["ratio"] for p in pts),
                       "requests_max": max(p["fs"]["metadata_requests"] for p in pts),
                       "requests_min": min(p["fs"]["metadata_requests"] for p in pts)}
    every = {(p["case"], p["nodes"], p["ranks"], p["delay_us"]): p for p in
             [p for p in res["points"] if p.get("ok")] + res["estimated"]}
    nmax, rmax = max(res["config"]["nodes"]), max(res["config"]["ranks"])
    for d in res["config"]["delays_us"]:
        a = every.get(("shared", nmax, rmax, d))
        for case in ("direct", "tree"):
            b = every.get((case, nmax, rmax, d))
            if a and b:
                t[f"without_over_{case}_{nmax}x{rmax}_{d}us"] = {
                    "ratio": round(a["job_s"] / b["job_s"], 1), "without_s": a["job_s"], "with_s": b["job_s"],
                    "without_estimated": bool(a.get("estimated"))}
    res["targets"] = t


def plot(res, png):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(15, 6))
    colour = {"shared": "tab:red", "direct": "tab:blue", "tree": "tab:green", "launch": "tab:gray"}
    style = {200: "-", 1000: "--"}
    marker = {1: "o", 2: "s", 4: "^"}
    pts = [p for p in res["points"] if p.get("ok")] + res.get("estimated", [])
    # one line per case, delay and R (colour, line style, marker), N growing along it
    for case in ("shared", "direct", "tree", "launch"):
        for d in sorted({p["delay_us"] for p in pts}):
            if case == "launch" and d != res["launch_delay_us"]:
                continue
            label = CASES[case] + ("" if case == "launch" else f", {d / 1000:g} ms")
            for r in sorted({p["ranks"] for p in pts}):
                sel = sorted((p for p in pts if (p["case"], p["delay_us"], p["ranks"]) == (case, d, r)),
                             key=lambda p: p["nodes"])
                if not sel:
                    continue
                xs = [p["nodes"] * r for p in sel]
                for axis, key in ((ax, "job_s"), (bx, "requests")):
                    if case == "launch" and axis is bx:
                        continue
                    ys = [p["job_s"] if key == "job_s" else max(1, p["fs"]["metadata_requests"]) for p in sel]
                    axis.plot(xs, ys, style.get(d, ":"), color=colour[case], alpha=0.5, label=label)
                    for p, x, y in zip(sel, xs, ys):
                        axis.plot(x, y, marker.get(r, "x"), color=colour[case],
                                  mfc="none" if p.get("estimated") else colour[case])
                label = None
    floor = sorted({(p["nodes"] * p["ranks"], p["floor_s"] - p.get("stage", {}).get("span_s", 0))
                    for p in res["points"] if p.get("floor_s")})
    if floor:
        ax.plot([f[0] for f in floor], [f[1] for f in floor], "k:", label="CPU floor: cpu x max(1, NxR / cores)")
    for axis in (ax, bx):
        axis.set_xscale("log", base=2)
        axis.xaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:.0f}"))
        axis.yaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:g}"))
        axis.set_yscale("log")
        axis.set_xlabel("ranks N x R (markers: o R=1, s R=2, ^ R=4; hollow: estimated)")
        axis.grid(alpha=0.3, which="both")
        axis.legend(fontsize=8)
    ax.set_ylabel("srun start to last rank's exit (s)")
    ax.set_title("Start-up time of `import numpy, scipy`")
    bx.set_ylabel("metadata requests at the shared file system per job")
    bx.set_title("Requests per job (slowfs)")
    m = res["machine"]
    fig.suptitle(f"srun -N N --ntasks-per-node=R python3 -c 'import numpy, scipy' on the test cluster "
                 f"({m['cores']} cores, {m['date'][:10]}); environment {res['environment']['bytes'] / 1e6:.0f} MB, "
                 f"{res['environment']['files']:,} files", fontsize=10)
    fig.tight_layout()
    fig.savefig(png, dpi=100)


def markdown(res):
    out = ["| case | delay | N x R | job time | staged | floor | job / floor | requests | MB read | srun true |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    pts = [p for p in res["points"] if p["case"] != "launch"] + res.get("estimated", [])
    for p in sorted(pts, key=lambda p: ("shared direct tree".split().index(p["case"]), p["delay_us"],
                                        p["nodes"], p["ranks"])):
        head = f"| {p['case']} | {p['delay_us'] / 1000:g} ms | {p['nodes']}x{p['ranks']} |"
        if not p.get("ok"):
            what = "skipped" if p.get("skipped") else "failed"
            out.append(f"{head} {what}: {p.get('error', '')[:80]} |" + " |" * 6)
            continue
        staged = p.get("stage", {}).get("span_s")
        cells = [f"{p['job_s']:.2f} s" + (" (est.)" if p.get("estimated") else ""),
                 f"{staged:.2f} s" if staged is not None else "-",
                 f"{p['floor_s']:.2f} s" if "floor_s" in p else "-",
                 f"{p['ratio']:.2f}" if "ratio" in p else "-",
                 f"{p['fs']['metadata_requests']:,}", f"{p['fs']['read_bytes'] / 1e6:.1f}",
                 f"{p['launch_s']:.2f} s" if "launch_s" in p else "-"]
        out.append(head + " " + " | ".join(cells) + " |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=bl.ints, default=[1, 2, 4, 8, 16], help="N values (1,2,4,8,16)")
    ap.add_argument("--ranks", type=bl.ints, default=[1, 2, 4], help="R values (1,2,4)")
    ap.add_argument("--delays-us", type=bl.ints, default=[200, 1000], help="slowfs delays (200,1000)")
    ap.add_argument("--cases", default="shared,direct,tree", help="of shared,direct,tree (all)")
    ap.add_argument("--shared-points", default="*x1,16x4",
                    help="N x R points of (a), * = every value of --nodes/--ranks (%(default)s)")
    ap.add_argument("--no-launch", dest="launch", action="store_false", help="skip the srun ... true points")
    ap.add_argument("--max-hold", type=float, default=540, help="seconds one hold of the cluster may last (540)")
    ap.add_argument("--plugin", default=bl.DEFAULT_PLUGIN, help="the built plugin (%(default)s)")
    ap.add_argument("--packages", default="python3-numpy,python3-scipy", help="Debian packages of the environment")
    ap.add_argument("--work", default=bl.WORK, help="scratch directory (%(default)s)")
    ap.add_argument("--out", default=os.path.join(bl.BENCH, "results"), help="results directory")
    ap.add_argument("--dry-run", action="store_true", help="print the plan and its estimated duration")
    ap.add_argument("--plot-only", action="store_true", help="redraw the PNG from the JSON")
    ap.add_argument("--markdown", action="store_true", help="print the README table from the JSON")
    args = ap.parse_args()
    args.cases = args.cases.split(",")
    out_json, out_png = os.path.join(args.out, "startup.json"), os.path.join(args.out, "startup.png")
    if bl.redraw(args, out_json, out_png, derive, plot, markdown):
        return

    points = expand_points(args)
    cores = os.cpu_count()
    p = paths(os.path.abspath(args.work))
    cpu_guess = cpu_one_rank(p["env_local"], 3)["cpu_s"] if os.path.exists(p["env_local"]) else 0.15
    est = lambda pt: est_seconds(pt, cpu_guess, cores, REQ_PER_RANK)
    plan = [p for p in points if est(p) <= args.max_hold]
    total = sum(map(est, plan)) + 25 * (1 + sum(map(est, plan)) // args.max_hold)
    bl.log(f"{len(plan)} points, about {total / 60:.0f} min; not run (over --max-hold, estimated instead): "
           f"{[(p['case'], p['nodes'], p['ranks'], p['delay_us']) for p in points if p not in plan]}")
    if args.dry_run:
        for p in points:
            print(f"{p['case']:7s} {p['nodes']:2d}x{p['ranks']} @{p['delay_us']:5d} us  ~{est(p):6.0f} s"
                  f"{'' if p in plan else '  (over --max-hold: estimated)'}")
        return
    if os.geteuid() != 0:
        sys.exit("startup: run as root (FUSE mounts, the test cluster)")
    if max(args.nodes) > bl.MAX_NODES:
        sys.exit(f"startup: the test cluster has at most {bl.MAX_NODES} nodes")
    bl.sigterm_is_exit()
    os.makedirs(args.out, exist_ok=True)
    envinfo = prepare(p, args.packages.split(","))
    bl.install_plugin(args.plugin)
    cpu = cpu_one_rank(p["env_local"])
    bl.log(f"one rank from a local copy: {cpu['cpu_s']} s CPU, {cpu['wall_s']} s wall")
    cpu_guess = cpu["cpu_s"]
    res = {"what": "srun -N N --ntasks-per-node=R python3 -c 'import numpy, scipy' on the test cluster",
           "cases": CASES, "machine": bl.machine(), "plugin": bl.plugin_info(args.plugin),
           "environment": envinfo, "cpu_one_rank": cpu, "launch_delay_us": args.delays_us[0],
           "config": {"nodes": args.nodes, "ranks": args.ranks, "delays_us": args.delays_us, "cases": args.cases,
                      "shared_points": args.shared_points, "max_hold_s": args.max_hold},
           "floor": "cpu_one_rank x max(1, N x R / cores) + staging span (max(end) - min(start) of the nodes)",
           "points": [], "holds": []}
    ctx = {"paths": p, "res": res, "json": out_json, "configs": {}, "req_per_rank": REQ_PER_RANK}
    est = lambda pt: est_seconds(pt, cpu_guess, cores, ctx["req_per_rank"])
    groups = [(d, [pt for pt in points if pt["delay_us"] == d]) for d in args.delays_us]

    @contextlib.contextmanager
    def make_hold(delay):
        ctx["fs_shared"] = bl.SlowFS(p["shared_src"], p["shared_mnt"], delay)
        ctx["fs_bundle"] = bl.SlowFS(p["bundle_src"], p["bundle_mnt"], delay, opts="direct_io")
        t = time.time()
        with bl.hold(max(args.nodes), [ctx["fs_shared"], ctx["fs_bundle"]], f"startup {delay} us") as c:
            yield c
        res["holds"].append({"delay_us": delay, "seconds": round(time.time() - t, 1)})

    def run():
        return bl.run_holds(groups, est, args.max_hold, run_point_with_ctx(ctx), make_hold)

    bl.run_and_save(res, out_json, out_png, run, derive, plot)


def run_point_with_ctx(ctx):
    return lambda c, pt: run_point(c, pt, ctx)


if __name__ == "__main__":
    main()
