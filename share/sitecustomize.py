# pylaunch --pymonitor hook: records the Python packages a job's processes import.
#
# Installed as $(pkgdatadir)/monitor/sitecustomize.py. The prolog copies it into
# the job's node-local spool (<monitor.spool_dir>/<jobid>/.hook/); task_init puts
# that directory first on PYTHONPATH and sets PYLAUNCH_MONITOR_SPOOL (the spool)
# and PYLAUNCH_MONITOR_JOB. Python caches this file's byte code next to the copy,
# so only the first process of a job per node and Python version compiles it.
#
# At start the hook takes its directory off sys.path again, opens a log of its own
# in the spool and installs a sys.meta_path finder that finds nothing: it only
# watches imports go by and appends each new top-level package to the log as its
# import starts (one small write), so a process that is killed, calls os._exit() or
# crashes leaves its imports on record. A second such finder at the end of
# sys.meta_path learns when no finder found a name, and an import that never
# reached sys.modules (a probe with importlib.util.find_spec) is retracted later. Versions (__version__ only, never a dist-info scan) are added
# as they appear and completed at normal exit. Then the sitecustomize Python would
# have imported without this one runs, so a site's, Debian's, conda's or the user's
# keeps working; errors of that one are reported by site as they would be anyway.
#
# Rules: Python 3.6 syntax; no signal handlers; no file-system request outside the
# spool beyond what Python itself makes (the few container markers are on the root
# file system); every error of the hook is swallowed; it never prints; the
# program's behaviour, output and exit code are unchanged. Not monitored: Python
# started with -S, -E or -I, or with PYLAUNCH_MONITOR=0/no/off/false.
#
# Log format 1, one file per process, <pid>-<random>.log, created 0600 with O_EXCL
# in the spool. Every line ends in "\n"; fields are separated by one tab; values
# are printable UTF-8 (anything else is replaced by "?").
#   pylaunch-monitor 1                    first line: the format and its version
#   pid, ppid, job, rank, step            rank = SLURM_PROCID, step = SLURM_STEP_ID
#   start                                 Unix time of the start (of the fork for a fork child)
#   executable, python, pyver             sys.executable, sys.version, "3.11.2"
#   implementation                        sys.implementation.name
#   stdlib                                "sys.stdlib_module_names" or "fallback": how the
#                                         standard library was told apart
#   container                             runtime the process ran in (apptainer, singularity,
#                                         shifter, charliecloud, podman, docker, enroot, ...)
#   forked                                "1": a child of os.fork() that did not exec
#   main                                  script path, "-m MODULE", "-c" or "-" (stdin/interactive)
#   import <TAB> NAME                     a top-level package, once, as its import starts
#   unimport <TAB> NAME                   that import did not happen after all (no finder found
#                                         it, or it never got loaded); a later import counts again
#   version <TAB> NAME <TAB> VERSION      its __version__ (a str), once, when available
#   exit <TAB> TIME                       the interpreter reached its normal exit (atexit)
# Readers ignore unknown keys; an incompatible change changes the first line. A
# process without an exit line did not exit normally (killed, os._exit, crash, or a
# fork child that ended with os._exit as multiprocessing's workers do). The
# standard library is not written, except multiprocessing, concurrent, asyncio and
# ctypes, which tell how a program runs in parallel.

import sys

_KEPT_STDLIB = ('multiprocessing', 'concurrent', 'asyncio', 'ctypes')
_FORKERS = ('multiprocessing', 'concurrent')  # modules of the standard library that fork
_SKIPPED = ('sitecustomize', 'usercustomize')
_MAX_UNCONFIRMED = 64  # names written but not (yet) in sys.modules
_UNCONFIRMED_EVENTS = 256  # one still not loaded after this many import events is retracted
_MAX_PACKAGES = 4096  # bounds the log (the epilog reads at most 1 MiB per log)

