"""store.py and `pylaunch-report load`: incremental, duplicates, malformed lines, gzip, syslog."""
import gzip
import json
import shutil

from conftest import cli, rec, write_lines
from pylaunch_report import store


def count(db, table):
    return db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def three(tmp_path, name="a.jsonl"):
    return write_lines(tmp_path / name, [rec(1, "n1", packages=["numpy"]),
                                         rec(1, "n2", packages=["numpy", "scipy"]),
                                         rec(2, "n1", user="bob", packages=["numpy"])])


def test_a_file_is_loaded_once(tmp_path, db):
    path = three(tmp_path)
    loader = store.Loader(db)
    first = loader.load(path)
    assert (first.status, first.records, first.duplicates, first.malformed) == ("loaded", 3, 0, 0)
    again = loader.load(path)
    assert again.status == "already loaded" and again.records == 0
    assert count(db, "records") == 3 and count(db, "files") == 1
    # numpy once per job (jobs 1 and 2), scipy once: one row per job and package.
    assert db.execute("SELECT nodes, processes FROM job_packages jp JOIN names n ON"
                      " n.id = jp.package_id WHERE n.name = 'numpy' ORDER BY job_key").fetchall() \
        == [(2, 4), (1, 2)]
    assert count(db, "job_packages") == 3


def test_the_same_content_under_another_name_is_not_loaded_again(tmp_path, db):
    path = three(tmp_path)
    copy = str(tmp_path / "copy.jsonl")
    shutil.copy(path, copy)
    loader = store.Loader(db)
    loader.load(path)
    out = loader.load(copy)
    assert out.status == f"already loaded (same content as {path})"
    assert count(db, "records") == 3


def test_a_grown_file_adds_only_its_new_records(tmp_path, db):
    path = three(tmp_path)
    loader = store.Loader(db)
    loader.load(path)
    with open(path, "a") as f:
        f.write(json.dumps(rec(3, "n1", packages=["dask"])) + "\n")
    out = loader.load(path)
    assert (out.records, out.duplicates) == (1, 3)
    assert count(db, "records") == 4
    # The packages of the records seen again are not counted twice.
    assert db.execute("SELECT SUM(nodes) FROM job_packages").fetchone()[0] == 5


def test_a_record_in_two_files_is_stored_once(tmp_path, db):
    a = write_lines(tmp_path / "a.jsonl", [rec(1, "n1", packages=["numpy"])])
    b = write_lines(tmp_path / "b.jsonl", [rec(1, "n1", packages=["numpy"]),
                                           rec(1, "n2", packages=["numpy"])])
    loader = store.Loader(db)
    loader.load(a)
    out = loader.load(b)
    assert (out.records, out.duplicates) == (1, 1)
    assert db.execute("SELECT nodes FROM job_packages").fetchall() == [(2,)]


def test_malformed_lines_are_counted_with_reasons_and_the_rest_loads(tmp_path, db):
    lines = [rec(1, packages=["numpy"]), "not json at all", '{"schema": "x"}', "",
             json.dumps(rec(2))[:-5], rec(3, packages=["scipy"]),
             json.dumps(dict(rec(4), schema_version=9))]
    out = store.Loader(db).load(write_lines(tmp_path / "m.jsonl", lines))
    assert (out.records, out.malformed) == (2, 4)
    assert [n for n, _ in out.reasons] == [2, 3, 5, 7]
    assert "schema_version 9" in out.reasons[3][1]
    assert db.execute("SELECT lines, records, malformed FROM files").fetchone() == (7, 2, 4)
    assert count(db, "malformed") == 4


def test_gzip_and_plain_files(tmp_path, db):
    plain = three(tmp_path)
    gz = str(tmp_path / "b.jsonl.gz")
    with gzip.open(gz, "wt") as f:
        for r in (rec(7, "n1", packages=["torch"]), rec(8, "n1", packages=["torch"])):
            f.write(json.dumps(r) + "\n")
    # gzip is recognised by content, not name.
    gz_no_suffix = str(tmp_path / "c")
    with gzip.open(gz_no_suffix, "wt") as f:
        f.write(json.dumps(rec(9, "n1")) + "\n")
    loader = store.Loader(db)
    assert [loader.load(p).records for p in (plain, gz, gz_no_suffix)] == [3, 2, 1]
    assert count(db, "records") == 6


