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
         "tree-nocipher": "tree, pipelined, plugin built with --disable-tree-cipher (--cipher-cost)",
         "direct": "direct: tree.enabled: no",
         "store": "tree, store-and-forward",
         "sbcast": "sbcast + srun tar -xf",
         "sbcast-compress": "sbcast --compress + srun tar -xf",
         "local": "direct path, bundle on local disk: N extractions at once, no shared fs"}
PYBUNDLE_MODES = ("tree", "tree-nocipher", "direct", "store")
TREE_MODES = ("tree", "tree-nocipher", "store")
# Where the bundle lives: on slowfs (a shared file system with a read cap, direct_io: every node's
# read reaches it and is counted), or on this machine's local disk, page-cached (read faster than a
# child's prolog starts: the case where a tree whose parents did not keep the stream read it again;
# opens counted with inotify, bytes by the plugin's own stage lines).
STORAGES = {"slowfs": "slowfs: read cap, direct_io, counted by slowfs",
            "disk": "local disk, page-cached: opens counted by inotify, bytes by the stage lines"}
# The environments: "small" is start-up's (numpy + scipy, 195 MB, .tar.zst 62 MB), "full" make-env's
# default (641 MB, 21,211 files, .tar.zst 200 MB).
ENVS = {"small": ["python3-numpy", "python3-scipy"], "full": []}
# Keys to try, in order, for each mode (the first the plugin accepts is used): store-and-forward
# was specified as tree.mode: store; the plugin in progress spells it tree.store_and_forward.
MODE_KEYS = {"tree": [{}], "tree-nocipher": [{}], "direct": [{"enabled": "no"}],
             "store": [{"mode": "store"}, {"store_and_forward": "yes"}]}


def paths(work, env="full"):
    w = os.path.join(work, "fanout")
    full = env == "full"  # the full environment is fig1's, and its bundles keep their old place
    return {"env": os.path.join(work, "fs", "env") if full else os.path.join(w, f"env-{env}"),
            "packages": ENVS[env], "src": os.path.join(w, "fs" if full else f"fs-{env}"),
            "mnt": os.path.join(w, "mnt"), "mnt_sbcast": os.path.join(w, "mnt-sbcast"), "xtmp": os.path.join(w, "xtmp")}


def rusage_children():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def prepare(p, comps):
    """The default environment (shared with fig1) and its tarballs; per tarball the CPU time of
    `tar -xf` into a tmpfs of ours and what the extracted tree takes there."""
    if not os.path.exists(os.path.join(p["env"], ".make-env")):
        bl.log("building the environment", p["env"])
        bl.run([os.path.join(bl.BENCH, "make-env.sh"), "--force", p["env"]] + p["packages"])
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
    if pt.get("storage") == "disk":
        read = 0.2
    return 4 + {"calib": cpu, "local": x, "direct": max(n * read, x), "tree": max(read, x), "store": read + x,
                "tree-nocipher": max(read, x), "sbcast": sb, "sbcast-compress": sb}[mode]


def bundle_path(ctx, pt, sbcast=False):
    """The bundle of a point: on the local disk (its source directory) or through a slowfs mount
    (sbcast's own mount: it mmaps, which direct_io refuses)."""
    name = f"bundle.tar.{pt['comp']}"
    if pt.get("storage") == "disk" or pt["mode"] in ("calib", "local"):
        return os.path.join(ctx["paths"]["src"], name)
    return os.path.join(ctx["paths"]["mnt_sbcast" if sbcast else "mnt"], name)


def warm(path):
    """A page-cached local disk: the bundle's pages in memory before the point."""
    with open(path, "rb") as f:
        while f.read(1 << 22):
            pass


def start_counting(ctx, pt, bundle):
    if pt.get("storage") == "disk":
        warm(bundle)
        return bl.OpenWatch(bundle)
    ctx["fs" if pt["mode"] not in ("sbcast", "sbcast-compress") else "fs_sbcast"].reset()
    return None


