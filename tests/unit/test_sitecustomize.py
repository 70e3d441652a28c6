"""Tests of the --pymonitor hook (share/monitor/sitecustomize.py) with real interpreters.

    /usr/bin/python3 -m pytest tests/unit/test_sitecustomize.py

Every test runs programs in fresh interpreters, with the hook set up as the prolog
and task_init do it (a copy in <spool>/.hook, first on PYTHONPATH), and compares
with the same program run without the hook where behaviour must not change. The
interpreters are Debian's python3 and, when present, pyenv's 3.6 to 3.13
(PYLAUNCH_TEST_PYTHONS=path:path overrides the list).
"""
import glob
import os
import shutil
import signal
import subprocess
import textwrap
import time

import pytest

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARE = os.path.join(TOP, 'share', 'monitor')
# what the prolog copies into the spool's .hook (monitor_spool.c): installed name -> spool name
HOOK_FILES = (('sitecustomize.py', 'sitecustomize.py'), ('sitecustomize.py', 'usercustomize.py'),
              ('pylaunch_monitor.py', 'pylaunch_monitor.py'))
HOOK = os.path.join(SHARE, 'sitecustomize.py')
PTH = os.path.join(SHARE, 'pylaunch-monitor.pth')
KNOWN_KEYS = {'pid', 'ppid', 'job', 'rank', 'ranksrc', 'step', 'start', 'executable', 'python',
              'pyver', 'implementation', 'stdlib', 'container', 'hook', 'forked', 'inherited',
              'main', 'import', 'unimport', 'version', 'dist', 'truncated', 'lost', 'status',
              'exit'}


def interpreters():
    if os.environ.get('PYLAUNCH_TEST_PYTHONS'):
        return os.environ['PYLAUNCH_TEST_PYTHONS'].split(':')
    found = ['/usr/bin/python3']
    found += sorted(glob.glob(os.path.expanduser('~/.pyenv/versions/3.*/bin/python3')))
    return found


PYTHONS = interpreters()
DEBIAN = '/usr/bin/python3'
STARTUP = None


def startup_modules():
    """Top-level modules the interpreters import before any program (the .pth files of
    Debian's setuptools and matplotlib): the hook records them too, as it should, and
    the tests that count a program's own imports leave them aside."""
    names = set()
    for python in PYTHONS:
        out = subprocess.run([python, '-c', 'import sys; print(" ".join(sys.modules))'],
                             stdout=subprocess.PIPE, env={'PATH': os.environ['PATH']})
        names.update(n for n in out.stdout.decode().split() if '.' not in n)
    return names


def base_env():
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(('PYLAUNCH_', 'PYTHON', 'SLURM_'))}
    env['PYTHONDONTWRITEBYTECODE'] = '1'  # as in many containers: the hook caches itself
    return env


