"""--pybundle: bundles are checked at submit time, staged on every node as the
user, Python starts from the node-local copy, bad bundles fail the job (never
the node) with a precise reason, and the epilog leaves nothing behind."""
import json
import re
import subprocess
import tarfile
import textwrap

import pytest

import bundles as bd
import plcluster as pc

ALL_NODES = pc.node_names()
REPORT = ("import json, os, sys, pylaunch_probe; print(json.dumps({'exe': sys.executable, "
          "'prefix': sys.prefix, 'root': os.environ.get('PYLAUNCH_ROOT'), "
          "'pythonpath': os.environ.get('PYTHONPATH'), 'probe': pylaunch_probe.WHERE, "
          "'node': os.environ['SLURMD_NODENAME'], 'job': os.environ['SLURM_JOB_ID']}))")


def staged_dirs(node):
    out = pc.cluster("exec", node, "sh", "-c", "ls -A /dev/shm/pylaunch 2>/dev/null; true")
    return [n for n in out.stdout.split() if n != ".state"] + \
        [f".state/{n}" for n in pc.cluster("exec", node, "sh", "-c",
                                           "ls -A /dev/shm/pylaunch/.state 2>/dev/null; true").stdout.split()]


def assert_nothing_left_behind():
    for node in ALL_NODES:
        assert staged_dirs(node) == [], (node, staged_dirs(node))


def reports(stdout):
    return [json.loads(l) for l in stdout.splitlines() if l.startswith("{")]


# ---------------------------------------------------------------- it works

def test_srun_python_starts_from_the_staged_tree_on_every_node(workdir, env_bundle):
    watch = pc.LogWatch()
    out = pc.as_user(["srun", "-N3", "--ntasks-per-node=2", f"--pybundle={env_bundle}",
                      "python3", "-c", REPORT], cwd=workdir,
                     env={"PYTHONPATH": "/shared/should/vanish"})
    assert out.returncode == 0, out.stderr
    rs = reports(out.stdout)
    assert len(rs) == 6 and {r["node"] for r in rs} == set(ALL_NODES)
    for r in rs:
        assert re.fullmatch(rf"/dev/shm/pylaunch/{r['job']}/[0-9a-f]{{16}}", r["root"]), r
        assert r["prefix"] == r["root"] and r["exe"].startswith(r["root"] + "/bin/"), r
        assert r["pythonpath"] is None and r["probe"] == "base"
    job = rs[0]["job"]
    for node in ALL_NODES:
        staged = watch.lines(node, rf"pylaunch: prolog job {job} on {node}: staged ")
        assert len(staged) == 1 and "files" in staged[0], (node, staged)
    pc.wait_idle()
    assert_nothing_left_behind()


def test_staged_tree_belongs_to_the_user_mode_0700(workdir, env_bundle):
    out = pc.as_user(["srun", "-N1", f"--pybundle={env_bundle}", "sh", "-c",
                      'stat -c "%U %a" "$(dirname "$PYLAUNCH_ROOT")" "$PYLAUNCH_ROOT"; '
                      'stat -c "%U %a" /dev/shm/pylaunch'], cwd=workdir)
    assert out.returncode == 0, out.stderr
    job_dir, tree, base = out.stdout.splitlines()
    assert job_dir == f"{pc.TEST_USER} 700" and tree == f"{pc.TEST_USER} 700"
    assert base == "root 755"


def test_layers_overwrite_in_order_and_a_directory_is_mirrored(workdir, env_bundle):
    bd.tar_entries(workdir / "overlay.tar.gz", [
        bd.file_entry(f"{bd.SITE}/pylaunch_probe.py", b"WHERE = 'overlay'\n")])
    app = workdir / "app"
    app.mkdir()
    (app / "main.py").write_text("import pylaunch_probe; print('main from', pylaunch_probe.WHERE)\n")
    bd.give_to_user(app)
    bd.give_to_user(app / "main.py")
    out = pc.as_user(["srun", "-N2", f"--pybundle={env_bundle},overlay.tar.gz,./app", "sh", "-c",
                      'python3 "$PYLAUNCH_ROOT/main.py"'], cwd=workdir)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["main from overlay"] * 2


