"""The report's numbers, from the database, as pandas frames.

Units: a record is one job on one node; a job is (cluster, job id); a Python job is a
job with at least one recorded Python process. Packages are counted once per job (a job
of 64 nodes importing numpy is one numpy job) and once per user. Staff jobs (is_staff,
or a user named in staff_users) are left out unless include_staff. Where jobs were
sampled (monitor.sample_rate < 1) the counts are those of the sample; `est_jobs` adds
1/rate per job (the Horvitz-Thompson estimate of all jobs).
"""
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

SIZE_EDGES = [1, 2, 3, 5, 9, 17, 33, 65, 129, 257, 513, 1025, 2049, 4097, 8193]


def size_label(lo, hi):
    return str(lo) if hi - lo == 1 else (f"{lo}-{hi - 1}" if hi < 1 << 30 else f"{lo}+")


SIZE_LABELS = [size_label(lo, hi) for lo, hi in zip(SIZE_EDGES, SIZE_EDGES[1:] + [1 << 30])]


@dataclass
class Options:
    top: int = 20
    include_staff: bool = False
    staff_users: tuple = ()
    sample_rate: float = None  # the site's monitor.sample_rate, for records that lack it


@dataclass
class Report:
    options: Options
    totals: dict = field(default_factory=dict)
    quality: dict = field(default_factory=dict)
    sampled: bool = False
    by_users: pd.DataFrame = None
    by_jobs: pd.DataFrame = None
    sizes: pd.DataFrame = None
    package_sizes: pd.DataFrame = None
    versions: pd.DataFrame = None
    interpreters: pd.DataFrame = None
    interpreter_versions: pd.DataFrame = None
    weekly: pd.DataFrame = None
    weekly_packages: pd.DataFrame = None
    coverage: pd.DataFrame = None
    files: pd.DataFrame = None


def _frame(db, sql, columns):
    """The rows of sql as a frame; columns is [(name, "i8" or "f8")]. Straight into numpy:
    read_sql_query's lists of tuples took twice the time. SQL NULLs must come as -1 (the
    queries use IFNULL); a float column's -1 becomes NaN."""
    rows = np.fromiter(db.execute(sql), dtype=list(columns))
    df = pd.DataFrame({name: rows[name] for name, _ in columns})
    for name, kind in columns:
        if kind == "f8":
            df[name] = df[name].where(df[name] >= 0)
    return df


def _names(db, kind):
    return dict(db.execute("SELECT id, name FROM names WHERE kind=?", (kind,)).fetchall())


def _rate(rate, opts):
    if opts.sample_rate is not None:
        rate = rate.fillna(opts.sample_rate)
    return rate.where((rate > 0) & (rate <= 1))


def _jobs(db, opts):
    """One row per job: its user, node count, start, whether Python ran, its weight."""
    # GROUP BY cluster_id, job_id: the order of the records' unique index, no sort.
    jobs = _frame(
        db, "SELECT MIN(job_key), MIN(user_id), IFNULL(MAX(num_nodes), -1), COUNT(*),"
        " IFNULL(MIN(start), -1), IFNULL(MAX(end), -1), SUM(processes), MAX(is_staff),"
        " IFNULL(MIN(sample_rate), -1) FROM records GROUP BY cluster_id, job_id",
        [("job_key", "i8"), ("user_id", "i8"), ("num_nodes", "f8"), ("nodes_seen", "i8"),
         ("start", "f8"), ("end", "f8"), ("processes", "i8"), ("staff", "i8"), ("rate", "f8")])
    users = _names(db, "user")
    staff_ids = {i for i, n in users.items() if n in set(opts.staff_users)}
    jobs["staff"] = jobs["staff"].astype(bool) | jobs["user_id"].isin(staff_ids)
    jobs["rate"] = _rate(jobs["rate"], opts)
    # Slurm's node count where the record has it, else the nodes that sent a record.
    jobs["nodes"] = jobs["num_nodes"].fillna(jobs["nodes_seen"]).astype(int)
    jobs["weight"] = 1.0 / jobs["rate"].fillna(1.0)
    when = jobs["start"].fillna(jobs["end"])
    jobs["week"] = pd.to_datetime(when, unit="s").dt.to_period("W-SUN").dt.start_time
    return jobs


def _size_bin(nodes):
    return pd.cut(nodes, bins=SIZE_EDGES + [1 << 30], right=False, labels=SIZE_LABELS)


