"""--pymonitor on the real cluster: every Python process of a job records its
imports into the node-local spool, killed ones included; the epilog sends one
record per job and node to the sinks and removes the spool."""
import json
import re
import subprocess
import textwrap

import pytest

import bundles as bd
import plcluster as pc

ALL_NODES = pc.node_names()


@pytest.fixture(autouse=True)
def empty_sink():
    pc.SINK_DIR.mkdir(mode=0o755, exist_ok=True)
    if pc.SINK_FILE.exists():
        pc.SINK_FILE.unlink()
    yield


def records_of(job, count, timeout=30):
    """The epilog writes after the job is reported done: wait for the records."""
    import time
    deadline = time.time() + timeout
    while True:
        found = []
        if pc.SINK_FILE.exists():
            found = [json.loads(l) for l in pc.SINK_FILE.read_text().splitlines()]
            found = [r for r in found if str(r["job_id"]) == str(job)]
        if len(found) >= count or time.time() > deadline:
            return found
        time.sleep(0.3)


def package(record, name):
    return next((p for p in record["packages"] if p["name"] == name), None)


def spools_left():
    return {n: pc.cluster("exec", n, "sh", "-c",
                          "ls -A /dev/shm/pylaunch-spool 2>/dev/null; true").stdout.split()
            for n in ALL_NODES}


def run_job(workdir, *args, env=None):
    out = pc.as_user(["srun", *args], cwd=workdir, env=env)
    m = [l for l in out.stdout.splitlines() if l.startswith("JOBID=")]
    return out, (m[0].split("=")[1] if m else None)


# Flushed: several tests end the process with SIGKILL or os._exit, which drop buffered output.
JOBID = 'import os; os.environ["SLURM_PROCID"] == "0" and print("JOBID=" + os.environ["SLURM_JOB_ID"], flush=True)'


def test_one_record_per_job_and_node_with_packages_and_ranks(workdir):
    out, job = run_job(workdir, "-N3", "--ntasks-per-node=2", "--pymonitor", "python3", "-c",
                       "import numpy, json; " + JOBID)
    assert out.returncode == 0, out.stderr
    recs = records_of(job, 3)
    assert sorted(r["node"] for r in recs) == ALL_NODES, recs
    for r in recs:
        assert r["user"] == pc.TEST_USER and r["num_nodes"] == 3
        assert r["processes"] == 2 and r["processes_incomplete"] == 0
        numpy = package(r, "numpy")
        assert numpy and numpy["processes"] == 2 and numpy["rank_count"] == 2, r["packages"]
        assert package(r, "json") is None  # the standard library is left out
    ranks = sorted(package(r, "numpy")["ranks"] for r in recs)
    assert ranks == ["0-1", "2-3", "4-5"]
    pc.wait_idle()
    assert all(v == [] for v in spools_left().values()), spools_left()


def test_killed_processes_keep_their_imports(workdir):
    code = "import numpy, os, signal; " + JOBID + "; os.kill(os.getpid(), signal.SIGKILL)"
    out, job = run_job(workdir, "-N1", "--pymonitor", "python3", "-c", code)
    assert out.returncode != 0
    (rec,) = records_of(job, 1)
    assert rec["processes_incomplete"] == 1
    assert package(rec, "numpy")["incomplete"] == 1


def test_monitor_with_pybundle_records_the_staged_interpreter(workdir, tmp_path):
    env = bd.python_env_tree(tmp_path / "env")
    bundle = bd.tar_dir(env, workdir / "env.tar.zst", "zst")
    out, job = run_job(workdir, "-N2", f"--pybundle={bundle}", "--pymonitor", "python3", "-c",
                       "import pylaunch_probe; " + JOBID)
    assert out.returncode == 0, out.stderr
    recs = records_of(job, 2)
    assert len(recs) == 2
    for r in recs:
        assert package(r, "pylaunch_probe")["processes"] == 1
        assert r["interpreters"][0]["executable"].startswith("/dev/shm/pylaunch/"), r


