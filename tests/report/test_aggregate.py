"""aggregate.py against a small fixture counted by hand.

job  user   nodes (records)  week of      packages (version)                 notes
1    alice  2 (n1, n2)       2026-11-16   n1 numpy 1.24.2, scipy; n2 numpy 1.24.2
2    alice  1                2026-11-16   numpy 1.26.0, pandas               partial, truncated
3    bob    4 (n1, n2 only)  2026-11-23   numpy 1.24.2, mpi4py               n1: 1 incomplete
4    carol  1                2026-11-23   numpy, torch                       is_staff
5    dave   1                2026-11-23   (no Python process)
6    erin   1                2026-11-23   h5py                               --staff-users erin
"""
import pandas as pd
import pytest

from conftest import rec, write_lines
from pylaunch_report import aggregate, store

WEEK_A, WEEK_B = "2026-11-17T10:00:00.000Z", "2026-11-24T10:00:00.000Z"


def fixture_records():
    return [
        rec(1, "n1", "alice", [("numpy", "1.24.2"), "scipy"], num_nodes=2, start_time=WEEK_A),
        rec(1, "n2", "alice", [("numpy", "1.24.2")], num_nodes=2, start_time=WEEK_A),
        rec(2, "n1", "alice", [("numpy", "1.26.0"), "pandas"], num_nodes=1, start_time=WEEK_A,
            partial=True, truncated=True, logs_skipped=2,
            dropped={"packages": 3, "steps": 0, "mains": 1, "interpreters": 0, "containers": 0}),
        rec(3, "n1", "bob", [("numpy", "1.24.2"), "mpi4py"], num_nodes=4, start_time=WEEK_B,
            processes_incomplete=1),
        rec(3, "n2", "bob", [("numpy", "1.24.2"), "mpi4py"], num_nodes=4, start_time=WEEK_B),
        rec(4, "n1", "carol", ["numpy", "torch"], num_nodes=1, start_time=WEEK_B, is_staff=True),
        rec(5, "n1", "dave", [], num_nodes=1, start_time=WEEK_B, processes=0, interpreters=[]),
        rec(6, "n1", "erin", ["h5py"], num_nodes=1, start_time=WEEK_B),
    ]


@pytest.fixture
def loaded(tmp_path, db):
    store.Loader(db).load(write_lines(tmp_path / "f.jsonl", fixture_records()))
    return db


def build(db, **kw):
    kw.setdefault("staff_users", ("erin",))
    return aggregate.build(db, aggregate.Options(**kw))


def rows(df, cols):
    return [tuple(r) for r in df[list(cols)].itertuples(index=False)]


def test_totals_leave_out_staff(loaded):
    t = build(loaded).totals
    assert (t["python_jobs"], t["users"], t["jobs"], t["packages"]) == (3, 2, 4, 4)
    assert t["records"] == 6  # jobs 1, 2, 3 (2 records), 5


def test_top_packages_by_users_and_by_jobs(loaded):
    rep = build(loaded)
    assert rows(rep.by_users, ["package", "users", "jobs"]) == [
        ("numpy", 2, 3), ("mpi4py", 1, 1), ("pandas", 1, 1), ("scipy", 1, 1)]
    assert rows(rep.by_jobs, ["package", "jobs"])[0] == ("numpy", 3)
    assert not rep.sampled


def test_staff_included_on_request(loaded):
    rep = build(loaded, include_staff=True)
    assert (rep.totals["python_jobs"], rep.totals["users"]) == (5, 4)
    got = dict(rows(rep.by_users, ["package", "users"]))
    assert got["numpy"] == 3 and got["torch"] == 1 and got["h5py"] == 1
    # Without --staff-users only is_staff counts: erin's job is back, carol's is not.
    rep = build(loaded, staff_users=())
    assert dict(rows(rep.by_users, ["package", "users"])).get("h5py") == 1
    assert "torch" not in set(rep.by_users["package"])


def test_top_n(loaded):
    assert list(build(loaded, top=2).by_jobs["package"]) == ["numpy", "mpi4py"]


