#!/usr/bin/python3
"""Fan-out of a bundle to N nodes (issue 5): the tree against its alternatives.

The realistic bundle (bench/make-env.sh default: 641 MB in 21,211 files) as tar.zst and tar.gz on
slowfs with an aggregate read cap (--read-mbps, default 100 MB/s) and direct_io (the simulated
nodes share one page cache: without it a node could read another's pages, unseen by slowfs).
For N = 1, 2, 4, 8, 16, side by side in one run:

  tree            --pybundle with the tree, pipelined (default configuration)
  direct          --pybundle with tree.enabled: no (every node reads the shared file system)
  store           --pybundle with the tree in store-and-forward (the whole stream is received
                  before it is forwarded or extracted, as python-mpi-bcast does)
  sbcast          Slurm's sbcast of the archive to every node's /dev/shm, then
                  `srun -N N tar -xf` on every node; time = sbcast start to last extraction end
  sbcast-compress the same with sbcast --compress
  local           the direct path with the bundle on local disk (page cache): N extractions at
                  once and nothing else, this machine's measured limit X(N) for any fan-out

Per point: time until every node is staged (the prolog's lines: max(end) - min(start)), bytes and
opens slowfs served, and the peak of every node's /dev/shm (one sampler thread of ours reads
statvfs of each node's tmpfs every 50 ms; minus the idle baseline).  Reference:
L(N) = max(time to read the bundle once, N x CPU time of one extraction / cores): the shared file
system read once, or every node's extraction sharing this machine's cores, whichever is longer
(one extraction alone runs on one core: at N = 1 the second term is the CPU time itself).
The CPU time of one extraction is the plugin's own: a 1-node staging from local disk (page
cache), where wall time is CPU time; `tar -xf` into a tmpfs of ours is measured too.  N
extractions at once cost more than N times one here (they share caches and memory bandwidth), so
the `local` mode measures that limit directly: tree / local says what the tree itself adds.
Every point also records the CPU seconds the whole machine spent busy while it ran.

Run as root: bench/run fanout [options]  ->  bench/results/fanout.{json,png}
"""
import argparse
import contextlib
import json
import os
import resource
import sys
import time

import benchlib as bl

MODES = {"tree": "tree, pipelined (default configuration)",
         "direct": "direct: tree.enabled: no",
         "store": "tree, store-and-forward",
         "sbcast": "sbcast + srun tar -xf",
         "sbcast-compress": "sbcast --compress + srun tar -xf",
         "local": "direct path, bundle on local disk: N extractions at once, no shared fs"}
PYBUNDLE_MODES = ("tree", "direct", "store")
# Keys to try, in order, for each mode (the first the plugin accepts is used): store-and-forward
# was specified as tree.mode: store; the plugin in progress spells it tree.store_and_forward.
MODE_KEYS = {"tree": [{}], "direct": [{"enabled": "no"}],
             "store": [{"mode": "store"}, {"store_and_forward": "yes"}]}


def paths(work):
    w = os.path.join(work, "fanout")
    return {"env": os.path.join(work, "fs", "env"), "src": os.path.join(w, "fs"), "mnt": os.path.join(w, "mnt"),
            "mnt_sbcast": os.path.join(w, "mnt-sbcast"), "xtmp": os.path.join(w, "xtmp")}


def rusage_children():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def prepare(p, comps):
    """The default environment (shared with fig1) and its tarballs; per tarball the CPU time of
    `tar -xf` into a tmpfs of ours and what the extracted tree takes there."""
    if not os.path.exists(os.path.join(p["env"], ".make-env")):
        bl.log("building the environment", p["env"])
        bl.run([os.path.join(bl.BENCH, "make-env.sh"), "--force", p["env"]])
    os.makedirs(p["src"], exist_ok=True)
    os.chmod(p["src"], 0o755)
    nbytes = nfiles = 0
    for root, _, files in os.walk(p["env"]):
        for fn in files:
            nfiles += 1
            nbytes += os.lstat(os.path.join(root, fn)).st_size
    info = {"bytes": nbytes, "files": nfiles, "bundles": {}}
    for comp in comps:
        tarball = os.path.join(p["src"], f"bundle.tar.{comp}")
        if not os.path.exists(tarball):
            bl.log("writing", tarball)
            names = sorted(os.listdir(p["env"]))
            tmp = os.path.join(p["src"], f".tmp.tar.{comp}")  # -a picks the compressor by the suffix
            bl.run(["tar", "-a", "--sort=name", "--owner=0", "--group=0", "--numeric-owner", "-C", p["env"],
                    "-cf", tmp, "--"] + names)
            os.replace(tmp, tarball)
        info["bundles"][comp] = dict(bytes=os.path.getsize(tarball), **tar_extraction(tarball, p["xtmp"]))
        bl.log(f"bundle.tar.{comp}: {info['bundles'][comp]}")
    return info


