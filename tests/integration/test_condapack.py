"""conda-pack output out of the box (issue 14): archives in conda-pack's layout, with its
placeholders and its generated bin/conda-unpack (condapack.py says what is reproduced from its
source), in the formats libarchive reads, with and without --arcroot."""
import json
import re

import pytest

import condapack as cp
import plcluster as pc

CHECK = r"""
import json, os, sys
home = sys.prefix
conf = open(os.path.join(home, "etc/analysis.conf")).read()
blob = open(os.path.join(home, "lib/libanalysis.so"), "rb").read()
lib = (home + "/lib:" + home + "/lib64").encode()
print(json.dumps({"prefix": home, "root": os.environ["PYLAUNCH_ROOT"],
                  "kind": os.environ["PYLAUNCH_KIND"], "home": os.environ.get("PYTHONHOME"),
                  "conf": conf, "blob_len": len(blob), "blob_has_new": lib + b"\0" in blob,
                  "blob_has_old": b"anaconda" in blob or b"builder" in blob,
                  "blob_tail": blob.index(b"tail\0") > 0,
                  "node": os.environ["SLURMD_NODENAME"]}))
"""


@pytest.fixture(scope="module")
def env_tree(tmp_path_factory):
    return cp.env_with_placeholders(tmp_path_factory.mktemp("condapack") / "env")


@pytest.mark.parametrize("fmt,arcroot", [("tar.gz", ""), ("tar.bz2", ""), ("tar.zst", ""),
                                         ("zip", ""), ("tar.gz", "analysis"),
                                         ("zip", "analysis")])
def test_conda_pack_bundle_unpacks_and_runs(workdir, env_tree, fmt, arcroot):
    archive = cp.pack(env_tree, workdir / f"analysis.{fmt}", fmt, arcroot)
    out = pc.as_user(["srun", "-N2", f"--pybundle={archive.name}", "sh", "-c",
                      f"analysis-tool && python3 -c '{CHECK}'"], cwd=workdir, timeout=180)
    assert out.returncode == 0, out.stderr
    tools = [l for l in out.stdout.splitlines() if l.startswith("tool runs")]
    rs = [json.loads(l) for l in out.stdout.splitlines() if l.startswith("{")]
    assert len(rs) == 2 and {r["node"] for r in rs} == {"node1", "node2"}, out.stdout
    for r in rs:
        assert re.fullmatch(r"/dev/shm/pylaunch/\d+/[0-9a-f]{16}", r["root"]), r
        env = r["root"] + ("/" + arcroot if arcroot else "")
        assert r["kind"] == "prefix" and r["prefix"] == env and r["home"] == env, r
        assert r["conf"] == f"data_dir = {env}/share/analysis\n", r
        assert r["blob_len"] == cp.BINARY_LEN and r["blob_has_new"] and r["blob_tail"], r
        assert not r["blob_has_old"], r
    assert sorted(tools) == sorted(f"tool runs {r['prefix']}" for r in rs), out.stdout


def test_conda_unpack_version_answers_like_the_real_one(workdir, env_tree):
    """The generated script is a working conda-unpack, not a stand-in: it parses its options."""
    archive = cp.pack(env_tree, workdir / "analysis.tar.gz", "tar.gz")
    out = pc.as_user(["srun", "-N1", f"--pybundle={archive.name}", "conda-unpack", "--version"],
                     cwd=workdir)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "conda-unpack 0.8.1\n"