def stop_counting(ctx, pt, bundle, watch, out):
    """What the point read of the bundle: slowfs's counters, or on the local disk the opens seen by
    inotify (those after the first prolog's start are the nodes') and the stage lines' bytes."""
    if watch is None:
        fs = ctx["fs" if pt["mode"] not in ("sbcast", "sbcast-compress") else "fs_sbcast"]
        out["fs"] = bl.counters(fs.settled(), os.path.basename(bundle))
        # a --pybundle job's srun opens the bundle once at submission to check it (16 KiB)
        out["fs"]["node_opens"] = out["fs"]["file_opens"] - (1 if pt["mode"] in PYBUNDLE_MODES else 0)
        return
    times = watch.stop()
    start = out.get("stage", {}).get("start_min")
    node = [t for t in times if start is None or t >= start]
    shared = out.get("stage", {}).get("shared_bytes_sum")
    out["fs"] = {"file_opens": len(times), "node_opens": len(node) if pt["mode"] in PYBUNDLE_MODES else len(times),
                 "file_read_bytes": shared, "counted_by": "inotify (opens), stage lines' shared_bytes (bytes)"}


def run_pybundle(c, pt, ctx, nodes, out):
    bundle = bundle_path(ctx, pt)
    if pt["mode"] in ("calib", "local"):  # the plugin's extraction alone: bundle on local disk
        cfg, note = resolve_configs(c, bundle, ctx["fanout"], ctx["configs"])["direct"]
    else:
        cfg, note = resolve_configs(c, bundle, ctx["fanout"], ctx["configs"])[pt["mode"]]
    if cfg is None:
        out.update(ok=False, error=note, skipped=True)
        return
    out["config_note"] = note
    c.write_config(cfg)
    c.wait_idle()
    counting = start_counting(ctx, pt, bundle)
    watch = bl.LogWatch(nodes)
    ctx["sampler"].begin()
    t0, cpu0 = time.time(), bl.cpu_busy_s()
    r = c.as_user(["srun", f"-N{pt['nodes']}", "--ntasks-per-node=1", f"--pybundle={bundle}",
                   "printenv", "SLURM_JOB_ID"], timeout=1800)
    out["srun_s"], out["machine_cpu_s"] = round(time.time() - t0, 3), round(bl.cpu_busy_s() - cpu0, 2)
    c.wait_idle()  # the epilogs have removed the trees: the peak is complete
    peaks, out["samples"] = ctx["sampler"].end()
    out["peak_stage_bytes"] = {n: peaks[n] for n in nodes}
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
        out["stage"]["start_min"] = min((x["start"] for x in recs if x.get("start")), default=None)
        want = "tree" if pt["mode"] in TREE_MODES and pt["nodes"] > 1 else "direct"  # one node: no tree
        if recs and want not in out["stage"]["modes"]:
            out["mode_mismatch"] = f"wanted {want}, the nodes logged {out['stage']['modes']}"
    stop_counting(ctx, pt, bundle, counting, out)


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
    bundle = bundle_path(ctx, pt, sbcast=True)
    c.write_config(bl.config_text())
    c.wait_idle()
    counting = start_counting(ctx, pt, bundle)
    ctx["sampler"].begin()
    script = SBCAST.format(comp=pt["comp"], bundle=bundle, opts="--compress" if pt["mode"] == "sbcast-compress" else "")
    t, cpu0 = time.time(), bl.cpu_busy_s()
    r = c.as_user(["salloc", f"-N{pt['nodes']}", "bash", "-c", script], timeout=1800)
    out["salloc_s"], out["machine_cpu_s"] = round(time.time() - t, 3), round(bl.cpu_busy_s() - cpu0, 2)
    c.wait_idle()
    peaks, out["samples"] = ctx["sampler"].end()
    out["peak_stage_bytes"] = {n: peaks[n] for n in nodes}
    stop_counting(ctx, pt, bundle, counting, out)
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
    if pt["mode"] == "tree-nocipher":  # the same commit built without the cipher, this point only
        bl.install_plugin(ctx["plugin_nocipher"])
    try:
        (run_sbcast if pt["mode"].startswith("sbcast") else run_pybundle)(c, pt, ctx, nodes, out)
    finally:
        if pt["mode"] == "tree-nocipher":
            bl.install_plugin(ctx["plugin"])
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
        bl.log(f"  {pt.get('storage', '')} {pt['comp']} {pt['mode']:15s} N={pt['nodes']:2d}: skipped: {out['error'][:160]}")
        return
    fs = out.get("fs", {})
    bl.log(f"  {pt.get('storage', '')} {pt['comp']} {pt['mode']:15s} N={pt['nodes']:2d}: {out.get('time_s', '-')} s, "
           f"{(fs.get('file_read_bytes') or 0) / 1e6:.1f} MB in {fs.get('node_opens', '-')} opens by nodes "
           f"({fs.get('file_opens', '-')} in all), "
           f"peak {peak / 1e6:.0f} MB, CPU {out.get('machine_cpu_s', '-')} s" + ("" if out.get("ok") else f"  FAILED: {out.get('error', '')[:200]}"))