def tar_extraction(tarball, xtmp):
    """CPU time (tar and its decompressor) and tmpfs bytes of one extraction, best of 2."""
    os.makedirs(xtmp, exist_ok=True)
    best = None
    for _ in range(2):
        bl.run(["mount", "-t", "tmpfs", "-o", "size=4g,mode=0755", "tmpfs", xtmp])
        try:
            st0 = os.statvfs(xtmp)
            c0, t = rusage_children(), time.perf_counter()
            bl.run(["tar", "-C", xtmp, "-xf", tarball])
            wall, cpu = time.perf_counter() - t, rusage_children() - c0
            st1 = os.statvfs(xtmp)
            used = (st0.f_bfree - st1.f_bfree) * st1.f_frsize
        finally:
            bl.run(["umount", xtmp])
        if best is None or cpu < best["tar_cpu_s"]:
            best = {"tar_cpu_s": round(cpu, 3), "tar_wall_s": round(wall, 3), "extracted_tmpfs_bytes": used}
    return best


def tree_yaml(keys):
    return "tree:\n" + "".join(f"  {k}: {v}\n" for k, v in keys.items()) if keys else ""


def resolve_configs(c, bundle, fanout, cache):
    """Each --pybundle mode's configuration, from what the plugin accepts (srun --test-only).  A
    plugin without tree.enabled has only the direct path: its default configuration is it."""
    if cache:
        return cache
    extra = {"fanout": fanout} if fanout else {}
    tree_known, why = c.probe(bl.config_text(tree_yaml({"enabled": "yes"})), bundle)
    for mode, alternatives in MODE_KEYS.items():
        cache[mode] = (None, "plugin without the tree: " + why)
        if not tree_known:
            if mode == "direct":
                cache[mode] = (bl.config_text(), "plugin without tree.enabled: its default configuration is the direct path")
            continue
        for keys in alternatives:
            keys = dict(keys, **extra) if mode != "direct" else keys
            text = bl.config_text(tree_yaml(keys))
            ok, why2 = c.probe(text, bundle)
            if ok:
                cache[mode] = (text, "")
                break
            cache[mode] = (None, why2)
    bl.log("configurations:", {k: v[1] or "ok" for k, v in cache.items()})
    return cache


def est_seconds(pt, info, read_mbps, cores):
    n, mode = pt["nodes"], pt["mode"]
    b = info["bundles"][pt["comp"]]
    read = b["bytes"] / (read_mbps * 1e6) if read_mbps else 0.5
    cpu = b.get("plugin_cpu_s") or b["tar_cpu_s"]
    x = cpu * max(1.0, n / cores)
    # sbcast moved about 140 MB/s per node here (small runs), its salloc and two steps cost ~5 s
    sb = read + n * b["bytes"] / 1.4e8 + x + 2
    return 4 + {"calib": cpu, "local": x, "direct": max(n * read, x), "tree": max(read, x), "store": read + x,
                "sbcast": sb, "sbcast-compress": sb}[mode]