def test_syslog_lines_and_records_in_parts(tmp_path, db):
    whole = json.dumps(rec(1, "n1", packages=["numpy"]), separators=(",", ":"))
    big = json.dumps(rec(2, "n1", packages=["numpy", "h5py"]), separators=(",", ":"))
    head = '<158>1 2026-11-21T21:01:49.379Z n1 pylaunch 77 pymonitor [pylaunch@32473 id="{}" ' \
           'part="{}" of="{}"] '
    cut = [big[:100], big[100:300], big[300:]]
    lines = [head.format("1.n1", 1, 1) + whole,
             head.format("2.n1", 2, 3) + cut[1],  # parts may arrive out of order
             head.format("2.n1", 1, 3) + cut[0],
             head.format("2.n1", 3, 3) + cut[2],
             head.format("3.n1", 1, 2) + big[:50],  # its part 2 never came
             "Dec  6 01:00:00 n1 sshd[5]: Accepted publickey"]
    out = store.Loader(db).load(write_lines(tmp_path / "syslog", lines))
    assert (out.records, out.malformed) == (2, 2)
    assert "syslog record 3.n1: 1 of 2 parts" in [why for _, why in out.reasons]
    names = {n for (n,) in db.execute("SELECT name FROM names WHERE kind='package'")}
    assert names == {"numpy", "h5py"}


def test_cli_load_reports_and_never_fails_on_malformed_lines(tmp_path):
    path = write_lines(tmp_path / "m.jsonl", [rec(1), "garbage"])
    out = cli("load", tmp_path / "r.db", path)
    assert f"{path}: 1 records, 0 already loaded, 1 malformed lines" in out.stdout
    assert "line 2: no JSON object" in out.stdout
    assert "total: 1 records loaded, 0 already loaded, 1 malformed lines" in out.stdout
    again = cli("load", tmp_path / "r.db", path)
    assert f"{path}: already loaded" in again.stdout


def test_cli_load_of_a_missing_file_fails_with_its_name(tmp_path):
    path = write_lines(tmp_path / "ok.jsonl", [rec(1)])
    out = cli("load", tmp_path / "r.db", tmp_path / "nope.jsonl", path, check=False)
    assert out.returncode == 1
    assert f"pylaunch-report: {tmp_path}/nope.jsonl: No such file or directory" in out.stderr
    assert "total: 1 records loaded" in out.stdout  # the other file still loads


def test_a_failed_load_leaves_nothing_of_the_file(tmp_path, db, monkeypatch):
    path = three(tmp_path)
    loader = store.Loader(db)

    def boom(*a):
        raise RuntimeError("disk full")
    monkeypatch.setattr(loader, "_store", boom)
    try:
        loader.load(path)
    except RuntimeError:
        pass
    assert count(db, "files") == 0 and count(db, "records") == 0
    monkeypatch.undo()
    assert store.Loader(db).load(path).records == 3


def test_load_sacct(tmp_path, db):
    path = tmp_path / "sacct.txt"
    path.write_text("cluster|1|alice|2|2026-11-21T21:00:00\ncluster|2|bob|1|Unknown\n"
                    "junk\n\ncluster|x|bob|1|2026-11-21T21:00:00\n")
    assert store.load_sacct(db, str(path)) == (2, 2)
    assert db.execute("SELECT job_id, num_nodes, start FROM sacct_jobs ORDER BY 1").fetchall() \
        == [(1, 2, 1795294800.0), (2, 1, None)]


def test_parsing_in_worker_processes_loads_the_same(tmp_path):
    lines = [rec(j, f"n{k}", f"u{j % 3}", ["numpy", ("scipy", f"1.{k}")]) for j in range(1, 400)
             for k in range(3)] + ["junk"] * 3
    lines.insert(500, "not json")
    path = write_lines(tmp_path / "f.jsonl", lines)
    dumps = []
    for jobs in (1, 3):
        db = store.connect(str(tmp_path / f"j{jobs}.db"))
        with store.Loader(db, jobs) as loader:
            out = loader.load(path)
        assert (out.records, out.malformed, out.lines) == (1197, 4, 1201)
        assert [n for n, _ in out.reasons] == [501, 1199, 1200, 1201]
        dumps.append([db.execute(f"SELECT * FROM {t} ORDER BY 1, 2, 3").fetchall()
                      for t in ("job_packages", "job_interpreters", "names")])
    assert dumps[0] == dumps[1]
