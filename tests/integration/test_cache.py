"""The node cache (pylaunch(8), "Node cache"): a job that names bundles a job of the same user
staged on the node before starts from the kept tree (stage line outcome=cached) without reading
the shared file system; changed content is staged anew; users never share a tree; the bounds
evict the least recently used tree, never one in use; a job cannot change what the next one
trusts; the site empties a user's trees with `pylaunch cache purge --user`."""
import os
import re
import shutil
import subprocess

import pytest

import bundles as bd
import plcluster as pc

CACHE_CONFIG = pc.GOOD_CONFIG + "cache:\n  enabled: yes\n"
STAGE_LINE = re.compile(r"pylaunch: stage (job=.*)$")
FIELD = re.compile(r'(\w+)=("[^"]*"|\S+)')
REPORT = ("import json, os, sys; print(json.dumps({'prefix': sys.prefix, "
          "'root': os.environ['PYLAUNCH_ROOT'], 'job': os.environ['SLURM_JOB_ID'], "
          "'extra': os.path.exists(os.path.join(os.environ['PYLAUNCH_ROOT'], 'extra.txt'))}))")


def make_bundle(name, extra=None, owner=pc.TEST_USER):
    """A Python environment bundle on the shared file system; extra: the text of extra.txt."""
    work = pc.SHARED_SRC / f"{name}.d"
    shutil.rmtree(work, ignore_errors=True)
    tree = bd.python_env_tree(work / "env")
    if extra is not None:
        (tree / "extra.txt").write_text(extra)
    archive = bd.tar_dir(tree, pc.SHARED_SRC / name, "zst")
    shutil.rmtree(work)
    shutil.chown(archive, owner, owner)
    return archive


@pytest.fixture(autouse=True)
def cache_on():
    pc.write_site_config(CACHE_CONFIG)
    yield
    # Off again: the next job's epilog on every node empties the cache and removes its
    # directories, which the other test modules' checks of the stage directory rely on.
    pc.write_site_config(pc.GOOD_CONFIG)
    out = pc.as_user(["srun", "-N3", "true"])
    assert out.returncode == 0, out.stderr
    # srun returns before the epilogs end (on 24.11 visibly so): wait until no job is left,
    # COMPLETING included.
    assert pc.wait_idle()
    for node in pc.node_names():
        left = pc.cluster("exec", node, "sh", "-c", "ls -A /dev/shm/pylaunch; true").stdout.split()
        assert ".cache" not in left and ".view" not in left, (node, left)


def stage_fields(watch, node):
    return [{k: v.strip('"') for k, v in FIELD.findall(STAGE_LINE.search(l).group(1))}
            for l in watch.lines(node, r"pylaunch: stage job=")]


def run_as(user, cmd, cwd=None, timeout=120):
    wrapped = ["runuser", "-u", user, "--", "env", f"SLURM_CONF={pc.CLUSTER_DIR}/etc/slurm.conf"]
    return subprocess.run(wrapped + cmd, cwd=cwd, text=True, capture_output=True,
                          timeout=timeout)


def srun_report(bundle, node, user=pc.TEST_USER, command=None):
    out = run_as(user, ["srun", "-N1", "-w", node, f"--pybundle={bundle}",
                        *(command or ["python3", "-c", REPORT])], cwd="/tmp")
    return out


def report(out):
    import json
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def outcome_of(watch, node, job):
    lines = [f for f in stage_fields(watch, node) if f["job"] == str(job)]
    assert len(lines) == 1, lines
    return lines[0]


# ---------------------------------------------------------------- job arrays