def run_pybundle(c, pt, ctx, nodes, out):
    bundle = os.path.join(ctx["paths"]["mnt"], f"bundle.tar.{pt['comp']}")
    if pt["mode"] in ("calib", "local"):  # the plugin's extraction alone: bundle on local disk
        bundle = os.path.join(ctx["paths"]["src"], f"bundle.tar.{pt['comp']}")
        cfg, note = resolve_configs(c, bundle, ctx["fanout"], ctx["configs"])["direct"]
    else:
        cfg, note = resolve_configs(c, bundle, ctx["fanout"], ctx["configs"])[pt["mode"]]
    if cfg is None:
        out.update(ok=False, error=note, skipped=True)
        return
    out["config_note"] = note
    c.write_config(cfg)
    c.wait_idle()
    ctx["fs"].reset()
    watch = bl.LogWatch(nodes)
    ctx["sampler"].begin()
    t0, cpu0 = time.time(), bl.cpu_busy_s()
    r = c.as_user(["srun", f"-N{pt['nodes']}", "--ntasks-per-node=1", f"--pybundle={bundle}",
                   "printenv", "SLURM_JOB_ID"], timeout=1800)
    out["srun_s"], out["machine_cpu_s"] = round(time.time() - t0, 3), round(bl.cpu_busy_s() - cpu0, 2)
    c.wait_idle()  # the epilogs have removed the trees: the peak is complete
    peaks, out["samples"] = ctx["sampler"].end()
    out["peak_stage_bytes"] = {n: peaks[n] for n in nodes}
    st = ctx["fs"].settled()
    out["fs"] = bl.counters(st, os.path.basename(bundle))
    ids = r.stdout.split()
    out["ok"] = r.returncode == 0 and len(ids) == pt["nodes"]
    if r.returncode:
        out["error"] = r.stderr.strip()[-500:]
    if ids:
        out["job_id"] = int(ids[0])
        recs = watch.stage_records(out["job_id"], nodes)
        out["stage_records"] = recs
        out["stage"] = bl.staging_summary(recs, t0)
        out["time_s"] = out["stage"].get("span_s")
        if not staged_everywhere(recs, len(nodes)):
            out["ok"], out["error"] = False, f"staging: {out['stage']['outcomes']} on {len(recs)} nodes"
        want = "tree" if pt["mode"] in ("tree", "store") and pt["nodes"] > 1 else "direct"  # one node: no tree
        if recs and want not in out["stage"]["modes"]:
            out["mode_mismatch"] = f"wanted {want}, the nodes logged {out['stage']['modes']}"


SBCAST = r"""set -e
b=/dev/shm/bench-bundle.tar.{comp}
t0=$(date +%s.%N)
sbcast {opts} -f {bundle} $b
t1=$(date +%s.%N)
srun --ntasks-per-node=1 sh -c "mkdir -p /dev/shm/bench-x && tar -C /dev/shm/bench-x -xf $b && echo X \$(date +%s.%N)"
srun --ntasks-per-node=1 rm -rf /dev/shm/bench-x $b
echo T $SLURM_JOB_ID $t0 $t1
"""


def run_sbcast(c, pt, ctx, nodes, out):
    # sbcast mmaps the file, which a direct_io mount refuses: it reads the same files through a
    # mount of its own without direct_io (it reads the archive once, so no other reader shares it)
    bundle = os.path.join(ctx["paths"]["mnt_sbcast"], f"bundle.tar.{pt['comp']}")
    c.write_config(bl.config_text())
    c.wait_idle()
    ctx["fs_sbcast"].reset()
    ctx["sampler"].begin()
    script = SBCAST.format(comp=pt["comp"], bundle=bundle, opts="--compress" if pt["mode"] == "sbcast-compress" else "")
    t, cpu0 = time.time(), bl.cpu_busy_s()
    r = c.as_user(["salloc", f"-N{pt['nodes']}", "bash", "-c", script], timeout=1800)
    out["salloc_s"], out["machine_cpu_s"] = round(time.time() - t, 3), round(bl.cpu_busy_s() - cpu0, 2)
    c.wait_idle()
    peaks, out["samples"] = ctx["sampler"].end()
    out["peak_stage_bytes"] = {n: peaks[n] for n in nodes}
    out["fs"] = bl.counters(ctx["fs_sbcast"].settled(), os.path.basename(bundle))
    ends = [float(l.split()[1]) for l in r.stdout.splitlines() if l.startswith("X ")]
    tl = [l.split() for l in r.stdout.splitlines() if l.startswith("T ")]
    out["ok"] = r.returncode == 0 and len(ends) == pt["nodes"] and bool(tl)
    if not out["ok"]:
        out["error"] = (r.stderr.strip() or r.stdout.strip())[-500:]
    if tl:
        job, t0, t1 = int(tl[0][1]), float(tl[0][2]), float(tl[0][3])
        out.update(job_id=job, sbcast_s=round(t1 - t0, 3))
        if ends:
            out["time_s"] = round(max(ends) - t0, 3)


