"""record.py: the one module that knows the record format."""
import json
import os
import re

import pytest

from conftest import REPO, pkg, rec
from pylaunch_report import record


def readme_example():
    """The record printed in README.md, as a user would copy it."""
    text = open(os.path.join(REPO, "README.md")).read()
    block = re.search(r'```json\n(\{"schema": "pylaunch-monitor-record".*?)```', text, re.S)
    return json.loads(block.group(1))


def test_readme_example_reads_with_every_field():
    r = record.normalise(readme_example())  # schema_version 2 since issue 15
    assert (r["cluster"], r["job_id"], r["node"], r["user"]) == ("cluster", 4242, "node1", "alice")
    assert r["num_nodes"] == 3 and r["processes"] == 2 and r["schema_version"] == 2
    assert r["start"] == pytest.approx(1795294909.138)  # date -d 2026-11-21T21:01:49Z +%s
    assert r["end_text"].endswith(".379Z")
    assert r["packages"] == [("ctypes", 2, 0, 2, None, None, [("1.1.0", 2)]),
                             ("numpy", 2, 0, 2, "numpy", "system", [("1.24.2", 2)])]
    assert r["interpreters"] == [("/usr/bin/python3", "3.11.2", "cpython", 2)]
    assert r["is_container"] and not r["is_staff"] and not r["partial"]
    assert (r["without_hook"], r["unlogged"], r["dropped"]) == (0, 0, 0)
    assert r["sample_rate"] is None  # not in the records: --sample-rate


def test_schema_1_record_reads_the_same_job():
    v1, v2 = record.normalise(rec(packages=["numpy"])), record.normalise(readme_example())
    same = ("cluster", "job_id", "node", "user", "num_nodes", "start", "end", "processes")
    assert [v1[k] for k in same] == [v2[k] for k in same]
    assert v1["schema_version"] == 1 and v1["without_hook"] is None  # not in schema 1


def test_schema_2_origins_the_most_common_one():
    p = dict(pkg("numpy"), origins=[{"origin": None, "processes": 5},
                                    {"origin": "venv", "processes": 1},
                                    {"origin": "bundle", "processes": 3}])
    assert record.normalise(rec(packages=[p]))["packages"][0][5] == "bundle"


def test_schema_2_fields_are_read():
    p = {"name": "numpy", "processes": 4, "version": "2.0.1", "distribution": "numpy",
         "origin": "conda", "rank_count": 4}
    r = record.normalise(rec(schema_version=2, packages=[p], python_tasks_unhooked=3,
                             processes_unlogged=1, truncated=True, sample_rate=0.25,
                             dropped={"packages": 2, "imports": 3, "record": 0}))
    assert r["packages"] == [("numpy", 4, 0, 4, "numpy", "conda", [("2.0.1", 4)])]
    assert r["without_hook"] == 3 and r["unlogged"] == 1
    assert r["truncated"] is True and r["dropped"] == 5 and r["sample_rate"] == 0.25


def test_unknown_fields_are_ignored_and_missing_ones_are_unknown():
    r = record.normalise({"schema": "pylaunch-monitor-record", "schema_version": 2,
                          "job_id": 7, "future_field": {"x": [1]}})
    assert r["job_id"] == 7 and r["user"] == "unknown" and r["packages"] == []
    assert r["num_nodes"] is None and r["start"] is None and r["logs_skipped"] is None


def test_fields_of_the_wrong_type_are_unknown_not_fatal():
    r = record.normalise(rec(num_nodes="3", start_time=12, interpreters="none",
                             packages=[{"name": "x", "processes": "2"}, {"name": ""}]))
    assert r["packages"] == [("x", 0, 0, None, None, None, [(None, 0)])]
    r2 = record.normalise(dict(rec(), user=17, packages=[5, "numpy"]))
    assert r2["user"] == "uid 1000" and r2["packages"] == []
    assert r["num_nodes"] is None and r["start"] is None
    assert r["packages"] == [("x", 0, 0, None, None, None, [(None, 0)])]
    assert r["interpreters"] == []


def test_processes_not_under_a_listed_version_count_as_unknown():
    p = pkg("numpy", "1.0", processes=2)
    p["processes"] = 5
    (got,) = record.normalise(rec(packages=[p]))["packages"]
    assert got[6] == [("1.0", 2), (None, 3)]


@pytest.mark.parametrize("text, why", [
    ("not json", "not JSON"),
    ("[1, 2]", "not a JSON object"),
    ('{"schema": "other", "schema_version": 1, "job_id": 1}', "schema 'other'"),
    ('{"schema": "pylaunch-monitor-record", "schema_version": 3, "job_id": 1}',
     "schema_version 3"),
    ('{"schema": "pylaunch-monitor-record", "schema_version": 1}', "no job_id"),
])
def test_malformed_records_say_why(text, why):
    with pytest.raises(record.Malformed, match=re.escape(why)):
        record.parse(text)


def test_syslog_framing():
    line = ('<158>1 2026-11-21T21:01:49.379Z node1 pylaunch 77 pymonitor '
            '[pylaunch@32473 id="4242.node1" part="2" of="3"] "abc')
    assert record.framing(line) == ("4242.node1", 2, 3, '"abc')
    assert record.framing('{"a":1}') == (None, 1, 1, '{"a":1}')
    assert record.framing('Nov 21 node1 pylaunch[7]: {"a":1}')[3] == '{"a":1}'
    with pytest.raises(record.Malformed):
        record.framing("Nov 21 node1 kernel: nothing here")
    with pytest.raises(record.Malformed):
        record.framing('<158>1 - - pylaunch 7 pymonitor [pylaunch@32473 id="x" part="4" of="3"] {')
