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


def epilog_seconds(watch, job_id, nodes, bound=EPILOG_TIMEOUT):
    """The epilog's own account of its time on every node; each within epilog.timeout."""
    seconds = []
    for node in nodes:
        found = watch.wait_for(node, rf"epilog job {job_id} on {node}: done", timeout=bound + 30)
        lines = [l for l in found if re.search(EPILOG_DONE, l)]
        assert lines, (node, found)
        m = re.search(EPILOG_DONE, lines[-1])
        assert int(m.group(4)) == bound
        assert float(m.group(3)) <= bound, lines[-1]
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


# ---------------------------------------------------------------- caps and keys

def empty_files_tar_zst(archive, count):
    """A .tar.zst of one directory and count empty files, written header by header (tarfile
    takes minutes for a million entries; this takes seconds)."""
    def header(name, typeflag, mode):
        h = bytearray(512)
        h[0:len(name)] = name.encode()
        h[100:108] = b"%07o\0" % mode
        h[108:116] = b"0001750\0"
        h[116:124] = b"0001750\0"
        h[124:136] = b"00000000000\0"
        h[136:148] = b"14524770400\0"
        h[148:156] = b" " * 8
        h[156] = ord(typeflag)
        h[257:263] = b"ustar\0"
        h[263:265] = b"00"
        h[148:156] = b"%06o\0 " % sum(h)
        return bytes(h)

    zstd = subprocess.Popen(["zstd", "-q", "-1", "-f", "-o", str(archive)],
                            stdin=subprocess.PIPE)
    zstd.stdin.write(header("f/", "5", 0o755))
    chunk = []
    for i in range(count):
        chunk.append(header(f"f/{i:07d}", "0", 0o644))
        if len(chunk) == 10000:
            zstd.stdin.write(b"".join(chunk))
            chunk = []
    zstd.stdin.write(b"".join(chunk) + bytes(1024))
    zstd.stdin.close()
    assert zstd.wait() == 0
    return bd.give_to_user(archive)


def test_a_million_empty_files_stop_at_stage_max_entries(workdir, env_bundle):
    archive = empty_files_tar_zst(workdir / "million.tar.zst", 1_000_000)
    assert archive.stat().st_size < 4 * 1024 * 1024
    watch = pc.LogWatch()
    node = ALL_NODES[0]
    out, job = srun(workdir, "-N1", "-w", node, f"--pybundle={archive.name}", "sh", "-c",
                    "echo SHOULD-NOT-RUN", timeout=600)
    assert out.returncode != 0
    assert "SHOULD-NOT-RUN" not in out.stdout
    assert ("pylaunch: --pybundle: " in out.stderr and
            "more than 500000 entries (files, directories and links; stage.max_entries) for "
            "this job on this node" in out.stderr), out.stderr
    pc.wait_idle()
    epilog_seconds(watch, job, [node])
    assert_bases_clean()
    next_job_stages_and_runs(workdir, env_bundle)
    assert_bases_clean()


FORGED = ("0123456789abcdef", "fedcba9876543210")


def test_forged_keys_cannot_stage_past_the_jobs_budget(workdir):
    """Three steps of one job, each with a forged key: the first two name the same bundle and
    share one tree (the key is root's), the third names another, which the job's budget of
    entries (set to 1000 here) no longer covers after the first took 600."""
    pc.write_site_config(pc.GOOD_CONFIG.replace(
        "  dir: /dev/shm/pylaunch\n", "  dir: /dev/shm/pylaunch\n  max_entries: 1000\n"))
    for name in ("a", "b"):
        bd.tar_entries(workdir / f"{name}.tar.gz",
                       [bd.file_entry(f"{name}{i:04d}", b"") for i in range(600)])
    forge = " ".join(f"{var}={FORGED[0]}" for var in
                     ("SPANK_PYLAUNCH_PYBUNDLE_KEY", "PYLAUNCH_PYBUNDLE_KEY"))
    forge2 = forge.replace(FORGED[0], FORGED[1])
    script = workdir / "forge.sh"
    script.write_text(
        "#!/bin/sh\n"
        "echo JOBID=$SLURM_JOB_ID\n"
        f"env {forge} srun --pybundle=a.tar.gz sh -c 'echo A $PYLAUNCH_ROOT $(ls $PYLAUNCH_ROOT | wc -l)'\n"
        f"env {forge2} srun --pybundle=a.tar.gz sh -c 'echo A2 $PYLAUNCH_ROOT'\n"
        f"env {forge2} srun --pybundle=b.tar.gz sh -c 'echo SHOULD-NOT-RUN'\n"
        "echo B-rc=$?\n")
    watch = pc.LogWatch()
    out = pc.as_user(["salloc", "-N1", "-w", ALL_NODES[0], "sh", str(script)], cwd=workdir)
    assert out.returncode == 0, out.stderr
    job = int(re.search(r"JOBID=(\d+)", out.stdout).group(1))
    a = [l.split() for l in out.stdout.splitlines() if l.startswith("A ")]
    a2 = [l.split() for l in out.stdout.splitlines() if l.startswith("A2 ")]
    assert len(a) == 1 and a[0][2] == "600", out.stdout
    assert len(a2) == 1 and a2[0][1] == a[0][1], out.stdout
    assert a[0][1].rsplit("/", 1)[1] not in FORGED
    assert "SHOULD-NOT-RUN" not in out.stdout and "B-rc=0" not in out.stdout, out.stdout
    assert "more than 400 entries" in out.stderr and \
        "they took 0 bytes, 600 entries" in out.stderr, out.stderr
    pc.wait_idle()
    epilog_seconds(watch, job, [ALL_NODES[0]])
    assert_bases_clean()