class Job:
    """A job's spool on a node, with the hook copied in as the prolog does."""

    def __init__(self, tmp_path):
        self.spool = str(tmp_path / 'spool')
        self.hook_dir = os.path.join(self.spool, '.hook')
        os.makedirs(self.hook_dir)
        for source, name in HOOK_FILES:
            shutil.copy(os.path.join(SHARE, source), os.path.join(self.hook_dir, name))
        self.work = str(tmp_path / 'work')
        os.makedirs(self.work)

    def env(self, extra_path=None, **more):
        env = base_env()
        path = [self.hook_dir] + ([extra_path] if extra_path else [])
        env.update(PYTHONPATH=':'.join(path), PYLAUNCH_MONITOR_SPOOL=self.spool,
                   PYLAUNCH_MONITOR_JOB='4242', SLURM_PROCID='5', SLURM_STEP_ID='0')
        env.update(more)
        return env

    def plain_env(self, extra_path=None):
        env = base_env()
        if extra_path:
            env['PYTHONPATH'] = extra_path
        return env

    def write(self, name, text):
        path = os.path.join(self.work, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w') as f:
            f.write(textwrap.dedent(text))
        return path

    def logs(self):
        out = []
        for path in sorted(glob.glob(os.path.join(self.spool, '*.log'))):
            out.append(parse_log(path))
        return out


def parse_log(path):
    global STARTUP
    if STARTUP is None:
        STARTUP = startup_modules()
    with open(path, 'rb') as f:
        data = f.read()
    # Preallocated: a log ends at its first NUL byte (the rest are zeros, cut off at a
    # normal exit).
    end = data.find(b'\0')
    if end >= 0:
        assert data[end:] == b'\0' * (len(data) - end), path
        data = data[:end]
    text = data.decode('utf-8')
    assert text.endswith('\n'), path
    lines = text.split('\n')[:-1]
    assert lines[0] == 'pylaunch-monitor 2'
    log = {'path': path, 'imports': [], 'retracted': [], 'versions': {}, 'exit': None,
           'dists': {}, 'mains': [], 'mode': os.stat(path).st_mode}
    for line in lines[1:]:
        fields = line.split('\t')
        assert fields[0] in KNOWN_KEYS, line
        assert all(f.isprintable() for f in fields), line
        if fields[0] == 'import':
            assert len(fields) == 2
            assert fields[1] not in log['imports'], 'recorded twice: ' + line
            log['imports'].append(fields[1])
        elif fields[0] == 'unimport':
            assert len(fields) == 2 and fields[1] in log['imports'], line
            log['imports'].remove(fields[1])
            log['retracted'].append(fields[1])
        elif fields[0] == 'version':
            assert len(fields) == 3 and fields[1] in log['imports']
            log['versions'][fields[1]] = fields[2]
        elif fields[0] == 'dist':
            assert len(fields) == 5 and fields[1] in log['imports'], line
            assert fields[4] in ('bundle', 'venv', 'user', 'system', 'other'), line
            assert fields[1] not in log['dists'], 'dist twice: ' + line
            log['dists'][fields[1]] = tuple(fields[2:])
        else:
            if fields[0] == 'main':
                log['mains'].append(fields[1])
            assert len(fields) == 2, line
            log[fields[0]] = fields[1]
    log['all_imports'] = list(log['imports'])
    log['imports'] = [n for n in log['imports'] if n not in STARTUP]
    log['versions'] = {n: v for n, v in log['versions'].items() if n not in STARTUP}
    return log


def run(python, args, env, cwd, **kw):
    return subprocess.run([python] + args, env=env, cwd=cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=120, **kw)


def same_behaviour(python, job, args, extra_path=None, **env_more):
    with_hook = run(python, args, job.env(extra_path, **env_more), job.work)
    without = run(python, args, job.plain_env(extra_path), job.work)
    assert (with_hook.returncode, with_hook.stdout, with_hook.stderr) == \
        (without.returncode, without.stdout, without.stderr)
    return with_hook


@pytest.fixture
def job(tmp_path):
    return Job(tmp_path)


def make_package(job, name='mypkg', version='2.5.1', body=''):
    job.write(name + '/__init__.py', '''\
        __version__ = %r
        from . import sub
        %s
        ''' % (version, body))
    job.write(name + '/sub.py', 'VALUE = 42\n')


# ---------------------------------------------------------------------------- what is recorded

@pytest.mark.parametrize('python', PYTHONS)
def test_records_non_stdlib_package_with_version_not_stdlib(job, python):
    make_package(job)
    job.write('main.py', '''\
        import json, mypkg, multiprocessing
        print(mypkg.sub.VALUE)
        ''')
    result = same_behaviour(python, job, ['main.py'])
    assert result.stdout == b'42\n'
    [log] = job.logs()
    assert log['imports'] == ['mypkg', 'multiprocessing']  # json is standard library
    assert log['versions'] == {'mypkg': '2.5.1'}
    assert log['pid'].isdigit() and log['ppid'].isdigit()
    assert (log['job'], log['rank'], log['step']) == ('4242', '5', '0')
    assert log['main'] == os.path.join(job.work, 'main.py')
    assert log['executable'] and log['python'] and log['pyver'].count('.') == 2
    assert log['stdlib'] in ('sys.stdlib_module_names', 'fallback')
    assert log['exit'] is not None and float(log['exit']) >= float(log['start'])
    assert log['mode'] & 0o777 == 0o600


def test_records_numpy_version_when_installed(job):
    probe = run(DEBIAN, ['-c', 'import numpy; print(numpy.__version__)'], base_env(), job.work)
    if probe.returncode != 0:
        pytest.skip("Debian's python3-numpy is not installed")
    result = same_behaviour(DEBIAN, job, ['-c', 'import numpy; print(numpy.pi)'])
    assert result.returncode == 0
    [log] = job.logs()
    assert 'numpy' in log['imports']
    assert log['versions']['numpy'] == probe.stdout.decode().strip()
    assert log['main'] == '-c'


def test_module_main_and_version_set_late(job):
    # __version__ assigned after the package's last import: completed at exit.
    job.write('late/__init__.py', 'import late.sub\n__version__ = "0.9"\n')
    job.write('late/sub.py', 'X = 1\n')
    job.write('late/__main__.py', 'import late\nprint("main", late.__version__)\n')
    result = same_behaviour(DEBIAN, job, ['-m', 'late'])
    assert result.stdout == b'main 0.9\n'
    [log] = job.logs()
    assert log['main'] == '-m late'
    assert log['imports'] == ['late']
    assert log['versions'] == {'late': '0.9'}


def test_probes_and_failed_imports_are_not_recorded(job):
    make_package(job, 'installed_only')
    job.write('main.py', '''\
        import importlib.util
        assert importlib.util.find_spec('installed_only') is not None
        try:
            import not_there_at_all
        except ImportError:
            pass
        import importlib
        try:
            importlib.import_module('bad-name')
        except ImportError:
            pass
        ''')
    job.write('bad-name.py', 'X = 1\n')
    assert same_behaviour(DEBIAN, job, ['main.py']).returncode == 0
    [log] = job.logs()
    assert log['imports'] == []
    assert 'not_there_at_all' in log['retracted'] and 'installed_only' in log['retracted']


def test_non_string_version_and_lazy_getattr_are_left_alone(job):
    job.write('odd/__init__.py', '''\
        __version__ = (1, 2)
        def __getattr__(name):
            raise SystemExit('module __getattr__ called for ' + name)
        ''')
    job.write('main.py', 'import odd, json\nprint("ok")\n')
    result = same_behaviour(DEBIAN, job, ['main.py'])
    assert result.stdout == b'ok\n'
    [log] = job.logs()
    assert log['imports'] == ['odd'] and log['versions'] == {}


# ---------------------------------------------------------------------------- abnormal ends

def test_sigkill_keeps_the_imports_before_the_kill(job):
    make_package(job)
    job.write('main.py', '''\
        import mypkg, time, sys
        sys.stdout.write('ready\\n'); sys.stdout.flush()
        time.sleep(60)
        ''')
    child = subprocess.Popen([DEBIAN, 'main.py'], env=job.env(), cwd=job.work,
                             stdout=subprocess.PIPE)
    assert child.stdout.readline() == b'ready\n'
    child.send_signal(signal.SIGKILL)
    child.wait()
    [log] = job.logs()
    assert log['imports'] == ['mypkg'] and log['versions'] == {'mypkg': '2.5.1'}
    assert log['exit'] is None


def test_sigkill_right_after_a_leaf_module(job):
    # A one-file module that imports nothing new, killed right after: still on record.
    job.write('leaf.py', '__version__ = "1.0"\n')
    job.write('main.py', '''\
        import leaf, sys, time
        sys.stdout.write('ready\\n'); sys.stdout.flush()
        time.sleep(60)
        ''')
    child = subprocess.Popen([DEBIAN, 'main.py'], env=job.env(), cwd=job.work,
                             stdout=subprocess.PIPE)
    assert child.stdout.readline() == b'ready\n'
    child.send_signal(signal.SIGKILL)
    child.wait()
    [log] = job.logs()
    assert log['imports'] == ['leaf'] and log['exit'] is None


def test_sigterm_default_and_own_handler_unchanged(job):
    job.write('main.py', '''\
        import os, signal, sys, time
        print(signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, flush=True)
        if len(sys.argv) > 1:
            signal.signal(signal.SIGTERM, lambda *a: (os.write(1, b'handled\\n'), sys.exit(7)))
        print('ready', flush=True)
        time.sleep(60)
        ''')
    for args, want_rc, want_out in ((['main.py'], -signal.SIGTERM, b'True\nready\n'),
                                    (['main.py', 'own'], 7, b'True\nready\nhandled\n')):
        child = subprocess.Popen([DEBIAN] + args, env=job.env(), cwd=job.work,
                                 stdout=subprocess.PIPE)
        out = child.stdout.readline() + child.stdout.readline()
        child.send_signal(signal.SIGTERM)
        out += child.stdout.read()
        assert (child.wait(), out) == (want_rc, want_out)


@pytest.mark.parametrize('python', PYTHONS)
def test_os_exit_keeps_imports_and_exit_code(job, python):
    make_package(job)
    job.write('main.py', 'import mypkg, os\nprint("bye", flush=True)\nos._exit(3)\n')
    result = same_behaviour(python, job, ['main.py'])
    assert result.returncode == 3
    [log] = job.logs()
    assert log['imports'] == ['mypkg'] and log['exit'] is None


def test_segfault_keeps_imports(job):
    make_package(job)
    job.write('main.py', 'import mypkg, ctypes\nctypes.string_at(0)\n')
    result = run(DEBIAN, ['main.py'], job.env(), job.work)
    assert result.returncode == -signal.SIGSEGV
    [log] = job.logs()
    assert log['imports'] == ['mypkg', 'ctypes'] and log['exit'] is None


def test_exception_and_exit_codes_and_output_unchanged(job):
    job.write('boom.py', 'import sys\nprint("out")\nprint("err", file=sys.stderr)\nraise ValueError("x")\n')
    job.write('code.py', 'import sys\nsys.exit(42)\n')
    assert same_behaviour(DEBIAN, job, ['boom.py']).returncode == 1
    assert same_behaviour(DEBIAN, job, ['code.py']).returncode == 42
    assert same_behaviour(DEBIAN, job, ['-c', 'import sys; print(sys.argv, sys.flags.no_site)',
                                        'a', 'b']).returncode == 0
    assert all(log['exit'] is not None for log in job.logs())


def test_interactive_stdin_main(job):
    result = run(DEBIAN, ['-'], job.env(), job.work, input=b'print(6 * 7)\n')
    assert result.stdout == b'42\n'
    assert job.logs()[0]['main'] == '-'


# ---------------------------------------------------------------------------- processes

def test_fork_children_get_their_own_logs(job):
    # close() and join(): every worker ends by itself (os._exit), none is killed by
    # terminate() before its first instruction; no timing in the assertions.
    make_package(job)
    make_package(job, name='wpkg', version='0.3')
    job.write('main.py', '''\
        import multiprocessing as mp, mypkg
        def init():
            import wpkg
        def work(x):
            import json
            return x * 2
        if __name__ == '__main__':
            with mp.get_context('fork').Pool(2, initializer=init) as pool:
                print(pool.map(work, range(4)))
                pool.close()
                pool.join()
        ''')
    result = same_behaviour(DEBIAN, job, ['main.py'])
    assert result.stdout == b'[0, 2, 4, 6]\n'
    logs = job.logs()
    parents = [log for log in logs if 'forked' not in log]
    children = [log for log in logs if log.get('forked') == '1']
    assert len(parents) == 1 and len(children) == 2
    assert set(parents[0]['imports']) == {'mypkg', 'multiprocessing'}
    for child in children:
        assert child['ppid'] == parents[0]['pid']
        # The parent's packages are the parent's: the child lists what it imported itself.
        assert child['imports'] == ['wpkg']
        assert child['versions'] == {'wpkg': '0.3'}
        assert int(child['inherited']) == len(parents[0]['all_imports'])
        # Ended with os._exit(0) by multiprocessing: a normal end, with its status.
        assert child['exit'] is not None and child['status'] == '0'


def test_fork_pool_of_64_counts_each_package_once_per_process(job):
    make_package(job)
    make_package(job, name='wpkg', version='0.3')
    job.write('main.py', '''\
        import multiprocessing as mp, mypkg
        def init():
            import wpkg
        def work(x):
            return x
        if __name__ == '__main__':
            with mp.get_context('fork').Pool(64, initializer=init) as pool:
                print(sum(pool.map(work, range(640))))
                pool.close()
                pool.join()
        ''')
    result = run(DEBIAN, ['main.py'], job.env(), job.work)
    assert result.stdout == b'204480\n' and result.returncode == 0
    logs = job.logs()
    children = [log for log in logs if log.get('forked') == '1']
    assert len(logs) == 65 and len(children) == 64
    uses = {}
    for log in logs:
        for name in log['imports']:
            uses[name] = uses.get(name, 0) + 1
    assert uses == {'mypkg': 1, 'multiprocessing': 1, 'wpkg': 64}
    assert sum(1 for log in logs if log['exit'] is None) == 0  # none incomplete


def test_spawned_interpreters_are_monitored(job):
    job.write('main.py', '''\
        import subprocess, sys
        subprocess.run([sys.executable, '-c', 'import xml, multiprocessing'], check=True)
        ''')
    assert same_behaviour(DEBIAN, job, ['main.py']).returncode == 0
    mains = sorted(log['main'] for log in job.logs())
    assert mains == ['-c', os.path.join(job.work, 'main.py')]


# ---------------------------------------------------------------------------- coexistence

@pytest.mark.parametrize('python', PYTHONS)
def test_chains_to_the_next_sitecustomize(job, python):
    job.write('user/sitecustomize.py', '''\
        import os, builtins
        builtins.USER_SITECUSTOMIZE = __file__
        ''')
    user = os.path.join(job.work, 'user')
    job.write('main.py', 'import builtins, sys\nprint(builtins.USER_SITECUSTOMIZE)\n'
                         'print(sys.modules["sitecustomize"].__file__)\n')
    result = same_behaviour(python, job, ['main.py'], extra_path=user)
    want = os.path.join(user, 'sitecustomize.py')
    assert result.stdout.decode().split('\n')[:2] == [want, want]
    assert len(job.logs()) == 1


def test_failing_user_sitecustomize_reported_as_without(job):
    job.write('user/sitecustomize.py', 'raise RuntimeError("broken site")\n')
    user = os.path.join(job.work, 'user')
    result = same_behaviour(DEBIAN, job, ['-c', 'print("runs")'], extra_path=user)
    assert b'broken site' in result.stderr and result.stdout == b'runs\n'
    assert len(job.logs()) == 1


def test_sys_path_and_meta_path_replacement_unchanged(job):
    job.write('main.py', '''\
        import sys
        print([p for p in sys.path if 'spool' in p])
        sys.meta_path[:] = [f for f in sys.meta_path if not hasattr(f, '_pylaunch_monitor')]
        import json
        print(json.dumps([1]))
        sys.meta_path = list(sys.meta_path)
        import csv
        print('ok')
        ''')
    result = same_behaviour(DEBIAN, job, ['main.py'])
    assert result.stdout == b'[]\n[1]\nok\n'


def test_descriptor_reused_by_program_is_not_written(job):
    job.write('main.py', '''\
        import os
        os.closerange(3, 100)
        fd = os.open('mine.txt', os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        import xml.dom, multiprocessing
        os.write(fd, b'only mine\\n')
        os.close(fd)
        ''')
    assert run(DEBIAN, ['main.py'], job.env(), job.work).returncode == 0
    with open(os.path.join(job.work, 'mine.txt'), 'rb') as f:
        assert f.read() == b'only mine\n'
    [log] = job.logs()
    assert log['imports'] == ['multiprocessing'] and log['exit'] is not None


def test_hook_twice_on_path_records_once(job):
    env = job.env(extra_path=job.hook_dir)
    assert run(DEBIAN, ['-c', 'import multiprocessing'], env, job.work).returncode == 0
    [log] = job.logs()
    assert log['imports'] == ['multiprocessing']


# ---------------------------------------------------------------------------- not monitored

@pytest.mark.parametrize('flag', ['-S', '-I', '-E'])
def test_flags_disable_monitoring(job, flag):
    result = same_behaviour(DEBIAN, job, [flag, '-c', 'import multiprocessing; print(1)'])
    assert result.stdout == b'1\n'
    assert job.logs() == []


@pytest.mark.parametrize('value', ['0', 'no', 'OFF', 'false'])
def test_environment_opt_out(job, value):
    same_behaviour(DEBIAN, job, ['-c', 'import sys; print(len(sys.meta_path))'],
                            PYLAUNCH_MONITOR=value)
    assert job.logs() == []


def test_unwritable_or_missing_spool_changes_nothing(job):
    os.chmod(job.spool, 0o500)
    try:
        for spool in (job.spool, '/nonexistent/spool'):
            result = same_behaviour(DEBIAN, job, ['-c', 'import multiprocessing, sys; '
                                                  'print(sys.argv); sys.exit(5)', 'x'],
                                    PYLAUNCH_MONITOR_SPOOL=spool)
            assert result.returncode == 5
    finally:
        os.chmod(job.spool, 0o700)
    if os.geteuid() != 0:
        assert job.logs() == []


# ---------------------------------------------------------------------------- cost

def test_byte_code_cached_in_the_spool(job):
    for _ in range(2):
        assert run(DEBIAN, ['-c', 'pass'], job.env(), job.work).returncode == 0
    cached = glob.glob(os.path.join(job.hook_dir, '__pycache__', 'sitecustomize.*.pyc'))
    assert len(cached) == 1
    st = os.stat(cached[0])
    time.sleep(0.01)
    assert run(DEBIAN, ['-c', 'pass'], job.env(), job.work).returncode == 0
    assert os.stat(cached[0]).st_mtime == st.st_mtime  # read, not rewritten


def test_runs_from_the_source_tree(tmp_path):
    # PYTHONPATH=share/monitor/ directly, as a site could do without the prolog's copy.
    spool = tmp_path / 'spool'
    spool.mkdir()
    env = dict(base_env(), PYTHONPATH=os.path.join(TOP, 'share', 'monitor'), PYLAUNCH_MONITOR_SPOOL=str(spool),
               PYTHONPYCACHEPREFIX=str(tmp_path / 'pycache'))
    result = run(DEBIAN, ['-c', 'import sys, multiprocessing; print(sys.path[0])'], env, str(tmp_path))
    assert result.stdout == b'\n' and result.returncode == 0
    [log] = [parse_log(p) for p in glob.glob(str(spool / '*.log'))]
    assert log['imports'] == ['multiprocessing']


# ---------------------------------------------------------------------------- issue 15

def make_dist(site, dist, version, tops=None, record_only=False, egg=False):
    """An installed distribution's metadata as pip leaves it, beside its packages."""
    name = dist.replace('-', '_')
    meta_dir = os.path.join(site, '%s-%s.%s' % (name, version, 'egg-info' if egg else 'dist-info'))
    os.makedirs(meta_dir, exist_ok=True)
    with open(os.path.join(meta_dir, 'PKG-INFO' if egg else 'METADATA'), 'w') as f:
        f.write('Metadata-Version: 2.1\nName: %s\nVersion: %s\n\nlong text\n' % (dist, version))
    tops = tops or [name]
    if record_only:
        with open(os.path.join(meta_dir, 'RECORD'), 'w') as f:
            for top in tops:
                f.write('%s/__init__.py,sha256=x,1\n' % top)
            f.write('%s/RECORD,,\n' % os.path.basename(meta_dir))
    else:
        with open(os.path.join(meta_dir, 'top_level.txt'), 'w') as f:
            f.write('\n'.join(tops) + '\n')
    for top in tops:
        os.makedirs(os.path.join(site, top), exist_ok=True)
        with open(os.path.join(site, top, '__init__.py'), 'w') as f:
            f.write('VALUE = 1\n')


def test_ranks_from_mpi_launchers_before_slurm(job):
    # Issue 15 defect 2: 4 Open MPI ranks all had SLURM_PROCID=0 from the batch step.
    cases = [({'OMPI_COMM_WORLD_RANK': '3'}, '3', 'OMPI_COMM_WORLD_RANK'),
             ({'PMIX_RANK': '2'}, '2', 'PMIX_RANK'),
             ({'PMI_RANK': '1'}, '1', 'PMI_RANK'),
             ({'MV2_COMM_WORLD_RANK': '7'}, '7', 'MV2_COMM_WORLD_RANK'),
             ({}, '0', 'SLURM_PROCID')]
    for i, (extra, rank, source) in enumerate(cases):
        spool = os.path.join(job.spool, str(i))
        os.makedirs(spool)
        env = job.env(SLURM_PROCID='0', PYLAUNCH_MONITOR_SPOOL=spool, **extra)
        assert run(DEBIAN, ['-c', 'pass'], env, job.work).returncode == 0
        [path] = glob.glob(os.path.join(spool, '*.log'))
        log = parse_log(path)
        assert (log['rank'], log['ranksrc']) == (rank, source)


def test_versions_distributions_and_origins_from_metadata(job, tmp_path):
    # Issue 15 defect 3: a str subclass, a module __getattr__, no __version__ at all,
    # attr/attrs from one distribution, an egg-info; origins user, other, bundle, system.
    site = str(tmp_path / 'other')
    make_dist(site, 'onlymeta', '1.2.3')  # no __version__: metadata only
    make_dist(site, 'attrs', '23.1.0', tops=['attr', 'attrs'], record_only=True)
    make_dist(site, 'PyYAML', '6.0.1', tops=['yaml'])
    make_dist(site, 'oldstyle', '0.9', egg=True)
    job.write('strsub/__init__.py', '''\
        class TorchVersion(str):
            pass
        __version__ = TorchVersion('2.1.0+cu118')
        ''')
    job.write('lazy/__init__.py', 'def __getattr__(name):\n    raise AttributeError(name)\n')
    make_dist(job.work, 'lazy', '4.17.3')
    userbase = str(tmp_path / 'userbase')
    user_site = subprocess.run([DEBIAN, '-c', 'import site; print(site.getusersitepackages())'],
                               env=dict(job.plain_env(), PYTHONUSERBASE=userbase),
                               stdout=subprocess.PIPE, check=True).stdout.decode().strip()
    make_dist(user_site, 'usertool', '5.0')
    bundle = str(tmp_path / 'bundle')
    make_dist(bundle, 'bundled', '0.1')
    code = 'import onlymeta, attr, attrs, yaml, oldstyle, strsub, lazy, usertool, bundled, numpy'
    env = job.env(extra_path=site + ':' + bundle, PYTHONUSERBASE=userbase,
                  PYLAUNCH_ROOT=bundle)
    result = run(DEBIAN, ['-c', code], env, job.work)
    assert result.returncode == 0, result.stderr
    [log] = job.logs()
    dists = log['dists']
    assert dists['onlymeta'] == ('onlymeta', '1.2.3', 'other')
    assert dists['attr'] == ('attrs', '23.1.0', 'other')
    assert dists['attrs'] == ('attrs', '23.1.0', 'other')
    assert dists['yaml'] == ('PyYAML', '6.0.1', 'other')
    assert dists['oldstyle'] == ('oldstyle', '0.9', 'other')
    assert dists['lazy'] == ('lazy', '4.17.3', 'other')
    assert dists['strsub'] == ('-', '-', 'other')
    assert dists['usertool'] == ('usertool', '5.0', 'user')
    assert dists['bundled'] == ('bundled', '0.1', 'bundle')
    import numpy
    assert dists['numpy'] == ('numpy', numpy.__version__, 'system')
    # __version__ (a str subclass) as it appeared, for processes killed before exit.
    assert log['versions']['strsub'] == '2.1.0+cu118'
    assert 'lazy' not in log['versions'] and 'onlymeta' not in log['versions']


def test_versions_in_a_venv(job, tmp_path):
    venv = str(tmp_path / 'venv')
    subprocess.run([DEBIAN, '-m', 'venv', '--without-pip', venv], check=True)
    site = glob.glob(os.path.join(venv, 'lib', 'python3*', 'site-packages'))[0]
    make_dist(site, 'venvtool', '2.0')
    result = run(os.path.join(venv, 'bin', 'python'), ['-c', 'import venvtool'], job.env(),
                 job.work)
    assert result.returncode == 0, result.stderr
    [log] = job.logs()
    assert log['dists']['venvtool'] == ('venvtool', '2.0', 'venv')


def test_pth_file_monitors_a_job_that_overwrites_pythonpath(job, tmp_path):
    # Issue 15 defect 1: PYTHONPATH=... (not appended) used to leave no log at all.
    venv = str(tmp_path / 'venv')
    subprocess.run([DEBIAN, '-m', 'venv', '--without-pip', venv], check=True)
    site = glob.glob(os.path.join(venv, 'lib', 'python3*', 'site-packages'))[0]
    shutil.copy(PTH, site)  # as a site installs it
    mypkg = str(tmp_path / 'mine')
    make_dist(mypkg, 'mine', '1.0')
    env = job.env()
    env['PYTHONPATH'] = mypkg  # the job script's own, the hook's directory gone
    python = os.path.join(venv, 'bin', 'python')
    result = run(python, ['-c', 'import mine; print("ok")'], env, job.work)
    plain = run(python, ['-c', 'import mine; print("ok")'], dict(job.plain_env(), PYTHONPATH=mypkg),
                job.work)
    assert (result.returncode, result.stdout, result.stderr) == (0, b'ok\n', b'')
    assert (plain.returncode, plain.stdout, plain.stderr) == (0, b'ok\n', b'')
    [log] = job.logs()
    assert log['hook'] == 'pth' and log['imports'] == ['mine']
    # Outside a monitored job the .pth does nothing.
    assert run(python, ['-c', 'import sys; print("pylaunch_monitor" in sys.modules)'],
               job.plain_env(), job.work).stdout == b'False\n'


def test_lmod_style_sitecustomize_first_still_monitored(job, tmp_path):
    # A module system prepends a directory with a sitecustomize.py of its own.
    lmod = tmp_path / 'lmod'
    lmod.mkdir()
    (lmod / 'sitecustomize.py').write_text('print("lmod sitecustomize")\n')
    make_package(job)
    env = job.env()
    env['PYTHONPATH'] = '%s:%s' % (lmod, env['PYTHONPATH'])
    result = run(DEBIAN, ['-c', 'import mypkg'], env, job.work)
    assert (result.returncode, result.stdout) == (0, b'lmod sitecustomize\n')
    [log] = job.logs()
    assert log['hook'] == 'usercustomize' and log['imports'] == ['mypkg']


def test_user_usercustomize_still_runs(job, tmp_path):
    other = tmp_path / 'other'
    other.mkdir()
    (other / 'usercustomize.py').write_text('print("user usercustomize")\n')
    result = same_behaviour(DEBIAN, job, ['-c', 'pass'], extra_path=str(other))
    assert result.stdout == b'user usercustomize\n'
    assert len(job.logs()) == 1


# Debian 12 has no Python 2: pyenv's, where installed (PYLAUNCH_TEST_PYTHON2 overrides).
PYTHON2S = [p for p in [os.environ.get('PYLAUNCH_TEST_PYTHON2')] +
            sorted(glob.glob(os.path.expanduser('~/.pyenv/versions/2.7*/bin/python2.7'))) if p]


@pytest.mark.parametrize('python27', PYTHON2S)
def test_python27_chains_to_the_sites_sitecustomize(job, tmp_path, python27):
    # Issue 15 defect 7: with Python 2.7 the hook replaced the site's sitecustomize.
    site = tmp_path / 'site'
    site.mkdir()
    (site / 'sitecustomize.py').write_text('import sys\nsys.stdout.write("site ran\\n")\n')
    result = same_behaviour(python27, job, ['-c', 'import sitecustomize as s; print(s.__file__)'],
                            extra_path=str(site))
    assert result.stdout.startswith(b'site ran\n' + str(site).encode()), result.stdout
    assert job.logs() == []  # Python 2 is not monitored, but nothing of it breaks


def test_find_spec_probes_past_64_keep_every_package(job):
    # Issue 15 defect 4: after 64 pending probes yaml, six, requests were lost for good.
    for name in ('yaml_', 'six_', 'requests_'):
        job.write(name + '/__init__.py', 'X = 1\n')
    job.write('main.py', '''\
        import importlib.util, os
        for i in range(200):
            importlib.util.find_spec('probe_%d' % i)
        import yaml_, six_, requests_
        os._exit(0)
        ''')
    assert run(DEBIAN, ['main.py'], job.env(), job.work).returncode == 0
    [log] = job.logs()
    assert log['imports'] == ['yaml_', 'six_', 'requests_']
    assert len([n for n in log['retracted'] if n.startswith('probe_')]) == 200


def test_4096_packages_cap_is_counted(job):
    # Issue 15 defect 4: the 4,096 per-process cap was not flagged.
    mods = os.path.join(job.work, 'mods')
    os.makedirs(mods)
    for i in range(4200):
        with open(os.path.join(mods, 'm%04d.py' % i), 'w') as f:
            f.write('')
    job.write('main.py', '''\
        import importlib, sys
        sys.path.insert(0, 'mods')
        for i in range(4200):
            importlib.import_module('m%04d' % i)
        ''')
    assert run(DEBIAN, ['main.py'], job.env(), job.work).returncode == 0
    [log] = job.logs()
    assert len(log['all_imports']) == 4096
    written = len([n for n in log['all_imports'] if len(n) == 5 and n[0] == 'm' and n[1:].isdigit()])
    assert int(log['truncated']) == 4200 - written > 0


def test_finder_appended_after_the_hook_does_not_keep_failed_imports(job):
    # Issue 15 defect 5: six appends its finder; killed processes then kept "org".
    job.write('main.py', '''\
        import os, sys
        class Appended:
            def find_spec(self, name, path=None, target=None):
                return None
        sys.meta_path.append(Appended())
        try:
            import org.python.core
        except ImportError:
            pass
        try:
            import backports_abc
        except ImportError:
            pass
        os._exit(0)
        ''')
    assert run(DEBIAN, ['main.py'], job.env(), job.work).returncode == 0
    [log] = job.logs()
    assert log['imports'] == []
    assert sorted(set(log['retracted']) & {'backports_abc', 'org'}) == ['backports_abc', 'org']


@pytest.mark.parametrize('python', [DEBIAN])
def test_failed_import_retried_in_a_loop_costs_o1(job, python):
    # Issue 15 defect 6: 100k calls did not finish in 120 s; the log grew 56 B a call.
    job.write('main.py', '''\
        import sys, time
        def optional():
            try:
                import no_such_optional_dependency
            except ImportError:
                return None
        sys.path[:] = sys.path[:1]  # the failed import's own cost: one directory
        start = time.perf_counter()
        for _ in range(int(sys.argv[1])):
            optional()
        print(time.perf_counter() - start)
        ''')
    sizes = {}
    for calls in (1000, 100000):
        for path in glob.glob(os.path.join(job.spool, '*.log')):
            os.unlink(path)
        result = run(python, ['main.py', str(calls)], job.env(), job.work)
        assert result.returncode == 0
        [log] = job.logs()
        sizes[calls] = (len(log['all_imports']), log['retracted'])
        if calls == 100000:
            plain = run(python, ['main.py', str(calls)], job.plain_env(), job.work)
            with_hook, without = float(result.stdout), float(plain.stdout)
            # Linear: a look-up a call (a loaded machine is given a wide margin).
            assert with_hook < 60 and with_hook < 3 * without + 1, (with_hook, without)
    # One retraction, whatever the count; the log does not grow with it.
    assert sizes[1000] == sizes[100000]
    assert sizes[100000][1].count('no_such_optional_dependency') == 1


def test_spawn_worker_records_the_real_main(job):
    # Issue 15 defect 7: spawn workers showed main "-c".
    job.write('main.py', '''\
        import multiprocessing as mp
        def work():
            pass
        if __name__ == '__main__':
            p = mp.get_context('spawn').Process(target=work)
            p.start()
            p.join()
        ''')
    assert run(DEBIAN, ['main.py'], job.env(), job.work).returncode == 0
    main = os.path.join(job.work, 'main.py')
    logs = job.logs()
    # The parent, the spawn worker and multiprocessing's resource tracker (a real -c).
    workers = [log for log in logs if log['ppid'] != logs[0]['ppid'] and log['main'] == main]
    assert sorted(log['main'] for log in logs).count(main) == 2 and len(workers) == 1


def test_exit_status_of_uncaught_exception(job):
    assert run(DEBIAN, ['-c', 'raise SystemError("x")'], job.env(), job.work).returncode == 1
    [log] = job.logs()
    assert log['status'] == '1' and log['exit'] is not None


def test_pth_imported_packages_are_visible(job, tmp_path):
    # Issue 15 defect 7: a package a .pth file imports ran before the hook, unseen.
    userbase = str(tmp_path / 'userbase')
    user_site = subprocess.run([DEBIAN, '-c', 'import site; print(site.getusersitepackages())'],
                               env=dict(job.plain_env(), PYTHONUSERBASE=userbase),
                               stdout=subprocess.PIPE, check=True).stdout.decode().strip()
    make_dist(user_site, 'pthpkg', '3.3')
    with open(os.path.join(user_site, 'pthpkg-init.pth'), 'w') as f:
        f.write('import pthpkg\n')
    result = run(DEBIAN, ['-c', 'pass'], job.env(PYTHONUSERBASE=userbase), job.work)
    assert result.returncode == 0, result.stderr
    [log] = job.logs()
    assert 'pthpkg' in log['imports'] and log['dists']['pthpkg'] == ('pthpkg', '3.3', 'user')


# Fills the tmpfs at /mnt/t page by page until it is full, then frees FREE pages.
FILL = '''python3 -c 'import os
i = 0
try:
    while True:
        with open("/mnt/t/fill%d" % i, "wb") as f:
            f.write(b"x" * 4096)
        i += 1
except OSError:
    pass
for j in range(FREE):
    os.unlink("/mnt/t/fill%d" % j)'
'''


def in_namespace_with_tmpfs(size, script):
    """Runs a shell script in a private mount namespace with a tmpfs of size at /mnt/t."""
    return subprocess.run(['unshare', '--mount', '--propagation', 'private', 'sh', '-ec',
                           'mkdir -p /mnt/t; mount -t tmpfs -o size=%s tmpfs /mnt/t; %s'
                           % (size, script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=120)


def test_full_spool_counts_lost_lines_and_never_glues(job):
    # Issue 15 defect 4: a short write in a nearly full spool glued two lines, lost one.
    mods = os.path.join(job.work, 'mods')
    os.makedirs(mods)
    names = ['module_with_a_long_name_to_fill_the_spool_quickly_%03d' % i for i in range(400)]
    for name in names:
        open(os.path.join(mods, name + '.py'), 'w').close()
    job.write('main.py', '''\
        import importlib, sys
        sys.path.insert(0, 'mods')
        for name in %r:
            importlib.import_module(name)
        print('done')
        ''' % names)
    hook = job.hook_dir
    env = ' '.join("%s='%s'" % (k, v) for k, v in job.env().items()
                   if k.startswith(('PYTHON', 'PYLAUNCH', 'SLURM')))
    # A full tmpfs but for 5 pages: the log's first 16 KiB fit, growing it does not.
    result = in_namespace_with_tmpfs('1m', '''\
        mkdir /mnt/t/spool; cp -r %s /mnt/t/spool/.hook; cd %s
        env %s PYLAUNCH_MONITOR_SPOOL=/mnt/t/spool %s -c pass; rm /mnt/t/spool/*.log
        %s
        env %s PYLAUNCH_MONITOR_SPOOL=/mnt/t/spool %s main.py
        cat /mnt/t/spool/*.log > %s/full.log''' % (hook, job.work, env, DEBIAN,
                                                   FILL.replace('FREE', '5'), env, DEBIAN,
                                                   job.work))
    assert result.returncode == 0 and result.stdout == b'done\n', result.stderr
    log = parse_log(os.path.join(job.work, 'full.log'))  # every line whole
    written = len([n for n in log['imports'] if n.startswith('module_with')])
    assert 0 < written < 400
    lost = int(log['lost'])
    # The import lines that did not fit, and the dist lines of every package at exit.
    assert 400 - written + 400 <= lost <= 400 - written + 400 + len(log['all_imports']) - written
    assert log['exit'] is not None


def test_spool_full_at_start_leaves_an_unlogged_marker(job):
    env = ' '.join("%s='%s'" % (k, v) for k, v in job.env().items()
                   if k.startswith(('PYTHON', 'PYLAUNCH', 'SLURM')))
    result = in_namespace_with_tmpfs('1m', '''\
        mkdir /mnt/t/spool; cp -r %s /mnt/t/spool/.hook; cd %s
        env %s PYLAUNCH_MONITOR_SPOOL=/mnt/t/spool %s -c pass; rm /mnt/t/spool/*.log
        %s
        env %s PYLAUNCH_MONITOR_SPOOL=/mnt/t/spool %s -c 'print("ran")'
        ls /mnt/t/spool''' % (job.hook_dir, job.work, env, DEBIAN, FILL.replace('FREE', '0'),
                              env, DEBIAN))
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode().split()
    assert out[0] == 'ran'
    assert len([n for n in out if n.endswith('.unlogged')]) == 1
    assert [n for n in out if n.endswith('.log')] == []


def test_read_only_spool_changes_nothing(job):
    env = ' '.join("%s='%s'" % (k, v) for k, v in job.env().items()
                   if k.startswith(('PYTHON', 'PYLAUNCH', 'SLURM')))
    result = in_namespace_with_tmpfs('1m', '''\
        mkdir /mnt/t/spool; cp -r %s /mnt/t/spool/.hook; mount -o remount,ro /mnt/t
        cd %s; env %s PYLAUNCH_MONITOR_SPOOL=/mnt/t/spool %s -c 'import json; print("ran")'
        ls /mnt/t/spool''' % (job.hook_dir, job.work, env, DEBIAN))
    assert (result.returncode, result.stdout, result.stderr) == (0, b'ran\n', b'')


def test_distributions_resolved_once_per_job_and_node(job, tmp_path):
    # The first process reads the metadata; later ones read the spool's cache (one
    # node-local file), not the shared file system: a changed METADATA is not re-read.
    site = str(tmp_path / 'lib')
    make_dist(site, 'cached-dist', '1.0', tops=['cachedmod'])
    env = job.env(extra_path=site)
    assert run(DEBIAN, ['-c', 'import cachedmod'], env, job.work).returncode == 0
    caches = glob.glob(os.path.join(job.hook_dir, 'dists-*.txt'))
    with open([c for c in caches if open(c).readline() == site + '\n'][0]) as f:
        assert f.read().split('\n')[1:] == ['cachedmod\tcached-dist\t1.0', '']
    metadata = os.path.join(site, 'cached_dist-1.0.dist-info', 'METADATA')
    with open(metadata, 'w') as f:
        f.write('Name: cached-dist\nVersion: 9.9\n')
    for path in glob.glob(os.path.join(job.spool, '*.log')):
        os.unlink(path)
    assert run(DEBIAN, ['-c', 'import cachedmod'], env, job.work).returncode == 0
    [log] = job.logs()
    assert log['dists']['cachedmod'] == ('cached-dist', '1.0', 'other')
