"""Kinds of bundle (issue 14): a real venv, a pip --target tier over a prefix, application code for
the node's interpreter; each recognised once the tiers are merged (PYLAUNCH_KIND, kind= on the
stage line) and started the way it needs. Packages are built offline, in the test, as the user."""
import json
import re
import shutil
import textwrap

import pytest

import bundles as bd
import plcluster as pc

ALL_NODES = pc.node_names()
PY = "/usr/bin/python3"
STAGED = r"/dev/shm/pylaunch/\d+/[0-9a-f]{16}"

MAIN = textwrap.dedent("""\
    import json, os, sys
    import kindpkg
    def main():
        print(json.dumps({"exe": sys.executable, "prefix": sys.prefix, "file": kindpkg.__file__,
                          "kind": os.environ.get("PYLAUNCH_KIND"),
                          "root": os.environ.get("PYLAUNCH_ROOT"),
                          "home": os.environ.get("PYTHONHOME"),
                          "venv": os.environ.get("VIRTUAL_ENV"),
                          "node": os.environ["SLURMD_NODENAME"]}))
    if __name__ == "__main__":
        main()
    """)


def user(cmd, cwd, **kw):
    out = pc.as_user(cmd, cwd=cwd, timeout=240, **kw)
    assert out.returncode == 0, (cmd, out.stdout, out.stderr)
    return out