# ---------------------------------------------------------------- user processes

CONDA_UNPACK = b"""#!/bin/sh
# A hostile conda-unpack: a daemon that would outlive the prolog.
setsid sleep 1000 </dev/null >/dev/null 2>&1 &
echo unpacked > "$(dirname "$0")/../unpacked"
"""


def sleepers():
    """Processes of the test user running `sleep 1000`, on any node."""
    found = []
    for node in ALL_NODES:
        out = on_node(node, f"pgrep -u {pc.TEST_USER} -xf 'sleep 1000' || true")
        found += [(node, p) for p in out.stdout.split()]
    return found


def test_a_daemon_started_by_conda_unpack_does_not_outlive_the_staging(workdir, env_bundle):
    bundle = bd.tar_entries(workdir / "hostile.tar.gz",
                            [bd.file_entry("bin/conda-unpack", CONDA_UNPACK, mode=0o755)])
    assert sleepers() == []
    watch = pc.LogWatch()
    out, job = srun(workdir, "-N3", f"--pybundle={bundle.name}", "sh", "-c",
                    "cat $PYLAUNCH_ROOT/unpacked; pgrep -u $(id -u) -xf 'sleep 1000' || "
                    "echo NO-SLEEPER")
    assert out.returncode == 0, out.stderr
    # conda-unpack ran on every node, and its daemon was gone before the tasks started.
    assert out.stdout.split().count("unpacked") == 3, out.stdout
    assert out.stdout.split().count("NO-SLEEPER") == 3, out.stdout
    pc.wait_idle()
    epilog_seconds(watch, job, ALL_NODES)
    assert sleepers() == []
    assert_bases_clean()
    next_job_stages_and_runs(workdir, env_bundle)
    assert_bases_clean()


# ---------------------------------------------------------------- the job's cgroup

CGROUP_UNPACK = b"""#!/bin/sh
# Where the staging's user work runs: its cgroups, for the task to print.
cat /proc/self/cgroup > "$(dirname "$0")/../cgroup-during-staging"
"""
BLOB_MIB = 32
CGROUP_TASK = (
    "n=$SLURMD_NODENAME; sed \"s/^/$n STAGING /\" $PYLAUNCH_ROOT/cgroup-during-staging; "
    "sed \"s/^/$n TASK /\" /proc/self/cgroup; "
    "d=/sys/fs/cgroup/memory/slurm_$n/uid_$(id -u)/job_$SLURM_JOB_ID; "
    "if [ -d $d ]; then echo $n USAGE $(cat $d/memory.usage_in_bytes) "
    "MAX $(cat $d/memory.max_usage_in_bytes); else echo $n USAGE none MAX none; fi")


def job_cgroup_dirs():
    """uid_* directories of the test cluster's nodes in the memory and freezer hierarchies."""
    out = subprocess.run("ls -d /sys/fs/cgroup/memory/slurm_node*/uid_* "
                         "/sys/fs/cgroup/freezer/slurm_node*/uid_* 2>/dev/null; true",
                         shell=True, capture_output=True, text=True)
    return out.stdout.split()


def per_node(stdout):
    """The tasks' lines, "NODE WHAT ...", by node (srun interleaves the nodes' lines)."""
    nodes = {}
    for line in stdout.splitlines():
        node, _, rest = line.partition(" ")
        nodes.setdefault(node, []).append(rest)
    return nodes


