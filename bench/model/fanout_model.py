#!/usr/bin/python3
"""A model of the time to stage one bundle on N nodes (up to 10,000), four ways, and the fan-out k
it recommends.  Standard library only (matplotlib for the plot).

  pipelined tree   T = S / min(fs_client, link / k', S / t_x) + depth x (k' x chunk / link + hop_latency + conn)
                   the stream runs at its slowest stage: the root's read, a node's uplink shared by
                   its k children, or extraction (t_x = U / extract_rate); the last leaf is `depth`
                   hops behind, each hop a chunk's transmission, the latency and a connection set-up;
                   k' = min(k, N - 1), the children that share a parent's uplink
  store-and-fwd    T = S / fs_client + depth x (k' x S / link + hop_latency + conn) + t_x
                   every level receives the whole bundle before it sends it on (python-mpi-bcast)
  sbcast           T = S / fs_client + ceil(S / block) x (min(N, w) x block / link + depth_w x (block / link
                       + hop_latency)) + t_x + launch
                   Slurm sends each block to min(N, w) nodes itself (TreeWidth w) and waits for every
                   node's reply before the next block; then `srun tar -xf` everywhere
  direct path      T = max(S / fs_client, N x S / fs_aggregate, t_x)
                   every node reads the shared file system itself

depth = levels below the root of the complete k-ary tree of N nodes (node i's parent (i-1)/k, as
src/tree/tree_topology.h).  S is the bundle's size, U its unpacked size.

  bench/run model                                  -> bench/results/model.{json,png}, recommendation
  bench/run model --check bench/results/fanout.json   the measured points against the model of
                                                   this machine (also written to model.json)

On this machine (--check) the nodes are namespaces of one kernel sharing `cores` cores: the read
is the slowfs cap, every node's extraction competes for the cores (N nodes cost N x cpu / cores),
and the links are memory copies.  Each mode's local model is a parameter-free base from the
run's own calibration plus a few costs fitted by non-negative least squares (per tree level, per
node, per job), which the report names.
"""
import argparse
import json
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(os.path.dirname(HERE), "results")

GB = 1e9
# A real cluster (the defaults of the plot and of the recommendation).
CLUSTER = {
    "bundle_bytes": 200e6,        # S: the realistic bundle, .tar.zst (bench/results/fanout.json)
    "unpacked_bytes": 641e6,      # U: what extraction writes
    "fs_client_bps": 2 * GB,      # one client reading the shared file system (Lustre/GPFS client)
    "fs_aggregate_bps": 20 * GB,  # what the shared file system gives one job's N clients together
    "hop_latency_s": 20e-6,       # one network hop, one way, with the kernel's TCP
    "chunk_bytes": 1 << 20,       # the tree's frame (PL_FRAME_DATA_MAX)
    "conn_s": 5e-3,               # per level: prolog start skew, TCP connect, MUNGE handshake
    "sbcast_width": 50,           # Slurm's TreeWidth (22.05 default)
    "sbcast_block_bytes": 8 << 20,  # sbcast's block size
    "launch_s": 0.3,              # srun of the extraction step after sbcast
}
LINKS_GBPS = [10, 25]             # Gb/s per node, each direction
EXTRACT_GBPS = [0.5, 1.0]         # unpacked GB/s of one node's extraction (zstd + file creation)
KS = [2, 4, 8, 16, 32]
CONN_S = [5e-3, 50e-3]            # per-level set-up in the recommendation: quick, or prologs that start late


def depth(n, k):
    """Levels below the root of the complete k-ary tree of n nodes (pl_tree_depth)."""
    if n <= 1:
        return 0
    if k == 1:
        return n - 1
    d, covered, level = 0, 1, 1
    while covered < n:
        level *= k
        covered += level
        d += 1
    return d