def run_point(c, pt, ctx):
    out = dict(pt)
    nodes = c.node_names(pt["nodes"])
    (run_sbcast if pt["mode"].startswith("sbcast") else run_pybundle)(c, pt, ctx, nodes, out)
    res = ctx["res"]
    if pt["mode"] == "calib":
        if out.get("ok"):
            b = res["environment"]["bundles"][pt["comp"]]
            b.setdefault("plugin_runs_s", []).append(out["stage"]["node_seconds_max"])
            b["plugin_cpu_s"] = min(b["plugin_runs_s"])
        res["calibration"].append(out)
    else:
        res["points"].append(out)
    bl.save_json(ctx["json"] + ".partial", res)
    peak = max(out.get("peak_stage_bytes", {}).values() or [0])
    if out.get("skipped"):
        bl.log(f"  {pt['comp']} {pt['mode']:15s} N={pt['nodes']:2d}: skipped: {out['error'][:160]}")
        return
    bl.log(f"  {pt['comp']} {pt['mode']:15s} N={pt['nodes']:2d}: {out.get('time_s', '-')} s, "
           f"{out.get('fs', {}).get('file_read_bytes', 0) / 1e6:.0f} MB in {out.get('fs', {}).get('file_opens', 0)} opens, "
           f"peak {peak / 1e6:.0f} MB, CPU {out.get('machine_cpu_s', '-')} s" + ("" if out.get("ok") else f"  FAILED: {out.get('error', '')[:200]}"))


def read_once(c, ctx, comp):
    """Time to read the bundle once through slowfs (the cap), as root on the host."""
    path = os.path.join(ctx["paths"]["mnt"], f"bundle.tar.{comp}")
    t = time.perf_counter()
    bl.run(["dd", f"if={path}", "of=/dev/null", "bs=1M", "status=none"])
    return round(time.perf_counter() - t, 3)


# "direct": a node of the tree read the shared file system itself (its parent failed);
# "reattached": another ancestor served it.  Both staged the node.
STAGED = {"staged", "reattached", "direct"}


def staged_everywhere(recs, n):
    return len(recs) >= n and not {r["outcome"] for r in recs} - STAGED


def derive(res):
    for p in res["points"]:  # a run before "reattached" counted as staged
        if not p.get("ok") and str(p.get("error", "")).startswith("staging:") and \
                staged_everywhere(p.get("stage_records", []), p["nodes"]):
            p["ok"] = True
            p.pop("error")
    cores = res["machine"]["cores"]
    t = {}
    for comp, b in res["environment"]["bundles"].items():
        cpu = b.get("plugin_cpu_s") or b["tar_cpu_s"]
        b["cpu_extract_s"], b["cpu_extract_from"] = cpu, "plugin, 1 node" if b.get("plugin_cpu_s") else "tar -xf"
        read = b.get("read_once_s") or b["bytes"] / (res["config"]["read_mbps"] * 1e6)
        pts = [p for p in res["points"] if p["comp"] == comp and p.get("ok") and p.get("time_s")]
        by = {(p["mode"], p["nodes"]): p for p in pts}
        for p in pts:
            n = p["nodes"]
            p["L_s"] = round(max(read, cpu * max(1.0, n / cores)), 3)  # one extraction uses one core
            p["over_L"] = round(p["time_s"] / p["L_s"], 2)
            p["fs_bytes_over_bundle"] = round(p["fs"]["file_read_bytes"] / b["bytes"], 3)
            p["peak_over_extracted"] = round(max(p["peak_stage_bytes"].values()) / b["extracted_tmpfs_bytes"], 3)
            sb = [by[(m, n)]["time_s"] for m in ("sbcast", "sbcast-compress") if (m, n) in by]
            if sb and p["mode"] in PYBUNDLE_MODES:
                p["over_best_sbcast"] = round(p["time_s"] / min(sb), 2)
            if ("local", n) in by and p["mode"] in PYBUNDLE_MODES:
                p["over_local"] = round(p["time_s"] / by[("local", n)]["time_s"], 2)
        tree = [p for p in pts if p["mode"] == "tree"]
        if tree:
            t[comp] = {"tree_over_L_max": max(p["over_L"] for p in tree),
                       "tree_over_L": {p["nodes"]: p["over_L"] for p in tree},
                       "tree_over_local": {p["nodes"]: p.get("over_local") for p in tree},
                       "tree_fs_bytes_over_bundle": [p["fs_bytes_over_bundle"] for p in tree],
                       "tree_peak_over_extracted_max": max(p["peak_over_extracted"] for p in tree),
                       "tree_over_best_sbcast": {p["nodes"]: p.get("over_best_sbcast") for p in tree}}
    res["targets"] = t