def test_job_array_stages_once_per_node_and_reads_the_bundle_once_per_node(workdir):
    bundle = pc.SHARED / make_bundle("array.tar.zst").name
    size = (pc.SHARED_SRC / "array.tar.zst").stat().st_size
    script = workdir / "job.sh"
    script.write_text(f"#!/bin/sh\n#SBATCH --pybundle={bundle}\npython3 -c \"{REPORT}\"\n")
    watch = pc.LogWatch()
    # Two tasks of each array may run at once on a node: the second waits for the first's
    # staging (the entry's lock) and then uses its tree. Held until the counters are reset:
    # submission checks the bundle too.
    arrays = []
    for node in ("node1", "node2"):
        out = pc.as_user(["sbatch", "--hold", "--parsable", "--array=0-1", "-w", node, "-o",
                          f"{workdir}/%A_%a.out", str(script)], cwd=workdir)
        assert out.returncode == 0, out.stderr
        arrays.append(out.stdout.strip())
    pc.shared_fs_stats(reset=True)
    subprocess.run(["scontrol", "release", *arrays], env=pc.slurm_env(), check=True)
    assert pc.wait_idle(timeout=180)
    stats = pc.shared_fs_stats()
    reports = [report_line for f in workdir.glob("*_*.out")
               for report_line in f.read_text().splitlines() if report_line.startswith("{")]
    assert len(reports) == 4, [f.read_text() for f in workdir.glob("*.out")]
    for node in ("node1", "node2"):
        outcomes = sorted(f["outcome"] for f in stage_fields(watch, node))
        assert outcomes == ["cached", "staged"], (node, stage_fields(watch, node))
        for f in stage_fields(watch, node):
            assert f["mode"] == "direct"
            if f["outcome"] == "cached":
                assert f["shared_bytes"] == "0", f
    import json
    roots = {json.loads(r)["root"] for r in reports}
    assert all(re.fullmatch(r"/dev/shm/pylaunch/\.view/[0-9a-f]{64}/t", r) for r in roots), roots
    for r in reports:
        assert json.loads(r)["prefix"] == json.loads(r)["root"]
    # One open of the bundle per node, none by the tasks that found it cached. Bytes are
    # bounded, not exact: the suite's slowfs has no direct_io and the simulated nodes share
    # this machine's page cache, so the second node may find some of the first node's pages.
    assert stats["opens_by_path"].get(bundle.name, 0) == 2, stats
    assert size <= stats["read_bytes_by_path"].get(bundle.name, 0) <= 2 * size, stats


def test_changed_bundle_is_staged_anew(workdir):
    bundle = pc.SHARED / make_bundle("changing.tar.zst").name
    watch = pc.LogWatch()
    first = report(srun_report(bundle, "node1"))
    again = report(srun_report(bundle, "node1"))
    make_bundle("changing.tar.zst", extra="new content")
    changed = report(srun_report(bundle, "node1"))
    assert outcome_of(watch, "node1", first["job"])["outcome"] == "staged"
    assert outcome_of(watch, "node1", again["job"])["outcome"] == "cached"
    assert outcome_of(watch, "node1", changed["job"])["outcome"] == "staged"
    assert not first["extra"] and changed["extra"]
    assert changed["root"] != first["root"]


def test_two_users_with_identical_bundles_get_separate_trees(workdir):
    pc.ensure_other_user()
    mine = make_bundle("mine.tar.zst")
    theirs = pc.SHARED_SRC / "theirs.tar.zst"
    shutil.copy2(mine, theirs)
    shutil.chown(theirs, pc.OTHER_USER, pc.OTHER_USER)
    theirs.chmod(0o600)
    (pc.SHARED_SRC).chmod(0o755)
    watch = pc.LogWatch()
    a = report(srun_report(pc.SHARED / "mine.tar.zst", "node1"))
    b = report(srun_report(pc.SHARED / "theirs.tar.zst", "node1", user=pc.OTHER_USER))
    assert outcome_of(watch, "node1", a["job"])["outcome"] == "staged"
    assert outcome_of(watch, "node1", b["job"])["outcome"] == "staged"
    assert a["root"] != b["root"]
    # The other user cannot even look into the test user's tree.
    peek = run_as(pc.OTHER_USER, ["srun", "-N1", "-w", "node1", "ls", a["root"]])
    assert peek.returncode != 0 and "Permission denied" in peek.stderr, peek


def test_a_job_cannot_change_the_tree_the_next_job_trusts(workdir):
    bundle = pc.SHARED / make_bundle("ro.tar.zst").name
    watch = pc.LogWatch()
    first = report(srun_report(bundle, "node1"))
    write = srun_report(bundle, "node1", command=[
        "sh", "-c", 'echo poison > "$PYLAUNCH_ROOT/extra.txt"; '
        'chmod 777 "$PYLAUNCH_ROOT"; rm -f "$PYLAUNCH_ROOT/bin/python3"; echo done'])
    assert "Read-only file system" in write.stderr, write
    after = report(srun_report(bundle, "node1"))
    assert outcome_of(watch, "node1", after["job"])["outcome"] == "cached"
    assert not after["extra"] and after["root"] == first["root"]


# ---------------------------------------------------------------- bounds


def test_least_recently_used_tree_is_evicted(workdir):
    pc.write_site_config(CACHE_CONFIG + "  max_entries: 2\n")
    paths = {n: pc.SHARED / make_bundle(f"lru-{n}.tar.zst").name for n in "abc"}
    watch = pc.LogWatch()
    jobs = []
    for name in "abcba":
        jobs.append((name, report(srun_report(paths[name], "node1"))["job"]))
    got = [outcome_of(watch, "node1", job)["outcome"] for _, job in jobs]
    # c evicts a (the least recently used); b is then still there; a comes back staged.
    assert got == ["staged", "staged", "staged", "cached", "staged"], list(zip(jobs, got))
    held = watch.wait_for("node1", rf"pylaunch: epilog job {jobs[-1][1]}: cache holds ")
    assert held and "cache holds 2 trees" in held[-1], held


