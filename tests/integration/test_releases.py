"""What differs between the Slurm releases pylaunch supports (22.05, 24.11, 26.05), run on each
of them (tests/cluster/suite.sh): the release line at load, the epilog's sweep (asked in a child
from 23.02 on), two jobs on one node, NodeAddr, sbatch --export=NONE, job_container/tmpfs and
PrologFlags=RunInJob (whose extern step does the epilog's work)."""
import json
import re
import shutil
import subprocess

import pytest

import bundles as bd
import plcluster as pc


def slurm_release():
    """(major, minor) of the Slurm the cluster runs, from slurmd -V ("slurm-wlm 24.11.5")."""
    out = subprocess.run(["slurmd", "-V"], capture_output=True, text=True, check=True).stdout
    major, minor = re.search(r"(\d+)\.(\d+)", out).groups()
    return int(major), int(minor)


@pytest.fixture(scope="module")
def env_bundle():
    """A Python environment on the shared file system, owned by the test user."""
    work = pc.SHARED_SRC / "rel-env.d"
    shutil.rmtree(work, ignore_errors=True)
    archive = bd.python_env_bundle(work, pc.SHARED_SRC / "rel-env.tar.zst")
    shutil.rmtree(work)
    return pc.SHARED / archive.name


def release_jobs(*jobs):
    subprocess.run(["scontrol", "release", *map(str, jobs)], env=pc.slurm_env(), check=True)


def sbatch(workdir, script, *opts):
    out = pc.as_user(["sbatch", "--parsable", "-o", f"{workdir}/%j.out", *opts, "--wrap", script],
                     cwd=workdir)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.strip().split(";")[0])


def output(workdir, job):
    path = workdir / f"{job}.out"
    return path.read_text() if path.exists() else f"(no {path.name})"


def wait_end(job, timeout=120, watch=None):
    """The job's final state; on a timeout, why it waited (job, nodes, slurmctld's last lines,
    and the slurmd logs' errors since watch began)."""
    try:
        return pc.wait_job_end(job, timeout=timeout)
    except TimeoutError as e:
        show = subprocess.run(["scontrol", "show", "job", str(job)], env=pc.slurm_env(),
                              capture_output=True, text=True).stdout
        nodes = subprocess.run(["sinfo", "-N", "-o", "%N %T %E"], env=pc.slurm_env(),
                               capture_output=True, text=True).stdout
        ctld = (pc.CLUSTER_DIR / "log" / "slurmctld.log").read_text().splitlines()[-15:]
        slurmd = watch.report() if watch else ""
        raise AssertionError(f"{e}\n{show}\n{nodes}\n" + "\n".join(ctld) + "\n" + slurmd) from e


def node_exec(node, *cmd):
    return pc.cluster("exec", node, *cmd, check=False)


def test_slurmd_logs_the_release_the_plugin_was_built_for():
    major, minor = slurm_release()
    text = pc.slurmd_log("node1").read_text()
    found = re.findall(r"pylaunch: loaded, built for Slurm (\d+)\.(\d+)\.(\d+)", text)
    assert found, "no release line in the slurmd log"
    assert (int(found[-1][0]), int(found[-1][1])) == (major, minor), found[-1]


def make_leftover(node, job_id):
    """A stage tree of a job this node never ran the epilog of, as a restarted slurmd leaves."""
    base = "/dev/shm/pylaunch"
    out = node_exec(node, "sh", "-c",
                    f"test -d {base} && install -d -o {pc.TEST_USER} -g {pc.TEST_USER} -m 0700 "
                    f"{base}/{job_id} && echo x > {base}/{job_id}/file && "
                    f"chown {pc.TEST_USER}: {base}/{job_id}/file")
    assert out.returncode == 0, out.stdout + out.stderr


def tree_exists(node, job_id):
    return node_exec(node, "test", "-e", f"/dev/shm/pylaunch/{job_id}").returncode == 0


def test_epilog_sweep_removes_an_ended_jobs_leftover_tree(workdir, env_bundle):
    # A first job makes the stage directory; 4000000 is a job id slurmctld never had.
    out = pc.as_user(["srun", "-w", "node1", f"--pybundle={env_bundle}", "true"], cwd=workdir)
    assert out.returncode == 0, out.stderr
    make_leftover("node1", 4000000)
    watch = pc.LogWatch()
    out = pc.as_user(["srun", "-w", "node1", "true"], cwd=workdir)
    assert out.returncode == 0, out.stderr
    lines = watch.wait_for("node1", r"removing the leftover stage tree of ended job 4000000")
    assert len(lines) == 1, watch.lines("node1")
    assert not tree_exists("node1", 4000000)
    assert not watch.lines("node1", r"cannot tell"), watch.lines("node1")


