"""--pybundle on the node: a real numpy/scipy environment, users kept apart,
planted links, a full stage file system, and nothing left behind after scancel,
a time limit or a lost epilog."""
import json
import os
import pathlib
import shutil
import subprocess
import time

import pytest

import bundles as bd
import plcluster as pc
from test_pybundle import assert_nothing_left_behind, run_failing, staged_dirs

ALL_NODES = pc.node_names()
OTHER_USER = "pltest2"
MAKE_ENV = pc.REPO / "bench" / "make-env.sh"


@pytest.fixture(scope="session")
def numpy_env(tmp_path_factory):
    """numpy and scipy from Debian's packages, as a relocatable prefix (the
    'original prefix', root's, unreadable to the job's user) and as bundles."""
    build = tmp_path_factory.mktemp("numpy-env")
    dest = build / "prefix"
    subprocess.run(["bash", str(MAKE_ENV), "--tar", str(build / "env.tar.zst"), str(dest),
                    "python3-numpy", "python3-scipy"], check=True, capture_output=True)
    subprocess.run(["tar", "-czf", str(build / "env.tar.gz"), "-C", str(dest), "."], check=True)
    work = pc.user_workdir()
    bundles = {}
    for fmt in ("zst", "gz"):
        bundles[fmt] = work / f"env.tar.{fmt}"
        shutil.copy2(build / f"env.tar.{fmt}", bundles[fmt])
        bd.give_to_user(bundles[fmt])
    build.chmod(0o700)
    yield {"prefix": dest, **bundles}
    shutil.rmtree(work, ignore_errors=True)


NUMPY_REPORT = ("import json, os, sys, numpy, scipy, scipy.linalg; "
                "print(json.dumps({'prefix': sys.prefix, 'numpy': numpy.__file__, "
                "'scipy': scipy.__file__, 'root': os.environ['PYLAUNCH_ROOT'], "
                "'node': os.environ['SLURMD_NODENAME'], "
                "'det': float(scipy.linalg.det(numpy.eye(3) * 2))}))")


@pytest.mark.parametrize("fmt", ["zst", "gz"])
def test_numpy_and_scipy_import_from_the_node_local_copy(workdir, numpy_env, fmt):
    unreadable = pc.as_user(["test", "-r", str(numpy_env["prefix"] / "bin")])
    assert unreadable.returncode != 0, "the original prefix must be out of the user's reach"
    out = pc.as_user(["srun", "-N3", "-n6", f"--pybundle={numpy_env[fmt]}", "python3", "-c",
                      NUMPY_REPORT], cwd=workdir, timeout=300)
    assert out.returncode == 0, out.stderr
    rs = [json.loads(l) for l in out.stdout.splitlines()]
    assert len(rs) == 6 and {r["node"] for r in rs} == set(ALL_NODES)
    for r in rs:
        assert r["root"].startswith("/dev/shm/pylaunch/") and r["prefix"] == r["root"], r
        assert r["numpy"].startswith(r["root"] + "/lib/python3/dist-packages/numpy/"), r
        assert r["scipy"].startswith(r["root"] + "/lib/python3/dist-packages/scipy/"), r
        assert r["det"] == 8.0


@pytest.fixture(scope="module")
def other_user():
    if subprocess.run(["id", OTHER_USER], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "-m", OTHER_USER], check=True)
    return OTHER_USER


def tree_of_running_job(node, job, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        out = pc.cluster("exec", node, "sh", "-c", f"ls /dev/shm/pylaunch/{job} 2>/dev/null; true")
        if out.stdout.strip():
            return out.stdout.split()[0]
        time.sleep(0.3)
    raise TimeoutError(f"job {job} staged nothing on {node}")


def sbatch(args, user=pc.TEST_USER, cwd=None):
    cmd = ["runuser", "-u", user, "--", "env", f"SLURM_CONF={pc.CLUSTER_DIR}/etc/slurm.conf",
           "sbatch", "--parsable"] + args
    out = subprocess.run(cmd, cwd=cwd, text=True, capture_output=True)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.strip().split(";")[0])


def scancel(job):
    subprocess.run(["scancel", str(job)], env=pc.slurm_env(), check=True)


def test_two_users_on_one_node_cannot_read_each_others_tree(workdir, other_user, tmp_path):
    tree = tmp_path / "t"
    tree.mkdir()
    (tree / "secret.txt").write_text("first user's\n")
    mine = bd.tar_dir(tree, workdir / "mine.tar.gz")
    job = sbatch(["-w", "node1", f"--pybundle={mine}", "-o", "/dev/null", "--wrap", "sleep 60"],
                 cwd=workdir)
    try:
        key = tree_of_running_job("node1", job)
        home = pathlib.Path(f"~{other_user}").expanduser()
        theirs = bd.tar_dir(tree, home / "theirs.tar.gz")
        shutil.chown(theirs, other_user, other_user)
        out = subprocess.run(
            ["runuser", "-u", other_user, "--", "env", f"SLURM_CONF={pc.CLUSTER_DIR}/etc/slurm.conf",
             "srun", "-w", "node1", f"--pybundle={theirs}", "sh", "-c",
             f"cat /dev/shm/pylaunch/{job}/{key}/secret.txt; ls /dev/shm/pylaunch/{job}; "
             "cat $PYLAUNCH_ROOT/secret.txt"],
            cwd=home, text=True, capture_output=True, timeout=120)
        assert "Permission denied" in out.stderr and out.stderr.count("Permission denied") == 2
        assert out.stdout == "first user's\n", out.stdout  # only its own copy
    finally:
        scancel(job)
        pc.wait_idle()
    assert_nothing_left_behind()