def plot(res, png):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    fig, axes = plt.subplots(1, 3, figsize=(18, 5.8))
    colour = {"tree": "tab:green", "direct": "tab:blue", "store": "tab:olive", "sbcast": "tab:red",
              "sbcast-compress": "tab:purple", "local": "tab:gray"}
    style = {"zst": "-", "gz": "--"}
    for comp, b in res["environment"]["bundles"].items():
        pts = [p for p in res["points"] if p["comp"] == comp and p.get("ok") and p.get("time_s")]
        for mode in MODES:
            sel = sorted((p for p in pts if p["mode"] == mode), key=lambda p: p["nodes"])
            if not sel:
                continue
            xs = [p["nodes"] for p in sel]
            kw = dict(linestyle=style.get(comp, ":"), marker="o", color=colour[mode], label=f"{MODES[mode]}, .{comp}")
            axes[0].plot(xs, [p["time_s"] for p in sel], **kw)
            axes[1].plot(xs, [p["fs_bytes_over_bundle"] for p in sel], **kw)
            axes[2].plot(xs, [p["peak_over_extracted"] for p in sel], **kw)
        ls = sorted({(p["nodes"], p["L_s"]) for p in pts})
        if ls:
            axes[0].plot(*zip(*ls), linestyle=style.get(comp, ":"), color="black",
                         label=f"L(N) = max(read once, extraction CPU x max(1, N / cores)), .{comp}")
    titles = ["Time until every node is staged", "Bytes read from the shared file system / bundle size",
              "Peak /dev/shm bytes per node / extracted size"]
    ylabels = ["seconds", "x bundle", "x extracted tree (tmpfs bytes)"]
    for ax, title, yl in zip(axes, titles, ylabels):
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:.0f}"))
        ax.set_xlabel("nodes N")
        ax.set_ylabel(yl)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3, which="both")
    for ax in axes[:2]:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:g}"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.StrMethodFormatter("{x:g}"))
    axes[0].legend(fontsize=7)
    e, m = res["environment"], res["machine"]
    sizes = ", ".join(f".{c} {b['bytes'] / 1e6:.0f} MB" for c, b in e["bundles"].items())
    fig.suptitle(f"Fan-out of a {e['bytes'] / 1e6:.0f} MB, {e['files']:,}-file environment "
                 f"({sizes}) from slowfs "
                 f"at {res['config']['read_mbps']} MB/s to N nodes; {m['cores']} cores, {m['date'][:10]}", fontsize=10)
    fig.tight_layout()
    fig.savefig(png, dpi=100)