def t_tree(n, k, link, x, p):
    s, tx = p["bundle_bytes"], p["unpacked_bytes"] / x
    d, kk = depth(n, k), min(k, n - 1)  # a parent's uplink is shared by its children (the root's: all)
    rate = min(p["fs_client_bps"], s / tx, link / kk if kk else math.inf)
    return s / rate + d * (p["chunk_bytes"] * kk / link + p["hop_latency_s"] + p["conn_s"])


def t_store(n, k, link, x, p):
    s, tx = p["bundle_bytes"], p["unpacked_bytes"] / x
    return s / p["fs_client_bps"] + depth(n, k) * (min(k, n - 1) * s / link + p["hop_latency_s"] + p["conn_s"]) + tx


def t_sbcast(n, link, x, p):
    s, tx, w, b = p["bundle_bytes"], p["unpacked_bytes"] / x, p["sbcast_width"], p["sbcast_block_bytes"]
    per_block = min(n, w) * b / link + depth(n, w) * (b / link + p["hop_latency_s"])
    return s / p["fs_client_bps"] + math.ceil(s / b) * per_block + tx + p["launch_s"]


def t_direct(n, link, x, p):
    s, tx = p["bundle_bytes"], p["unpacked_bytes"] / x
    return max(s / p["fs_client_bps"], n * s / p["fs_aggregate_bps"], tx)


def ns_grid(nmax=10000):
    out, n = [], 1
    while n < nmax:
        out.append(n)
        n = max(n + 1, int(n * 1.25))
    return out + [nmax]


def recommend(p, ns=(16, 128, 1024, 10000)):
    """For every (link, extraction rate, N): the best k in 1..64 and each candidate's slowdown
    against it; the recommendation is the candidate whose worst slowdown is least."""
    rows, worst = [], {k: 1.0 for k in KS}
    for lg in LINKS_GBPS:
        for xg in EXTRACT_GBPS:
            for conn in CONN_S:
                rows += recommend_rows(dict(p, conn_s=conn), lg, xg, ns, worst)
    k = min(worst, key=worst.get)
    return {"table": rows, "worst_slowdown": {str(k): round(v, 2) for k, v in worst.items()}, "recommended_k": k}


def recommend_rows(p, lg, xg, ns, worst):
    rows = []
    link, x = lg * GB / 8, xg * GB
    for n in ns:
        times = {k: t_tree(n, k, link, x, p) for k in range(1, 65)}
        best = min(times, key=times.get)
        row = {"link_gbps": lg, "extract_gbps": xg, "conn_s": p["conn_s"], "nodes": n, "best_k": best,
               "best_s": round(times[best], 3)}
        for k in KS:
            row[f"k{k}_s"] = round(times[k], 3)
            worst[k] = max(worst[k], times[k] / times[best])
        rows.append(row)
    return rows


def plot(p, png):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    ns = ns_grid()
    fig, axes = plt.subplots(len(LINKS_GBPS), len(EXTRACT_GBPS), figsize=(14, 10), sharex=True, sharey=True)
    colours = plt.cm.viridis([i / (len(KS) - 1) for i in range(len(KS))])
    for i, lg in enumerate(LINKS_GBPS):
        for j, xg in enumerate(EXTRACT_GBPS):
            ax, link, x = axes[i][j], lg * GB / 8, xg * GB
            for k, c in zip(KS, colours):
                ax.plot(ns, [t_tree(n, k, link, x, p) for n in ns], color=c, label=f"tree, pipelined, k={k}")
            ax.plot(ns, [t_store(n, 8, link, x, p) for n in ns], "--", color="tab:olive", label="store-and-forward, k=8")
            ax.plot(ns, [t_sbcast(n, link, x, p) for n in ns], "--", color="tab:red",
                    label=f"sbcast (TreeWidth {p['sbcast_width']}) + tar -xf")
            ax.plot(ns, [t_direct(n, link, x, p) for n in ns], ":", color="tab:blue",
                    label=f"direct: every node reads ({p['fs_aggregate_bps'] / GB:g} GB/s aggregate)")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:g}"))
            ax.grid(alpha=0.3, which="both")
            ax.set_title(f"link {lg} Gb/s, extraction {xg:g} GB/s (unpacked)", fontsize=10)
            if i == len(LINKS_GBPS) - 1:
                ax.set_xlabel("nodes N")
            if j == 0:
                ax.set_ylabel("time until every node is staged (s)")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"Modelled staging of a {p['bundle_bytes'] / 1e6:.0f} MB bundle ({p['unpacked_bytes'] / 1e6:.0f} MB "
                 f"unpacked); fs client {p['fs_client_bps'] / GB:g} GB/s, chunk {p['chunk_bytes'] >> 10} KiB, "
                 f"hop {p['hop_latency_s'] * 1e6:g} us, set-up {p['conn_s'] * 1e3:g} ms per level", fontsize=11)
    fig.tight_layout()
    fig.savefig(png, dpi=100)


