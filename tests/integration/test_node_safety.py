"""Issue 13: nothing an ordinary user does drains a node, disables staging or monitoring for
other jobs, outlives the job, or leaves anything behind after an epilog that ends within
epilog.timeout. Every test acts as the unprivileged test user, then checks the node (the
conftest fixture: nothing drained, no job left), the next job, the stage and spool bases, and the
epilog's own account of its time."""
import re
import subprocess

import pytest

import bundles as bd
import plcluster as pc
from test_pybundle import assert_nothing_left_behind

ALL_NODES = pc.node_names()
STAGE = "/dev/shm/pylaunch"
SPOOL = "/dev/shm/pylaunch-spool"
EPILOG_TIMEOUT = 60
EPILOG_DONE = r"epilog job (\d+) on (\S+): done in ([0-9.]+) s \(epilog.timeout (\d+) s\)"


@pytest.fixture(scope="module")
def env_bundle(tmp_path_factory):
    work = pc.user_workdir()
    tree = bd.python_env_tree(tmp_path_factory.mktemp("env") / "env")
    archive = bd.tar_dir(tree, work / "env.tar.zst", "zst")
    yield archive
    subprocess.run(["rm", "-rf", str(work)], check=False)


def on_node(node, script, user=False):
    cmd = ["runuser", "-u", pc.TEST_USER, "--", "sh", "-c", script] if user else \
        ["sh", "-c", script]
    return pc.cluster("exec", node, *cmd, check=False)


def base_state(node, path):
    """'owner mode type' of path on node, without following a link."""
    return on_node(node, f"stat -c '%U %a %F' {path} 2>&1").stdout.strip()


def assert_bases_clean(nodes=ALL_NODES):
    """Both bases are root's again and hold nothing of any job; nothing we moved aside stays."""
    for node in nodes:
        assert base_state(node, STAGE) == "root 755 directory", node
        state = base_state(node, SPOOL)
        assert state in ("root 755 directory", ), (node, state)
        assert on_node(node, f"ls -A {SPOOL}").stdout.split() == [], node
        aside = on_node(node, "ls -A /dev/shm | grep pylaunch- | grep -v '^pylaunch-spool$'")
        assert aside.stdout.strip() == "", (node, aside.stdout)
    assert_nothing_left_behind()


def epilog_seconds(watch, job_id, nodes):
    """The epilog's own account of its time on every node; each within epilog.timeout."""
    seconds = []
    for node in nodes:
        found = watch.wait_for(node, rf"epilog job {job_id} on", timeout=EPILOG_TIMEOUT + 30)
        lines = [l for l in found if re.search(EPILOG_DONE, l)]
        assert lines, (node, found)
        m = re.search(EPILOG_DONE, lines[-1])
        assert int(m.group(4)) == EPILOG_TIMEOUT
        assert float(m.group(3)) <= EPILOG_TIMEOUT, lines[-1]
        seconds.append(float(m.group(3)))
    return seconds


def last_job_id():
    out = subprocess.run(["scontrol", "-o", "show", "jobs"], env=pc.slurm_env(), text=True,
                         capture_output=True).stdout
    ids = [int(i) for i in re.findall(r"JobId=(\d+)", out)]
    return max(ids) if ids else None


def srun(workdir, *args, timeout=300):
    out = pc.as_user(["srun", *args], cwd=workdir, timeout=timeout)
    return out, last_job_id()


def next_job_stages_and_runs(workdir, env_bundle):
    out, _ = srun(workdir, "-N3", f"--pybundle={env_bundle}", "--pymonitor", "python3", "-c",
                  "import os; print(os.environ['PYLAUNCH_ROOT'])")
    assert out.returncode == 0, out.stderr
    roots = out.stdout.split()
    assert len(roots) == 3 and all(r.startswith(STAGE + "/") for r in roots), roots
    pc.wait_idle()


# ---------------------------------------------------------------- planted bases

