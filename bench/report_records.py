#!/usr/bin/python3
"""N --pymonitor records (schema_version 1, as src/monitor/monitor_record.c writes them), seeded, drawn
from what paper 002 (Customs, NERSC Cori) reports:

- 2448 users of Python; a few users run most jobs (Zipf-like activity);
- job sizes mostly 1 node, heavy tail up to thousands of nodes (Fig. 4); one record per node;
- packages in the order of Fig. 3 (multiprocessing and numpy first; joblib above mpi4py and
  dask; tensorflow and torch low), with the scale limits of Fig. 5 (mpi4py and numpy at the
  largest node counts, dask at 500 nodes and fewer, fireworks and parsl at 1000 and fewer);
- 5% of jobs from the centre's Python module, the rest from users' conda environments;
- partitions 84% haswell, 14% knl, 2% gpu; about 2% staff users;
- a few partial and truncated records, as the data quality section should show.

    bench/report_records.py N OUT_DIR [--seed S] [--files K] [--gzip]

writes K JSON Lines files (weeks of records) and prints their paths.
"""
import argparse
import gzip
import json
import os
import random
from datetime import datetime, timezone

# (package, share of Python jobs importing it, largest node count seen, versions)
PACKAGES = [
    ("multiprocessing", 0.55, 4096, ["3.8", "3.9"]), ("numpy", 0.80, 9688, ["1.19.2", "1.20.3", "1.21.2"]),
    ("scipy", 0.40, 4096, ["1.5.2", "1.6.2", "1.7.1"]), ("matplotlib", 0.35, 2048, ["3.3.2", "3.4.3"]),
    ("h5py", 0.20, 4096, ["2.10.0", "3.2.1"]), ("pandas", 0.22, 1024, ["1.1.3", "1.3.4"]),
    ("astropy", 0.12, 4096, ["4.2.1", "4.3.1"]), ("joblib", 0.12, 1024, ["1.0.1", "1.1.0"]),
    ("mpi4py", 0.10, 9688, ["3.0.3", "3.1.1"]), ("sklearn", 0.09, 512, ["0.24.2", "1.0.1"]),
    ("numexpr", 0.08, 1024, ["2.7.3"]), ("yaml", 0.08, 2048, ["5.4.1"]),
    ("dask", 0.05, 500, ["2021.4.0", "2021.10.0"]), ("numba", 0.05, 1024, ["0.53.1"]),
    ("xarray", 0.04, 500, ["0.19.0"]), ("netCDF4", 0.04, 500, ["1.5.7"]),
    ("fireworks", 0.02, 1000, ["1.9.7"]), ("parsl", 0.015, 1000, ["1.1.0"]),
    ("torch", 0.02, 256, ["1.9.0"]), ("tensorflow", 0.015, 64, ["2.4.1", "2.6.0"]),
    ("keras", 0.01, 64, ["2.6.0"]), ("seaborn", 0.02, 128, ["0.11.2"]),
    ("plotly", 0.01, 128, ["5.3.1"]), ("ctypes", 0.30, 9688, ["1.1.0"]),
    ("concurrent", 0.15, 4096, [None]), ("asyncio", 0.05, 1024, [None]),
]
PARTITIONS = [("haswell", 0.84), ("knl", 0.14), ("gpu", 0.02)]
USERS = 2448
STAFF_SHARE = 0.02
MODULE_PYTHON = "/usr/common/software/python/3.9-anaconda-2021.11/bin/python"


def job_nodes(rng):
    """Fig. 4: most Python jobs are one node; P(n) ~ n^-2 above that, up to 9688 nodes."""
    if rng.random() < 0.72:
        return 1
    return min(9688, int(1 + rng.paretovariate(1.0)))