def read_once_s(c, ctx, comp):
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


def storage_of(p):
    return p.get("storage", "slowfs")  # runs before the local disk was a storage


def read_once(p, bundle_bytes):
    """The tree's promise at this point: the job's nodes opened the bundle once and read 1.00-1.01
    x its bytes (srun's 16 KiB check at submission included on slowfs), every node by the tree."""
    fs = p.get("fs", {})
    nbytes = fs.get("file_read_bytes")
    ok = fs.get("node_opens") == 1 and nbytes is not None and bundle_bytes <= nbytes <= 1.01 * bundle_bytes
    if p["nodes"] > 1:
        recs = p.get("stage_records", [])
        ok = ok and len(recs) == p["nodes"] and all(r["mode"] == "tree" and r["outcome"] == "staged" for r in recs)
    return bool(ok)


def derive_group(res, storage, comp, b, cores):
    cpu = b.get("plugin_cpu_s") or b["tar_cpu_s"]
    read = b.get("read_once_s") or b["bytes"] / (res["config"]["read_mbps"] * 1e6)
    if storage == "disk":
        read = 0.0
    pts = [p for p in res["points"] if p["comp"] == comp and storage_of(p) == storage and p.get("ok") and p.get("time_s")]
    by = {(p["mode"], p["nodes"]): p for p in pts}
    for p in pts:
        n = p["nodes"]
        p["L_s"] = round(max(read, cpu * max(1.0, n / cores)), 3)  # one extraction uses one core
        p["over_L"] = round(p["time_s"] / p["L_s"], 2)
        nbytes = p.get("fs", {}).get("file_read_bytes")
        p["fs_bytes_over_bundle"] = None if nbytes is None else round(nbytes / b["bytes"], 3)
        p["peak_over_extracted"] = round(max(p["peak_stage_bytes"].values()) / b["extracted_tmpfs_bytes"], 3)
        sb = [by[(m, n)]["time_s"] for m in ("sbcast", "sbcast-compress") if (m, n) in by]
        if sb and p["mode"] in PYBUNDLE_MODES:
            p["over_best_sbcast"] = round(p["time_s"] / min(sb), 2)
        if ("direct", n) in by and p["mode"] in TREE_MODES:
            p["over_direct"] = round(p["time_s"] / by[("direct", n)]["time_s"], 2)
        if ("local", n) in by and p["mode"] in PYBUNDLE_MODES:
            p["over_local"] = round(p["time_s"] / by[("local", n)]["time_s"], 2)
        if p["mode"] in TREE_MODES:
            p["read_once"] = read_once(p, b["bytes"])
    tree = [p for p in res["points"] if p["comp"] == comp and storage_of(p) == storage and p["mode"] == "tree"]
    if not tree:
        return None
    for p in tree:  # a failed tree point did not read once either
        p.setdefault("read_once", False)
    ok = [p for p in tree if p.get("L_s")]
    return {"tree_read_once_at_every_n": all(p["read_once"] for p in tree),
            "tree_read_once": {p["nodes"]: p["read_once"] for p in tree},
            "tree_fs_bytes_over_bundle": {p["nodes"]: p.get("fs_bytes_over_bundle") for p in tree},
            "tree_node_opens": {p["nodes"]: p.get("fs", {}).get("node_opens") for p in tree},
            "tree_over_L": {p["nodes"]: p["over_L"] for p in ok},
            "tree_over_direct": {p["nodes"]: p.get("over_direct") for p in ok},
            "tree_over_best_sbcast": {p["nodes"]: p.get("over_best_sbcast") for p in ok},
            "tree_peak_over_extracted_max": max((p["peak_over_extracted"] for p in ok), default=None)}