def test_user_sitecustomize_still_runs_and_output_is_unchanged(workdir):
    site = workdir / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("print('user sitecustomize ran')\n")
    bd.give_to_user(site)
    code = "import sys; print('main', sys.argv[1:]); " + JOBID
    out, job = run_job(workdir, "-N1", "--pymonitor", "python3", "-c", code, "a", "b",
                       env={"PYTHONPATH": str(site)})
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "user sitecustomize ran" and lines[1] == "main ['a', 'b']", lines
    assert out.stderr == ""
    assert len(records_of(job, 1)) == 1


def test_site_default_with_opt_outs(workdir):
    pc.write_site_config(pc.GOOD_CONFIG.replace("default: off", "default: on"))
    _, on = run_job(workdir, "-N1", "python3", "-c", "import numpy; " + JOBID)
    _, opt_out = run_job(workdir, "-N1", "--pymonitor=no", "python3", "-c", "import numpy; " + JOBID)
    _, env_out = run_job(workdir, "-N1", "python3", "-c", "import numpy; " + JOBID,
                         env={"PYLAUNCH_MONITOR": "0"})
    assert package(records_of(on, 1)[0], "numpy")
    pc.wait_idle()
    assert records_of(opt_out, 1, timeout=3) == []
    assert all(r["processes"] == 0 for r in records_of(env_out, 1, timeout=3))


def test_hostile_spool_content_is_skipped_not_fatal(workdir):
    script = textwrap.dedent("""\
        import os
        spool = os.environ["PYLAUNCH_MONITOR_SPOOL"]
        open(os.path.join(spool, "huge.log"), "w").write("pylaunch-monitor 1\\n" + "import\\t" + "x" * 5000000 + "\\n")
        open(os.path.join(spool, "utf8.log"), "wb").write(b"pylaunch-monitor 1\\nimport\\t\\xff\\xfe\\n")
        os.symlink("/etc/shadow", os.path.join(spool, "link.log"))
        import numpy
        """) + JOBID
    out, job = run_job(workdir, "-N1", "--pymonitor", "python3", "-c", script)
    assert out.returncode == 0, out.stderr
    (rec,) = records_of(job, 1)
    assert package(rec, "numpy") and rec["logs_skipped"] >= 2, rec
    pc.wait_idle()
    assert all(v == [] for v in spools_left().values())