# ---------------------------------------------------------------- this machine

def nnls(rows, ys):
    """Least squares of ys ~ rows . theta with theta >= 0, for one or two features: the
    unconstrained solution, else the best with one feature at zero."""
    m = len(rows[0])

    def solve(cols):
        if not cols:
            return [0.0] * m
        a = [[sum(r[i] * r[j] for r in rows) for j in cols] for i in cols]
        b = [sum(r[i] * y for r, y in zip(rows, ys)) for i in cols]
        if len(cols) == 1:
            th = [b[0] / a[0][0]] if a[0][0] else [0.0]
        else:
            det = a[0][0] * a[1][1] - a[0][1] * a[1][0]
            if abs(det) < 1e-12:
                return None
            th = [(b[0] * a[1][1] - b[1] * a[0][1]) / det, (a[0][0] * b[1] - a[1][0] * b[0]) / det]
        out = [0.0] * m
        for c, t in zip(cols, th):
            out[c] = t
        return out

    def sse(th):
        return sum((y - sum(t * f for t, f in zip(th, r))) ** 2 for r, y in zip(rows, ys))

    subsets = [list(range(m))] + [[i] for i in range(m)] + [[]]
    cands = [th for th in map(solve, subsets) if th is not None and min(th) >= 0]
    return min(cands, key=sse)