def iso(t):
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Generator:
    def __init__(self, seed, weeks):
        self.rng = random.Random(seed)
        rng = self.rng
        self.users = [f"u{i:04d}" for i in range(USERS)]
        # Zipf-like activity: user i runs jobs with weight 1/(i+1)^0.9.
        self.user_weights = [1.0 / (i + 1) ** 0.9 for i in range(USERS)]
        self.staff = set(rng.sample(self.users, int(USERS * STAFF_SHARE)))
        self.start = datetime(2026, 9, 7, tzinfo=timezone.utc).timestamp()
        self.span = weeks * 7 * 86400
        self.job_id = 1000000

    def packages(self, nodes):
        rng = self.rng
        chosen = []
        for name, share, biggest, versions in PACKAGES:
            if nodes <= biggest and rng.random() < share:
                chosen.append((name, rng.choice(versions)))
        return chosen or [("numpy", "1.20.3")]

    def job(self):
        """The records of one job: one per node."""
        rng = self.rng
        self.job_id += rng.randint(1, 3)
        nodes = job_nodes(rng)
        user = rng.choices(self.users, self.user_weights)[0]
        ranks = rng.choice([1, 1, 1, 4, 32, 64])
        start = self.start + rng.random() * self.span
        end = start + rng.expovariate(1 / 3600)
        interp = (MODULE_PYTHON if rng.random() < 0.05
                  else f"/global/homes/{user[0]}/{user}/.conda/envs/py/bin/python")
        pyver = rng.choice(["3.8.12", "3.9.7", "3.9.7", "3.10.0"])
        pkgs = self.packages(nodes)
        partition = rng.choices([p for p, _ in PARTITIONS], [w for _, w in PARTITIONS])[0]
        for n in range(nodes):
            partial = rng.random() < 0.003
            incomplete = ranks if rng.random() < 0.01 else 0
            yield {
                "schema": "pylaunch-monitor-record", "schema_version": 1, "cluster": "cori",
                "job_id": self.job_id, "node": f"nid{n:05d}", "user": user,
                "uid": 10000 + int(user[1:]), "account": f"m{int(user[1:]) % 300}",
                "partition": partition, "qos": None, "num_nodes": nodes,
                "exit": {"status": 0, "code": 0, "signal": 0},
                "start_time": iso(start), "end_time": iso(end),
                "is_compute": True, "is_staff": user in self.staff, "is_container": False,
                "partial": partial, "truncated": False, "processes": ranks,
                "processes_incomplete": incomplete, "processes_forked": 0,
                "logs_read": ranks, "logs_skipped": 1 if partial else 0, "lines_skipped": 0,
                "dropped": {"packages": 0, "steps": 0, "mains": 0, "interpreters": 0,
                            "containers": 0},
                "steps": [{"step": "0", "processes": ranks}],
                "interpreters": [{"executable": interp, "version": pyver,
                                  "implementation": "cpython", "processes": ranks}],
                "mains": [{"main": f"/global/homes/{user}/run.py", "processes": ranks}],
                "containers": [],
                "packages": [{"name": p, "processes": ranks, "incomplete": incomplete,
                              "ranks": f"0-{ranks - 1}" if ranks > 1 else "0",
                              "rank_count": ranks, "ranks_truncated": False,
                              "versions": [{"version": v, "processes": ranks}] if v else [],
                              "versions_dropped": 0} for p, v in pkgs]}

    def records(self, n):
        made = 0
        while made < n:
            for rec in self.job():
                if made == n:
                    return
                yield rec
                made += 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("n", type=int)
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=2021)
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--weeks", type=int, default=13)
    ap.add_argument("--gzip", action="store_true")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    gen = Generator(a.seed, a.weeks)
    per_file = -(-a.n // a.files)
    recs = gen.records(a.n)
    for k in range(a.files):
        path = os.path.join(a.out, f"records-{k:03d}.jsonl" + (".gz" if a.gzip else ""))
        opener = gzip.open if a.gzip else open
        with opener(path, "wt") as f:
            for _ in range(per_file):
                rec = next(recs, None)
                if rec is None:
                    break
                f.write(json.dumps(rec, separators=(",", ":")) + "\n")
        print(path)


if __name__ == "__main__":
    main()