@pytest.mark.parametrize("constrain_ram", ["yes", "no"])
def test_staging_runs_in_the_jobs_cgroup(workdir, restore_cluster, constrain_ram):
    """cgroup v1 (proctrack/cgroup, task/cgroup, PrologFlags=Contain): the prolog's user work
    (extraction, conda-unpack) runs in the job's freezer cgroup, not in slurmd's. Its memory
    cgroup too when Slurm sets no memory limit on the job (ConstrainRAMSpace=no): the staged
    tmpfs pages are then charged to the job. With ConstrainRAMSpace=yes the staging stays in
    slurmd's memory cgroup: Slurm sets the job's limit after the prolog, and a limit below what
    the staging charged would fail (EBUSY)."""
    pc.reboot(restore_cluster, CGROUP="v1", CGROUP_RAM=constrain_ram)
    pc.write_site_config(pc.GOOD_CONFIG)
    bundle = cgroup_bundle(workdir)
    assert job_cgroup_dirs() == []
    watch = pc.LogWatch()
    out, job = srun(workdir, "-N3", f"--pybundle={bundle.name}", "sh", "-c", CGROUP_TASK)
    assert out.returncode == 0, out.stderr
    uid = int(pc.as_user(["id", "-u"]).stdout)
    found = per_node(out.stdout)
    assert sorted(found) == ALL_NODES, out.stdout
    for node, lines in found.items():
        expect = f"/slurm_{node}/uid_{uid}/job_{job}"
        assert any(re.fullmatch(rf"STAGING \d+:freezer:{expect}", l) for l in lines), lines
        joined_memory = any(re.fullmatch(rf"STAGING \d+:memory:{expect}", l) for l in lines)
        usage = [l.split() for l in lines if l.startswith("USAGE ")]
        assert len(usage) == 1, lines
        assert len(usage[0]) == 4, "\n".join(lines) + "\n" + out.stderr
        logged = watch.lines(node, rf"prolog job {job} on {node}: staging runs in the job's "
                                   rf"cgroup /sys/fs/cgroup/")
        assert len(logged) == 1, watch.lines(node)
        if constrain_ram == "no":
            assert joined_memory, lines
            # The staged pages (BLOB_MIB MiB in tmpfs) are the job's, and still in its cgroup.
            assert int(usage[0][1]) >= BLOB_MIB << 20, lines
            assert int(usage[0][3]) >= BLOB_MIB << 20, lines
        else:
            assert not joined_memory, lines
            assert "(not its memory cgroup: Slurm limits it after the prolog)" in logged[0]
            task_memory = [l for l in lines if re.fullmatch(r"TASK \d+:memory:.*", l)]
            if any(f"/job_{job}" in l for l in task_memory):
                # What the job's memory cgroup holds is the tasks', not the staged tree.
                assert int(usage[0][1]) < BLOB_MIB << 20, lines
            else:
                # 24.11 and 26.05 here: task/cgroup left the tasks in slurmd's memory cgroup
                # (a job without --mem), so there is no job memory cgroup to charge; the staging
                # stayed out of the job's all the same.
                assert usage[0][1] == "none", lines
    pc.wait_idle()
    epilog_seconds(watch, job, ALL_NODES)
    # Slurm's extern step adopted the directories (or the epilog removed them): none is left.
    assert job_cgroup_dirs() == []
    assert_bases_clean()


def cgroup_bundle(workdir):
    blob = bytes(range(256)) * 4096  # 1 MiB that gzip shrinks; the pages are what counts
    return bd.tar_entries(workdir / "cg.tar.gz",
                          [bd.file_entry("bin/conda-unpack", CGROUP_UNPACK, mode=0o755)] +
                          [bd.file_entry(f"blob{i:02d}", blob) for i in range(BLOB_MIB)])