# Standard-library top-level names for Python < 3.10, which lacks
# sys.stdlib_module_names: the union over CPython 3.6 to 3.11 on all platforms.
_STDLIB_FALLBACK = '''
__future__ _abc _aix_support _ast _asyncio _bisect _blake2 _bootlocale _bootsubprocess _bz2
_codecs _codecs_cn _codecs_hk _codecs_iso2022 _codecs_jp _codecs_kr _codecs_tw _collections
_collections_abc _compat_pickle _compression _contextvars _crypt _csv _ctypes _ctypes_test
_curses _curses_panel _datetime _dbm _decimal _dummy_thread _elementtree _frozen_importlib
_frozen_importlib_external _functools _gdbm _hashlib _heapq _imp _io _json _locale _lsprof _lzma
_markupbase _md5 _msi _multibytecodec _multiprocessing _opcode _operator _osx_support
_overlapped _peg_parser _pickle _posixshmem _posixsubprocess _py_abc _pydecimal _pyio _queue
_random _scproxy _sha1 _sha256 _sha3 _sha512 _signal _sitebuiltins _socket _sqlite3 _sre _ssl
_stat _statistics _string _strptime _struct _symtable _testbuffer _testcapi _testimportmultiple
_testinternalcapi _testmultiphase _thread _threading_local _tkinter _tokenize _tracemalloc
_typing _uuid _warnings _weakref _weakrefset _winapi _xxsubinterpreters _xxtestfuzz _zoneinfo
abc aifc antigravity argparse array ast asynchat asyncio asyncore atexit audioop base64 bdb
binascii binhex bisect builtins bz2 cProfile calendar cgi cgitb chunk cmath cmd code codecs
codeop collections colorsys compileall concurrent configparser contextlib contextvars copy
copyreg crypt csv ctypes curses dataclasses datetime dbm decimal difflib dis distutils doctest
dummy_threading email encodings ensurepip enum errno faulthandler fcntl filecmp fileinput
fnmatch formatter fractions ftplib functools gc genericpath getopt getpass gettext glob graphlib
grp gzip hashlib heapq hmac html http idlelib imaplib imghdr imp importlib inspect io ipaddress
itertools json keyword lib2to3 linecache locale logging lzma macpath macurl2path mailbox mailcap
marshal math mimetypes mmap modulefinder msilib msvcrt multiprocessing netrc nis nntplib nt
ntpath nturl2path numbers opcode operator optparse os ossaudiodev parser pathlib pdb pickle
pickletools pipes pkgutil platform plistlib poplib posix posixpath pprint profile pstats pty pwd
py_compile pyclbr pydoc pydoc_data pyexpat queue quopri random re readline reprlib resource
rlcompleter runpy sched secrets select selectors shelve shlex shutil signal site smtpd smtplib
sndhdr socket socketserver spwd sqlite3 sre_compile sre_constants sre_parse ssl stat statistics
string stringprep struct subprocess sunau symbol symtable sys sysconfig syslog tabnanny tarfile
telnetlib tempfile termios test textwrap this threading time timeit tkinter token tokenize
tomllib trace traceback tracemalloc tty turtle turtledemo types typing unicodedata unittest
urllib uu uuid venv warnings wave weakref webbrowser winreg winsound wsgiref xdrlib xml xmlrpc
xxlimited xxsubtype zipapp zipfile zipimport zlib zoneinfo
'''

# The recorder's state. Plain module globals and functions, no classes: this code
# runs in every Python process of a job, and creating classes at start-up costs.
_os = _env = _spool = _now = _spec_type = _stdlib = _container_kind = None
_head = _tail = None  # the two finders in sys.meta_path
_module_type = type(sys)
_module_dict = type(sys).__dict__['__dict__'].__get__  # a module's own dict, no __getattr__
_stdlib_source = 'sys.stdlib_module_names'
_active = False
_watching_forks = False
_fd = -1
_pid = 0
_path = _ident = _main = None
_seen = set()  # top-level names met so far
_unconfirmed = {}  # written, not (yet) in sys.modules: name -> import events since
_recorded = []  # written and not retracted, in order
_versions = {}
_unversioned = []  # recorded names whose version is still to come


def _printable(text, limit):
    text = text[:limit]
    return text if text.isprintable() else repr(text)[1:-1][:limit]