def test_a_tree_in_use_is_never_evicted(workdir):
    pc.write_site_config(CACHE_CONFIG + "  max_entries: 1\n")
    a = pc.SHARED / make_bundle("inuse-a.tar.zst").name
    b = pc.SHARED / make_bundle("inuse-b.tar.zst").name
    watch = pc.LogWatch()
    flag = workdir / "go"
    out = pc.as_user(["sbatch", "--parsable", "-N1", "-w", "node1", f"--pybundle={a}", "-o",
                      f"{workdir}/long.out", "--wrap",
                      f"while [ ! -e {flag} ]; do sleep 0.2; done; "
                      f"python3 -c 'import sys; print(\"still\", sys.prefix)'"], cwd=workdir)
    assert out.returncode == 0, out.stderr
    long_job = out.stdout.strip()
    watch.wait_for("node1", rf"pylaunch: stage job={long_job} ", timeout=60)
    other = report(srun_report(b, "node1"))
    assert outcome_of(watch, "node1", other["job"])["outcome"] == "staged"
    # b's epilog brings the cache back to one tree: b goes, a (in use) stays.
    evicted = watch.wait_for("node1", rf"pylaunch: epilog job {other['job']}: cache holds ",
                             timeout=30)
    flag.touch()
    shutil.chown(flag, pc.TEST_USER, pc.TEST_USER)
    assert pc.wait_job_end(int(long_job)) == "COMPLETED"
    assert (workdir / "long.out").read_text().startswith("still /dev/shm/pylaunch/.view/")
    again = report(srun_report(a, "node1"))
    assert outcome_of(watch, "node1", again["job"])["outcome"] == "cached"
    again_b = report(srun_report(b, "node1"))
    assert outcome_of(watch, "node1", again_b["job"])["outcome"] == "staged"
    assert evicted


# ---------------------------------------------------------------- fan-out, the site's command


def tree_job(workdir, bundle):
    """A 3-node batch job over the tree, held until the shared file system's counters are reset
    (submission checks the bundle too): its id, the counters, and the tasks' sys.prefix."""
    out = pc.as_user(["sbatch", "--hold", "--parsable", "-N3", "--ntasks-per-node=1",
                      f"--pybundle={bundle}", "-o", f"{workdir}/%j.out", "--wrap",
                      "srun python3 -c 'import sys; print(sys.prefix)'"], cwd=workdir)
    assert out.returncode == 0, out.stderr
    job = out.stdout.strip()
    pc.shared_fs_stats(reset=True)
    subprocess.run(["scontrol", "release", job], env=pc.slurm_env(), check=True)
    assert pc.wait_job_end(int(job), timeout=180) == "COMPLETED"
    stats = pc.shared_fs_stats()
    prefixes = (workdir / f"{job}.out").read_text().split()
    return job, stats, prefixes


def test_a_tree_cached_on_some_nodes_relays_and_the_bundle_is_read_once(workdir):
    """Over the tree a node that has the tree cached passes the stream on to the nodes below
    without extracting it; the others extract it into the cache. The bundle is read once per
    job whichever nodes have it, and a job whose nodes all have it runs from the cache on each."""
    bundle = pc.SHARED / make_bundle("fanout.tar.zst").name
    size = (pc.SHARED_SRC / "fanout.tar.zst").stat().st_size
    watch = pc.LogWatch()
    first = report(srun_report(bundle, "node1"))
    assert outcome_of(watch, "node1", first["job"])["outcome"] == "staged"
    view = re.compile(r"/dev/shm/pylaunch/\.view/[0-9a-f]{64}/t")
    for cached_before in (["node1"], pc.node_names()):
        job, stats, prefixes = tree_job(workdir, bundle)
        assert stats["read_bytes_by_path"].get(bundle.name, 0) == size, stats
        assert stats["opens_by_path"].get(bundle.name, 0) == 1, stats
        for node in pc.node_names():
            f = outcome_of(watch, node, job)
            want = "cached" if node in cached_before else "staged"
            assert f["mode"] == "tree" and f["outcome"] == want, (node, f)
        assert len(prefixes) == 3 and all(view.fullmatch(p) for p in prefixes), prefixes
        # One tree per node: the cached one, the same name everywhere (the user's, same bundle).
        assert len(set(prefixes)) == 1, prefixes


def cache_command(node, *args):
    plugin = os.environ.get("PYLAUNCH_PLUGIN", str(pc.REPO / ".libs" / "pylaunch.so"))
    command = os.environ.get("PYLAUNCH_COMMAND",
                             os.path.join(os.path.dirname(os.path.dirname(plugin)), "pylaunch"))
    return pc.cluster("exec", node, command, "--config", str(pc.SITE_CONFIG), "cache", *args,
                      check=False)