def median(xs):
    xs = sorted(xs)
    return None if not xs else xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2


def derive_cipher(res):
    """The channel's cost: the tree with the cipher against the same commit built without it, point
    by point in the same run (staged time, and the machine's CPU seconds per node per GB streamed)."""
    cc = res.get("cipher_cost")
    if not cc or not cc.get("measured"):
        return
    rows, ratios, cpus = [], [], []
    for p in res["points"]:
        if p["mode"] != "tree" or not p.get("ok") or p["nodes"] < 2:
            continue
        q = next((q for q in res["points"] if q["mode"] == "tree-nocipher" and q.get("ok") and q["nodes"] == p["nodes"]
                  and storage_of(q) == storage_of(p) and q["comp"] == p["comp"] and q.get("rep") == p.get("rep")), None)
        if not q or not p.get("time_s") or not q.get("time_s"):
            continue
        gb = res["environment"]["bundles"][p["comp"]]["bytes"] / 1e9
        ratio = p["time_s"] / q["time_s"]
        cpu = (p["machine_cpu_s"] - q["machine_cpu_s"]) / p["nodes"] / gb
        ratios.append(ratio)
        cpus.append(cpu)
        rows.append({"storage": storage_of(p), "comp": p["comp"], "nodes": p["nodes"], "rep": p.get("rep"),
                     "staged_s": p["time_s"], "staged_nocipher_s": q["time_s"], "staged_ratio": round(ratio, 3),
                     "machine_cpu_s": p["machine_cpu_s"], "machine_cpu_nocipher_s": q["machine_cpu_s"],
                     "cpu_s_per_node_per_gb": round(cpu, 3)})
    cc.update(points=rows, staged_ratio_median=round(median(ratios), 3) if ratios else None,
              cpu_s_per_node_per_gb_median=round(median(cpus), 3) if cpus else None,
              meets_target=(median(ratios) <= cc["target_ratio"]) if ratios else None)


def derive(res):
    for p in res["points"]:  # a run before "reattached" counted as staged
        if not p.get("ok") and str(p.get("error", "")).startswith("staging:") and \
                staged_everywhere(p.get("stage_records", []), p["nodes"]):
            p["ok"] = True
            p.pop("error")
    cores = res["machine"]["cores"]
    t = {}
    for storage in res["config"].get("storages", ["slowfs"]):
        for comp, b in res["environment"]["bundles"].items():
            cpu = b.get("plugin_cpu_s") or b["tar_cpu_s"]
            b["cpu_extract_s"], b["cpu_extract_from"] = cpu, "plugin, 1 node" if b.get("plugin_cpu_s") else "tar -xf"
            g = derive_group(res, storage, comp, b, cores)
            if g:
                t[f"{storage}/{comp}"] = g
    res["targets"] = t
    res["tree_read_once_everywhere"] = bool(t) and all(g["tree_read_once_at_every_n"] for g in t.values())
    derive_cipher(res)