def test_run_in_job_charges_the_staging_to_the_jobs_memory_limit(workdir, restore_cluster):
    """PrologFlags=RunInJob (24.05+): Slurm calls no job prolog (the steps stage), and the
    extern step has made the job's memory cgroup with its limit before any step starts. The
    step's staging joins it: the staged pages are charged to the job, under its --mem
    (CR_Core_Memory, without which task/cgroup sets no limit from 24.05). A tree larger than
    what the limit leaves fails with the reason, and slurmstepd is not starved."""
    out = subprocess.run(["slurmd", "-V"], capture_output=True, text=True, check=True).stdout
    if tuple(map(int, re.search(r"(\d+)\.(\d+)", out).groups())) < (24, 5):
        pytest.skip("PrologFlags=RunInJob exists from Slurm 24.05")
    pc.reboot(restore_cluster, CGROUP="v1", CGROUP_RAM="yes", CR_MEMORY="yes",
              PROLOG_FLAGS="Alloc,RunInJob")
    pc.write_site_config(pc.GOOD_CONFIG)
    bundle = cgroup_bundle(workdir)
    watch = pc.LogWatch()
    out, job = srun(workdir, "-N3", "--mem=512M", f"--pybundle={bundle.name}", "sh", "-c",
                    CGROUP_TASK + "; echo $n LIMIT $(cat $d/memory.limit_in_bytes)")
    assert out.returncode == 0, out.stderr
    found = per_node(out.stdout)
    assert sorted(found) == ALL_NODES, out.stdout
    for node, lines in found.items():
        staging = [l for l in lines if re.fullmatch(r"STAGING \d+:memory:.*", l)]
        assert len(staging) == 1 and f"/job_{job}" in staging[0], \
            "\n".join(lines) + "\n" + watch.report(r"pylaunch|cgroup|error")
        usage = [l.split() for l in lines if l.startswith("USAGE ")]
        assert len(usage) == 1 and usage[0][1] != "none", lines
        assert int(usage[0][1]) >= BLOB_MIB << 20 and int(usage[0][3]) >= BLOB_MIB << 20, lines
        limit = [l.split() for l in lines if l.startswith("LIMIT ")]
        assert limit == [["LIMIT", str(512 << 20)]], lines
    pc.wait_idle()
    # A job whose --mem the staged tree does not fit in (Slurm's floor is 30 MiB): the staging
    # stops at the room left, with the reason, and the step's slurmstepd keeps its memory.
    out, job = srun(workdir, "-N1", "--mem=16M", f"--pybundle={bundle.name}", "echo", "RAN")
    assert out.returncode != 0 and "RAN" not in out.stdout, out.stdout + out.stderr
    assert "the staged files are charged to the job's memory (ask for more with --mem)" \
        in out.stderr, out.stderr
    pc.wait_idle()
    assert pc.drained_nodes() == "", pc.drained_nodes()
    assert job_cgroup_dirs() == []
    assert_bases_clean()


# ---------------------------------------------------------------- the epilog's bound

# Directories of mode 000, each with a file: cheap to make (one pass, six system calls each),
# dear to remove (the purge must open each up, go down and come back). 150,000 take 4 to 12 s
# to make here and 20 s to purge: far past a bound of 5 s.
LOCKED_DIRS = 150_000
MANY_LOCKED = f"""
import os
root = os.environ['PYLAUNCH_ROOT']
top = os.open(root, os.O_RDONLY)
os.mkdir('many', dir_fd=top)
many = os.open('many', os.O_RDONLY, dir_fd=top)
for i in range({LOCKED_DIRS}):
    name = '%07d' % i
    os.mkdir(name, 0o700, dir_fd=many)
    d = os.open(name, os.O_RDONLY, dir_fd=many)
    os.close(os.open('f', os.O_CREAT | os.O_WRONLY, 0o600, dir_fd=d))
    os.fchmod(d, 0)
    os.close(d)
print('made', os.environ['SLURMD_NODENAME'])
"""
SMALL_BOUND = 5


def test_a_purge_past_the_bound_is_finished_by_later_sweeps(workdir, env_bundle):
    """A job leaves more than its epilog can remove within epilog.timeout: the epilog stops at
    the bound (the node is not drained), and the epilogs of later jobs on the node sweep the
    rest, each within the bound too, until nothing is left."""
    pc.write_site_config(pc.GOOD_CONFIG + f"epilog:\n  timeout: {SMALL_BOUND}\n")
    node = ALL_NODES[0]
    watch = pc.LogWatch()
    out, job = srun(workdir, "-N1", "-w", node, f"--pybundle={env_bundle}", "python3", "-c",
                    MANY_LOCKED, timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["made", node], out.stdout
    pc.wait_idle()
    epilog_seconds(watch, job, [node], bound=SMALL_BOUND)
    assert watch.lines(node, rf"epilog job {job}: purge of {STAGE}/{job} incomplete, left for "
                             rf"a later sweep: .*deadline reached"), watch.lines(node)
    assert on_node(node, f"test -d {STAGE}/{job} && echo left").stdout.strip() == "left"
    assert pc.drained_nodes() == ""
    sweeps = 0
    while on_node(node, f"test -e {STAGE}/{job} || echo gone").stdout.strip() != "gone":
        assert sweeps < 15, "later epilogs did not sweep the leftover tree"
        later = pc.LogWatch()
        out, other = srun(workdir, "-N1", "-w", node, "true")
        assert out.returncode == 0, out.stderr
        pc.wait_idle()
        epilog_seconds(later, other, [node], bound=SMALL_BOUND)
        assert later.lines(node, rf"epilog: removing the leftover stage tree of ended job "
                                 rf"{job}\b"), later.lines(node)
        assert pc.drained_nodes() == ""
        sweeps += 1
    assert sweeps >= 1
    assert_bases_clean()