def test_site_lists_and_purges_a_users_trees(workdir):
    pc.ensure_other_user()
    mine = pc.SHARED / make_bundle("purge-mine.tar.zst").name
    theirs = pc.SHARED / make_bundle("purge-theirs.tar.zst", owner=pc.OTHER_USER).name
    report(srun_report(mine, "node1"))
    report(srun_report(theirs, "node1", user=pc.OTHER_USER))
    listed = cache_command("node1", "list")
    assert listed.returncode == 0, listed.stderr
    assert pc.TEST_USER in listed.stdout and pc.OTHER_USER in listed.stdout, listed.stdout
    assert "cache holds 2 trees" in listed.stdout, listed.stdout
    purged = cache_command("node1", "purge", "--user", pc.TEST_USER)
    assert purged.returncode == 0 and "removed 1 trees" in purged.stdout, purged
    listed = cache_command("node1", "list", "--user", pc.TEST_USER)
    assert "cache holds 0 trees" in listed.stdout, listed.stdout
    listed = cache_command("node1", "list")
    assert "cache holds 1 trees" in listed.stdout and pc.OTHER_USER in listed.stdout
    # Nothing of the user is left on the node: no view, no tree.
    left = pc.cluster("exec", "node1", "sh", "-c",
                      f"find /dev/shm/pylaunch/.view /dev/shm/pylaunch/.cache -user {pc.TEST_USER}"
                      " | head -5").stdout
    assert left.strip() == "", left
    watch = pc.LogWatch()
    again = report(srun_report(mine, "node1"))
    assert outcome_of(watch, "node1", again["job"])["outcome"] == "staged"
    wrong = cache_command("node1", "purge", "--user", "no-such-user-here")
    assert wrong.returncode == 2 and "no such user" in wrong.stderr, wrong


def test_purge_keeps_a_tree_a_running_job_imports_from_until_the_job_ends(workdir):
    """The site purges a user's trees while a job of theirs runs from one: the job goes on
    importing from it, no later job reuses it, and the job's epilog removes it."""
    bundle = pc.SHARED / make_bundle("purge-running.tar.zst", extra="kept").name
    report(srun_report(bundle, "node1"))
    go = workdir / "go"
    script = ("import os, time\n"
              f"while not os.path.exists({str(go)!r}): time.sleep(0.2)\n"
              "print(open(os.path.join(os.environ['PYLAUNCH_ROOT'], 'extra.txt')).read())\n"
              "import json; print('IMPORTED', json.__file__)\n")
    (workdir / "wait.py").write_text(script)
    watch = pc.LogWatch()
    out = pc.as_user(["sbatch", "--parsable", "-N1", "-w", "node1", f"--pybundle={bundle}",
                      "-o", f"{workdir}/%j.out", "--wrap", f"srun python3 {workdir}/wait.py"],
                     cwd=workdir)
    assert out.returncode == 0, out.stderr
    running = out.stdout.strip()
    assert watch.wait_for("node1", rf"pylaunch: stage job={running} .*outcome=cached",
                          timeout=60)
    purged = cache_command("node1", "purge", "--user", pc.TEST_USER)
    assert purged.returncode == 0, purged
    assert "removed 0 trees" in purged.stdout and "1 trees are in use" in purged.stdout, purged
    listed = cache_command("node1", "list", "--user", pc.TEST_USER)
    assert "cache holds 1 trees" in listed.stdout and "(purged" in listed.stdout, listed.stdout
    # A job meanwhile stages anew, without the cache, and says why in the slurmd log.
    meanwhile = report(srun_report(bundle, "node1"))
    assert outcome_of(watch, "node1", meanwhile["job"])["outcome"] == "staged"
    assert watch.lines("node1", rf"job {meanwhile['job']}: node cache not cached: the site "
                                r"purged the cached tree")
    go.write_text("")
    go.chmod(0o644)
    assert pc.wait_job_end(int(running)) == "COMPLETED", (workdir / f"{running}.out").read_text()
    text = (workdir / f"{running}.out").read_text()
    assert "kept" in text and "IMPORTED" in text, text
    assert pc.wait_idle()
    listed = cache_command("node1", "list", "--user", pc.TEST_USER)
    assert "cache holds 0 trees" in listed.stdout, listed.stdout
    left = pc.cluster("exec", "node1", "sh", "-c",
                      f"find /dev/shm/pylaunch/.view /dev/shm/pylaunch/.cache -user {pc.TEST_USER}"
                      " | head -5").stdout
    assert left.strip() == "", left