def test_planted_symlink_at_the_job_directory_is_replaced(workdir, tmp_path):
    tree = tmp_path / "t"
    tree.mkdir()
    (tree / "f").write_text("x\n")
    bundle = bd.tar_dir(tree, workdir / "b.tar.gz")
    job = sbatch(["--hold", "-N3", f"--pybundle={bundle}", "-o", str(workdir / "out.txt"),
                  "--wrap", 'srun sh -c \'stat -c %F "$(dirname "$PYLAUNCH_ROOT")"\''], cwd=workdir)
    watch = pc.LogWatch()
    for node in ALL_NODES:
        pc.cluster("exec", node, "sh", "-c",
                   f"mkdir -p /dev/shm/pylaunch && ln -s /etc /dev/shm/pylaunch/{job}")
    subprocess.run(["scontrol", "release", str(job)], env=pc.slurm_env(), check=True)
    assert pc.wait_job_end(job) == "COMPLETED"
    assert (workdir / "out.txt").read_text().split("\n")[:3] == ["directory"] * 3
    assert os.path.isfile("/etc/passwd") and not os.path.exists("/etc/f")
    for node in ALL_NODES:
        assert watch.lines(node, rf"stage directory entry {job} was a symbolic link"), node
    assert_nothing_left_behind()


@pytest.fixture
def tiny_stage_fs():
    for node in ALL_NODES:
        pc.cluster("exec", node, "sh", "-c",
                   "mkdir -p /dev/shm/tiny && mount -t tmpfs -o size=1m tmpfs /dev/shm/tiny")
    pc.write_site_config(pc.GOOD_CONFIG.replace("/dev/shm/pylaunch", "/dev/shm/tiny/pylaunch"))
    yield
    for node in ALL_NODES:
        pc.cluster("exec", node, "sh", "-c", "umount /dev/shm/tiny; rmdir /dev/shm/tiny")


def test_stage_file_system_too_small(workdir, tiny_stage_fs):
    noise = bd.tar_entries(workdir / "noise.tar", [bd.file_entry("noise", os.urandom(3 << 20))],
                           mode="w")
    out, _ = run_failing(workdir, noise)
    assert f"pylaunch: --pybundle: {noise}: not enough space on the stage file system" in out.stderr, \
        out.stderr
    for node in ALL_NODES:
        left = pc.cluster("exec", node, "sh", "-c", "ls -A /dev/shm/tiny/pylaunch; true").stdout
        assert left.split() in ([], [".state"]), (node, left)


def test_scancel_mid_job_leaves_nothing(workdir, env_bundle):
    job = sbatch(["-N3", f"--pybundle={env_bundle}", "-o", "/dev/null", "--wrap",
                  "srun sleep 300"], cwd=workdir)
    for node in ALL_NODES:
        tree_of_running_job(node, job)
    scancel(job)
    assert pc.wait_idle()
    assert_nothing_left_behind()


@pytest.mark.slow
def test_time_limit_leaves_nothing(workdir, env_bundle):
    job = sbatch(["-N3", "-t", "1", f"--pybundle={env_bundle}", "-o", "/dev/null", "--wrap",
                  "srun sleep 600"], cwd=workdir)
    for node in ALL_NODES:
        tree_of_running_job(node, job)
    assert pc.wait_job_end(job, timeout=180) == "TIMEOUT"
    assert pc.wait_idle()
    assert_nothing_left_behind()


def test_leftovers_of_ended_jobs_are_swept_by_the_next_epilog(workdir):
    stale = 4000000
    pc.cluster("exec", "node1", "sh", "-c",
               f"mkdir -p /dev/shm/pylaunch/{stale}/0123456789abcdef/lib && "
               f"touch /dev/shm/pylaunch/{stale}/0123456789abcdef/lib/x && "
               f"chown -R {pc.TEST_USER}: /dev/shm/pylaunch/{stale} && "
               f"chmod 700 /dev/shm/pylaunch/{stale}")
    watch = pc.LogWatch()
    out = pc.as_user(["srun", "-w", "node1", "true"], cwd=workdir)
    assert out.returncode == 0, out.stderr
    assert watch.wait_for("node1", rf"removing the leftover stage tree of ended job {stale}")
    assert staged_dirs("node1") == []
