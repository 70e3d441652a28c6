#!/usr/bin/python3
"""pylaunch-report on N records (default 1,000,000) from bench/report_records.py (seeded):
the time to load them into a fresh database and to write the HTML page, each a process of its
own as a centre would run them -> results/report.json.

    bench/run report [--records N] [--files K] [--seed S] [--gzip] [--jobs 1,2] [--out DIR]
                     [--baseline DIR]

--baseline DIR: another version's tools/report (e.g. `git archive main tools/report | tar -x
-C /tmp/main`, then DIR=/tmp/main/tools/report), loaded and rendered (-j 1) in the same run
just before this one's, on the same records: the ratio is measured side by side.

The records are generated once into $BENCH_WORK/report-records-N-sS (not timed) and reused.
"""
import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
LIB = os.path.join(REPO, "tools", "report")
WORK = os.environ.get("BENCH_WORK", "/var/tmp/pylaunch-bench")


def timed(cmd, env):
    """(wall seconds, CPU seconds of the child, its stdout)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, out.stdout


def records(n, files, seed, gz):
    where = os.path.join(WORK, f"report-records-{n}-s{seed}-f{files}{'-gz' if gz else ''}")
    done = os.path.join(where, "DONE")
    if not os.path.exists(done):
        shutil.rmtree(where, ignore_errors=True)
        subprocess.run([sys.executable, os.path.join(BENCH, "report_records.py"), str(n), where,
                        "--seed", str(seed), "--files", str(files)] + (["--gzip"] if gz else []),
                       check=True, stdout=subprocess.DEVNULL)
        open(done, "w").close()
    return sorted(os.path.join(where, f) for f in os.listdir(where) if f.startswith("records-"))


def measure_baseline(a, cmd, paths, run):
    """Load (-j 1) and html of the version in a.baseline, into run (emptied after)."""
    env = dict(os.environ, PYTHONPATH=os.path.abspath(a.baseline))
    db, page = os.path.join(run, "centre.db"), os.path.join(run, "report.html")
    load_wall, load_cpu, out = timed(cmd + ["load", db] + paths, env)
    assert out.strip().splitlines()[-1].startswith(f"total: {a.records} records loaded"), out
    load_avg = os.getloadavg()[0]
    html_wall, html_cpu, _ = timed(cmd + ["html", db, "-o", page], env)
    for f in os.listdir(run):
        os.unlink(os.path.join(run, f))
    return {"lib": os.path.abspath(a.baseline), "load_s": round(load_wall, 2),
            "load_cpu_s": round(load_cpu, 2), "load_average_after_load": load_avg,
            "html_s": round(html_wall, 2), "html_cpu_s": round(html_cpu, 2),
            "total_s": round(load_wall + html_wall, 2),
            "load_average_after": os.getloadavg()[0]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--files", type=int, default=30, help="files (days of a month)")
    ap.add_argument("--seed", type=int, default=2021)
    ap.add_argument("--gzip", action="store_true")
    ap.add_argument("--jobs", type=lambda v: [int(x) for x in v.split(",")], default=[1, 2],
                    help="load -j values measured in turn; -j 1 (the default) counts (1,2)")
    ap.add_argument("--out", default=os.path.join(BENCH, "results"))
    ap.add_argument("--baseline", metavar="DIR", help="another version's tools/report")
    a = ap.parse_args()
    paths = records(a.records, a.files, a.seed, a.gzip)
    run = os.path.join(WORK, "report-run")
    shutil.rmtree(run, ignore_errors=True)
    os.makedirs(run)
    db, page = os.path.join(run, "centre.db"), os.path.join(run, "report.html")
    env = dict(os.environ, PYTHONPATH=LIB)
    cmd = [sys.executable, "-m", "pylaunch_report"]
    baseline = measure_baseline(a, cmd, paths, run) if a.baseline else None
    # Parsing in worker processes against parsing in the loading process, side by side.
    loads = {}
    for jobs in a.jobs:
        for f in os.listdir(run):
            os.unlink(os.path.join(run, f))
        wall, cpu, out = timed(cmd + ["load", "-j", str(jobs), db] + paths, env)
        total = out.strip().splitlines()[-1]
        assert total.startswith(f"total: {a.records} records loaded"), total
        loads[jobs] = {"load_s": round(wall, 2), "load_cpu_s": round(cpu, 2),
                       "load_average_after": os.getloadavg()[0]}
    counted = 1 if 1 in loads else a.jobs[-1]  # load's default
    load_wall, load_cpu = loads[counted]["load_s"], loads[counted]["load_cpu_s"]
    html_wall, html_cpu, _ = timed(cmd + ["html", db, "-o", page], env)
    again_wall, _, again_out = timed(cmd + ["load", db] + paths, env)
    assert again_out.strip().splitlines()[-1].startswith("total: 0 records loaded"), again_out
    result = {
        "benchmark": "pylaunch-report: load N records, write the HTML page",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_after": os.getloadavg()},
        "records": a.records, "files": len(paths), "gzip": a.gzip, "seed": a.seed,
        "input_bytes": sum(os.path.getsize(p) for p in paths),
        "loads_by_jobs": loads, "jobs": counted,
        "load_s": round(load_wall, 2), "load_cpu_s": round(load_cpu, 2),
        "html_s": round(html_wall, 2), "html_cpu_s": round(html_cpu, 2),
        "total_s": round(load_wall + html_wall, 2),
        "reload_s": round(again_wall, 2),
        "db_bytes": sum(os.path.getsize(os.path.join(run, f)) for f in os.listdir(run)
                        if f.startswith("centre.db")),
        "html_bytes": os.path.getsize(page),
        "target_s": 60,
    }
    if baseline:
        result["baseline"] = baseline
        result["speedup_total"] = round(baseline["total_s"] / result["total_s"], 2)
        result["speedup_cpu"] = round((baseline["load_cpu_s"] + baseline["html_cpu_s"]) /
                                      (load_cpu + html_cpu), 2)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "report.json"), "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(json.dumps(result, indent=2))
    return 0 if result["total_s"] < result["target_s"] else 1


if __name__ == "__main__":
    sys.exit(main())
