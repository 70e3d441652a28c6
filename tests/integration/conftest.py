"""Boots one real multi-node Slurm for the whole session and checks its health
after every test: no test may leave a drained node or a running job behind."""
import fcntl
import os
import pathlib
import shutil
import subprocess

import pytest

import bundles as bd
import plcluster as pc


def built_plugin():
    """The freshly built plugin, copied where slurmd and the test user can read it."""
    src = pathlib.Path(os.environ.get("PYLAUNCH_PLUGIN", pc.REPO / ".libs" / "pylaunch.so"))
    if not src.is_file():
        pytest.exit(f"plugin not built: {src} (run make first)", returncode=2)
    dst_dir = pathlib.Path("/run/pylaunch-test-plugin")
    dst_dir.mkdir(mode=0o755, exist_ok=True)
    dst = dst_dir / "pylaunch.so"
    # A running slurmd may have the old file mapped: replace it, never rewrite it.
    tmp = dst_dir / ".pylaunch.so.new"
    shutil.copy2(src, tmp)
    tmp.chmod(0o755)
    tmp.replace(dst)
    return dst


# One cluster per machine (fixed bridge, namespaces and ports): concurrent test
# sessions, benchmarks and the demo queue on this lock instead of tearing each
# other's cluster down.
LOCK_PATH = "/run/pylaunch-cluster.lock"


@pytest.fixture(scope="session", autouse=True)
def cluster_lock():
    with open(LOCK_PATH, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@pytest.fixture(scope="session", autouse=True)
def shared_fs(cluster_lock):
    """The stand-in for the shared file system (bench/slowfs): counts every open and byte read.
    Mounted before the nodes' namespaces exist, so that every node sees it."""
    pc.mount_shared_fs()
    yield
    pc.unmount_shared_fs()


@pytest.fixture(scope="session", autouse=True)
def cluster(cluster_lock, shared_fs):
    plugin = built_plugin()
    env = {"PLUGIN": str(plugin),
           "PLUGIN_ARGS": f"config={pc.SITE_CONFIG} debug=yes"}
    up = pc.cluster("up", env=env, check=False)
    if up.returncode != 0:
        pc.cluster("down", check=False)
        pytest.exit(f"cluster did not boot:\n{up.stdout}\n{up.stderr}", returncode=3)
    pc.write_site_config(pc.GOOD_CONFIG)
    yield env
    if os.environ.get("KEEP_CLUSTER") != "1":
        down = pc.cluster("down", check=False)
        assert down.returncode == 0, down.stderr


@pytest.fixture(autouse=True)
def healthy_cluster_after_each_test(cluster):
    pc.write_site_config(pc.GOOD_CONFIG)
    yield
    pc.write_site_config(pc.GOOD_CONFIG)
    assert pc.wait_idle(), "a job of this test is still queued or running\n" + pc.left_jobs_report()
    assert pc.drained_nodes() == "", f"nodes drained or down:\n{pc.drained_nodes()}"


@pytest.fixture
def restore_cluster(cluster):
    """For tests that boot the cluster differently: the usual one again afterwards."""
    yield cluster
    pc.reboot(cluster)
    pc.write_site_config(pc.GOOD_CONFIG)


@pytest.fixture
def workdir():
    path = pc.user_workdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def env_bundle(tmp_path_factory):
    """A real Python environment bundle (Debian's interpreter and stdlib), in a directory of the
    test user's; test_releases.py has one of its own on the shared file system."""
    work = pc.user_workdir()
    archive = bd.python_env_bundle(tmp_path_factory.mktemp("env"), work / "env.tar.zst")
    yield archive
    subprocess.run(["rm", "-rf", str(work)], check=False)
