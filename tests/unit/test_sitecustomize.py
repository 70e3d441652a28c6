"""Tests of the --pymonitor hook (share/sitecustomize.py) with real interpreters.

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
import sys
import textwrap
import time

import pytest

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARE = os.path.join(TOP, 'share')
HOOK_FILES = ('sitecustomize.py', 'usercustomize.py', 'pylaunch_monitor.py')
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
        for name in HOOK_FILES:
            shutil.copy(os.path.join(SHARE, name), self.hook_dir)
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
    result = same_behaviour(DEBIAN, job, ['-c', 'import sys; print(len(sys.meta_path))'],
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
    # PYTHONPATH=share/ directly, as a site could do without the prolog's copy.
    spool = tmp_path / 'spool'
    spool.mkdir()
    env = dict(base_env(), PYTHONPATH=os.path.join(TOP, 'share'), PYLAUNCH_MONITOR_SPOOL=str(spool),
               PYTHONPYCACHEPREFIX=str(tmp_path / 'pycache'))
    result = run(DEBIAN, ['-c', 'import sys, multiprocessing; print(sys.path[0])'], env, str(tmp_path))
    assert result.stdout == b'\n' and result.returncode == 0
    [log] = [parse_log(p) for p in glob.glob(str(spool / '*.log'))]
    assert log['imports'] == ['multiprocessing']
