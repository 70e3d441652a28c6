"""Drives the test cluster of tests/cluster/cluster.sh from pytest.

Everything here talks to a real slurmctld and real slurmd processes; the
assertions read what the plugin wrote to the slurmd logs and what srun, sbatch
and salloc printed.
"""
import json
import os
import pathlib
import re
import shutil
import subprocess
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[2]
CLUSTER_SH = REPO / "tests" / "cluster" / "cluster.sh"
CLUSTER_DIR = pathlib.Path(os.environ.get("CLUSTER_DIR", "/run/pylaunch-cluster"))
TEST_USER = os.environ.get("TEST_USER", "pltest")
NODES = int(os.environ.get("NODES", "3"))
SITE_CONFIG = CLUSTER_DIR / "etc" / "pylaunch.yaml"

SINK_DIR = pathlib.Path("/run/pylaunch-test-sink")
SINK_FILE = SINK_DIR / "imports.jsonl"

# The configuration every test starts from. debug is switched on by a
# plugstack argument instead (see conftest), which also proves overrides work.
# The monitor hook comes from the source tree (the test cluster runs the
# plugin uninstalled).
GOOD_CONFIG = f"""\
stage:
  dir: /dev/shm/pylaunch
monitor:
  default: off
  hook_dir: {REPO / "share" / "monitor"}
  sinks:
    - type: file
      path: {SINK_FILE}
"""


# The shared file system of the tests: slowfs (bench/slowfs) over SHARED_SRC, counting opens and
# bytes per path; SHARED serves it at full speed, SLOW at SLOW_MBPS (transfers that last long
# enough to break them mid-way).
SLOWFS = REPO / "bench" / "slowfs"
SHARED_SRC = pathlib.Path("/var/tmp/pylaunch-test-shared")
SHARED = pathlib.Path("/run/pylaunch-test-shared")
SLOW = pathlib.Path("/run/pylaunch-test-slow")
SLOW_MBPS = 4


def ensure_test_user():
    """The test user owns the shared file system's files, which exist before the cluster (whose
    `up` would make the user too): on a fresh machine it is made here first."""
    if subprocess.run(["id", "-u", TEST_USER], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "-m", "-U", "-s", "/bin/bash", TEST_USER], check=True,
                       capture_output=True)


# Another ordinary user of the nodes: the tree's adversary in the tests (squats ports, relays).
OTHER_USER = os.environ.get("OTHER_USER", "plother")


def ensure_other_user():
    if subprocess.run(["id", "-u", OTHER_USER], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "-m", "-U", "-s", "/bin/bash", OTHER_USER], check=True,
                       capture_output=True)


def mount_shared_fs():
    ensure_test_user()
    unmount_shared_fs()
    shutil.rmtree(SHARED_SRC, ignore_errors=True)
    SHARED_SRC.mkdir(mode=0o755, parents=True)
    shutil.chown(SHARED_SRC, TEST_USER, TEST_USER)
    for mnt, mbps in ((SHARED, 0), (SLOW, SLOW_MBPS)):
        subprocess.run(["bash", str(SLOWFS / "mount.sh"), str(mnt), str(SHARED_SRC), "0",
                        str(mbps)], check=True, capture_output=True, text=True)


def unmount_shared_fs():
    for mnt in (SHARED, SLOW):
        subprocess.run(["bash", str(SLOWFS / "umount.sh"), str(mnt)], check=False,
                       capture_output=True)