@pytest.mark.parametrize("compression", ["", "gz", "xz", "bz2", "lz4"])
def test_every_compression_stages(workdir, compression, tmp_path):
    tree = tmp_path / "t"
    (tree / "bin").mkdir(parents=True)
    (tree / "bin" / "hello").write_text("#!/bin/sh\necho hello from $PYLAUNCH_ROOT\n")
    (tree / "bin" / "hello").chmod(0o755)
    archive = bd.tar_dir(tree, workdir / f"t.tar{'.' + compression if compression else ''}",
                         compression)
    out = pc.as_user(["srun", "-N1", f"--pybundle={archive.name}", "hello"], cwd=workdir)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("hello from /dev/shm/pylaunch/")


def test_zip_bundle_stages(workdir):
    bd.zip_files(workdir / "z.zip", {"share/data.txt": "zipped\n"})
    out = pc.as_user(["srun", "-N1", "--pybundle=z.zip", "sh", "-c",
                      'cat "$PYLAUNCH_ROOT/share/data.txt"'], cwd=workdir)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "zipped\n"


def test_conda_pack_bundle_unpacks_once_per_node_and_shebangs_work(workdir, env_bundle):
    unpack = textwrap.dedent("""\
        #!/bin/sh
        echo "$(hostname) $(id -un)" >> "$(dirname "$0")/../unpacked"
        """).encode()
    tool = b"#!/usr/bin/env python3\nimport sys; print('tool runs', sys.prefix)\n"
    bd.tar_entries(workdir / "conda.tar.gz", [
        bd.file_entry("bin/conda-unpack", unpack, 0o755),
        bd.file_entry("bin/mytool", tool, 0o755)])
    out = pc.as_user(["srun", "-N2", "--ntasks-per-node=2", f"--pybundle={env_bundle},conda.tar.gz",
                      "sh", "-c", 'mytool; cat "$PYLAUNCH_ROOT/unpacked"'], cwd=workdir)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert sum(l.startswith("tool runs /dev/shm/pylaunch/") for l in lines) == 4
    unpacked = {l for l in lines if not l.startswith("tool runs")}
    assert unpacked == {f"node1 {pc.TEST_USER}", f"node2 {pc.TEST_USER}"}, lines


def test_set_id_bits_are_stripped(workdir):
    archive = bd.tar_entries(workdir / "suid.tar.gz", [
        bd.file_entry("bin/suid", b"#!/bin/sh\n", 0o6755)])
    out = pc.as_user(["srun", "-N1", f"--pybundle={archive.name}", "sh", "-c",
                      'stat -c %a "$PYLAUNCH_ROOT/bin/suid"'], cwd=workdir)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "755"


# ---------------------------------------------------------------- inside an allocation

