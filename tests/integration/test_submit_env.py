"""PYLAUNCH_PYBUNDLE / PYLAUNCH_PYMONITOR in the submitting environment act like the options, for
launchers that cannot pass SPANK options (issue 14): the same submit-time checks, the option wins."""
import re
import subprocess

import bundles as bd
import plcluster as pc

STAGED = r"/dev/shm/pylaunch/\d+/[0-9a-f]{16}"


def app_dir(workdir, name="app", word="from the env bundle"):
    app = workdir / name
    app.mkdir()
    (app / "main.py").write_text(f"import os\nprint('{word}', os.environ['PYLAUNCH_ROOT'])\n")
    bd.give_to_user(app)
    bd.give_to_user(app / "main.py")
    return app


def test_sbatch_without_options_takes_the_environment(workdir):
    app_dir(workdir)
    script = workdir / "job.sh"
    script.write_text("#!/bin/sh\nsrun python3 \"$PYLAUNCH_ROOT/main.py\"\n"
                      "echo monitor=${PYLAUNCH_MONITOR_SPOOL:+yes}\n")
    bd.give_to_user(script)
    out = pc.as_user(["sbatch", "-N2", "--parsable", "-o", "out.txt", "job.sh"], cwd=workdir,
                     env={"PYLAUNCH_PYBUNDLE": "./app", "PYLAUNCH_PYMONITOR": "yes"})
    assert out.returncode == 0, out.stderr
    job = out.stdout.strip().split(";")[0]
    assert pc.wait_job_end(job) in ("COMPLETED", None), (workdir / "out.txt").read_text()
    lines = (workdir / "out.txt").read_text().splitlines()
    ran = [l for l in lines if l.startswith("from the env bundle ")]
    assert len(ran) == 2 and all(re.fullmatch(r"from the env bundle " + STAGED, l)
                                 for l in ran), lines
    assert "monitor=yes" in lines, lines


def test_srun_environment_value_checked_at_submit(workdir):
    out = pc.as_user(["srun", "-N1", "true"], cwd=workdir,
                     env={"PYLAUNCH_PYBUNDLE": "missing.tar.gz"})
    assert out.returncode != 0
    assert f"pylaunch: --pybundle: {workdir}/missing.tar.gz: No such file or directory" in \
        out.stderr, out.stderr
    for cmd in (["sbatch", "--wrap", "true"], ["salloc", "-N1", "true"]):
        out = pc.as_user(cmd, cwd=workdir, env={"PYLAUNCH_PYMONITOR": "maybe"})
        assert out.returncode != 0 and "pylaunch: --pymonitor=maybe: expected yes or no" in \
            out.stderr, (cmd, out.stderr)
    squeue = subprocess.run(["squeue", "-h", "-u", pc.TEST_USER], env=pc.slurm_env(),
                            text=True, capture_output=True)
    assert squeue.stdout.strip() == ""


def test_option_wins_over_the_environment(workdir):
    app_dir(workdir, "app", "option")
    out = pc.as_user(["srun", "-N1", "--pybundle=./app", "sh", "-c",
                      'python3 "$PYLAUNCH_ROOT/main.py"'], cwd=workdir,
                     env={"PYLAUNCH_PYBUNDLE": "missing.tar.gz"})
    assert out.returncode == 0, out.stderr
    assert re.fullmatch(r"option " + STAGED + "\n", out.stdout), out.stdout
