"""Fixtures of the pylaunch-report tests: records as src/monitor/monitor_record.c writes them."""
import copy
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LIB = os.path.join(REPO, "tools", "report")
sys.path.insert(0, LIB)

# The record of README.md's example as it was in schema_version 1 (src/monitor/monitor_record.c of
# 057f67e); README.md shows schema_version 2 now (test_record.py reads it).
BASE = {
    "schema": "pylaunch-monitor-record", "schema_version": 1, "cluster": "cluster",
    "job_id": 4242, "node": "node1", "user": "alice", "uid": 1000, "account": "proj1",
    "partition": "batch", "qos": None, "num_nodes": 3,
    "exit": {"status": 0, "code": 0, "signal": 0},
    "start_time": "2026-11-21T21:01:49.138Z", "end_time": "2026-11-21T21:01:49.379Z",
    "is_compute": True, "is_staff": False, "is_container": True, "partial": False,
    "truncated": False, "processes": 2, "processes_incomplete": 0, "processes_forked": 0,
    "logs_read": 2, "logs_skipped": 0, "lines_skipped": 0,
    "dropped": {"packages": 0, "steps": 0, "mains": 0, "interpreters": 0, "containers": 0},
    "steps": [{"step": "0", "processes": 2}],
    "interpreters": [{"executable": "/usr/bin/python3", "version": "3.11.2",
                      "implementation": "cpython", "processes": 2}],
    "mains": [{"main": "/home/alice/train.py", "processes": 2}],
    "containers": [{"runtime": "docker", "processes": 2}],
    "packages": [],
}


def pkg(name, version="1.0", processes=2):
    return {"name": name, "processes": processes, "incomplete": 0, "ranks": "0-1",
            "rank_count": processes, "ranks_truncated": False,
            "versions": [{"version": version, "processes": processes}] if version else [],
            "versions_dropped": 0}


def rec(job_id=4242, node="node1", user="alice", packages=(), **over):
    """A record; packages are names, (name, version) pairs or package objects."""
    r = copy.deepcopy(BASE)
    r.update(job_id=job_id, node=node, user=user)
    r["packages"] = [p if isinstance(p, dict) else pkg(p) if isinstance(p, str) else pkg(*p)
                     for p in packages]
    r.update(over)
    return r


def write_lines(path, records):
    with open(path, "w") as f:
        for r in records:
            f.write((r if isinstance(r, str) else json.dumps(r)) + "\n")
    return str(path)


def cli(*args, check=True):
    """The command as installed: a process of Debian's interpreter."""
    env = dict(os.environ, PYTHONPATH=LIB)
    out = subprocess.run([sys.executable, "-m", "pylaunch_report", *map(str, args)],
                         capture_output=True, text=True, env=env, timeout=300)
    if check:
        assert out.returncode == 0, out.stderr
    return out


@pytest.fixture
def db(tmp_path):
    from pylaunch_report import store
    conn = store.connect(str(tmp_path / "r.db"))
    yield conn
    conn.close()
