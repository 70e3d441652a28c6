"""Site-provided named bundles (issue 14): --pybundle=@NAME from the site's bundles:, and the
policy of a default bundle for steps of at least policy.min_nodes nodes that run Python, with
--pybundle=no to opt out."""
import shutil
import tempfile
import pathlib

import pytest

import bundles as bd
import plcluster as pc

PROBE = "import os, siteprobe; print(siteprobe.WHERE, os.environ.get('PYLAUNCH_KIND'))"


@pytest.fixture
def site_bundle():
    """A bundle in a root-owned, world-readable site directory, as /sw would be."""
    d = pathlib.Path(tempfile.mkdtemp(prefix="pylaunch-site-", dir="/var/tmp"))
    d.chmod(0o755)
    archive = d / "demo.tar.gz"
    bd.tar_entries(archive, [bd.file_entry("siteprobe.py", b"WHERE = 'site bundle'\n")])
    shutil.chown(archive, "root", "root")
    archive.chmod(0o644)
    yield archive
    shutil.rmtree(d, ignore_errors=True)


def site_config(archive, policy=""):
    pc.write_site_config(pc.GOOD_CONFIG + f"bundles:\n  demo-1.0: {archive}\n" + policy)


def test_named_site_bundle_with_the_users_code(workdir, site_bundle):
    site_config(site_bundle)
    app = workdir / "app"
    app.mkdir()
    (app / "main.py").write_text("import siteprobe\nprint('main with', siteprobe.WHERE)\n")
    bd.give_to_user(app)
    bd.give_to_user(app / "main.py")
    out = pc.as_user(["srun", "-N2", "--pybundle=@demo-1.0,./app", "sh", "-c",
                      'python3 "$PYLAUNCH_ROOT/main.py"'], cwd=workdir)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["main with site bundle"] * 2


def test_unknown_site_bundle_refused_at_submit(workdir, site_bundle):
    site_config(site_bundle)
    for cmd in (["srun", "-N1", "--pybundle=@nope", "true"],
                ["sbatch", "--pybundle=@nope", "--wrap", "true"]):
        out = pc.as_user(cmd, cwd=workdir)
        assert out.returncode != 0
        assert ("pylaunch: --pybundle: @nope: not one of the site's bundles (@demo-1.0)"
                in out.stderr), out.stderr


def test_default_bundle_for_big_python_steps_and_opt_out(workdir, site_bundle):
    site_config(site_bundle, "policy:\n  default_bundle: demo-1.0\n  min_nodes: 2\n")
    out = pc.as_user(["srun", "-N2", "python3", "-c", PROBE], cwd=workdir)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["site bundle code"] * 2
    # Opted out: the node's Python, nothing staged.
    out = pc.as_user(["srun", "-N2", "--pybundle=no", "python3", "-c",
                      "import os; print(os.environ.get('PYLAUNCH_KIND'))"], cwd=workdir)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["None"] * 2
    # Too small, or not Python: the policy does not apply.
    out = pc.as_user(["srun", "-N1", "python3", "-c",
                      "import os; print(os.environ.get('PYLAUNCH_KIND'))"], cwd=workdir)
    assert out.returncode == 0 and out.stdout == "None\n", (out.stdout, out.stderr)
    out = pc.as_user(["srun", "-N2", "sh", "-c", 'echo "kind=$PYLAUNCH_KIND"'], cwd=workdir)
    assert out.returncode == 0 and out.stdout.splitlines() == ["kind="] * 2, out.stdout