def _job_packages(db, jobs):
    """One row per (job, package, version) of the given jobs."""
    jp = _frame(db, "SELECT job_key, package_id, version_id, processes FROM job_packages",
                [("job_key", "i8"), ("package_id", "i8"), ("version_id", "i8"),
                 ("processes", "i8")])
    jp = jp.merge(jobs[["job_key", "user_id", "nodes", "weight", "week"]], on="job_key")
    jp["package"] = jp["package_id"].map(_names(db, "package"))
    return jp


def _top(jp, by, n):
    users = jp.groupby("package")["user_id"].nunique().rename("users")
    jobsn = jp.groupby("package").agg(jobs=("job_key", "size"), est_jobs=("weight", "sum"))
    out = pd.concat([users, jobsn], axis=1).reset_index()
    other = "jobs" if by == "users" else "users"
    return out.sort_values([by, other, "package"], ascending=[False, False, True]).head(n)


def _versions(db, jpv, top_packages):
    pv = jpv[jpv["package"].isin(top_packages)].copy()
    versions = _names(db, "version")
    pv["version"] = pv["version_id"].map(versions).fillna("(unknown)")
    out = pv.groupby(["package", "version"]).agg(
        jobs=("job_key", "nunique"), users=("user_id", "nunique"),
        processes=("processes", "sum")).reset_index()
    order = {p: i for i, p in enumerate(top_packages)}
    out["order"] = out["package"].map(order)
    return out.sort_values(["order", "jobs", "version"], ascending=[True, False, True]).drop(
        columns="order")


def _interpreters(db, jobs):
    """(per executable, per version and implementation): each user's environment has its
    own executable, so the second table is the one that stays short."""
    it = _frame(db, "SELECT job_key, executable_id, version_id, implementation_id, processes"
                " FROM job_interpreters",
                [("job_key", "i8"), ("executable_id", "i8"), ("version_id", "i8"),
                 ("implementation_id", "i8"), ("processes", "i8")])
    it = it.merge(jobs[["job_key", "user_id"]], on="job_key")
    unknown = "(unknown)"
    it["executable"] = it["executable_id"].map(_names(db, "executable")).fillna(unknown)
    it["version"] = it["version_id"].map(_names(db, "version")).fillna(unknown)
    it["implementation"] = it["implementation_id"].map(_names(db, "implementation")).fillna(
        unknown)

    def per(keys):
        out = it.groupby(keys).agg(jobs=("job_key", "nunique"), users=("user_id", "nunique"),
                                   processes=("processes", "sum")).reset_index()
        return out.sort_values(["jobs"] + keys, ascending=[False] + [True] * len(keys))

    by_version = per(["version", "implementation"])
    by_version["executables"] = by_version.apply(
        lambda r: it[(it["version"] == r["version"]) &
                     (it["implementation"] == r["implementation"])]["executable"].nunique(),
        axis=1) if len(by_version) else []
    return per(["executable", "version", "implementation"]), by_version


QUALITY_SQL = """SELECT COUNT(*), SUM(partial), SUM(truncated), SUM(logs_skipped),
    SUM(logs_skipped > 0), SUM(lines_skipped), SUM(dropped), SUM(processes),
    SUM(processes_incomplete), SUM(without_hook), COUNT(without_hook), SUM(unlogged),
    COUNT(*) - COUNT(sample_rate), group_concat(DISTINCT sample_rate)
    FROM records"""
QUALITY_KEYS = ("records", "partial", "truncated", "logs_skipped", "records_with_logs_skipped",
                "lines_skipped", "dropped", "processes", "processes_incomplete", "without_hook",
                "without_hook_known", "unlogged")