def test_steps_inside_an_allocation_stage_reuse_and_separate(workdir, env_bundle):
    bd.tar_entries(workdir / "other.tar.gz", [bd.file_entry("marker", b"other\n")])
    script = workdir / "steps.sh"
    script.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        echo JOBID=$SLURM_JOB_ID
        srun --pybundle={env_bundle} python3 -c 'import sys; print("A", sys.prefix)'
        srun --pybundle={env_bundle} python3 -c 'import sys; print("B", sys.prefix)'
        srun --pybundle=other.tar.gz sh -c 'echo C $PYLAUNCH_ROOT $(cat $PYLAUNCH_ROOT/marker)'
        """))
    watch = pc.LogWatch()
    out = pc.as_user(["salloc", "-N2", "sh", str(script)], cwd=workdir)
    assert out.returncode == 0, out.stderr
    job = re.search(r"JOBID=(\d+)", out.stdout).group(1)
    a = {l.split()[1] for l in out.stdout.splitlines() if l.startswith("A ")}
    b = {l.split()[1] for l in out.stdout.splitlines() if l.startswith("B ")}
    c = [l.split() for l in out.stdout.splitlines() if l.startswith("C ")]
    assert len(a) == 1 and a == b, out.stdout
    assert len(c) == 2 and all(x[2] == "other" and x[1] not in a for x in c), out.stdout
    for node in ["node1", "node2"]:
        # Staged by step 0 and by step 2; step 1 reused step 0's tree.
        staged = watch.lines(node, rf"pylaunch: job {job} step \d+ on {node}: staged ")
        assert len(staged) == 2, (node, staged)
    pc.wait_idle()
    assert_nothing_left_behind()


def test_sbatch_batch_step_and_inner_srun_use_the_staged_python(workdir, env_bundle):
    script = workdir / "job.sh"
    script.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        #SBATCH -N3
        #SBATCH --pybundle={env_bundle}
        python3 -c 'import sys; print("batch", sys.prefix)'
        cd /tmp
        srun python3 -c 'import sys; print("step", sys.prefix)'
        srun python3 -c 'import sys; print("again", sys.prefix)'
        """))
    watch = pc.LogWatch()
    out = pc.as_user(["sbatch", "--wait", "--parsable", "-o", str(workdir / "out.txt"),
                      str(script)], cwd=workdir)
    assert out.returncode == 0, out.stderr
    job = out.stdout.strip()
    # srun's own notes ("srun: Step created for StepId=..." when a step waited for the one
    # before it to free its CPUs, 24.11) share the file.
    lines = [l for l in (workdir / "out.txt").read_text().splitlines()
             if not l.startswith("srun: ")]
    prefixes = {l.split()[1] for l in lines}
    assert len(prefixes) == 1 and prefixes.pop().startswith("/dev/shm/pylaunch/"), lines
    assert sum(l.startswith("step ") for l in lines) == 3 and lines[0].startswith("batch ")
    assert sum(l.startswith("again ") for l in lines) == 3
    for node in ALL_NODES:
        # Staged once per node, by the prolog; the batch step and both steps reuse it.
        assert len(watch.lines(node, rf"pylaunch: prolog job {job} on {node}: staged ")) == 1
        assert watch.lines(node, rf"pylaunch: job {job} .*: staged ") == []


# ---------------------------------------------------------------- refused at submit

def with_max_size(size):
    return pc.GOOD_CONFIG.replace("  dir: /dev/shm/pylaunch",
                                  f"  dir: /dev/shm/pylaunch\n  max_size: {size}")


def no_job_queued():
    out = subprocess.run(["squeue", "-h", "-u", pc.TEST_USER], env=pc.slurm_env(), text=True,
                         capture_output=True)
    return out.stdout.strip() == ""


def submit_errors(workdir, option):
    results = {}
    for command in (["srun", "-N1", option, "true"], ["sbatch", option, "--wrap", "true"],
                    ["salloc", "-N1", option, "true"]):
        out = pc.as_user(command, cwd=workdir)
        results[command[0]] = (out.returncode, out.stderr)
    return results


def assert_refused(workdir, option, message):
    for command, (rc, stderr) in submit_errors(workdir, option).items():
        assert rc != 0, command
        assert message in stderr, (command, stderr)
    assert no_job_queued()


def test_missing_bundle_refused_at_submit(workdir):
    assert_refused(workdir, "--pybundle=nope.tar.gz",
                   f"pylaunch: --pybundle: {workdir}/nope.tar.gz: No such file or directory")


def test_unreadable_bundle_refused_at_submit(workdir):
    secret = workdir / "secret.tar.gz"
    bd.tar_entries(secret, [bd.file_entry("x")])
    secret.chmod(0)
    assert_refused(workdir, "--pybundle=secret.tar.gz",
                   f"pylaunch: --pybundle: {secret}: cannot open: Permission denied")


def test_root_only_bundle_refused_even_though_root_could_read_it(workdir):
    """The check runs as the user: root's rights never stand in for theirs."""
    rootfile = workdir / "root.tar.gz"
    with tarfile.open(rootfile, "w:gz") as tar:
        tar.addfile(tarfile.TarInfo("x"))
    rootfile.chmod(0o600)  # owned by root
    assert_refused(workdir, "--pybundle=root.tar.gz", f"{rootfile}: cannot open: Permission denied")


def test_unreadable_directory_refused_at_submit(workdir):
    app = workdir / "app"
    app.mkdir(mode=0)
    bd.give_to_user(app)
    assert_refused(workdir, "--pybundle=app", f"pylaunch: --pybundle: {app}: Permission denied")


def test_not_an_archive_refused_at_submit(workdir):
    text = workdir / "notes.txt"
    text.write_text("not an archive\n" * 100)
    bd.give_to_user(text)
    assert_refused(workdir, "--pybundle=notes.txt", f"pylaunch: --pybundle: {text}: ")
    out = pc.as_user(["srun", "-N1", "--pybundle=notes.txt", "true"], cwd=workdir)
    assert "Unrecognized archive format" in out.stderr, out.stderr