def test_epilog_sweep_on_a_node_two_jobs_share(workdir, env_bundle):
    """A job ending on a node where another job runs: the other job's tree stays."""
    long_job = sbatch(workdir, "sleep 8; srun python3 -c 'import sys; print(\"prefix\", sys.prefix)'",
                      "-w", "node1", "-n1", f"--pybundle={env_bundle}")
    for _ in range(100):
        if pc.job_state(long_job) == "RUNNING" and tree_exists("node1", long_job):
            break
        subprocess.run(["sleep", "0.2"])
    assert tree_exists("node1", long_job), pc.job_state(long_job)
    watch = pc.LogWatch()
    out = pc.as_user(["srun", "-w", "node1", "-n1", "true"], cwd=workdir)
    assert out.returncode == 0, out.stderr
    # The short job's epilog (with its sweep) is over when its end is logged on the node.
    assert wait_end(long_job, timeout=60) == "COMPLETED", output(workdir, long_job)
    assert f"prefix /dev/shm/pylaunch/{long_job}/" in output(workdir, long_job), \
        output(workdir, long_job)
    assert not watch.lines("node1", rf"removing the leftover stage tree of ended job {long_job}")


def test_sbatch_export_none_job_uses_its_bundle(workdir, env_bundle):
    job = sbatch(workdir, "python3 -c 'import sys; print(\"batch\", sys.prefix)'; "
                 "srun python3 -c 'import sys; print(\"step\", sys.prefix)'",
                 "--export=NONE", "-N1", f"--pybundle={env_bundle}")
    assert wait_end(job) == "COMPLETED", output(workdir, job)
    text = output(workdir, job)
    assert re.search(rf"^step /dev/shm/pylaunch/{job}/", text, re.M), text


def test_tree_reaches_nodes_at_their_node_addr(workdir, env_bundle, restore_cluster):
    """Inside the nodes every node name resolves to an unused address: only slurm.conf's NodeAddr
    reaches a peer."""
    pc.reboot(restore_cluster, NODE_HOSTS="misleading")
    pc.write_site_config(pc.GOOD_CONFIG + "tree:\n  fanout: 1\n  connect_timeout: 3s\n")
    watch = pc.LogWatch()
    out = pc.as_user(["srun", "-N3", f"--pybundle={env_bundle}", "python3", "-c",
                      "import sys; print(sys.prefix)"], cwd=workdir)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("/dev/shm/pylaunch/") == 3, out.stdout
    for node in ("node1", "node2", "node3"):
        lines = watch.wait_for(node, r"pylaunch: stage job=\d+ ")
        assert len(lines) == 1 and "mode=tree" in lines[0] and "outcome=staged" in lines[0], \
            lines


CONTAINER_CONFIG = """\
stage:
  dir: /run/pylaunch/stage
monitor:
  default: off
  spool_dir: /run/pylaunch/spool
  hook_dir: {hook_dir}
  sinks:
    - type: file
      path: {sink}
"""


def test_job_container_tmpfs_tasks_see_the_staged_tree(workdir, env_bundle, restore_cluster):
    """job_container/tmpfs (namespace/tmpfs from 25.11) gives the job a private /tmp and /dev/shm;
    a stage.dir outside them (a node tmpfs at /run/pylaunch) is what the tasks see."""
    pc.reboot(restore_cluster, JOB_CONTAINER="tmpfs")
    pc.write_site_config(CONTAINER_CONFIG.format(hook_dir=pc.REPO / "share" / "monitor", sink=pc.SINK_FILE))
    watch = pc.LogWatch()
    job = sbatch(workdir, "srun python3 -c 'import sys, os; print(\"prefix\", sys.prefix); "
                 "print(\"shm\", sorted(os.listdir(\"/dev/shm\")))'",
                 "-N2", "--ntasks-per-node=1", f"--pybundle={env_bundle}", "--pymonitor")
    assert wait_end(job, watch=watch) == "COMPLETED", output(workdir, job) + watch.report()
    text = output(workdir, job)
    assert text.count(f"prefix /run/pylaunch/stage/{job}/") == 2, text
    # The job's private /dev/shm is empty: the container is really there.
    assert text.count("shm []") == 2, text


