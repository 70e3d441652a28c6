"""Archives in conda-pack's output format, built without conda-pack (not installable here: it is
on conda-forge and PyPI only). What is reproduced, from conda-pack's source (conda/conda-pack,
conda_pack/core.py Packer.add/finish and _conda_unpack_template, conda_pack/prefixes.py,
conda_pack/formats.py):

- entries named TARGET or ARCROOT/TARGET (formats.py: os.path.join(arcroot, target)), no "./";
- text files in bin/ whose shebang points inside the prefix rewritten at pack time to
  "#!/usr/bin/env NAME" (rewrite_shebang), other files with the prefix recorded as
  (path, placeholder, mode) in bin/conda-unpack's _prefix_records;
- bin/conda-unpack: "#!/usr/bin/env python", imports progressbar from bin/conda_unpack_progress.py,
  finds new_prefix as dirname(dirname(__file__)) and calls update_prefix() on every record; text
  mode replaces the placeholder, binary mode replaces it and pads with NULs to the same length;
- bin/activate and bin/deactivate (conda-pack's scripts), conda-meta/*.json;
- zip without --zip-symlinks: symlinks stored as copies of their targets (zipfile.write follows).
"""
import io
import os
import pathlib
import subprocess
import tarfile
import zipfile

import bundles as bd

# The prefix the environment was built in: conda-pack's placeholder for unmanaged files
# (Packer.add, file_mode 'unknown': placeholder = self.prefix). Long, as conda's are, so the
# staged path fits in binary replacement.
BUILD_PREFIX = "/home/builder/miniconda3/envs/" + "p" * 60 + "/analysis"

# prefixes.py, non-Windows branches, as conda-pack embeds it in conda-unpack.
PREFIXES_PY = r'''
import re
import sys
on_win = sys.platform == 'win32'


def update_prefix(path, new_prefix, placeholder, mode='text'):
    with open(path, 'rb+') as fh:
        original_data = fh.read()
        fh.seek(0)
        data = replace_prefix(original_data, mode, placeholder, new_prefix)
        if data != original_data:
            fh.write(data)
            fh.truncate()


def replace_prefix(data, mode, placeholder, new_prefix):
    if mode == 'text':
        data2 = data.replace(placeholder.encode('utf-8'), new_prefix.encode('utf-8'))
    elif mode == 'binary':
        data2 = binary_replace(data, placeholder.encode('utf-8'), new_prefix.encode('utf-8'))
        if len(data2) != len(data):
            raise ValueError("Found mismatched data length in binary file")
    else:
        raise ValueError("Invalid mode: %r" % mode)
    return data2


def binary_replace(data, placeholder, new_prefix):
    def replace(match):
        occurances = match.group().count(placeholder)
        padding = (len(placeholder) - len(new_prefix)) * occurances
        if padding < 0:
            raise ValueError("negative padding")
        return match.group().replace(placeholder, new_prefix) + b'\0' * padding

    pat = re.compile(re.escape(placeholder) + b'([^\0]*?)\0')
    return pat.sub(replace, data)
'''

PROGRESS_PY = '''\
import contextlib


@contextlib.contextmanager
def progressbar(seq, enabled=True):
    yield seq
'''

# core.py _conda_unpack_template, verbatim but for the version.
UNPACK_TEMPLATE = """\
{shebang}
# Import progress bar to display unpack progress
from conda_unpack_progress import progressbar

{prefixes_py}

_prefix_records = [
{prefix_records}
]

if __name__ == '__main__':
    import os
    import argparse
    parser = argparse.ArgumentParser(
            prog='conda-unpack',
            description=('Finish unpacking the environment after unarchiving. '
                         'Cleans up absolute prefixes in any remaining files'))
    parser.add_argument('--version',
                        action='store_true',
                        help='Show version then exit')
    parser.add_argument('--verbose', '-v',
                        action='store_true',
                        help='Show progress bar during unpacking')
    args = parser.parse_args()
    # Manually handle version printing to output to stdout in python < 3.4
    if args.version:
        print('conda-unpack {version}')
    else:
        script_dir = os.path.dirname(__file__)
        new_prefix = os.path.abspath(os.path.dirname(script_dir))

        if args.verbose and _prefix_records:
            print("Unpacking environment...")
            with progressbar(_prefix_records, enabled=True) as records:
                for path, placeholder, mode in records:
                    new_path = os.path.join(new_prefix, path)
                    update_prefix(new_path, new_prefix, placeholder, mode=mode)
        else:
            for path, placeholder, mode in _prefix_records:
                new_path = os.path.join(new_prefix, path)
                update_prefix(new_path, new_prefix, placeholder, mode=mode)
"""