def _quality(db, jobs_all, opts):
    """Over all records, staff's included: the quality of the data, not of the sample."""
    files = pd.read_sql_query(
        "SELECT path, lines, records, duplicates, malformed FROM files ORDER BY id", db)
    row = db.execute(QUALITY_SQL).fetchone()  # one pass over the records
    q = dict(zip(QUALITY_KEYS, row))
    for k in ("records", "partial", "truncated", "records_with_logs_skipped", "processes",
              "processes_incomplete"):
        q[k] = q[k] or 0  # SUM of no rows is NULL
    without_rate, rates = row[-2], row[-1]
    rates = pd.Series([float(r) for r in rates.split(",")] if rates else [], dtype=float)
    if without_rate and opts.sample_rate is not None:
        rates = pd.concat([rates, pd.Series([opts.sample_rate])])
    known = _rate(rates, opts).dropna()
    q.update({
        "sample_rates": sorted(known.unique().tolist()),
        "sample_rate_unknown": 0 if opts.sample_rate is not None else without_rate,
        "malformed_lines": int(files["malformed"].fillna(0).sum()),
        "duplicates": int(files["duplicates"].fillna(0).sum()),
        "files": len(files),
        "staff_jobs": int(jobs_all["staff"].sum()),
        "schema_versions": [v for (v,) in db.execute(
            "SELECT DISTINCT schema_version FROM records ORDER BY 1")],
        "reasons": db.execute(
            "SELECT f.path, m.line, m.reason FROM malformed m JOIN files f ON f.id = m.file_id"
            " ORDER BY m.file_id, m.line LIMIT 10").fetchall(),
    })
    return q, files


def _coverage(db, jobs):
    """Per week: all jobs (from sacct, where loaded) and the monitored ones."""
    all_jobs = pd.read_sql_query("SELECT cluster, job_id, start FROM sacct_jobs", db)
    if all_jobs.empty:
        return None
    all_jobs["week"] = pd.to_datetime(all_jobs["start"], unit="s").dt.to_period(
        "W-SUN").dt.start_time
    allw = all_jobs.groupby("week").size().rename("all_jobs")
    monw = jobs.groupby("week").size().rename("monitored_jobs")
    pyw = jobs[jobs["processes"] > 0].groupby("week").size().rename("python_jobs")
    out = pd.concat([allw, monw, pyw], axis=1).fillna(0).astype(int).reset_index()
    out["monitored_share"] = out["monitored_jobs"] / out["all_jobs"].where(out["all_jobs"] > 0)
    return out.sort_values("week")


def build(db, opts=None):
    opts = opts or Options()
    rep = Report(options=opts)
    jobs_all = _jobs(db, opts)
    rep.quality, rep.files = _quality(db, jobs_all, opts)
    if not rep.quality["records"]:
        rep.totals = {"jobs": 0, "python_jobs": 0, "users": 0, "records": 0}
        return rep
    jobs = jobs_all if opts.include_staff else jobs_all[~jobs_all["staff"]]
    rep.sampled = bool((jobs["rate"].fillna(1.0) < 1).any())
    py = jobs[jobs["processes"] > 0]
    rep.totals = {"jobs": len(jobs), "python_jobs": len(py), "users": py["user_id"].nunique(),
                  "records": int(jobs["nodes_seen"].sum()),
                  "est_python_jobs": float(py["weight"].sum()),
                  "first": jobs["start"].min(), "last": jobs["end"].max()}
    jpv = _job_packages(db, py)
    # Once per job and package, whatever the versions.
    jp = jpv.drop_duplicates(["job_key", "package_id"])
    rep.totals["packages"] = jp["package"].nunique()
    rep.by_users = _top(jp, "users", opts.top)
    rep.by_jobs = _top(jp, "jobs", opts.top)
    rep.sizes = py.groupby(_size_bin(py["nodes"]), observed=False).agg(
        jobs=("job_key", "size"), est_jobs=("weight", "sum")).reset_index().rename(
        columns={"nodes": "size"})
    top = jp[jp["package"].isin(rep.by_jobs["package"])].copy()
    top["size"] = _size_bin(top["nodes"])
    table = top.pivot_table(index="package", columns="size", values="job_key", aggfunc="count",
                            fill_value=0, observed=False)
    rep.package_sizes = table.reindex(rep.by_jobs["package"]).loc[:, lambda t: t.sum() > 0]
    rep.versions = _versions(db, jpv, list(rep.by_jobs["package"]))
    rep.interpreters, rep.interpreter_versions = _interpreters(db, py)
    rep.weekly = py.groupby("week").agg(python_jobs=("job_key", "size"),
                                        users=("user_id", "nunique"),
                                        est_jobs=("weight", "sum")).reset_index()
    top5 = list(rep.by_users["package"].head(5))
    rep.weekly_packages = jp[jp["package"].isin(top5)].pivot_table(
        index="week", columns="package", values="job_key", aggfunc="count", fill_value=0)
    rep.coverage = _coverage(db, jobs)
    per_user = py.groupby("user_id").size()
    rep.quality["top_user_share"] = per_user.max() / len(py) if len(py) else 0
    return rep
