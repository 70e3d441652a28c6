"""Bundles for the tests: a real Python environment from Debian's interpreter,
and small hand-made archives, hostile ones included (Python's tarfile writes
what tar(1) would refuse to: '..' entries, device nodes, set-uid bits)."""
import io
import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile

import plcluster as pc

PYVER = f"python{sys.version_info.major}.{sys.version_info.minor}"
STDLIB = pathlib.Path(sysconfig.get_paths()["stdlib"])
# Large and never imported by the tests: keeps the bundle a few MB.
# Debian's site.py searches <prefix>/lib/python3/dist-packages, not site-packages.
SITE = "lib/python3/dist-packages"
SKIP_STDLIB = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "pydoc_data",
               "__pycache__", "distutils", "unittest", "config-3.11-x86_64-linux-gnu"}


def give_to_user(path):
    shutil.chown(path, pc.TEST_USER, pc.TEST_USER)
    return path


def python_env_tree(dest):
    """A relocatable prefix: bin/python3 and lib/pythonX.Y, the layout
    PYTHONHOME expects (paper 004, Table 1)."""
    (dest / "bin").mkdir(parents=True)
    shutil.copy2(os.path.realpath(sys.executable), dest / "bin" / PYVER)
    os.symlink(PYVER, dest / "bin" / "python3")
    os.symlink(PYVER, dest / "bin" / "python")
    shutil.copytree(STDLIB, dest / "lib" / PYVER, symlinks=True,
                    ignore=lambda d, names: [n for n in names if n in SKIP_STDLIB])
    site = dest / SITE
    site.mkdir(parents=True, exist_ok=True)
    (site / "pylaunch_probe.py").write_text("WHERE = 'base'\n")
    return dest


def python_env_bundle(build_dir, archive):
    """python_env_tree built under build_dir, packed into archive (.tar.zst), the test user's."""
    return tar_dir(python_env_tree(build_dir / "env"), archive, "zst")


def tar_dir(src, archive, compression="gz"):
    flags = {"gz": "-z", "zst": "--zstd", "xz": "-J", "bz2": "-j", "lz4": "--use-compress-program=lz4",
             "": None}[compression]
    cmd = ["tar", "-c", "-f", str(archive), "-C", str(src)] + ([flags] if flags else []) + ["."]
    subprocess.run(cmd, check=True)
    return give_to_user(archive)


def tar_entries(archive, entries, mode="w:gz"):
    """entries: (TarInfo, bytes-or-None) pairs, written as given."""
    with tarfile.open(archive, mode) as tar:
        for info, data in entries:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return give_to_user(archive)


def file_entry(name, data=b"x", mode=0o644):
    info = tarfile.TarInfo(name)
    info.mode = mode
    return info, data


def special_entry(name, kind, **attrs):
    info = tarfile.TarInfo(name)
    info.type = kind
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, None


def zip_files(archive, files):
    with zipfile.ZipFile(archive, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return give_to_user(archive)


def main(argv):
    """python3 bundles.py env OUT.tar.zst: the demo's Python environment bundle."""
    import tempfile
    if len(argv) != 3 or argv[1] != "env":
        sys.exit("usage: bundles.py env OUT.tar.zst")
    out = pathlib.Path(argv[2]).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        tree = python_env_tree(pathlib.Path(tmp) / "env")
        subprocess.run(["tar", "-c", "--zstd", "-f", str(out), "-C", str(tree), "."], check=True)


if __name__ == "__main__":
    main(sys.argv)