# The container runtime this process runs in, from the markers runtimes leave.
def _container(env, os):
    for var, kind in (('APPTAINER_CONTAINER', 'apptainer'), ('SINGULARITY_CONTAINER', 'singularity'),
                      ('SHIFTER_IMAGEREQUEST', 'shifter'), ('SHIFTER_RUNTIME', 'shifter'),
                      ('CH_RUNNING', 'charliecloud'), ('container', None)):
        value = env.get(var)
        if value:  # "container" is set by podman, systemd-nspawn, lxc
            return kind or _printable(value, 32).replace(' ', '_').replace('\\', '_')
    for path, kind in (('/run/.containerenv', 'podman'), ('/.dockerenv', 'docker'),
                       ('/.singularity.d', 'singularity'), ('/.lock', 'enroot')):
        try:
            os.stat(path)
            return kind
        except OSError:
            pass
    return None


# ---------------------------------------------------------------- the log file

# Creates this process's log and writes its header (and, in a fork child, what it
# inherited). False when the spool is not writable.
def _open_log(forked=False):
    global _fd, _pid, _path, _ident, _active
    os, env = _os, _env
    _pid = os.getpid()
    for _ in range(3):
        path = '%s/%d-%s.log' % (_spool, _pid, os.urandom(6).hex())
        try:
            _fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND |
                          os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            break
        except FileExistsError:
            pass
    else:
        return False
    st = os.fstat(_fd)
    _path, _ident = path, (st.st_dev, st.st_ino)
    out = ['pylaunch-monitor 1\npid\t%d\nppid\t%d\njob\t%s\nstart\t%.6f\nexecutable\t%s\n'
           'python\t%s\npyver\t%d.%d.%d\nimplementation\t%s\nstdlib\t%s\n' % (
               _pid, os.getppid(), _printable(env.get('PYLAUNCH_MONITOR_JOB', ''), 32), _now(),
               _printable(sys.executable or '', 4096), _printable(sys.version, 256),
               sys.version_info[0], sys.version_info[1], sys.version_info[2],
               _printable(sys.implementation.name, 32), _stdlib_source)]
    for key, value in (('rank', env.get('SLURM_PROCID')), ('step', env.get('SLURM_STEP_ID')),
                       ('container', _container_kind), ('forked', forked and '1')):
        if value:
            out.append('%s\t%s\n' % (key, _printable(value, 32)))
    if _main:
        out.append('main\t%s\n' % _main)
    else:
        _resolve_main(out)
    for name in _recorded:
        out.append('import\t%s\n' % name)
        if name in _versions:
            out.append('version\t%s\t%s\n' % (name, _versions[name]))
    os.write(_fd, ''.join(out).encode('utf-8', 'replace'))
    _active = True
    return True


# One write(2) of the lines in out, to our log: the program may have closed our
# descriptor (and reused its number), then the log is opened again.
def _write(out):
    global _fd
    os = _os
    if os.getpid() != _pid:  # a fork no at-fork hook saw
        _after_fork_in_child()
    if _fd < 0:
        return
    try:
        st = os.fstat(_fd)
        ours = (st.st_dev, st.st_ino) == _ident
    except OSError:
        ours = False
    if not ours:
        _fd = -1
        fd = os.open(_path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC)
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != _ident:
            os.close(fd)
            return
        _fd = fd
    os.write(_fd, ''.join(out).encode('utf-8', 'replace'))


# An at-fork hook slows every interpreter's shutdown down, so it is registered only once
# a module that forks workers is imported; other forks are noticed at the child's
# first write.
def _watch_forks():
    global _watching_forks
    if not _watching_forks and hasattr(_os, 'register_at_fork'):
        _os.register_at_fork(after_in_child=_after_fork_in_child)
        _watching_forks = True


# A child of os.fork() gets a log of its own.
def _after_fork_in_child():
    global _active, _fd
    try:
        if _active:
            _active = False
            try:
                _os.close(_fd)
            except OSError:
                pass
            _fd = -1
            _open_log(forked=True)
    except Exception:
        pass