def test_job_container_with_the_stage_dir_in_dev_shm_fails_the_tasks_clearly(workdir, env_bundle,
                                                                            restore_cluster):
    """The default stage.dir (/dev/shm/pylaunch) under job_container/tmpfs: the prolog stages
    where the job's private /dev/shm will hide it. The tasks fail with what to change, the
    node is not drained, and the epilog leaves nothing."""
    pc.reboot(restore_cluster, JOB_CONTAINER="tmpfs")
    pc.write_site_config(pc.GOOD_CONFIG)
    watch = pc.LogWatch()
    out = pc.as_user(["srun", "-N2", f"--pybundle={env_bundle}", "python3", "-c",
                      "print('RAN')"], cwd=workdir)
    assert out.returncode != 0 and "RAN" not in out.stdout, (out.stdout, out.stderr)
    assert "pylaunch" in out.stderr, out.stderr + watch.report()
    for node in ("node1", "node2"):
        assert re.search(rf"srun: error: {node}: task \d+: Exited with exit code 1", out.stderr)
    # Each node's message twice: srun prints the task's, and slurmstepd's log copy (prefixed
    # "slurmstepd-nodeN: error:" up to 25.11, "[time] error:" from 26.05).
    assert out.stderr.count("pylaunch: --pybundle: /dev/shm/pylaunch/") == 4, out.stderr
    assert out.stderr.count("in the job's mount namespace") == 4, out.stderr
    assert "the site must set stage.dir and monitor.spool_dir outside them" in out.stderr
    assert pc.wait_idle()
    assert pc.drained_nodes() == "", pc.drained_nodes()
    for node in ("node1", "node2"):
        # Only the base's own root bookkeeping directory (.state, empty) stays.
        left = pc.cluster("exec", node, "sh", "-c", "find /dev/shm/pylaunch -mindepth 1 "
                          "! -path /dev/shm/pylaunch/.state 2>/dev/null; true").stdout.split()
        assert left == [], (node, left)
    # The next job without the option runs: the node is fine.
    out = pc.as_user(["srun", "-N2", "true"], cwd=workdir)
    assert out.returncode == 0, out.stderr


def test_prolog_flags_run_in_job_stages_and_the_extern_step_cleans_up(workdir, env_bundle,
                                                                      restore_cluster):
    """PrologFlags=RunInJob (24.05+): Slurm runs the prolog and epilog from the extern step and
    never calls a plugin's job_prolog or job_epilog there. The steps stage; the extern step's
    exit does the epilog's work: the imports reach the sink, and nothing is left on the nodes."""
    if slurm_release() < (24, 5):
        pytest.skip("PrologFlags=RunInJob exists from Slurm 24.05")
    pc.reboot(restore_cluster, PROLOG_FLAGS="Alloc,RunInJob")
    pc.write_site_config(pc.GOOD_CONFIG)
    pc.SINK_DIR.mkdir(mode=0o755, exist_ok=True)
    pc.SINK_FILE.unlink(missing_ok=True)
    watch = pc.LogWatch()
    out = pc.as_user(["srun", "-N2", f"--pybundle={env_bundle}", "--pymonitor", "python3", "-c",
                      "import sys, pylaunch_probe; print(sys.prefix)"], cwd=workdir)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("/dev/shm/pylaunch/") == 2, out.stdout
    job = max(map(int, re.findall(r"JobId=(\d+)", subprocess.run(
        ["scontrol", "-o", "show", "jobs"], env=pc.slurm_env(), text=True,
        capture_output=True).stdout)))
    for node in ("node1", "node2"):
        lines = watch.wait_for(node, r"pylaunch: stage job=\d+ ")
        assert len(lines) == 1 and "outcome=staged" in lines[0], lines
        assert not watch.lines(node, r"pylaunch: .*prolog job"), watch.report()
        done = watch.wait_for(node, rf"pylaunch: epilog job {job} on {node}: done in")
        assert len(done) == 1, watch.report()
    assert pc.wait_idle()
    records = [json.loads(l) for l in (pc.SINK_FILE.read_text().splitlines()
                                       if pc.SINK_FILE.exists() else [])]
    records = [r for r in records if str(r["job_id"]) == str(job)]
    assert len(records) == 2, watch.report()
    assert all(any(p["name"] == "pylaunch_probe" for p in r["packages"]) for r in records), \
        records
    for node in ("node1", "node2"):
        left = node_exec(node, "sh", "-c", "find /dev/shm/pylaunch /dev/shm/pylaunch-spool "
                         "-mindepth 1 ! -path /dev/shm/pylaunch/.state 2>/dev/null; true")
        assert left.stdout.split() == [], (node, left.stdout)