def build_wheel(workdir):
    """kindpkg 1.0 with a console script, built offline from source as the user."""
    src = workdir / "kindpkg-src"
    (src / "kindpkg").mkdir(parents=True)
    (src / "setup.py").write_text(
        "from setuptools import setup\n"
        "setup(name='kindpkg', version='1.0', packages=['kindpkg'],\n"
        "      entry_points={'console_scripts': ['kindpkg-hello = kindpkg.__main__:main']})\n")
    (src / "kindpkg" / "__init__.py").write_text("")
    (src / "kindpkg" / "__main__.py").write_text(MAIN)
    for p in [src, *src.rglob("*")]:
        bd.give_to_user(p)
    user([PY, "-m", "pip", "wheel", "--no-index", "--no-build-isolation", "--no-deps",
          "--no-cache-dir", "-w", "dist", "./kindpkg-src"], workdir)
    wheels = list((workdir / "dist").glob("kindpkg-1.0-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def make_venv(workdir, wheel):
    user([PY, "-m", "venv", "venv"], workdir)
    user(["venv/bin/pip", "install", "--no-index", "--no-cache-dir", str(wheel)], workdir)
    return workdir / "venv"


def reports(stdout):
    return [json.loads(l) for l in stdout.splitlines() if l.startswith("{")]


def stage_kinds(watch, job):
    return {n: re.findall(r"kind=(\S+)", " ".join(watch.lines(n, rf"pylaunch: stage job={job} ")))
            for n in ALL_NODES}


@pytest.fixture(scope="module")
def prefix_bundle(tmp_path_factory):
    work = pc.user_workdir()
    tree = bd.python_env_tree(tmp_path_factory.mktemp("env") / "env")
    yield bd.tar_dir(tree, work / "env.tar.zst", "zst")
    shutil.rmtree(work, ignore_errors=True)


def test_venv_runs_as_module_and_as_console_script(workdir):
    venv = make_venv(workdir, build_wheel(workdir))
    made = (venv / "bin" / "kindpkg-hello").read_text().splitlines()[0]
    assert made == f"#!{venv}/bin/python3"
    bd.tar_dir(venv, workdir / "venv.tar.gz", "gz")
    watch = pc.LogWatch()
    out = user(["srun", "-N2", "--pybundle=venv.tar.gz", "sh", "-c",
                "python3 -m kindpkg && kindpkg-hello && head -1 \"$(command -v kindpkg-hello)\""],
               workdir)
    rs = reports(out.stdout)
    assert len(rs) == 4 and {r["node"] for r in rs} == set(ALL_NODES[:2]), out.stdout
    for r in rs:
        assert re.fullmatch(STAGED, r["root"]), r
        assert r["kind"] == "venv" and r["prefix"] == r["root"] == r["venv"], r
        assert r["home"] is None and r["exe"] == r["root"] + "/bin/python3", r
        assert r["file"].startswith(r["root"] + "/lib/python3"), r
    shebangs = [l for l in out.stdout.splitlines() if l.startswith("#!")]
    assert len(shebangs) == 2 and all(re.fullmatch(rf"#!{STAGED}/bin/python3", s)
                                      for s in shebangs), shebangs
    job = re.search(r"/dev/shm/pylaunch/(\d+)/", rs[0]["root"]).group(1)
    kinds = stage_kinds(watch, job)
    assert kinds["node1"] == ["venv"] and kinds["node2"] == ["venv"], kinds


def test_venv_whose_home_is_not_on_the_node_fails_clearly(workdir):
    venv = workdir / "venv"
    user([PY, "-m", "venv", "--without-pip", "venv"], workdir)
    cfg = (venv / "pyvenv.cfg").read_text().replace("home = /usr/bin", "home = /opt/py9/bin")
    (venv / "pyvenv.cfg").write_text(cfg)
    bd.tar_dir(venv, workdir / "venv.tar.gz", "gz")
    watch = pc.LogWatch()
    out = pc.as_user(["srun", "-N2", "--pybundle=venv.tar.gz", "python3", "-c", "print('ran')"],
                     cwd=workdir)
    assert out.returncode != 0 and "ran" not in out.stdout
    want = ("pylaunch: --pybundle: venv: the interpreter it was made with, in /opt/py9/bin "
            "(pyvenv.cfg 'home'), is not on this node: No such file or directory")
    assert want in out.stderr, out.stderr
    for node in ALL_NODES[:2]:
        failed = watch.lines(node, r"pylaunch: stage job=\d+ .*outcome=failed")
        assert len(failed) == 1 and "kind=- " in failed[0], failed
    pc.wait_idle()
    for node in ALL_NODES:
        left = pc.cluster("exec", node, "sh", "-c", "ls -A /dev/shm/pylaunch; true").stdout.split()
        assert [n for n in left if n != ".state"] == [], (node, left)


def test_pip_target_tier_over_a_full_prefix(workdir, prefix_bundle):
    wheel = build_wheel(workdir)
    user([PY, "-m", "pip", "install", "--no-index", "--no-cache-dir", "--target", "deps",
          str(wheel)], workdir)
    out = user(["srun", "-N2", f"--pybundle={prefix_bundle},./deps", "python3", "-m", "kindpkg"],
               workdir, env={"PYTHONPATH": "/shared/should/vanish"})
    rs = reports(out.stdout)
    assert len(rs) == 2
    for r in rs:
        assert r["kind"] == "prefix" and r["prefix"] == r["root"] == r["home"], r
        assert r["exe"].startswith(r["root"] + "/bin/"), r
        assert r["file"] == r["root"] + "/kindpkg/__init__.py", r


def test_pip_target_dir_alone_runs_with_the_node_interpreter(workdir):
    wheel = build_wheel(workdir)
    user([PY, "-m", "pip", "install", "--no-index", "--no-cache-dir", "--target", "deps",
          str(wheel)], workdir)
    out = user(["srun", "-N1", "--pybundle=./deps", "sh", "-c",
                "python3 -m kindpkg; echo PYTHONPATH=$PYTHONPATH"], workdir)
    r = reports(out.stdout)[0]
    assert r["kind"] == "packages" and r["home"] is None and r["prefix"] == "/usr", r
    assert r["file"] == r["root"] + "/kindpkg/__init__.py", r
    assert f"PYTHONPATH={r['root']}\n" in out.stdout


def test_code_directory_runs_with_the_node_interpreter(workdir):
    app = workdir / "app"
    (app / "lib").mkdir(parents=True)
    (app / "helper.py").write_text("WHO = 'helper from the staged code'\n")
    (app / "main.py").write_text(
        "import json, os, sys, helper\n"
        "print(json.dumps({'exe': sys.executable, 'prefix': sys.prefix, 'who': helper.WHO,\n"
        "  'file': helper.__file__, 'kind': os.environ['PYLAUNCH_KIND'],\n"
        "  'root': os.environ['PYLAUNCH_ROOT'], 'home': os.environ.get('PYTHONHOME')}))\n")
    for p in [app, *app.rglob("*")]:
        bd.give_to_user(p)
    watch = pc.LogWatch()
    out = user(["srun", "-N2", "--pybundle=./app", "sh", "-c",
                'python3 "$PYLAUNCH_ROOT/main.py" && cd /tmp && python3 -c "import helper, '
                'sys; print(helper.WHO, sys.executable)"'], workdir,
               env={"PYTHONHOME": "/shared/bad/home"})
    rs = reports(out.stdout)
    assert len(rs) == 2, out.stdout
    for r in rs:
        assert r["kind"] == "code" and r["home"] is None and r["prefix"] == "/usr", r
        assert r["exe"] in ("/usr/bin/python3", "/bin/python3"), r
        assert r["file"] == r["root"] + "/helper.py", r
    assert len(re.findall(r"^helper from the staged code (/usr)?/bin/python3$", out.stdout,
                          re.M)) == 2, out.stdout
    job = re.search(r"/dev/shm/pylaunch/(\d+)/", rs[0]["root"]).group(1)
    assert stage_kinds(watch, job)["node1"] == ["code"]