def _at_exit():
    global _active
    try:
        if not _active:
            return
        out = []
        for name in list(_unconfirmed):
            if name in sys.modules:
                del _unconfirmed[name]
            else:
                _retract(name, out)
        if _main is None:
            _resolve_main(out)
        _check_versions(out, _recorded)
        out.append('exit\t%.6f\n' % _now())
        _write(out)
        _active = False
        _os.close(_fd)
    except Exception:
        pass


# ---------------------------------------------------------------- import events

# The finder first in sys.meta_path: finds nothing, watches every import go by.
def _find_spec(name, path=None, target=None):
    if _active:
        try:
            # Most events are submodules of known packages with nothing pending.
            if name.partition('.')[0] not in _seen or _unconfirmed or _unversioned or not _main:
                _event(name)
        except Exception:
            pass
    return None


# The finder last in sys.meta_path: called only when no other finder found name.
def _not_found(name, path=None, target=None):
    try:
        if _active and name in _unconfirmed and sys.meta_path[-1] is _tail:
            out = []
            _retract(name, out)
            _write(out)
    except Exception:
        pass
    return None


def _wanted(name):
    return ((name in _KEPT_STDLIB or name not in _stdlib) and name not in _SKIPPED and
            name.isidentifier() and not name.startswith(('__', '_sysconfigdata')) and
            len(name) <= 128 and len(_unconfirmed) < _MAX_UNCONFIRMED and
            len(_recorded) < _MAX_PACKAGES)


# A new top-level name is written at once, before the import runs, so even a module
# that imports nothing and is the last thing a killed process imported is on record.
# Until it shows up in sys.modules it is unconfirmed: _not_found retracts it when no
# finder found it, and one that stays out of sys.modules (importlib.util.find_spec
# probes, failed imports) is retracted later.
def _event(name):
    top = name.partition('.')[0]
    out = []
    fresh = None
    if top not in _seen:
        _seen.add(top)
        if _wanted(top):
            out.append('import\t%s\n' % top)
            if top in _FORKERS:
                _watch_forks()
            _recorded.append(top)
            _unversioned.append(top)
            if top not in sys.modules:
                _unconfirmed[top] = 0
                fresh = top
    if _unconfirmed:
        _age_unconfirmed(out, fresh)
    if _unversioned:
        _check_versions(out, _unversioned)
    if _main is None:
        _resolve_main(out)
    if out:
        _write(out)


def _age_unconfirmed(out, fresh):
    for name in list(_unconfirmed):
        if name in sys.modules:
            _unconfirmed.pop(name, None)
        elif name != fresh and name in _unconfirmed:
            _unconfirmed[name] += 1
            if _unconfirmed[name] > _UNCONFIRMED_EVENTS:
                _retract(name, out)


def _retract(name, out):
    if _unconfirmed.pop(name, None) is not None:
        out.append('unimport\t%s\n' % name)
        _seen.discard(name)  # a later import, after sys.path changed, counts again
        if name in _recorded:
            _recorded.remove(name)


# __version__ when it is a str; names still being imported wait for a later event.
def _check_versions(out, names):
    waiting = []
    for name in names:
        if name in _versions:
            continue
        module = sys.modules.get(name)
        if module is None or not issubclass(type(module), _module_type):
            if name in _unconfirmed:
                waiting.append(name)
            continue
        attrs = _module_dict(module)
        version = attrs.get('__version__')
        if type(version) is str and 0 < len(version) <= 64 and version.isprintable():
            _versions[name] = version
            out.append('version\t%s\t%s\n' % (name, version))
            continue
        spec = attrs.get('__spec__')
        if type(spec) is _spec_type and getattr(spec, '_initializing', False) is True:
            waiting.append(name)
    _unversioned[:] = waiting


