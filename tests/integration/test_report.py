"""pylaunch-report on the cluster's own records: two --pymonitor jobs, their records from the
file sink (one of them gzip-compressed, as a rotated log would be), and the report's tables
name what the jobs imported."""
import gzip
import json
import re
import subprocess
import sys
import time

import plcluster as pc

LIB = pc.REPO / "tools" / "report"
JOBID = 'import os; os.environ["SLURM_PROCID"] == "0" and print("JOBID=" + os.environ["SLURM_JOB_ID"])'


def run_job(workdir, *args):
    out = pc.as_user(["srun", *args], cwd=workdir)
    assert out.returncode == 0, out.stderr
    (line,) = [l for l in out.stdout.splitlines() if l.startswith("JOBID=")]
    return line.split("=")[1]


def sink_lines(jobs, count, timeout=30):
    """The sink's lines of these jobs: the epilog writes after the job is reported done."""
    deadline = time.time() + timeout
    while True:
        lines = []
        if pc.SINK_FILE.exists():
            lines = [l for l in pc.SINK_FILE.read_text().splitlines()
                     if str(json.loads(l)["job_id"]) in jobs]
        if len(lines) >= count or time.time() > deadline:
            return lines
        time.sleep(0.3)


def report(*args):
    out = subprocess.run([sys.executable, "-m", "pylaunch_report", *map(str, args)],
                         capture_output=True, text=True, env={"PYTHONPATH": str(LIB),
                                                              "PATH": "/usr/bin:/bin"},
                         timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


def table_rows(html, anchor):
    """[[cell, ...], ...] of the first table after the heading with this id."""
    part = html[html.index(f'<h2 id="{anchor}">'):]
    table = part[part.index("<table>"):part.index("</table>")]
    return [[re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
            for row in re.findall(r"<tr>(.*?)</tr>", table) if "<td" in row]


def test_report_of_the_clusters_records_names_the_imported_packages(workdir, tmp_path):
    pc.SINK_DIR.mkdir(mode=0o755, exist_ok=True)
    if pc.SINK_FILE.exists():  # job ids start again at 1 on each boot: older records would match
        pc.SINK_FILE.unlink()
    numpy_job = run_job(workdir, "-N2", "--pymonitor", "python3", "-c",
                        "import numpy, json; " + JOBID)
    scipy_job = run_job(workdir, "-N1", "--pymonitor", "python3", "-c",
                        "import scipy.linalg; " + JOBID)
    lines = sink_lines({numpy_job, scipy_job}, 3)
    assert len(lines) == 3, lines
    first = [l for l in lines if str(json.loads(l)["job_id"]) == numpy_job]
    plain = tmp_path / "records.jsonl"
    plain.write_text("\n".join(first) + "\n")
    gz = tmp_path / "records-older.jsonl.gz"
    with gzip.open(gz, "wt") as f:
        f.write("\n".join(l for l in lines if l not in first) + "\nnot a record\n")

    db = tmp_path / "centre.db"
    out = report("load", db, plain, gz)
    assert "total: 3 records loaded, 0 already loaded, 1 malformed lines" in out, out
    assert "total: 0 records loaded" in report("load", db, plain, gz)  # incremental
    page = tmp_path / "report.html"
    report("html", db, "-o", page)
    html = page.read_text()

    by_users = {r[0]: r[1:] for r in table_rows(html, "top-users")}
    assert by_users["numpy"] == ["1", "2"]  # one user, two jobs (numpy and scipy import it)
    assert by_users["scipy"] == ["1", "1"]
    assert "json" not in by_users  # the standard library is left out
    numpy_version, python_version = subprocess.run(
        ["/usr/bin/python3", "-c", "import numpy, platform; print(numpy.__version__, "
         "platform.python_version())"], capture_output=True, text=True).stdout.split()
    versions = table_rows(html, "versions")
    assert ["numpy", numpy_version, "2", "1", "3"] in versions, versions  # 2 + 1 processes
    sizes = {r[0]: r[1] for r in table_rows(html, "sizes")}
    assert sizes == {"1": "1", "2": "1"}
    interpreters = table_rows(html, "interpreters")
    assert interpreters[0][:4] == [python_version, "cpython", "2", "1"], interpreters
    quality = dict(r for r in table_rows(html, "quality"))
    assert quality["records (one per job and node)"] == "3"
    assert quality["malformed lines (skipped)"] == "1"
    assert "2 Python jobs of 1 user " in html