@pytest.fixture
def rsyslog(tmp_path):
    """A real rsyslogd on the bridge address, writing what it receives to a file."""
    received = pc.SINK_DIR / "rsyslog.log"
    if received.exists():
        received.unlink()
    conf = tmp_path / "rsyslog.conf"
    conf.write_text(textwrap.dedent(f"""\
        global(workDirectory="{tmp_path}")
        module(load="imudp")
        input(type="imudp" address="10.213.0.1" port="15514")
        template(name="raw" type="string" string="%rawmsg%\\n")
        *.* action(type="omfile" file="{received}" template="raw")
        """))
    proc = subprocess.Popen(["rsyslogd", "-n", "-f", str(conf), "-i", str(tmp_path / "pid")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    import time
    time.sleep(1)
    assert proc.poll() is None, proc.stderr.read()
    yield received
    proc.terminate()
    proc.wait(timeout=10)


def test_syslog_sink_reaches_a_real_rsyslog(workdir, rsyslog):
    import time
    pc.write_site_config(pc.GOOD_CONFIG + "    - type: syslog\n      address: udp://10.213.0.1:15514\n"
                         "      facility: local3\n")
    out, job = run_job(workdir, "-N2", "--pymonitor", "python3", "-c", "import numpy; " + JOBID)
    assert out.returncode == 0, out.stderr
    deadline = time.time() + 30
    lines = []
    while time.time() < deadline and len(lines) < 2:
        lines = [l for l in (rsyslog.read_text().splitlines() if rsyslog.exists() else [])
                 if f'id="{job}.' in l]
        time.sleep(0.3)
    assert len(lines) == 2, lines
    for line in lines:
        assert re.match(r"<(\d+)>1 \S+ node[12] pylaunch \d+ pymonitor \[pylaunch@", line), line[:100]
        assert int(re.match(r"<(\d+)>", line).group(1)) // 8 == 19  # local3
        record = json.loads(line[line.index("{"):])
        assert str(record["job_id"]) == job and package(record, "numpy")


METADATA = "import json; " + JOBID


def test_all_metadata_fields_present_and_correct(workdir):
    out, job = run_job(workdir, "-N3", "--ntasks-per-node=2", "--pymonitor", "python3",
                       "-c", "import numpy, json; " + JOBID)
    assert out.returncode == 0, out.stderr
    recs = records_of(job, 3)
    import pwd
    uid = pwd.getpwnam(pc.TEST_USER).pw_uid
    for r in recs:
        assert r["schema"] == "pylaunch-monitor-record" and r["schema_version"] == 2
        assert r["cluster"] and r["partition"] == "debug" and r["num_nodes"] == 3
        assert r["uid"] == uid and r["user"] == pc.TEST_USER and str(r["job_id"]) == job
        assert r["exit"]["code"] == 0 and r["start_time"] <= r["end_time"]
        assert r["is_staff"] is False and r["partial"] is False and r["qos"] is None
        assert r["steps"] == [{"step": "0", "processes": 2}]
        assert r["interpreters"][0]["version"].startswith("3.")
        numpy = package(r, "numpy")
        import numpy as local_numpy
        assert numpy["versions"] == [{"version": local_numpy.__version__, "processes": 2}]


@pytest.mark.parametrize("ending,code", [
    ("os._exit(3)", 3),
    ("import ctypes; ctypes.string_at(0)", None),  # segfault
])
def test_abnormal_exits_are_recorded_incomplete(workdir, ending, code):
    out, job = run_job(workdir, "-N1", "--pymonitor", "python3", "-c",
                       "import os, numpy; " + JOBID + "; " + ending)
    assert out.returncode != 0
    (rec,) = records_of(job, 1)
    assert rec["processes_incomplete"] == 1 and package(rec, "numpy")["incomplete"] == 1


@pytest.mark.slow
def test_time_limit_kill_after_import_scipy_is_recorded(workdir):
    script = workdir / "job.sh"
    script.write_text("#!/bin/sh\nsrun python3 -c 'import scipy, time; time.sleep(600)'\n")
    out = pc.as_user(["sbatch", "--parsable", "-t", "1", "--pymonitor", "-o", "/dev/null",
                      str(script)], cwd=workdir)
    job = out.stdout.strip()
    assert pc.wait_job_end(int(job), timeout=180) == "TIMEOUT"
    recs = records_of(job, 1)
    assert recs and package(recs[0], "scipy")["incomplete"] == 1


BEHAVIOUR = {
    "multiprocessing": textwrap.dedent("""\
        import multiprocessing as mp
        def sq(x): return x * x
        if __name__ == "__main__":
            with mp.Pool(2) as p: print(sorted(p.map(sq, range(5))))
        """),
    "sigterm-handler": textwrap.dedent("""\
        import os, signal, sys
        signal.signal(signal.SIGTERM, lambda *a: (print("handled"), sys.exit(7)))
        os.kill(os.getpid(), signal.SIGTERM)
        """),
    "meta-path-replaced": textwrap.dedent("""\
        import sys
        sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "function"][-2:]
        import json; print(json.dumps({"ok": len(sys.meta_path)}))
        """),
}


@pytest.mark.parametrize("name", sorted(BEHAVIOUR))
def test_programs_behave_the_same_with_and_without_the_hook(workdir, name):
    prog = workdir / f"{name}.py"
    prog.write_text(BEHAVIOUR[name])
    bd.give_to_user(prog)
    plain = pc.as_user(["srun", "-N1", "python3", str(prog)], cwd=workdir)
    monitored = pc.as_user(["srun", "-N1", "--pymonitor", "python3", str(prog)], cwd=workdir)
    assert (monitored.returncode, monitored.stdout) == (plain.returncode, plain.stdout)


def test_sampling_zero_and_one(workdir):
    pc.write_site_config(pc.GOOD_CONFIG.replace("  default: off", "  default: off\n  sample_rate: 0"))
    _, none = run_job(workdir, "-N1", "--pymonitor", "python3", "-c", "import numpy; " + JOBID)
    pc.write_site_config(pc.GOOD_CONFIG.replace("  default: off", "  default: off\n  sample_rate: 1"))
    _, every = run_job(workdir, "-N1", "--pymonitor", "python3", "-c", "import numpy; " + JOBID)
    assert len(records_of(every, 1)) == 1
    pc.wait_idle()
    assert records_of(none, 1, timeout=3) == []


def test_other_users_file_and_truncated_log_in_the_spool(workdir):
    """Root drops a file of another user into the running job's spool."""
    import time
    code = ("import os, time, numpy; " + JOBID + "\n"
            "spool = os.environ['PYLAUNCH_MONITOR_SPOOL']\n"
            "open(os.path.join(spool, 'trunc.log'), 'w').write('pylaunch-monitor 1\\nimport\\tnump')\n"
            "open(os.path.join(spool, 'ready'), 'w').close()\n"
            "while not os.path.exists(os.path.join(spool, 'foreign.log')): time.sleep(0.1)\n")
    proc = subprocess.Popen(
        ["runuser", "-u", pc.TEST_USER, "--", "env", f"SLURM_CONF={pc.CLUSTER_DIR}/etc/slurm.conf",
         "srun", "-w", "node1", "--pymonitor", "python3", "-c", code],
        cwd=workdir, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    job = None
    while time.time() < deadline and not job:
        out = subprocess.run(["squeue", "-h", "-u", pc.TEST_USER, "-o", "%i"], env=pc.slurm_env(),
                             text=True, capture_output=True).stdout.split()
        job = out[0] if out else None
        time.sleep(0.2)
    spool = f"/dev/shm/pylaunch-spool/{job}"
    pc.cluster("exec", "node1", "sh", "-c",
               f"while [ ! -e {spool}/ready ]; do sleep 0.1; done; "
               f"printf 'pylaunch-monitor 1\\nimport\\tforeign\\n' > {spool}/foreign.log; "
               f"chown nobody {spool}/foreign.log")
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    (rec,) = records_of(job, 1)
    assert package(rec, "foreign") is None and package(rec, "numpy")
    assert rec["logs_skipped"] >= 1


# ---------------------------------------------------------------- issue 15

def make_dist(site, dist, version, top):
    """A package with only its installed metadata to tell its version."""
    site.mkdir(parents=True, exist_ok=True)
    (site / top).mkdir(exist_ok=True)
    (site / top / "__init__.py").write_text("VALUE = 1\n")
    meta = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    meta.mkdir(exist_ok=True)
    (meta / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (meta / "top_level.txt").write_text(top + "\n")


def sbatch_and_wait(workdir, script_text, *args, timeout=180):
    script = workdir / "job.sh"
    script.write_text(script_text)
    bd.give_to_user(script)
    out = pc.as_user(["sbatch", "--parsable", "--pymonitor", "-o", str(workdir / "out.txt"),
                      *args, str(script)], cwd=workdir)
    assert out.returncode == 0, out.stderr
    job = out.stdout.strip().split(";")[0]
    state = pc.wait_job_end(int(job), timeout=timeout)
    output = (workdir / "out.txt").read_text() if (workdir / "out.txt").exists() else ""
    return job, state, output


def test_mpirun_ranks_in_a_two_node_batch_job(workdir):
    # Issue 15 defect 2: 4 Open MPI ranks gave ranks "0", rank_count 1.
    job, state, output = sbatch_and_wait(workdir, textwrap.dedent("""\
        #!/bin/sh
        mpirun -n 4 --map-by ppr:2:node --oversubscribe --mca btl self,tcp python3 -c 'import numpy, os; open("rank-" + os.environ["OMPI_COMM_WORLD_RANK"], "w").close()'
        """), "-N2", "--ntasks-per-node=2")
    assert state == "COMPLETED", output
    # Two ranks per node said explicitly: Open MPI 5 (Debian 13 on) maps by the allocation's CPUs,
    # not its tasks, and put all four on the first node.
    # A file per rank, not a line: mpirun forwards the ranks' output in pieces that interleave.
    assert sorted(p.name for p in workdir.glob("rank-*")) == \
        ["rank-0", "rank-1", "rank-2", "rank-3"], output
    recs = records_of(job, 2)
    assert sorted(r["node"] for r in recs) == ["node1", "node2"], recs
    ranks = set()
    for r in recs:
        numpy = package(r, "numpy")
        assert numpy["processes"] == 2 and numpy["rank_count"] == 2, r["packages"]
        ranks.update(numpy["ranks"].replace("-", ",").split(","))
    assert ranks == {"0", "1", "2", "3"}
    assert sum(package(r, "numpy")["rank_count"] for r in recs) == 4


def test_job_script_overwriting_pythonpath_is_still_monitored(workdir):
    # Issue 15 defect 1: PYTHONPATH=... in the job script left no log at all. The site
    # links pylaunch-monitor.pth into its environments' site-packages: here a venv.
    venv = workdir / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", "--system-site-packages",
                    str(venv)], check=True)
    (site,) = venv.glob("lib/python3*/site-packages")
    (site / "pylaunch-monitor.pth").write_text((pc.REPO / "share" / "monitor" / "pylaunch-monitor.pth").read_text())
    make_dist(workdir / "mine", "mine-dist", "1.0", "mine")
    bd.give_to_user(venv)
    bd.give_to_user(workdir / "mine")
    job, state, output = sbatch_and_wait(workdir, textwrap.dedent(f"""\
        #!/bin/sh
        export PYTHONPATH={workdir}/mine
        {venv}/bin/python -c 'import mine, numpy; print("ok")'
        """), "-N1")
    assert state == "COMPLETED" and output == "ok\n", output
    (rec,) = records_of(job, 1)
    mine = package(rec, "mine")
    assert mine and mine["processes"] == 1, rec["packages"]
    assert mine["distribution"] == "mine-dist"
    assert mine["versions"] == [{"version": "1.0", "processes": 1}]
    assert mine["origins"] == [{"origin": "other", "processes": 1}]
    assert rec["hooks"] == [{"hook": "pth", "processes": 1}]
    assert package(rec, "numpy")["origins"] == [{"origin": "system", "processes": 1}]


def test_package_versioned_only_by_its_metadata(workdir):
    # Issue 15 defect 3: no __version__, so null before; importlib.metadata knows it.
    make_dist(workdir / "lib", "only-meta", "4.5.6", "onlymeta")
    bd.give_to_user(workdir / "lib")
    out, job = run_job(workdir, "-N1", "--pymonitor", "python3", "-c",
                       "import onlymeta, importlib.metadata as m; print(m.version('only-meta')); "
                       + JOBID, env={"PYTHONPATH": str(workdir / "lib")})
    assert out.returncode == 0 and out.stdout.startswith("4.5.6\n"), out.stderr
    (rec,) = records_of(job, 1)
    onlymeta = package(rec, "onlymeta")
    assert onlymeta["versions"] == [{"version": "4.5.6", "processes": 1}]
    assert onlymeta["distribution"] == "only-meta"
    assert rec["hooks"] == [{"hook": "sitecustomize", "processes": 1}]
    (dist,) = [d for d in rec["distributions"] if d["name"] == "only-meta"]
    assert dist["processes"] == 1 and dist["versions"] == onlymeta["versions"]


def test_fork_pool_of_64_workers_counts_right(workdir):
    # Issue 15 defect 7: numpy counted in 65 processes for a 64-worker pool, all incomplete.
    make_dist(workdir / "lib", "wpkg", "0.3", "wpkg")
    prog = workdir / "pool.py"
    prog.write_text(textwrap.dedent("""\
        import multiprocessing as mp, numpy, os
        def init():
            import wpkg
        def work(x):
            return x
        if __name__ == "__main__":
            with mp.get_context("fork").Pool(64, initializer=init) as pool:
                print(sum(pool.map(work, range(640))))
                pool.close()
                pool.join()
            print("JOBID=" + os.environ["SLURM_JOB_ID"])
        """))
    bd.give_to_user(workdir / "lib")
    bd.give_to_user(prog)
    out, job = run_job(workdir, "-N1", "--pymonitor", "python3", str(prog),
                       env={"PYTHONPATH": str(workdir / "lib")})
    assert out.returncode == 0 and out.stdout.startswith("204480\n"), out.stderr
    (rec,) = records_of(job, 1)
    assert rec["processes"] == 65 and rec["processes_forked"] == 64
    assert rec["processes_incomplete"] == 0
    assert package(rec, "numpy")["processes"] == 1
    assert package(rec, "multiprocessing")["processes"] == 1
    assert package(rec, "wpkg")["processes"] == 64
    assert {"status": "0", "processes": 64} in rec["exit_statuses"]
    assert rec["mains"] == [{"main": str(prog), "processes": 65}]


def test_python_without_hook_is_counted(workdir):
    # python -I runs no hook: the record counts the task instead of staying silent.
    out, job = run_job(workdir, "-N1", "-n2", "--pymonitor", "python3", "-I", "-c",
                       "import os; print('JOBID=' + os.environ['SLURM_JOB_ID'])")
    assert out.returncode == 0, out.stderr
    # No log at all on the node: the record still comes, with the two tasks counted.
    (rec,) = records_of(job, 1)
    assert rec["processes"] == 0
    assert rec["python_tasks"] == 2 and rec["python_tasks_unhooked"] == 2


def test_three_thousand_crafted_logs_make_a_capped_record(workdir):
    # Issue 13 item 5: crafted logs must not make a huge record: at most 1 MiB.
    code = textwrap.dedent("""\
        import os
        spool = os.environ["PYLAUNCH_MONITOR_SPOOL"]
        for i in range(3000):
            with open(os.path.join(spool, "%d-crafted.log" % (100000 + i)), "w") as f:
                f.write("pylaunch-monitor 2\\njob\\t%s\\nmain\\t/%d%s\\n"
                        "import\\tpkg_%d_%s\\nimport\\tpkg_%d_%s\\nimport\\tcommon\\nexit\\t1700000000\\n"
                        % (os.environ["SLURM_JOB_ID"], i, "m" * 4000, i, "a" * 200, i, "b" * 200))
        """) + JOBID
    out, job = run_job(workdir, "-N1", "--pymonitor", "python3", "-c", code)
    assert out.returncode == 0, out.stderr
    lines = [l for l in pc.SINK_FILE.read_text().splitlines() if f'"job_id":{job},' in l] \
        if records_of(job, 1) else []
    assert len(lines) == 1
    assert len(lines[0].encode()) <= 1024 * 1024
    rec = json.loads(lines[0])
    assert rec["processes"] == 3001 and rec["truncated"] is True
    assert rec["dropped"]["record"] > 0
    assert package(rec, "common")["processes"] == 3000
