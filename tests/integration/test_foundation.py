"""Foundation: the options exist everywhere, their values reach the prolog, the
batch step and every task of every step, bad input is refused at submit time,
and a broken site configuration is loud but drains nothing."""
import re
import subprocess
import textwrap

import pytest

import bundles as bd
import plcluster as pc

ALL_NODES = pc.node_names()


def tiny_bundles(*paths):
    """--pybundle checks its files at submit time: give it real (tiny) ones."""
    for path in paths:
        if path.suffix == ".tar" or path.name.endswith((".tar.gz", ".tar.zst")):
            bd.tar_entries(path, [bd.file_entry("marker")])
        else:
            path.mkdir()
            bd.give_to_user(path)
    return paths


def job_id_from(stdout):
    m = re.search(r"JOBID=(\d+)", stdout)
    assert m, f"no job id in output: {stdout!r}"
    return int(m.group(1))


# ---------------------------------------------------------------- --help

@pytest.mark.parametrize("command", ["srun", "sbatch", "salloc"])
def test_help_lists_both_options(command):
    out = pc.as_user([command, "--help"])
    text = out.stdout + out.stderr
    assert "--pybundle=FILE[,FILE|DIR...]" in text
    assert "--pymonitor=yes|no" in text
    assert "[pylaunch]" in text


# ---------------------------------------------------------------- round trip

def test_srun_values_reach_prolog_and_every_task(workdir):
    (tools,) = tiny_bundles(workdir.parent / f"{workdir.name}-tools.tar.gz")
    tiny_bundles(workdir / "env.tar.zst")
    watch = pc.LogWatch()
    out = pc.as_user(["srun", "-N3", "--ntasks-per-node=2", f"--pybundle=env.tar.zst,../{tools.name}",
                      "--pymonitor", "sh", "-c",
                      'if [ "$SLURM_PROCID" = 0 ]; then echo JOBID=$SLURM_JOB_ID; fi'],
                     cwd=workdir)
    assert out.returncode == 0, out.stderr
    tools.unlink()
    job = job_id_from(out.stdout)
    want = f"pybundle={workdir}/env.tar.zst,{tools}"
    for node in ALL_NODES:
        prolog = watch.lines(node, rf"pylaunch: prolog job {job} on {node} user {pc.TEST_USER}: ")
        assert len(prolog) == 1, (node, prolog)
        assert want in prolog[0] and "pymonitor=yes (option)" in prolog[0]
        step = watch.lines(node, rf"pylaunch: job {job} step 0 on {node}: ")
        assert len(step) == 1 and want in step[0], (node, step)
        tasks = watch.lines(node, rf"pylaunch: debug: task_init job {job} step 0 on {node} task \d+: ")
        assert len(tasks) == 2 and all(want in t for t in tasks), (node, tasks)
        epilog = watch.wait_for(node, rf"pylaunch: epilog job {job} on {node} ")
        assert len(epilog) == 1 and want in epilog[0], (node, epilog)


def test_sbatch_values_reach_prolog_batch_step_and_inner_srun(workdir):
    tiny_bundles(workdir / "base.tar.zst", workdir / "src")
    script = workdir / "job.sh"
    script.write_text(textwrap.dedent("""\
        #!/bin/sh
        #SBATCH -N3
        #SBATCH --ntasks-per-node=2
        #SBATCH --pybundle=base.tar.zst,./src
        #SBATCH --pymonitor
        echo JOBID=$SLURM_JOB_ID
        cd /tmp   # relative bundle paths stay relative to the submit directory
        srun -N3 --ntasks-per-node=2 true
        """))
    watch = pc.LogWatch()
    out = pc.as_user(["sbatch", "--wait", "-o", str(workdir / "out.txt"), str(script)],
                     cwd=workdir)
    assert out.returncode == 0, out.stdout + out.stderr
    job = job_id_from((workdir / "out.txt").read_text())
    want = f"pybundle={workdir}/base.tar.zst,{workdir}/src pymonitor=yes (option)"
    for node in ALL_NODES:
        prolog = watch.lines(node, rf"pylaunch: prolog job {job} on {node} ")
        assert len(prolog) == 1 and want in prolog[0], (node, prolog)
        step = watch.lines(node, rf"pylaunch: job {job} step 0 on {node}: ")
        assert len(step) == 1 and want in step[0], (node, step)
        tasks = watch.lines(node, rf"pylaunch: debug: task_init job {job} step 0 on {node} task ")
        assert len(tasks) == 2, (node, tasks)
        assert all(want.replace(" (option)", "") in t for t in tasks)
    batch = [l for n in ALL_NODES for l in watch.lines(n, rf"pylaunch: job {job} batch step on ")]
    assert len(batch) == 1 and want in batch[0], batch


def test_salloc_values_reach_prolog_and_steps(workdir):
    (env,) = tiny_bundles(workdir / "site-env.tar")
    watch = pc.LogWatch()
    out = pc.as_user(["salloc", "-N2", f"--pybundle={env}", "--pymonitor=no",
                      "srun", "sh", "-c",
                      'if [ "$SLURM_PROCID" = 0 ]; then echo JOBID=$SLURM_JOB_ID; fi'],
                     cwd=workdir)
    assert out.returncode == 0, out.stderr
    job = job_id_from(out.stdout)
    want = f"pybundle={env} pymonitor=no (option)"
    nodes = [n for n in ALL_NODES if watch.lines(n, rf"pylaunch: prolog job {job} on ")]
    assert len(nodes) == 2
    for node in nodes:
        assert want in watch.lines(node, rf"pylaunch: prolog job {job} on ")[0]
        step = watch.lines(node, rf"pylaunch: job {job} step 0 on {node}: ")
        assert len(step) == 1 and want in step[0], (node, step)