def test_bundles_over_the_size_cap_refused_at_submit(workdir):
    pc.write_site_config(with_max_size("1M"))
    big = workdir / "big.tar"
    bd.tar_entries(big, [bd.file_entry("big", b"\0" * (2 << 20))], mode="w")
    assert_refused(workdir, "--pybundle=big.tar", "more than stage.max_size")


# ---------------------------------------------------------------- refused on the node

def run_failing(workdir, archive):
    watch = pc.LogWatch()
    out = pc.as_user(["srun", "-N3", f"--pybundle={archive.name}", "sh", "-c",
                      "echo SHOULD-NOT-RUN"], cwd=workdir)
    assert out.returncode != 0
    assert "SHOULD-NOT-RUN" not in out.stdout
    pc.wait_idle()
    assert_nothing_left_behind()
    return out, watch


HOSTILE = {
    "relative-symlink": ([bd.special_entry("up", tarfile.SYMTYPE, linkname="../../.."),
                          bd.file_entry("up/escaped-by-pylaunch-test", b"x")], "symlink"),
    "dotdot": ([bd.file_entry("../../escaped-by-pylaunch-test", b"x")], "leaves the bundle"),
    "absolute": ([bd.file_entry("/tmp/escaped-by-pylaunch-test", b"x")], "absolute"),
    "device": ([bd.special_entry("dev/sda", tarfile.BLKTYPE, devmajor=8, devminor=0)],
               "device"),
    "fifo": ([bd.special_entry("run/fifo", tarfile.FIFOTYPE)], "FIFO"),
    "through-symlink": ([bd.special_entry("lib", tarfile.SYMTYPE, linkname="/tmp"),
                         bd.file_entry("lib/escaped-by-pylaunch-test", b"x")], "symlink"),
    "hardlink-out": ([bd.special_entry("passwd", tarfile.LNKTYPE, linkname="../../etc/passwd")],
                     "link"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archive_fails_the_tasks_not_the_node(workdir, case):
    entries, reason = HOSTILE[case]
    archive = bd.tar_entries(workdir / f"{case}.tar.gz", entries)
    out, watch = run_failing(workdir, archive)
    task_errors = [l for l in out.stderr.splitlines()
                   if f"pylaunch: --pybundle: {archive}: " in l]
    assert task_errors and all(reason in l for l in task_errors), out.stderr
    for node in ALL_NODES:
        assert watch.lines(node, rf"pylaunch: prolog job \d+ on {node}: --pybundle: {archive}: "), node
        probe = pc.cluster("exec", node, "sh", "-c",
                           "ls /tmp/escaped-by-pylaunch-test /dev/shm/escaped-by-pylaunch-test "
                           "2>/dev/null; true")
        assert probe.stdout == "", (node, probe.stdout)


def test_truncated_archive_fails_with_reason(workdir, env_bundle):
    data = env_bundle.read_bytes()
    cut = workdir / "cut.tar.zst"
    cut.write_bytes(data[: len(data) // 2])
    bd.give_to_user(cut)
    out, _ = run_failing(workdir, cut)
    assert f"pylaunch: --pybundle: {cut}: " in out.stderr, out.stderr


def test_corrupt_stream_mid_way_fails_with_reason(workdir, env_bundle):
    data = bytearray(env_bundle.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 64):
        data[i] ^= 0xFF
    bad = workdir / "corrupt.tar.zst"
    bad.write_bytes(bytes(data))
    bd.give_to_user(bad)
    out, _ = run_failing(workdir, bad)
    assert f"pylaunch: --pybundle: {bad}: " in out.stderr, out.stderr


def test_compression_bomb_stops_at_the_cap(workdir):
    pc.write_site_config(with_max_size("4M"))
    bomb = bd.tar_entries(workdir / "bomb.tar.gz", [bd.file_entry("zeros", b"\0" * (64 << 20))])
    assert bomb.stat().st_size < (1 << 20)
    out, _ = run_failing(workdir, bomb)
    assert "stage.max_size" in out.stderr, out.stderr