def check(path, out):
    with open(path) as f:
        res = json.load(f)
    cores = res["machine"]["cores"]
    k = res["config"]["fanout"] if isinstance(res["config"]["fanout"], int) else 8
    report = {"source": path, "cores": cores, "k": k, "modes": {}}
    for comp, b in res["environment"]["bundles"].items():
        cpu = b.get("cpu_extract_s") or b.get("plugin_cpu_s") or b["tar_cpu_s"]
        read = b.get("read_once_s") or b["bytes"] / (res["config"]["read_mbps"] * 1e6)
        tar = b["tar_cpu_s"]

        def x(n, c=cpu):  # N extractions sharing the cores; one alone uses one core
            return c * max(1.0, n / cores)
        # base(N): what the calibration alone predicts; features: the costs fitted on top
        models = {
            "tree": (lambda n: max(read, x(n)), lambda n: [depth(n, k), n - 1],
                     ["per tree level (s)", "per node beyond the root (s)"]),
            "store": (lambda n: read + x(n), lambda n: [depth(n, k), n - 1],
                      ["per tree level (s)", "per node beyond the root (s)"]),
            "direct": (lambda n: max(n * read, x(n)), lambda n: [1.0], ["per job (s)"]),
            "sbcast": (lambda n: read + x(n, tar), lambda n: [1.0, n], ["per job (s)", "per node (s)"]),
            "sbcast-compress": (lambda n: read + x(n, tar), lambda n: [1.0, n], ["per job (s)", "per node (s)"]),
        }
        for mode, (base, feats, names) in models.items():
            pts = sorted(((p["nodes"], p["time_s"]) for p in res["points"]
                          if p["comp"] == comp and p["mode"] == mode and p.get("ok") and p.get("time_s")
                          and p.get("storage", "slowfs") == "slowfs"))  # the model's read is the capped one
            if not pts:
                continue
            rows = [feats(n) for n, _ in pts]
            theta = nnls(rows, [t - base(n) for n, t in pts])
            fit = [{"nodes": n, "measured_s": t, "base_s": round(base(n), 3),
                    "model_s": round(base(n) + sum(a * f for a, f in zip(theta, feats(n))), 3)}
                   for n, t in pts]
            for r in fit:
                r["error"] = round(r["model_s"] / r["measured_s"] - 1, 3)
            report["modes"][f"{mode}.{comp}"] = {
                "fitted": {nm: round(a, 4) for nm, a in zip(names, theta)},
                "rms_error": round(math.sqrt(sum(r["error"] ** 2 for r in fit) / len(fit)), 3), "points": fit}
    out["check"] = report
    lines = [f"{'mode':24s} {'N':>3s} {'measured':>9s} {'base':>7s} {'model':>7s} {'error':>7s}"]
    for name, m in report["modes"].items():
        for r in m["points"]:
            lines.append(f"{name:24s} {r['nodes']:3d} {r['measured_s']:8.2f}s {r['base_s']:6.2f}s "
                         f"{r['model_s']:6.2f}s {r['error']:+7.1%}")
        lines.append(f"{'':24s} fitted: {m['fitted']}, rms error {m['rms_error']:.1%}")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", metavar="FANOUT_JSON", help="fit and compare the measured points of bench/run fanout")
    ap.add_argument("--out", default=RESULTS, help="results directory (%(default)s)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="change a parameter of the real-cluster model, e.g. conn_s=0.02 (repeatable)")
    args = ap.parse_args()
    p = dict(CLUSTER)
    for kv in args.set:
        key, value = kv.split("=", 1)
        if key not in p:
            sys.exit(f"model: unknown parameter {key} (of {', '.join(p)})")
        p[key] = float(value)
    os.makedirs(args.out, exist_ok=True)
    out = {"parameters": p, "links_gbps": LINKS_GBPS, "extract_gbps": EXTRACT_GBPS, "ks": KS,
           "curves": {}, "recommendation": recommend(p)}
    for lg in LINKS_GBPS:
        for xg in EXTRACT_GBPS:
            link, x = lg * GB / 8, xg * GB
            ns = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 10000]
            c = {f"tree_k{k}": [round(t_tree(n, k, link, x, p), 3) for n in ns] for k in KS}
            c["store_k8"] = [round(t_store(n, 8, link, x, p), 3) for n in ns]
            c["sbcast"] = [round(t_sbcast(n, link, x, p), 3) for n in ns]
            c["direct"] = [round(t_direct(n, link, x, p), 3) for n in ns]
            out["curves"][f"link{lg}_extract{xg:g}"] = {"nodes": ns, **c}
    if args.check:
        print(check(args.check, out))
    rec = out["recommendation"]
    print(f"worst slowdown against the best k (N = 16..10,000, links {LINKS_GBPS} Gb/s, extraction "
          f"{EXTRACT_GBPS} GB/s, set-up {CONN_S} s per level): {rec['worst_slowdown']}; "
          f"recommended k = {rec['recommended_k']}")
    for r in rec["table"]:
        if r["nodes"] == 10000:
            print(f"  N=10000 link {r['link_gbps']:2d} Gb/s extract {r['extract_gbps']:g} GB/s set-up "
                  f"{r['conn_s'] * 1e3:g} ms: best k={r['best_k']:2d} "
                  f"{r['best_s']:.2f} s; " + ", ".join(f"k={k} {r[f'k{k}_s']:.2f} s" for k in KS))
    with open(os.path.join(args.out, "model.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    plot(p, os.path.join(args.out, "model.png"))
    print(f"wrote {os.path.join(args.out, 'model.json')} and model.png")


if __name__ == "__main__":
    main()
