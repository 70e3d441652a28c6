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
    weekly: pd.DataFrame = None
    weekly_packages: pd.DataFrame = None
    coverage: pd.DataFrame = None
    files: pd.DataFrame = None


def _names(db, kind):
    return dict(db.execute("SELECT id, name FROM names WHERE kind=?", (kind,)).fetchall())


def _records(db, opts):
    recs = pd.read_sql_query(
        "SELECT id, cluster_id, job_id, user_id, num_nodes, start, end, is_staff, partial,"
        " truncated, processes, processes_incomplete, logs_skipped, lines_skipped, dropped,"
        " without_hook, unlogged, sample_rate, schema_version FROM records", db)
    users = _names(db, "user")
    recs["user"] = recs["user_id"].map(users)
    staff_ids = {i for i, n in users.items() if n in set(opts.staff_users)}
    recs["staff"] = recs["is_staff"].astype(bool) | recs["user_id"].isin(staff_ids)
    rate = recs["sample_rate"]
    if opts.sample_rate is not None:
        rate = rate.fillna(opts.sample_rate)
    recs["rate"] = rate.where((rate > 0) & (rate <= 1))
    return recs


def _jobs(recs):
    """One row per job: its user, node count, start, whether Python ran, its weight."""
    g = recs.groupby(["cluster_id", "job_id"], sort=False)
    jobs = g.agg(user_id=("user_id", "first"), user=("user", "first"),
                 num_nodes=("num_nodes", "max"), nodes_seen=("id", "size"),
                 start=("start", "min"), end=("end", "max"), processes=("processes", "sum"),
                 staff=("staff", "max"), rate=("rate", "min")).reset_index()
    # Slurm's node count where the record has it, else the nodes that sent a record.
    jobs["nodes"] = jobs["num_nodes"].fillna(jobs["nodes_seen"]).astype(int)
    jobs["weight"] = 1.0 / jobs["rate"].fillna(1.0)
    jobs["job"] = np.arange(len(jobs))
    when = jobs["start"].fillna(jobs["end"])
    jobs["week"] = pd.to_datetime(when, unit="s").dt.to_period("W-SUN").dt.start_time
    return jobs


def _size_bin(nodes):
    return pd.cut(nodes, bins=SIZE_EDGES + [1 << 30], right=False, labels=SIZE_LABELS)


def _job_packages(db, recs, jobs):
    """One row per (job, package): the package imported anywhere in the job."""
    pk = pd.read_sql_query("SELECT record_id, package_id FROM packages", db)
    key = recs[["id", "cluster_id", "job_id"]].merge(
        jobs[["cluster_id", "job_id", "job"]], on=["cluster_id", "job_id"])
    pk = pk.merge(key[["id", "job"]], left_on="record_id", right_on="id")
    pk = pk[["job", "package_id"]].drop_duplicates()
    pk = pk.merge(jobs[["job", "user_id", "nodes", "weight", "week"]], on="job")
    pk["package"] = pk["package_id"].map(_names(db, "package"))
    return pk


def _top(jp, by, n):
    users = jp.groupby("package")["user_id"].nunique().rename("users")
    jobsn = jp.groupby("package").agg(jobs=("job", "size"), est_jobs=("weight", "sum"))
    out = pd.concat([users, jobsn], axis=1).reset_index()
    other = "jobs" if by == "users" else "users"
    return out.sort_values([by, other, "package"], ascending=[False, False, True]).head(n)


def _versions(db, recs, jobs, names, top_packages):
    pv = pd.read_sql_query("SELECT record_id, package_id, version_id, processes FROM packages", db)
    pv["package"] = pv["package_id"].map(names)
    pv = pv[pv["package"].isin(top_packages)]
    key = recs[["id", "cluster_id", "job_id"]].merge(
        jobs[["cluster_id", "job_id", "job", "user_id"]], on=["cluster_id", "job_id"])
    pv = pv.merge(key[["id", "job", "user_id"]], left_on="record_id", right_on="id")
    pv["version"] = pv["version_id"].map(_names(db, "version")).fillna("(unknown)")
    out = pv.groupby(["package", "version"]).agg(
        jobs=("job", "nunique"), users=("user_id", "nunique"),
        processes=("processes", "sum")).reset_index()
    order = {p: i for i, p in enumerate(top_packages)}
    out["order"] = out["package"].map(order)
    return out.sort_values(["order", "jobs", "version"], ascending=[True, False, True]).drop(
        columns="order")