BINARY_LEN = 512


def binary_blob(prefix):
    """A stand-in for a shared library with an embedded, NUL-terminated prefix (RPATH-like)."""
    head = b"\x7fELF\x02\x01\x01\0" + b"\0" * 8
    data = head + prefix.encode() + b"/lib:" + prefix.encode() + b"/lib64\0tail\0"
    return data + b"\0" * (BINARY_LEN - len(data))


def env_with_placeholders(dest):
    """The prefix as it sits in the archive: bundles.python_env_tree plus files that name
    BUILD_PREFIX, and the prefix records conda-unpack must fix."""
    bd.python_env_tree(dest)
    (dest / "etc").mkdir()
    (dest / "etc" / "analysis.conf").write_text(f"data_dir = {BUILD_PREFIX}/share/analysis\n")
    (dest / "lib" / "libanalysis.so").write_bytes(binary_blob(BUILD_PREFIX))
    # Packer.add: a text file in bin/ whose shebang points inside the prefix is rewritten.
    (dest / "bin" / "analysis-tool").write_text(
        f"#!/usr/bin/env {bd.PYVER}\nimport sys\nprint('tool runs', sys.prefix)\n")
    (dest / "bin" / "analysis-tool").chmod(0o755)
    (dest / "bin" / "activate").write_text("# conda-pack's bin/activate (stand-in)\n")
    (dest / "bin" / "deactivate").write_text("# conda-pack's bin/deactivate (stand-in)\n")
    (dest / "conda-meta").mkdir()
    (dest / "conda-meta" / "analysis-1.0-0.json").write_text(
        '{"extracted_package_dir": "", "name": "analysis", "version": "1.0"}\n')
    records = [("etc/analysis.conf", BUILD_PREFIX, "text"),
               ("lib/libanalysis.so", BUILD_PREFIX, "binary")]
    (dest / "bin" / "conda_unpack_progress.py").write_text(PROGRESS_PY)
    script = UNPACK_TEMPLATE.format(shebang="#!/usr/bin/env python",
                                    prefix_records=",\n".join(repr(r) for r in records),
                                    prefixes_py=PREFIXES_PY, version="0.8.1")
    (dest / "bin" / "conda-unpack").write_text(script)
    (dest / "bin" / "conda-unpack").chmod(0o755)
    return dest


def _targets(tree):
    for dirpath, dirnames, filenames in os.walk(tree):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            full = pathlib.Path(dirpath) / name
            yield full, str(full.relative_to(tree))


def pack(tree, out, fmt, arcroot=""):
    """out in conda-pack's format fmt: tar.gz, tar.bz2, tar.zst, zip."""
    if fmt == "zip":
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for full, target in _targets(tree):
                if full.is_dir() and not full.is_symlink():
                    continue
                z.write(full, os.path.join(arcroot, target))
        return bd.give_to_user(out)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for full, target in _targets(tree):
            tar.add(full, os.path.join(arcroot, target), recursive=False)
    raw = buf.getvalue()
    if fmt == "tar.gz":
        import gzip
        data = gzip.compress(raw)
    elif fmt == "tar.bz2":
        import bz2
        data = bz2.compress(raw)
    elif fmt == "tar.zst":
        data = subprocess.run(["zstd", "-q", "-c"], input=raw, capture_output=True,
                              check=True).stdout
    else:
        raise ValueError(fmt)
    pathlib.Path(out).write_bytes(data)
    return bd.give_to_user(out)