def markdown(res):
    modes = [m for m in MODES if any(p["mode"] == m for p in res["points"])]
    out = ["| bundle | N | L(N) | " + " | ".join(modes) + " | tree / L | tree / local | tree / best sbcast |",
           "| --- | ---: | ---: |" + " ---: |" * (len(modes) + 3)]
    for comp in res["environment"]["bundles"]:
        for n in res["config"]["nodes"]:
            by = {p["mode"]: p for p in res["points"] if p["comp"] == comp and p["nodes"] == n}
            if not by:
                continue
            cells, ls = [], next((p["L_s"] for p in by.values() if "L_s" in p), None)
            for m in modes:
                p = by.get(m)
                if not p or not p.get("ok") or not p.get("time_s"):
                    cells.append("skipped" if p and p.get("skipped") else "failed" if p else "")
                    continue
                cells.append(f"{p['time_s']:.1f} s ({p['fs_bytes_over_bundle']:.2f}x, {p['peak_over_extracted']:.2f}x)")
            tr = by.get("tree", {})
            out.append(f"| .{comp} | {n} | {ls:.1f} s | " if ls else f"| .{comp} | {n} | - | ")
            out[-1] += " | ".join(cells) + (f" | {tr.get('over_L', '-')} | {tr.get('over_local', '-')}"
                                            f" | {tr.get('over_best_sbcast', '-')} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=bl.ints, default=[1, 2, 4, 8, 16], help="N values (1,2,4,8,16)")
    ap.add_argument("--modes", default=",".join(MODES), help="of " + ",".join(MODES) + " (all)")
    ap.add_argument("--compressions", default="zst,gz", help="bundle compressions (zst,gz)")
    ap.add_argument("--read-mbps", type=int, default=100, help="slowfs aggregate read cap, 10^6 B/s (100)")
    ap.add_argument("--delay-us", type=int, default=200, help="slowfs per-request delay (200)")
    ap.add_argument("--fanout", type=int, default=0, help="tree.fanout for tree and store (plugin default)")
    ap.add_argument("--max-hold", type=float, default=540, help="seconds one hold of the cluster may last (540)")
    ap.add_argument("--plugin", default=bl.DEFAULT_PLUGIN, help="the built plugin (%(default)s)")
    ap.add_argument("--work", default=bl.WORK, help="scratch directory (%(default)s)")
    ap.add_argument("--out", default=os.path.join(bl.BENCH, "results"), help="results directory")
    ap.add_argument("--dry-run", action="store_true", help="print the plan and its estimated duration")
    ap.add_argument("--plot-only", action="store_true", help="redraw the PNG from the JSON")
    ap.add_argument("--markdown", action="store_true", help="print the README table from the JSON")
    args = ap.parse_args()
    modes, comps = args.modes.split(","), args.compressions.split(",")
    out_json, out_png = os.path.join(args.out, "fanout.json"), os.path.join(args.out, "fanout.png")
    if args.plot_only or args.markdown:
        with open(out_json) as f:
            res = json.load(f)
        derive(res)  # the figures follow the code, not the code that wrote the JSON
        plot(res, out_png) if args.plot_only else print(markdown(res))
        return
    cores = os.cpu_count()
    calib = [{"comp": c, "mode": "calib", "nodes": 1} for c in comps for _ in range(2)]
    points = calib + [{"comp": c, "mode": m, "nodes": n} for c in comps for n in args.nodes for m in modes]
    p = paths(os.path.abspath(args.work))
    if args.dry_run:  # sizes of the last run, or typical ones
        guess = {"zst": (199e6, 1.6), "gz": (240e6, 3.0)}
        info = {"bundles": {c: {"bytes": guess.get(c, (250e6, 3))[0], "tar_cpu_s": guess.get(c, (0, 3))[1]}
                            for c in comps}}
        total = 0
        for pt in points:
            e = est_seconds(pt, info, args.read_mbps, cores)
            total += e
            print(f"{pt['comp']:4s} {pt['mode']:16s} N={pt['nodes']:2d}  ~{e:5.0f} s")
        holds = 1 + int(total // args.max_hold)
        print(f"about {(total + 30 * holds) / 60:.0f} min in {holds} holds (+ building the bundles once)")
        return
    if os.geteuid() != 0:
        sys.exit("fanout: run as root (FUSE mounts, the test cluster)")
    if max(args.nodes) > bl.MAX_NODES:
        sys.exit(f"fanout: the test cluster has at most {bl.MAX_NODES} nodes")
    bl.sigterm_is_exit()
    os.makedirs(args.out, exist_ok=True)
    info = prepare(p, comps)
    bl.install_plugin(args.plugin)
    res = {"what": "Fan-out of one bundle to N nodes: time until all are staged, shared-fs bytes, peak stage bytes",
           "modes": MODES, "machine": bl.machine(), "plugin": bl.plugin_info(args.plugin), "environment": info,
           "config": {"nodes": args.nodes, "modes": modes, "compressions": comps, "read_mbps": args.read_mbps,
                      "delay_us": args.delay_us, "fanout": args.fanout or "plugin default", "max_hold_s": args.max_hold},
           "L": "max(read once through slowfs, cpu_extract_s x max(1, N / cores))", "points": [], "calibration": [], "holds": []}
    ctx = {"paths": p, "res": res, "json": out_json, "configs": {}, "fanout": args.fanout}

    @contextlib.contextmanager
    def make_hold(_key):
        ctx["fs"] = bl.SlowFS(p["src"], p["mnt"], args.delay_us, args.read_mbps, opts="direct_io")
        ctx["fs_sbcast"] = bl.SlowFS(p["src"], p["mnt_sbcast"], args.delay_us, args.read_mbps)
        t = time.time()
        with bl.hold(max(args.nodes), [ctx["fs"], ctx["fs_sbcast"]], "fanout") as c:
            for comp in comps:
                b = info["bundles"][comp]
                if "read_once_s" not in b:
                    b["read_once_s"] = read_once(c, ctx, comp)
            ctx["sampler"] = bl.ShmSampler(c, c.node_names(max(args.nodes)))
            ctx["sampler"].start()
            try:
                yield c
            finally:
                ctx["sampler"].close()
        res["holds"].append({"seconds": round(time.time() - t, 1)})

    def run():
        return bl.run_holds([(None, points)], lambda pt: est_seconds(pt, info, args.read_mbps, cores),
                            args.max_hold, lambda c, pt: run_point(c, pt, ctx), make_hold)

    bl.run_and_save(res, out_json, out_png, run, derive, plot)


if __name__ == "__main__":
    main()