# The script's path, "-m MODULE", "-c" or "-" (stdin, interactive); None until known.
def _resolve_main(out):
    global _main
    try:
        module = sys.modules.get('__main__')
        name = None
        if module is not None and issubclass(type(module), _module_type):
            spec = _module_dict(module).get('__spec__')
            name = spec.name if type(spec) is _spec_type else None
        argv = getattr(sys, 'argv', None)  # not set yet at this point on 3.6
        first = argv[0] if type(argv) is list and argv and type(argv[0]) is str else None
        if type(name) is str and name != '__main__':
            main = '-m ' + (name[:-9] if name.endswith('.__main__') else name)
        elif first == '-m':
            orig = getattr(sys, 'orig_argv', None) or []
            main = '-m ' + orig[orig.index('-m') + 1] if '-m' in orig[1:-1] else None
        elif first in ('-c', '-', ''):
            main = first or '-'
        else:
            main = first and _os.path.join(_os.getcwd(), first)
    except Exception:
        return
    if main:
        _main = _printable(main, 4096)
        out.append('main\t%s\n' % _main)


# ---------------------------------------------------------------- start

def _finder(name, find_spec):
    finder = _module_type(name)
    finder.find_spec = find_spec
    finder._pylaunch_monitor = True
    return finder


def _install(os, env, spool):
    global _os, _env, _spool, _now, _spec_type, _stdlib, _stdlib_source, _container_kind
    global _head, _tail
    for finder in sys.meta_path:
        if getattr(finder, '_pylaunch_monitor', False) is True:
            return  # a second copy of the hook on sys.path
    import atexit
    import time
    import _frozen_importlib
    _os, _env, _spool, _now = os, env, spool, time.time
    _spec_type = _frozen_importlib.ModuleSpec
    _stdlib = getattr(sys, 'stdlib_module_names', None)  # built-in modules included
    if _stdlib is None:
        _stdlib = frozenset(_STDLIB_FALLBACK.split()).union(sys.builtin_module_names)
        _stdlib_source = 'fallback'
    _container_kind = _container(env, os)
    if not _open_log():
        return
    atexit.register(_at_exit)
    _head = _finder('pylaunch_monitor', _find_spec)
    _tail = _finder('pylaunch_monitor_not_found', _not_found)
    sys.meta_path.insert(0, _head)
    sys.meta_path.append(_tail)


# Python does not write byte code under PYTHONDONTWRITEBYTECODE; without it this file
# would be compiled at every start. The cache lives next to it, in the job's spool.
def _cache_own_byte_code(os):
    import _frozen_importlib_external as external
    cached = globals().get('__cached__')
    if not sys.dont_write_bytecode or not cached or os.path.exists(cached):
        return
    with open(__file__, 'rb') as f:
        code = compile(f.read(), __file__, 'exec', dont_inherit=True)
    st = os.stat(__file__)
    try:
        os.mkdir(os.path.dirname(cached))
    except FileExistsError:
        pass
    external._write_atomic(cached, external._code_to_timestamp_pyc(
        code, int(st.st_mtime), st.st_size), 0o600)


# Starts the recorder; returns the entries of sys.path that followed this directory.
def _start():
    import os
    # site made every entry of sys.path absolute and __file__ is one of them joined
    # with the file name: plain string comparison finds this directory.
    here = os.path.dirname(__file__)
    first = None
    for i in range(len(sys.path) - 1, -1, -1):
        if sys.path[i] == here:
            del sys.path[i]
            first = i
    rest = sys.path[first:] if first is not None else []
    env = os.environ
    spool = env.get('PYLAUNCH_MONITOR_SPOOL')
    flags = sys.flags
    if (not spool or flags.no_site or flags.ignore_environment or getattr(flags, 'isolated', 0) or
            env.get('PYLAUNCH_MONITOR', '').strip().lower() in ('0', 'no', 'off', 'false')):
        return rest
    try:
        _install(os, env, spool)
        _cache_own_byte_code(os)  # 3.7 and later
    except Exception:
        pass
    return rest


def _next_sitecustomize():
    from _frozen_importlib_external import PathFinder
    spec = PathFinder.find_spec('sitecustomize', _start())
    return spec if spec is not None and spec.loader is not None else None


try:
    _chained_spec = _next_sitecustomize()
except Exception:
    _chained_spec = None
if _chained_spec is not None:
    import _frozen_importlib
    _chained = _frozen_importlib.module_from_spec(_chained_spec)
    sys.modules['sitecustomize'] = _chained
    _chained_spec.loader.exec_module(_chained)