def plot(res, png):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    fig, axes = plt.subplots(1, 3, figsize=(18, 5.8))
    colour = {"tree": "tab:green", "tree-nocipher": "tab:cyan", "direct": "tab:blue", "store": "tab:olive",
              "sbcast": "tab:red", "sbcast-compress": "tab:purple", "local": "tab:gray"}
    style = {("slowfs", "zst"): "-", ("slowfs", "gz"): "--", ("disk", "zst"): ":", ("disk", "gz"): "-."}
    for storage in res["config"].get("storages", ["slowfs"]):
        for comp, b in res["environment"]["bundles"].items():
            pts = [p for p in res["points"] if p["comp"] == comp and storage_of(p) == storage and p.get("ok")
                   and p.get("time_s")]
            ls_ = style.get((storage, comp), "-")
            for mode in MODES:
                sel = sorted((p for p in pts if p["mode"] == mode), key=lambda p: p["nodes"])
                if not sel:
                    continue
                xs = [p["nodes"] for p in sel]
                kw = dict(linestyle=ls_, marker="o", color=colour[mode], label=f"{mode}, .{comp} on {storage}")
                axes[0].plot(xs, [p["time_s"] for p in sel], **kw)
                ys = [(p["nodes"], p["fs_bytes_over_bundle"]) for p in sel if p.get("fs_bytes_over_bundle") is not None]
                if ys:
                    axes[1].plot(*zip(*ys), **kw)
                axes[2].plot(xs, [p["peak_over_extracted"] for p in sel], **kw)
            ls = sorted({(p["nodes"], p["L_s"]) for p in pts})
            if ls:
                axes[0].plot(*zip(*ls), linestyle=ls_, color="black",
                             label=f"L(N) = max(read once, extraction CPU x max(1, N / cores)), .{comp} on {storage}")
    titles = ["Time until every node is staged", "Bytes the nodes read of the bundle / bundle size",
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
    axes[0].legend(fontsize=6)
    e, m = res["environment"], res["machine"]
    sizes = ", ".join(f".{c} {b['bytes'] / 1e6:.0f} MB" for c, b in e["bundles"].items())
    fig.suptitle(f"Fan-out of a {e['bytes'] / 1e6:.0f} MB, {e['files']:,}-file environment "
                 f"({sizes}) from slowfs at {res['config']['read_mbps']} MB/s and from a page-cached local disk "
                 f"to N nodes; {m['cores']} cores (shared), {m['date'][:10]}", fontsize=10)
    fig.tight_layout()
    fig.savefig(png, dpi=100)


def cell(p):
    if not p or not p.get("ok") or not p.get("time_s"):
        return "skipped" if p and p.get("skipped") else "failed" if p else ""
    x = p.get("fs_bytes_over_bundle")
    opens = p.get("fs", {}).get("node_opens")
    return f"{p['time_s']:.1f} s ({'-' if x is None else f'{x:.2f}x'}, {opens} open{'s' if opens != 1 else ''})"


def markdown(res):
    modes = [m for m in MODES if any(p["mode"] == m for p in res["points"])]
    out = ["| bundle on | N | " + " | ".join(modes) + " | tree / direct | tree / sbcast | tree read once |",
           "| --- | ---: |" + " ---: |" * (len(modes) + 3)]
    for storage in res["config"].get("storages", ["slowfs"]):
        for comp in res["environment"]["bundles"]:
            for n in res["config"]["nodes"]:
                by = {p["mode"]: p for p in res["points"] if p["comp"] == comp and p["nodes"] == n
                      and storage_of(p) == storage and p.get("rep", 0) == 0}
                if not by:
                    continue
                tr = by.get("tree", {})
                out.append(f"| {storage} (.{comp}) | {n} | " + " | ".join(cell(by.get(m)) for m in modes) +
                           f" | {tr.get('over_direct', '-')} | {tr.get('over_best_sbcast', '-')} |"
                           f" {'yes' if tr.get('read_once') else 'NO'} |")
    cc = res.get("cipher_cost")
    if cc and cc.get("measured"):
        out += ["", "| bundle on | N | tree | tree without cipher | ratio | CPU-s / node / GB |",
                "| --- | ---: | ---: | ---: | ---: | ---: |"]
        out += [f"| {r['storage']} (.{r['comp']}) | {r['nodes']} | {r['staged_s']:.2f} s | {r['staged_nocipher_s']:.2f} s |"
                f" {r['staged_ratio']:.2f} | {r['cpu_s_per_node_per_gb']:.2f} |" for r in cc["points"]]
    elif cc:
        out += ["", f"cipher cost: not measured ({cc['why']})"]
    return "\n".join(out)


def cipher_plan(args):
    """--cipher-cost: the tree points again with the same commit built without the cipher."""
    if not args.cipher_cost:
        return None
    if not args.plugin_nocipher:
        why = args.cipher_absent or "no --plugin-nocipher given"
        print(f"cipher cost: not measured ({why})", file=sys.stderr)
        return {"measured": False, "why": why, "staged_ratio_median": None, "cpu_s_per_node_per_gb_median": None}
    if not os.path.isfile(args.plugin_nocipher):
        sys.exit(f"fanout: --plugin-nocipher {args.plugin_nocipher}: not built")
    return {"measured": True, "plugin_nocipher": args.plugin_nocipher, "target_ratio": 1.05,
            "micro": load_micro(os.path.join(args.out, "tree_cipher.json"))}


def load_micro(path):
    """The cipher's own microbenchmark, if its author's bench wrote it (bench/results/tree_cipher.json)."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def plan_points(args, modes, comps, storages):
    calib = [{"comp": c, "mode": "calib", "nodes": 1} for c in comps for _ in range(2)]
    points = []
    for storage in storages:
        for c in comps:
            for n in args.nodes:
                for rep in range(args.reps):
                    for m in modes:
                        if m == "local" and storage != "slowfs":
                            continue  # the disk's own direct mode is the same thing
                        if m == "tree-nocipher" and n < 2:
                            continue  # one node has no tree
                        if rep and m not in ("tree", "tree-nocipher"):
                            continue  # repetitions are for the cipher's ratio
                        pt = {"storage": storage, "comp": c, "mode": m, "nodes": n}
                        if args.reps > 1:
                            pt["rep"] = rep
                        points.append(pt)
    return calib + points


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=bl.ints, default=[1, 2, 4, 8, 16], help="N values (1,2,4,8,16)")
    ap.add_argument("--modes", default="tree,direct,sbcast", help="of " + ",".join(MODES) + " (tree,direct,sbcast)")
    ap.add_argument("--storages", default="slowfs,disk", help="where the bundle is: " + ", ".join(STORAGES) + " (both)")
    ap.add_argument("--env", default="small", choices=sorted(ENVS),
                    help="small: numpy + scipy (62 MB .tar.zst); full: make-env's default (200 MB) (small)")
    ap.add_argument("--compressions", default="zst", help="bundle compressions (zst; zst,gz)")
    ap.add_argument("--read-mbps", type=int, default=100, help="slowfs aggregate read cap, 10^6 B/s (100)")
    ap.add_argument("--delay-us", type=int, default=200, help="slowfs per-request delay (200)")
    ap.add_argument("--fanout", type=int, default=0, help="tree.fanout for tree and store (plugin default)")
    ap.add_argument("--max-hold", type=float, default=540, help="seconds one hold of the cluster may last (540)")
    ap.add_argument("--plugin", default=bl.DEFAULT_PLUGIN, help="the built plugin (%(default)s)")
    ap.add_argument("--cipher-cost", action="store_true",
                    help="also run every tree point with --plugin-nocipher (bench/run fanout --cipher-cost builds it)")
    ap.add_argument("--plugin-nocipher", default="", help="the same commit built with --disable-tree-cipher")
    ap.add_argument("--cipher-absent", default="", help=argparse.SUPPRESS)  # bench/run: why there is none
    ap.add_argument("--reps", type=int, default=1, help="tree (and tree-nocipher) points per N (1)")
    ap.add_argument("--work", default=bl.WORK, help="scratch directory (%(default)s)")
    ap.add_argument("--out", default=os.path.join(bl.BENCH, "results"), help="results directory")
    ap.add_argument("--dry-run", action="store_true", help="print the plan and its estimated duration")
    ap.add_argument("--plot-only", action="store_true", help="redraw the PNG from the JSON")
    ap.add_argument("--markdown", action="store_true", help="print the README table from the JSON")
    args = ap.parse_args()
    modes, comps, storages = args.modes.split(","), args.compressions.split(","), args.storages.split(",")
    cipher = cipher_plan(args)
    if cipher and cipher["measured"] and "tree-nocipher" not in modes:
        modes.insert(modes.index("tree") + 1 if "tree" in modes else 0, "tree-nocipher")
    out_json, out_png = os.path.join(args.out, "fanout.json"), os.path.join(args.out, "fanout.png")
    if bl.redraw(args, out_json, out_png, derive, plot, markdown):
        return
    cores = os.cpu_count()
    points = plan_points(args, modes, comps, storages)
    p = paths(os.path.abspath(args.work), args.env)
    if args.dry_run:  # sizes of the last run, or typical ones
        guess = {"zst": (199e6, 1.6), "gz": (240e6, 3.0)} if args.env == "full" else {"zst": (62e6, 0.6), "gz": (70e6, 1.2)}
        info = {"bundles": {c: {"bytes": guess.get(c, (250e6, 3))[0], "tar_cpu_s": guess.get(c, (0, 3))[1]}
                            for c in comps}}
        total = 0
        for pt in points:
            e = est_seconds(pt, info, args.read_mbps, cores)
            total += e
            print(f"{pt.get('storage', ''):6s} {pt['comp']:4s} {pt['mode']:16s} N={pt['nodes']:2d}  ~{e:5.0f} s")
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
    res = {"what": "Fan-out of one bundle to N nodes: time until all are staged, bytes and opens of the bundle, "
                   "peak stage bytes",
           "modes": MODES, "storages": STORAGES, "machine": bl.machine(), "plugin": bl.plugin_info(args.plugin),
           "environment": dict(info, name=args.env, packages=p["packages"] or "make-env.sh default"),
           "config": {"nodes": args.nodes, "modes": modes, "compressions": comps, "storages": storages,
                      "read_mbps": args.read_mbps, "reps": args.reps,
                      "delay_us": args.delay_us, "fanout": args.fanout or "plugin default", "max_hold_s": args.max_hold},
           "L": "max(read once through slowfs (0 on the local disk), cpu_extract_s x max(1, N / cores))",
           "cipher_cost": cipher, "points": [], "calibration": [], "holds": []}
    ctx = {"paths": p, "res": res, "json": out_json, "configs": {}, "fanout": args.fanout,
           "plugin": args.plugin, "plugin_nocipher": args.plugin_nocipher}

    @contextlib.contextmanager
    def make_hold(_key):
        ctx["fs"] = bl.SlowFS(p["src"], p["mnt"], args.delay_us, args.read_mbps, opts="direct_io")
        ctx["fs_sbcast"] = bl.SlowFS(p["src"], p["mnt_sbcast"], args.delay_us, args.read_mbps)
        t = time.time()
        with bl.hold(max(args.nodes), [ctx["fs"], ctx["fs_sbcast"]], "fanout") as c:
            if "slowfs" in storages:
                for comp in comps:
                    b = info["bundles"][comp]
                    if "read_once_s" not in b:
                        b["read_once_s"] = read_once_s(c, ctx, comp)
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
    print(markdown(res))
    if not res["tree_read_once_everywhere"]:
        sys.exit("fanout: the tree did not read the bundle once at every N: " +
                 json.dumps({k: g["tree_read_once"] for k, g in res["targets"].items()}))


if __name__ == "__main__":
    main()