def test_jobs_by_node_count_and_packages_by_size(loaded):
    rep = build(loaded)
    sizes = rep.sizes[rep.sizes["jobs"] > 0]
    # Job 3 counts as 4 nodes (Slurm's count), though only 2 of them sent a record.
    assert rows(sizes, ["size", "jobs"]) == [("1", 1), ("2", 1), ("3-4", 1)]
    ps = rep.package_sizes
    assert list(ps.columns.astype(str)) == ["1", "2", "3-4"]
    assert ps.loc["numpy"].tolist() == [1, 1, 1]
    assert ps.loc["mpi4py"].tolist() == [0, 0, 1]
    assert ps.loc["scipy"].tolist() == [0, 1, 0]


def test_versions_per_package(loaded):
    v = build(loaded).versions
    numpy = v[v["package"] == "numpy"]
    # 1.24.2: job 1 (2 records x 2 processes) and job 3 (2 x 2).
    assert rows(numpy, ["version", "jobs", "users", "processes"]) == [
        ("1.24.2", 2, 2, 8), ("1.26.0", 1, 1, 2)]
    assert list(v["package"].drop_duplicates()) == ["numpy", "mpi4py", "pandas", "scipy"]


def test_interpreters(loaded):
    rep = build(loaded)
    assert rows(rep.interpreters, ["executable", "version", "jobs", "users", "processes"]) == [
        ("/usr/bin/python3", "3.11.2", 3, 2, 10)]
    assert rows(rep.interpreter_versions, ["version", "jobs", "executables"]) == [
        ("3.11.2", 3, 1)]


def test_weekly(loaded):
    w = build(loaded).weekly
    assert rows(w, ["week", "python_jobs", "users"]) == [
        (pd.Timestamp("2026-11-16"), 2, 1), (pd.Timestamp("2026-11-23"), 1, 1)]


def test_data_quality(loaded):
    q = build(loaded).quality
    assert (q["records"], q["partial"], q["truncated"], q["dropped"]) == (8, 1, 1, 4)
    assert (q["logs_skipped"], q["records_with_logs_skipped"]) == (2, 1)
    assert (q["processes"], q["processes_incomplete"]) == (14, 1)
    assert q["without_hook"] is None and q["without_hook_known"] == 0  # schema 1
    assert q["staff_jobs"] == 2 and q["schema_versions"] == [1]
    assert q["sample_rates"] == [] and q["sample_rate_unknown"] == 8
    assert q["top_user_share"] == pytest.approx(2 / 3)


def test_sampled_counts_are_estimated_and_flagged(loaded):
    rep = build(loaded, sample_rate=0.5)
    assert rep.sampled
    numpy = rep.by_jobs[rep.by_jobs["package"] == "numpy"].iloc[0]
    assert (numpy["jobs"], numpy["est_jobs"]) == (3, 6.0)
    assert rep.quality["sample_rates"] == [0.5] and rep.quality["sample_rate_unknown"] == 0


def test_sample_rate_and_hookless_processes_from_schema_2(tmp_path, db):
    recs = [rec(1, "n1", "alice", ["numpy"], schema_version=2, sample_rate=0.25,
                python_tasks_unhooked=3),
            rec(2, "n1", "bob", ["numpy"], schema_version=2, sample_rate=0.25,
                python_tasks_unhooked=0),
            rec(3, "n1", "bob", ["numpy"])]  # schema 1: rate not known, taken as 1
    store.Loader(db).load(write_lines(tmp_path / "f.jsonl", recs))
    rep = build(db)
    assert rep.sampled and rep.by_jobs.iloc[0]["est_jobs"] == 9.0
    q = rep.quality
    assert (q["without_hook"], q["without_hook_known"]) == (3, 2)
    assert q["sample_rates"] == [0.25] and q["sample_rate_unknown"] == 1
    assert q["schema_versions"] == [1, 2]


def test_monitored_share_of_all_jobs(tmp_path, loaded):
    sacct = tmp_path / "sacct.txt"
    sacct.write_text("".join(f"cluster|{i}|u|1|2026-11-17T09:00:00\n" for i in range(1, 11)) +
                     "".join(f"cluster|{i}|u|1|2026-11-24T09:00:00\n" for i in range(11, 15)))
    store.load_sacct(loaded, str(sacct))
    cov = build(loaded).coverage
    assert rows(cov, ["all_jobs", "monitored_jobs", "python_jobs"]) == [(10, 2, 2), (4, 2, 1)]
    assert cov["monitored_share"].tolist() == [0.2, 0.5]
    assert build(loaded).coverage is not None


def test_no_records(db):
    rep = build(db)
    assert rep.totals["records"] == 0 and rep.quality["records"] == 0