def _interpreters(db, recs, jobs):
    it = pd.read_sql_query(
        "SELECT record_id, executable_id, version_id, implementation, processes FROM interpreters",
        db)
    key = recs[["id", "cluster_id", "job_id"]].merge(
        jobs[["cluster_id", "job_id", "job", "user_id"]], on=["cluster_id", "job_id"])
    it = it.merge(key[["id", "job", "user_id"]], left_on="record_id", right_on="id")
    it["executable"] = it["executable_id"].map(_names(db, "executable")).fillna("(unknown)")
    it["version"] = it["version_id"].map(_names(db, "version")).fillna("(unknown)")
    it["implementation"] = it["implementation"].fillna("(unknown)")
    out = it.groupby(["executable", "version", "implementation"]).agg(
        jobs=("job", "nunique"), users=("user_id", "nunique"),
        processes=("processes", "sum")).reset_index()
    return out.sort_values(["jobs", "executable"], ascending=[False, True])


def _quality(db, recs, jobs_all, opts):
    files = pd.read_sql_query(
        "SELECT path, lines, records, duplicates, malformed FROM files ORDER BY id", db)

    def known_sum(col):
        v = recs[col].dropna()
        return int(v.sum()) if len(v) else None

    rates = sorted(recs["rate"].dropna().unique().tolist())
    q = {
        "records": len(recs),
        "partial": int(recs["partial"].sum()),
        "truncated": int(recs["truncated"].sum()),
        "logs_skipped": known_sum("logs_skipped"),
        "records_with_logs_skipped": int((recs["logs_skipped"].fillna(0) > 0).sum()),
        "lines_skipped": known_sum("lines_skipped"),
        "dropped": known_sum("dropped"),
        "processes": int(recs["processes"].sum()),
        "processes_incomplete": int(recs["processes_incomplete"].sum()),
        "without_hook": known_sum("without_hook"),
        "without_hook_known": int(recs["without_hook"].notna().sum()),
        "unlogged": known_sum("unlogged"),
        "sample_rates": rates,
        "sample_rate_unknown": int(recs["rate"].isna().sum()),
        "malformed_lines": int(files["malformed"].fillna(0).sum()),
        "duplicates": int(files["duplicates"].fillna(0).sum()),
        "files": len(files),
        "staff_jobs": int(jobs_all["staff"].sum()),
        "schema_versions": sorted(int(v) for v in recs["schema_version"].unique()),
        "reasons": db.execute(
            "SELECT f.path, m.line, m.reason FROM malformed m JOIN files f ON f.id = m.file_id"
            " ORDER BY m.file_id, m.line LIMIT 10").fetchall(),
    }
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
    recs = _records(db, opts)
    jobs_all = _jobs(recs) if len(recs) else None
    rep.quality, rep.files = _quality(db, recs, jobs_all if jobs_all is not None else
                                      pd.DataFrame({"staff": []}), opts)
    if jobs_all is None:
        rep.totals = {"jobs": 0, "python_jobs": 0, "users": 0, "records": 0}
        return rep
    if not opts.include_staff:
        recs = recs[~recs["staff"]]
    jobs = jobs_all[~jobs_all["staff"]] if not opts.include_staff else jobs_all
    rep.sampled = bool((recs["rate"].fillna(1.0) < 1).any())
    py = jobs[jobs["processes"] > 0]
    rep.totals = {"jobs": len(jobs), "python_jobs": len(py), "users": py["user_id"].nunique(),
                  "records": len(recs), "est_python_jobs": float(py["weight"].sum()),
                  "first": jobs["start"].min(), "last": jobs["end"].max()}
    names = _names(db, "package")
    jp = _job_packages(db, recs, py)
    rep.totals["packages"] = jp["package"].nunique()
    rep.by_users = _top(jp, "users", opts.top)
    rep.by_jobs = _top(jp, "jobs", opts.top)
    bins = _size_bin(py["nodes"])
    rep.sizes = py.groupby(bins, observed=False).agg(
        jobs=("job", "size"), est_jobs=("weight", "sum")).reset_index().rename(
        columns={"nodes": "size"})
    jp["size"] = _size_bin(jp["nodes"])
    table = jp[jp["package"].isin(rep.by_jobs["package"])].pivot_table(
        index="package", columns="size", values="job", aggfunc="count", fill_value=0,
        observed=False)
    rep.package_sizes = table.reindex(rep.by_jobs["package"]).loc[:, lambda t: t.sum() > 0]
    rep.versions = _versions(db, recs, py, names, list(rep.by_jobs["package"]))
    rep.interpreters = _interpreters(db, recs, py)
    rep.weekly = py.groupby("week").agg(python_jobs=("job", "size"), users=("user_id", "nunique"),
                                        est_jobs=("weight", "sum")).reset_index()
    top5 = list(rep.by_users["package"].head(5))
    rep.weekly_packages = jp[jp["package"].isin(top5)].pivot_table(
        index="week", columns="package", values="job", aggfunc="count", fill_value=0)
    rep.coverage = _coverage(db, jobs)
    rep.quality["top_user_share"] = (py.groupby("user_id").size().max() / len(py)) if len(py) else 0
    return rep