def test_site_default_monitor_and_opt_out(workdir):
    pc.write_site_config(pc.GOOD_CONFIG.replace("default: off", "default: on"))
    watch = pc.LogWatch()
    on = pc.as_user(["srun", "-N1", "-w", "node1", "sh", "-c", "echo JOBID=$SLURM_JOB_ID"],
                    cwd=workdir)
    off = pc.as_user(["srun", "-N1", "-w", "node1", "--pymonitor=no", "sh", "-c",
                      "echo JOBID=$SLURM_JOB_ID"], cwd=workdir)
    assert on.returncode == 0 and off.returncode == 0, on.stderr + off.stderr
    on_line = watch.lines("node1", rf"pylaunch: prolog job {job_id_from(on.stdout)} ")
    off_line = watch.lines("node1", rf"pylaunch: prolog job {job_id_from(off.stdout)} ")
    assert "pymonitor=yes (site default)" in on_line[0]
    assert "pymonitor=no (option)" in off_line[0]


# ---------------------------------------------------------------- bad options

BAD_OPTIONS = [
    ("--pybundle=", "pylaunch: --pybundle: no file given"),
    ("--pybundle=a.tar,,b.tar", "pylaunch: --pybundle: file name 2 of the list is empty"),
    ("--pymonitor=maybe", "pylaunch: --pymonitor=maybe: expected yes or no"),
]


def no_job_queued_for_user():
    out = subprocess.run(["squeue", "-h", "-u", pc.TEST_USER], env=pc.slurm_env(), text=True,
                         capture_output=True)
    return out.stdout.strip() == ""


@pytest.mark.parametrize("option,message", BAD_OPTIONS)
@pytest.mark.parametrize("command", [["srun", "-N1", "true"], ["sbatch", "--wrap", "true"],
                                     ["salloc", "-N1", "true"]],
                         ids=["srun", "sbatch", "salloc"])
def test_malformed_option_refused_at_submit(workdir, command, option, message):
    out = pc.as_user([command[0], option] + command[1:], cwd=workdir)
    assert out.returncode != 0
    assert message in out.stderr, out.stderr
    assert no_job_queued_for_user()


@pytest.mark.parametrize("option,message", BAD_OPTIONS)
def test_malformed_sbatch_directive_refused(workdir, option, message):
    script = workdir / "bad.sh"
    script.write_text(f"#!/bin/sh\n#SBATCH {option}\ntrue\n")
    out = pc.as_user(["sbatch", str(script)], cwd=workdir)
    assert out.returncode != 0
    assert message in out.stderr, out.stderr
    assert no_job_queued_for_user()


# ---------------------------------------------------------------- broken config

BROKEN_CONFIG = "stage:\n  dir: /dev/shm/pylaunch\n  colour: blue\n"


def test_broken_config_refuses_pylaunch_jobs_with_file_line_key(workdir):
    tiny_bundles(workdir / "env.tar")
    pc.write_site_config(BROKEN_CONFIG)
    out = pc.as_user(["srun", "-N1", "--pybundle=env.tar", "true"], cwd=workdir)
    assert out.returncode != 0
    assert f"pylaunch: site configuration: {pc.SITE_CONFIG}:3: stage.colour" in out.stderr, out.stderr
    sb = pc.as_user(["sbatch", "--pymonitor", "--wrap", "true"], cwd=workdir)
    assert sb.returncode != 0 and f"{pc.SITE_CONFIG}:3" in sb.stderr


def test_broken_config_is_loud_but_other_jobs_run(workdir):
    pc.write_site_config(BROKEN_CONFIG)
    out = pc.as_user(["srun", "-N3", "true"], cwd=workdir)
    assert out.returncode == 0, out.stderr
    assert f"pylaunch: site configuration: {pc.SITE_CONFIG}:3: stage.colour" in out.stderr


def test_config_broken_after_submit_fails_tasks_not_nodes(workdir):
    """The prolog meets the broken file: it logs, returns success (no drain),
    and the job's task fails with the reason on its own output."""
    tiny_bundles(workdir / "env.tar")
    held = pc.as_user(["sbatch", "--hold", "-N3", "--pybundle=env.tar",
                       "-o", str(workdir / "out.txt"), "--wrap", "srun true"], cwd=workdir)
    assert held.returncode == 0, held.stderr
    job = int(held.stdout.split()[-1])
    pc.write_site_config(BROKEN_CONFIG)
    watch = pc.LogWatch()
    release = subprocess.run(["scontrol", "release", str(job)], env=pc.slurm_env(),
                             capture_output=True, text=True)
    assert release.returncode == 0, release.stderr
    state = pc.wait_job_end(job)
    assert state == "FAILED", state
    out = (workdir / "out.txt").read_text()
    assert f"pylaunch: site configuration: {pc.SITE_CONFIG}:3: stage.colour" in out, out
    for node in ALL_NODES:
        assert watch.lines(node, rf"pylaunch: prolog job {job} on {node}: site configuration: "), node


@pytest.mark.slow
def test_slurmd_starts_with_broken_config():
    pc.write_site_config(BROKEN_CONFIG)
    watch = pc.LogWatch()
    restart = pc.cluster("restart-slurmd", check=False)
    assert restart.returncode == 0, restart.stdout + restart.stderr
    for node in ALL_NODES:
        found = watch.wait_for(
            node, r"pylaunch: loaded, built for Slurm [0-9.]+; site configuration: .*stage\.colour")
        assert found, node
    pc.write_site_config(pc.GOOD_CONFIG)
    assert pc.cluster("restart-slurmd", check=False).returncode == 0