PLANTS = {
    # A user's `mkdir`, with something in it that root must not trust.
    "dir": "mkdir {path} && echo planted > {path}/x && chmod 0777 {path}",
    # A link to a directory of the user's: root must not make its tree there.
    "symlink": "mkdir -p $HOME/plant-target && ln -s $HOME/plant-target {path}",
}


def plant(kind):
    for node in ALL_NODES:
        on_node(node, f"rm -rf {STAGE} {SPOOL}")
        for path in (STAGE, SPOOL):
            r = on_node(node, PLANTS[kind].format(path=path), user=True)
            assert r.returncode == 0, r.stderr
        assert base_state(node, STAGE).startswith(pc.TEST_USER), base_state(node, STAGE)


@pytest.mark.parametrize("kind", sorted(PLANTS))
def test_planted_bases_before_the_first_job_are_reclaimed(workdir, env_bundle, kind):
    plant(kind)
    watch = pc.LogWatch()
    out, job = srun(workdir, "-N3", f"--pybundle={env_bundle}", "--pymonitor", "python3", "-c",
                    "import os; print(os.environ['PYLAUNCH_ROOT'])")
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.split()) == 3
    pc.wait_idle()
    epilog_seconds(watch, job, ALL_NODES)
    word = "a directory" if kind == "dir" else "a symbolic link"
    for node in ALL_NODES:
        assert watch.lines(node, rf"stage.dir {STAGE} was {word} owned by uid"), node
        assert watch.lines(node, rf"monitor.spool_dir {SPOOL} was {word} owned by uid"), node
    target = pc.as_user(["sh", "-c", "ls -A $HOME/plant-target 2>/dev/null; true"])
    assert target.stdout.strip() == "", "root wrote through the planted link"
    assert_bases_clean()
    next_job_stages_and_runs(workdir, env_bundle)
    assert_bases_clean()


def test_bases_are_made_when_slurmd_starts(workdir, env_bundle):
    plant("dir")
    restarted = pc.cluster("restart-slurmd", check=False)
    assert restarted.returncode == 0, restarted.stderr
    for node in ALL_NODES:
        assert base_state(node, STAGE) == "root 755 directory", node
        assert base_state(node, SPOOL) == "root 755 directory", node
        assert on_node(node, f"ls -A {STAGE} {SPOOL}").stdout.strip() == f"{STAGE}:\n\n{SPOOL}:"
    next_job_stages_and_runs(workdir, env_bundle)
    assert_bases_clean()


# ---------------------------------------------------------------- what a job leaves

DEEP_CHAIN = """
import os, sys
root = os.environ['PYLAUNCH_ROOT']
fd = os.open(root, os.O_RDONLY)
for i in range(10000):
    os.mkdir('d' * 20, dir_fd=fd)
    nfd = os.open('d' * 20, os.O_RDONLY, dir_fd=fd)
    os.close(fd)
    fd = nfd
open(os.open('bottom', os.O_CREAT | os.O_WRONLY, 0o600, dir_fd=fd), 'w').write('x' * 4096)
os.fchmod(fd, 0)
os.close(fd)
locked = os.path.join(root, 'locked')
os.makedirs(os.path.join(locked, 'inner'))
os.chmod(os.path.join(locked, 'inner'), 0)
os.chmod(locked, 0)
print('made', os.environ['SLURMD_NODENAME'])
"""


def test_a_directory_chain_deeper_than_path_max_is_purged(workdir, env_bundle):
    watch = pc.LogWatch()
    out, job = srun(workdir, "-N3", f"--pybundle={env_bundle}", "python3", "-c", DEEP_CHAIN,
                    timeout=600)
    assert out.returncode == 0, out.stderr
    assert sorted(out.stdout.split()) == sorted(["made"] * 3 + ALL_NODES)
    pc.wait_idle()
    epilog_seconds(watch, job, ALL_NODES)
    for node in ALL_NODES:
        assert not watch.lines(node, r"purge of .* incomplete|left behind"), node
    assert_bases_clean()
    next_job_stages_and_runs(workdir, env_bundle)
    assert_bases_clean()