def shared_fs_stats(mnt=SHARED, reset=False):
    """slowfs's counters (opens_by_path, read_bytes_by_path keyed by path inside the mount)."""
    out = subprocess.run(["bash", str(SLOWFS / "stats.sh"), str(mnt), "reset" if reset else "dump"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def cluster(*args, env=None, check=True):
    full_env = dict(os.environ, CLUSTER_DIR=str(CLUSTER_DIR), TEST_USER=TEST_USER,
                    NODES=str(NODES))
    full_env.update(env or {})
    return subprocess.run(["bash", str(CLUSTER_SH), *args], env=full_env, check=check,
                          text=True, capture_output=True)


def reboot(env, **extra):
    """The test cluster booted again with the environment of its first boot (the conftest
    fixture's), changed by extra (cluster.sh's settings, e.g. CGROUP="v1")."""
    up = cluster("up", env=dict(env, **extra), check=False)
    assert up.returncode == 0, up.stdout + up.stderr


def slurm_env():
    return dict(os.environ, SLURM_CONF=str(CLUSTER_DIR / "etc" / "slurm.conf"))


def as_user(cmd, cwd=None, timeout=120, env=None):
    """Runs cmd (a list) as the unprivileged test user, like a real submission."""
    wrapped = ["runuser", "-u", TEST_USER, "--", "env",
               f"SLURM_CONF={CLUSTER_DIR / 'etc' / 'slurm.conf'}"]
    for key, value in (env or {}).items():
        wrapped.append(f"{key}={value}")
    return subprocess.run(wrapped + list(cmd), cwd=cwd, text=True, capture_output=True,
                          timeout=timeout)


def user_workdir():
    """A fresh directory owned by the test user, inside its home."""
    home = pathlib.Path(f"~{TEST_USER}").expanduser()
    path = pathlib.Path(tempfile.mkdtemp(prefix="pltest-", dir=home))
    shutil.chown(path, TEST_USER, TEST_USER)
    return path


def write_site_config(text):
    SITE_CONFIG.write_text(text)
    SITE_CONFIG.chmod(0o644)


def slurmd_log(node):
    return CLUSTER_DIR / "log" / f"slurmd-{node}.log"


def node_names():
    return [f"node{i}" for i in range(1, NODES + 1)]


class LogWatch:
    """What the plugin logged on each node after a point in time."""

    def __init__(self):
        self.offsets = {n: self._size(n) for n in node_names()}

    @staticmethod
    def _size(node):
        try:
            return slurmd_log(node).stat().st_size
        except FileNotFoundError:
            return 0

    def lines(self, node, pattern=r"pylaunch: "):
        with open(slurmd_log(node), "rb") as f:
            f.seek(self.offsets[node])
            text = f.read().decode("utf-8", "replace")
        return [l for l in text.splitlines() if re.search(pattern, l)]

    def report(self, pattern=r"error|pylaunch: "):
        """Every node's matching lines, for an assertion's message."""
        return "\n".join(f"{n}: {l}" for n in self.offsets for l in self.lines(n, pattern))

    def wait_for(self, node, pattern, count=1, timeout=30):
        """Slurmd writes the epilog after the job is reported done: poll."""
        deadline = time.time() + timeout
        while True:
            found = self.lines(node, pattern)
            if len(found) >= count or time.time() > deadline:
                return found
            time.sleep(0.2)


def drained_nodes():
    return cluster("drained").stdout.strip()


def wait_idle(timeout=60):
    """All nodes idle again: no job left running from a test."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        out = subprocess.run(["squeue", "-h", "-o", "%i"], env=slurm_env(), text=True,
                             capture_output=True).stdout.strip()
        if not out:
            return True
        time.sleep(0.5)
    return False


def job_state(job_id):
    out = subprocess.run(["scontrol", "-o", "show", "job", str(job_id)], env=slurm_env(),
                         text=True, capture_output=True).stdout
    m = re.search(r"JobState=(\S+)", out)
    return m.group(1) if m else None


def wait_job_end(job_id, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = job_state(job_id)
        if state in (None, "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL",
                     "BOOT_FAIL", "OUT_OF_MEMORY"):
            return state
        time.sleep(0.3)
    raise TimeoutError(f"job {job_id} still {job_state(job_id)} after {timeout}s")


def left_jobs_report():
    """Why the cluster is not idle: the jobs left, and what slurmctld and the slurmd logs said of
    them (their last lines naming the job)."""
    env = slurm_env()
    jobs = subprocess.run(["squeue", "-h", "-o", "%i %T %N %R"], env=env, text=True,
                          capture_output=True).stdout
    report = ["jobs left:", jobs]
    for job in re.findall(r"^(\d+)", jobs, re.M):
        for log in sorted((CLUSTER_DIR / "log").glob("slurm*.log")):
            lines = [ln for ln in log.read_text(errors="replace").splitlines()
                     if re.search(rf"\b{job}\b", ln)]
            if lines:
                report += [f"==> {log.name}, job {job} <=="] + lines[-12:]
    return "\n".join(report)
