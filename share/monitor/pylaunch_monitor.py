# pylaunch --pymonitor hook: records the Python packages a job's processes import.
#
# Installed as $(pkgdatadir)/monitor/pylaunch_monitor.py, with the shim that loads it
# (sitecustomize.py) and pylaunch-monitor.pth. The prolog copies the hook and the shim,
# twice (as sitecustomize.py and usercustomize.py), into the job's node-local spool
# (<monitor.spool_dir>/<jobid>/.hook/);
# task_init puts that directory first on PYTHONPATH and sets PYLAUNCH_MONITOR_SPOOL
# (the spool) and PYLAUNCH_MONITOR_JOB. Three ways in, whichever comes first (start()
# is idempotent):
#   pylaunch-monitor.pth  when the site linked it into an interpreter's site-packages:
#                         survives a job script that overwrites PYTHONPATH
#   sitecustomize.py      the .hook directory on PYTHONPATH (chains to the next one)
#   usercustomize.py      the same shim in the same directory, for when a module system
#                         prepended a directory with a sitecustomize.py of its own (Lmod)
#
# At start the hook opens a log of its own in the spool and installs a sys.meta_path
# finder that finds nothing: it only watches imports go by and writes each new
# top-level package to the log as its import starts (one small write), so a process
# that is killed, calls os._exit() or crashes leaves its imports on record. A second
# finder, kept at the end of sys.meta_path, learns when no finder found a name; a name
# that never reached sys.modules (a find_spec probe) is retracted later. Packages that
# .pth files imported before the hook are taken from sys.modules at start. Versions,
# distributions and origins come from the installed metadata (*.dist-info, *.egg-info
# next to the package), read at exit by the job's first process on the node that needs
# them and cached in the spool for the others (.hook/dists-*.txt); __version__ (any str)
# is taken as it appears, for processes that never reach their exit.
#
# Rules: Python 3.6 syntax; no signal handlers; every error of the hook is swallowed;
# it never prints; the program's behaviour, output and exit code are unchanged (in a
# fork child os._exit is wrapped to note the exit). Not monitored: Python started with
# -S, -E or -I, or with PYLAUNCH_MONITOR=0/no/off/false. When the log cannot be created
# the hook leaves an empty <pid>-<random>.unlogged file if it can, so the process is
# counted all the same.
#
# Log format 2, one file per process, <pid>-<random>.log, created 0600 with O_EXCL in
# the spool. Every line ends in "\n"; fields are separated by one tab; values are
# printable UTF-8. The log is preallocated (posix_fallocate, zeros that readers ignore:
# a log ends at its first NUL byte) and lines are written at the log's own offset; the
# last 512 bytes are kept for the closing lines (lost, status, exit). A line that does
# not fit into a full spool is not written but counted, and a write that comes short
# is cut off again (ftruncate), so lines are never glued. A normal exit cuts the zeros.
#   pylaunch-monitor 2                    first line: the format and its version
#   pid, ppid, job, step                  step = SLURM_STEP_ID
#   rank, ranksrc                         the process's rank and the variable it came
#                                         from: OMPI_COMM_WORLD_RANK, MV2_COMM_WORLD_RANK,
#                                         PMIX_RANK, PMI_RANK (MPI launchers win), else
#                                         SLURM_PROCID
#   start                                 Unix time of the start (of the fork for a fork child)
#   executable, python, pyver, implementation, stdlib, container   as in format 1
#   hook                                  how the hook got in: sitecustomize, usercustomize, pth
#   forked                                "1": a child of os.fork() that did not exec
#   inherited <TAB> N                     a fork child: N packages came from the parent
#                                         (counted there, not listed again)
#   main                                  script path, "-m MODULE", "-c" or "-"; a later
#                                         main line replaces an earlier one
#   import <TAB> NAME                     a top-level package, once, as its import starts
#   unimport <TAB> NAME                   that import did not happen after all
#   version <TAB> NAME <TAB> VERSION      its __version__ (a str), when available
#   dist <TAB> NAME <TAB> DIST <TAB> VERSION <TAB> ORIGIN
#                                         the distribution that installed NAME (DIST and
#                                         VERSION "-" when none was found), ORIGIN one of
#                                         bundle, venv, user, system, other
#   truncated <TAB> N                     N more packages past the 4096 a process records
#   lost <TAB> N                          N lines could not be written (full spool)
#   status <TAB> N                        the exit status, where known (os._exit, an
#                                         uncaught exception: 1)
#   exit <TAB> TIME                       the interpreter reached its exit
# Readers ignore unknown keys. The standard library is not written, except
# multiprocessing, concurrent, asyncio and ctypes.

import sys

_KEPT_STDLIB = ('multiprocessing', 'concurrent', 'asyncio', 'ctypes')
_FORKERS = ('multiprocessing', 'concurrent')
_SKIPPED = ('sitecustomize', 'usercustomize', 'pylaunch_monitor')
_AGE = 64  # import events after which a pending name is checked (FIFO: O(1) a event)
_MAX_PACKAGES = 4096
_RANK_VARS = ('OMPI_COMM_WORLD_RANK', 'MV2_COMM_WORLD_RANK', 'PMIX_RANK', 'PMI_RANK',
              'SLURM_PROCID')

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

# The recorder's state: plain globals, no classes (this runs in every process of a job).
_os = _env = _spool = _now = _spec_type = _stdlib = _container_kind = _lock = None
_head = _tail = _real_exit = None
_module_type = type(sys)
_module_dict = type(sys).__dict__['__dict__'].__get__  # a module's own dict, no __getattr__
_stdlib_source = 'sys.stdlib_module_names'
_how = 'sitecustomize'
_active = False
_watching_forks = False
_fd = -1
_off = 0  # where the next line goes
_alloc = None  # bytes preallocated; None: the file system cannot (plain writes)
_CHUNK = 16384
_RESERVE = 512
_MAX_LOG = 1 << 20  # the epilog reads at most 1 MiB of a log
_pid = 0
_path = _ident = _main = None
_main_waits = False  # a spawn worker: the real main comes with __mp_main__
_events = 0
_seen = set()  # top-level names met so far (failed ones are in _failed instead)
_pending = []  # [name, event number]: written, not yet seen in sys.modules; FIFO
_pending_head = 0
_pending_set = set()
_failed = {}  # name -> sys.path (as a tuple) when no finder found it
_recorded = []  # written and not retracted, in order
_recorded_set = set()
_versions = {}
_truncated = 0
_lost = 0
_status = None


def _printable(text, limit):
    text = text[:limit]
    return text if text.isprintable() else repr(text)[1:-1][:limit]


def _container(env, os):
    for var, kind in (('APPTAINER_CONTAINER', 'apptainer'), ('SINGULARITY_CONTAINER', 'singularity'),
                      ('SHIFTER_IMAGEREQUEST', 'shifter'), ('SHIFTER_RUNTIME', 'shifter'),
                      ('CH_RUNNING', 'charliecloud'), ('container', None)):
        value = env.get(var)
        if value:
            return kind or _printable(value, 32).replace(' ', '_').replace('\\', '_')
    for path, kind in (('/run/.containerenv', 'podman'), ('/.dockerenv', 'docker'),
                       ('/.singularity.d', 'singularity'), ('/.lock', 'enroot')):
        try:
            os.stat(path)
            return kind
        except OSError:
            pass
    return None


def _rank(env):
    for var in _RANK_VARS:
        value = env.get(var)
        if value and value.isdigit() and len(value) <= 10:
            return value, var
    return None, None


# ---------------------------------------------------------------- the log file

# Marks a process that has no log: an empty <pid>-<random>.unlogged, when even that
# can be made (a read-only spool leaves nothing; the collector then counts the task).
def _mark_unlogged():
    try:
        fd = _os.open('%s/%d-%s.unlogged' % (_spool, _os.getpid(), _os.urandom(6).hex()),
                      _os.O_WRONLY | _os.O_CREAT | _os.O_EXCL | _os.O_NOFOLLOW, 0o600)
        _os.close(fd)
    except Exception:
        pass


def _header(forked, inherited):
    env, os = _env, _os
    out = ['pylaunch-monitor 2\npid\t%d\nppid\t%d\njob\t%s\nstart\t%.6f\nexecutable\t%s\n'
           'python\t%s\npyver\t%d.%d.%d\nimplementation\t%s\nstdlib\t%s\nhook\t%s\n' % (
               _pid, os.getppid(), _printable(env.get('PYLAUNCH_MONITOR_JOB', ''), 32), _now(),
               _printable(sys.executable or '', 4096), _printable(sys.version, 256),
               sys.version_info[0], sys.version_info[1], sys.version_info[2],
               _printable(sys.implementation.name, 32), _stdlib_source, _how)]
    rank, source = _rank(env)
    for key, value in (('rank', rank), ('ranksrc', source), ('step', env.get('SLURM_STEP_ID')),
                       ('container', _container_kind), ('forked', forked and '1'),
                       ('inherited', forked and str(inherited))):
        if value:
            out.append('%s\t%s\n' % (key, _printable(value, 32)))
    if _main:
        out.append('main\t%s\n' % _main)
    return out


# Creates this process's log and writes its header. False when it cannot.
def _open_log(forked=False, inherited=0):
    global _fd, _pid, _path, _ident, _active, _off, _alloc
    os = _os
    _pid = os.getpid()
    _off = 0
    _alloc = None
    for _ in range(3):
        path = '%s/%d-%s.log' % (_spool, _pid, os.urandom(6).hex())
        try:
            _fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW |
                          os.O_CLOEXEC, 0o600)
            break
        except FileExistsError:
            pass
        except OSError:
            _mark_unlogged()
            return False
    else:
        return False
    st = os.fstat(_fd)
    _path, _ident = path, (st.st_dev, st.st_ino)
    if not _reserve(_CHUNK) or not _put(_header(forked, inherited)):
        # Not even the header fits (a full spool): the file becomes the marker.
        try:
            os.close(_fd)
            os.rename(path, path[:-4] + '.unlogged')
        except OSError:
            pass
        _fd = -1
        return False
    _active = True
    return True


# Makes the log's preallocation at least size bytes; False when the spool is full.
def _reserve(size):
    global _alloc
    if _alloc is not None and size <= _alloc:
        return True
    if _alloc is None and _off > 0:
        return True  # the file system has no fallocate: plain writes
    try:
        _os.posix_fallocate(_fd, 0, size)
    except OSError as e:
        if e.errno in (95, 22, 38):  # EOPNOTSUPP, EINVAL, ENOSYS: not on this file system
            _alloc = None
            return True
        return False
    except AttributeError:
        return True
    _alloc = size
    return True


# Writes the lines at our offset, inside the preallocation (final lines may use the
# reserve at its end); a line that does not fit is counted, a short write cut off
# again, so the next line starts where this one should have. True when written.
def _put(out, final=False):
    global _off, _lost
    data = ''.join(out).encode('utf-8', 'replace')
    with _lock:
        end = _off + len(data) + (0 if final else _RESERVE)
        if _alloc is not None and end > _alloc and \
                not (end <= _MAX_LOG and _reserve(min(max(_alloc * 2, end + _CHUNK), _MAX_LOG))) and \
                _off + len(data) > _alloc - (0 if final else _RESERVE):
            _lost += len(out)
            return False
        try:
            n = _os.pwrite(_fd, data, _off)
        except OSError:
            n = -1
        if n == len(data):
            _off += n
            return True
        if n > 0:
            try:
                _os.ftruncate(_fd, _off)
            except OSError:
                pass
        _lost += len(out)
        return False


# The program may have closed our descriptor (and reused its number): then the log
# is opened again.
def _write(out, final=False):
    global _fd
    os = _os
    if os.getpid() != _pid:  # a fork no at-fork hook saw
        _after_fork_in_child()
    if _fd < 0 or not out:
        return
    try:
        st = os.fstat(_fd)
        ours = (st.st_dev, st.st_ino) == _ident
    except OSError:
        ours = False
    if not ours:
        _fd = -1
        fd = os.open(_path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != _ident:
            os.close(fd)
            return
        _fd = fd
    _put(out, final)


def _watch_forks():
    global _watching_forks
    if not _watching_forks and hasattr(_os, 'register_at_fork'):
        _os.register_at_fork(after_in_child=_after_fork_in_child)
        _watching_forks = True


# A child of os.fork() gets a log of its own: only what it imports itself is listed,
# the parent's packages are counted once, in the parent's log.
def _after_fork_in_child():
    global _active, _fd, _lock, _recorded, _recorded_set, _lost, _pending, _pending_head
    try:
        if _active:
            _active = False
            try:
                _os.close(_fd)
            except OSError:
                pass
            _fd = -1
            import _thread
            _lock = _thread.allocate_lock()  # the parent's may have been held by a thread
            inherited = len(_recorded)
            _recorded, _recorded_set, _lost = [], set(), 0
            _pending, _pending_head = [], 0  # the parent's log settles those
            _pending_set.clear()
            if _open_log(forked=True, inherited=inherited):
                _wrap_exit()
    except Exception:
        pass


# os._exit in a fork child (multiprocessing's workers end so) notes the exit and its
# status; otherwise every worker would look killed.
def _wrap_exit():
    global _real_exit
    if _real_exit is None:
        _real_exit = _os._exit

        def _exit(status):
            global _status
            try:
                _status = status
                _at_exit()
            except BaseException:
                pass
            _real_exit(status)
        _exit.__name__ = _exit.__qualname__ = '_exit'
        _exit.__doc__ = _real_exit.__doc__
        _os._exit = _exit


def _at_exit():
    global _active
    try:
        if not _active or _os.getpid() != _pid:
            return
        out = []
        _check_pending(out, True)
        if _main is None or _main_waits:
            _resolve_main(out)
        _check_versions(out, _recorded)
        try:
            _dists(out)
        except Exception:
            pass
        if _truncated:
            out.append('truncated\t%d\n' % _truncated)
        _write(out)
        # The closing lines go into the reserve: a full spool still shows what it cost.
        status = _status
        if status is None and getattr(sys, 'last_value', None) is not None:
            status = 1  # an uncaught exception was printed
        last = ['lost\t%d\n' % _lost] if _lost else []
        if type(status) is int:
            last.append('status\t%d\n' % (status & 0xff))
        last.append('exit\t%.6f\n' % _now())
        _write(last, True)
        _active = False
        try:
            _os.ftruncate(_fd, _off)  # the unused preallocation
        except OSError:
            pass
        _os.close(_fd)
    except Exception:
        pass


# ---------------------------------------------------------------- import events

def _find_spec(name, path=None, target=None):
    if _active:
        try:
            if name.partition('.')[0] not in _seen or _pending_set or _main_waits or not _main:
                _event(name)
            if sys.meta_path[-1] is not _tail:
                _keep_tail_last()
        except Exception:
            pass
    return None


# A finder appended after ours (six does this) would otherwise hide every failed
# import. Moving ours to the end from the first finder is safe: importlib is iterating
# at our head, before the tail.
def _keep_tail_last():
    meta = sys.meta_path
    if _tail in meta and _head in meta and meta.index(_tail) > meta.index(_head):
        meta.remove(_tail)
        meta.append(_tail)


# The finder last in sys.meta_path: called only when no other finder found name.
def _not_found(name, path=None, target=None):
    try:
        if _active and name in _pending_set:
            out = []
            _retract(name, out)
            _failed[name] = tuple(sys.path)
            _write(out)
    except Exception:
        pass
    return None


def _wanted(name):
    return ((name in _KEPT_STDLIB or name not in _stdlib) and name not in _SKIPPED and
            name.isidentifier() and not name.startswith(('__', '_sysconfigdata')) and
            len(name) <= 128)


def _record(top, out):
    global _truncated
    if len(_recorded) >= _MAX_PACKAGES:
        _truncated += 1
        return
    out.append('import\t%s\n' % top)
    if top in _FORKERS:
        _watch_forks()
    _recorded.append(top)
    _recorded_set.add(top)
    if top not in sys.modules:
        _pending.append([top, _events])
        _pending_set.add(top)
    else:
        _check_versions(out, (top,))


# A new top-level name is written at once, before the import runs. A name that no
# finder found is remembered with sys.path: importing it again (the optional-dependency
# pattern, in a loop) costs a dict look-up and writes nothing until sys.path changes.
def _event(name):
    global _events
    _events += 1
    top = name.partition('.')[0]
    out = []
    if top not in _seen:
        failed = _failed.get(top)
        if failed is not None and failed == tuple(sys.path):
            return
        _failed.pop(top, None)
        _seen.add(top)
        if _wanted(top):
            _record(top, out)
    if _pending_set:
        _check_pending(out, False)
        if _recorded and _recorded[-1] not in _versions:
            # The package imported last: its __version__ is usually set by now, and a
            # process killed soon after keeps it.
            _check_versions(out, _recorded[-1:])
    if _main is None or _main_waits:
        _resolve_main(out)
    if out:
        _write(out)


# The oldest pending names, once _AGE events old: loaded ones get their version, ones
# still being imported go to the back, the others are retracted (a find_spec probe).
def _check_pending(out, all_of_them):
    global _pending_head
    while _pending_head < len(_pending):
        name, since = _pending[_pending_head]
        if not all_of_them and _events - since < _AGE:
            break
        _pending_head += 1
        if name not in _pending_set:
            continue
        module = sys.modules.get(name)
        if module is None:
            _retract(name, out)
        elif _initializing(module) and not all_of_them:
            _pending.append([name, _events])  # its __version__ may come later
        else:
            _pending_set.discard(name)
            _check_versions(out, (name,))
    if _pending_head > 1024 and _pending_head * 2 > len(_pending):
        del _pending[:_pending_head]
        _pending_head = 0


def _initializing(module):
    if not issubclass(type(module), _module_type):
        return False
    spec = _module_dict(module).get('__spec__')
    return type(spec) is _spec_type and getattr(spec, '_initializing', False) is True


def _retract(name, out):
    if name in _pending_set:
        _pending_set.discard(name)
        out.append('unimport\t%s\n' % name)
        _seen.discard(name)
        if name in _recorded_set:
            _recorded_set.discard(name)
            _recorded.remove(name)


# __version__ when it is a str (a subclass such as torch's TorchVersion included,
# copied without calling its methods).
def _check_versions(out, names):
    for name in names:
        if name in _versions:
            continue
        module = sys.modules.get(name)
        if module is None or not issubclass(type(module), _module_type):
            continue
        version = _module_dict(module).get('__version__')
        if isinstance(version, str):
            version = str.__getitem__(version, slice(0, 65))
            if 0 < len(version) <= 64 and version.isprintable():
                _versions[name] = version
                out.append('version\t%s\t%s\n' % (name, version))


# The script's path, "-m MODULE", "-c" or "-"; a spawn worker's is its parent's main,
# known once multiprocessing loaded it as __mp_main__.
def _resolve_main(out):
    global _main, _main_waits
    try:
        argv = getattr(sys, 'argv', None)
        first = argv[0] if type(argv) is list and argv and type(argv[0]) is str else None
        if first == '-c' and '--multiprocessing-fork' in argv[1:2]:
            _main_waits = True
            main = _spawn_main()
        else:
            main = _main_of(first)
    except Exception:
        return
    if main and main != _main:
        _main = _printable(main, 4096)
        _main_waits = False
        out.append('main\t%s\n' % _main)


def _spawn_main():
    module = sys.modules.get('__mp_main__')
    if module is None or not issubclass(type(module), _module_type):
        return None
    attrs = _module_dict(module)
    spec = attrs.get('__spec__')
    if type(spec) is _spec_type and spec.name not in ('__main__', '__mp_main__'):
        return '-m ' + spec.name
    path = attrs.get('__file__')
    return _os.path.join(_os.getcwd(), path) if type(path) is str else None


def _main_of(first):
    module = sys.modules.get('__main__')
    name = None
    if module is not None and issubclass(type(module), _module_type):
        spec = _module_dict(module).get('__spec__')
        name = spec.name if type(spec) is _spec_type else None
    if type(name) is str and name != '__main__':
        return '-m ' + (name[:-9] if name.endswith('.__main__') else name)
    if first == '-m':
        orig = getattr(sys, 'orig_argv', None) or []
        return '-m ' + orig[orig.index('-m') + 1] if '-m' in orig[1:-1] else None
    if first in ('-c', '-', ''):
        return first or '-'
    return first and _os.path.join(_os.getcwd(), first)


# ---------------------------------------------------------------- distributions

def _normalise(name):
    out = name.lower().replace('-', '_').replace('.', '_')
    while '__' in out:
        out = out.replace('__', '_')
    return out


# The directory a top-level module was loaded from: the parent of a package's
# directory, the directory of a module file.
def _location(name):
    module = sys.modules.get(name)
    if module is None or not issubclass(type(module), _module_type):
        return None
    attrs = _module_dict(module)
    spec = attrs.get('__spec__')
    locs = getattr(spec, 'submodule_search_locations', None) if spec is not None else None
    origin = getattr(spec, 'origin', None) if spec is not None else attrs.get('__file__')
    dirname = _os.path.dirname
    if locs:
        for loc in locs:
            if type(loc) is str:
                return dirname(loc)
    if type(origin) is str and origin.startswith('/'):
        return dirname(origin)
    return None


def _read_head(path, limit=16384):
    try:
        with open(path, 'rb') as f:
            return f.read(limit).decode('utf-8', 'replace')
    except OSError:
        return ''


def _metadata(path):
    """(name, version) from a METADATA/PKG-INFO header."""
    name = version = None
    for line in _read_head(path, 4096).splitlines():
        if not line:
            break
        if line.startswith('Name:') and name is None:
            name = line[5:].strip()
        elif line.startswith('Version:') and version is None:
            version = line[8:].strip()
    return name, version


# What one directory holds: the distributions by normalised name, and (read only when a
# name is not a distribution's own) the top-level names each one installed.
def _scan(directory, cache):
    info = cache.get(directory)
    if info is None:
        info = cache[directory] = {'dists': {}, 'tops': None}
        try:
            names = _os.listdir(directory)
        except OSError:
            names = []
        for entry in names:
            if entry.endswith(('.dist-info', '.egg-info')):
                stem = entry.rsplit('.', 1)[0].split('-')[0]
                info['dists'].setdefault(_normalise(stem), entry)
    return info


def _tops(directory, info):
    if info['tops'] is None:
        tops = info['tops'] = {}
        for entry in info['dists'].values():
            path = _os.path.join(directory, entry)
            text = _read_head(_os.path.join(path, 'top_level.txt'))
            names = text.split()
            if not names:
                for line in _read_head(_os.path.join(path, 'RECORD'), 65536).splitlines():
                    first = line.split(',', 1)[0].split('/', 1)[0]
                    if first and not first.endswith(('.dist-info', '.data', '.pth')) and \
                            first not in ('..', '__pycache__'):
                        names.append(first.split('.', 1)[0])
            for top in names:
                tops.setdefault(top, entry)
    return info['tops']


def _dist_of(name, directory, cache):
    info = _scan(directory, cache)
    entry = info['dists'].get(_normalise(name)) or _tops(directory, info).get(name)
    if entry is None:
        return None, None
    path = _os.path.join(directory, entry)
    if _os.path.isdir(path):
        meta = 'METADATA' if entry.endswith('.dist-info') else 'PKG-INFO'
        return _metadata(_os.path.join(path, meta))
    return _metadata(path)  # an egg-info file


def _origin(directory):
    under = lambda base: bool(base) and (directory == base or directory.startswith(base + '/'))
    if under(_env.get('PYLAUNCH_ROOT', '').rstrip('/')):
        return 'bundle'
    if sys.prefix != getattr(sys, 'base_prefix', sys.prefix) and under(sys.prefix):
        return 'venv'
    site = sys.modules.get('site')
    user = getattr(site, 'USER_SITE', None) if site is not None else None
    if type(user) is str and under(user):
        return 'user'
    if under(getattr(sys, 'base_prefix', sys.prefix)) or under(sys.base_exec_prefix) or \
            under('/usr/lib') or under('/usr/local/lib'):
        return 'system'
    return 'other'


# What the processes of the job on this node found in a directory, kept in the spool
# (<spool>/.hook/dists-<hash>.txt: the directory, then NAME TAB DIST TAB VERSION lines,
# appended by whichever process resolved a name first): a job's later processes read
# one small node-local file instead of the metadata on a shared file system.
def _cache_path(directory):
    h = 0xcbf29ce484222325
    for byte in directory.encode('utf-8', 'surrogateescape'):
        h = ((h ^ byte) * 0x100000001b3) & 0xffffffffffffffff
    return '%s/.hook/dists-%016x.txt' % (_spool, h)


def _load_cache(directory):
    found = {}
    try:
        with open(_cache_path(directory), 'rb') as f:
            lines = f.read(1 << 20).decode('utf-8', 'replace').split('\n')
    except OSError:
        return found
    if lines[0] != directory:
        return found
    for line in lines[1:]:
        fields = line.split('\t')
        if len(fields) == 3:
            found.setdefault(fields[0], (fields[1], fields[2]))
    return found


def _save_cache(directory, lines):
    try:
        fd = _os.open(_cache_path(directory), _os.O_WRONLY | _os.O_CREAT | _os.O_APPEND |
                      _os.O_NOFOLLOW | _os.O_CLOEXEC, 0o600)
        try:
            head = directory + '\n' if _os.fstat(fd).st_size == 0 else ''
            _os.write(fd, (head + ''.join(lines)).encode('utf-8', 'surrogateescape'))
        finally:
            _os.close(fd)
    except (OSError, UnicodeError):
        pass


def _dists(out):
    scans, caches, new = {}, {}, {}
    for name in _recorded:
        if name in _KEPT_STDLIB:
            continue
        directory = _location(name)
        if directory is None or '\n' in directory:
            continue
        if directory not in caches:
            caches[directory] = _load_cache(directory)
        found = caches[directory].get(name)
        if found is None:
            dist, version = _dist_of(name, directory, scans)
            found = (_printable(dist or '-', 128).replace('\t', ' '),
                     _printable(version or '-', 64).replace('\t', ' '))
            caches[directory][name] = found
            new.setdefault(directory, []).append('%s\t%s\t%s\n' % (name, found[0], found[1]))
        out.append('dist\t%s\t%s\t%s\t%s\n' % (name, found[0], found[1], _origin(directory)))
    for directory, lines in new.items():
        _save_cache(directory, lines)


# ---------------------------------------------------------------- start

def _finder(name, find_spec):
    finder = _module_type(name)
    finder.find_spec = find_spec
    finder._pylaunch_monitor = True
    return finder


# Packages already imported (by .pth files) before the hook came in. Set operations
# first: most of sys.modules at start is the standard library, and this runs in every
# process.
def _already_imported(out):
    names = set(sys.modules)
    names.difference_update(_stdlib, _seen)
    names.update(name for name in _KEPT_STDLIB if name in sys.modules)
    for name in [name for name in sys.modules if name in names]:  # in their order
        if '.' not in name and name not in _seen:
            _seen.add(name)
            if _wanted(name):
                _record(name, out)


def _install(os, env, spool, how):
    global _os, _env, _spool, _now, _spec_type, _stdlib, _stdlib_source, _container_kind
    global _head, _tail, _lock, _how
    for finder in sys.meta_path:
        if getattr(finder, '_pylaunch_monitor', False) is True:
            return
    import atexit
    import time
    import _frozen_importlib
    import _thread
    _os, _env, _spool, _now, _how = os, env, spool, time.time, how
    _lock = _thread.allocate_lock()
    _spec_type = _frozen_importlib.ModuleSpec
    _stdlib = getattr(sys, 'stdlib_module_names', None)
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
    out = []
    _already_imported(out)
    _write(out)


# Python does not write byte code under PYTHONDONTWRITEBYTECODE; without it the hook
# would be compiled at every start. The cache lives next to it, in the job's spool: for
# this file and the shims beside it.
def _cache_own_byte_code(os):
    if not sys.dont_write_bytecode:
        return
    here = os.path.dirname(__file__)
    tag = sys.implementation.cache_tag
    # One listdir instead of two stats a file: this runs in every process.
    try:
        present = set(os.listdir(os.path.join(here, '__pycache__')))
    except OSError:
        present = set()
    missing = [name for name in ('pylaunch_monitor', 'sitecustomize', 'usercustomize')
               if '%s.%s.pyc' % (name, tag) not in present]
    if not missing or tag is None:
        return
    import _frozen_importlib_external as external
    for name in missing:
        source = os.path.join(here, name + '.py')
        try:
            cached = external.cache_from_source(source)
            if not os.path.exists(source):
                continue
            with open(source, 'rb') as f:
                code = compile(f.read(), source, 'exec', dont_inherit=True)
            st = os.stat(source)
            try:
                os.mkdir(os.path.dirname(cached))
            except FileExistsError:
                pass
            external._write_atomic(cached, external._code_to_timestamp_pyc(
                code, int(st.st_mtime), st.st_size), 0o600)
        except Exception:
            pass


def active():
    return _head is not None


# Starts the recorder (once per process); how: the way in (sitecustomize, usercustomize,
# pth). Never raises.
def start(how='sitecustomize'):
    try:
        import os
        env = os.environ
        spool = env.get('PYLAUNCH_MONITOR_SPOOL')
        flags = sys.flags
        if (not spool or flags.no_site or flags.ignore_environment or
                getattr(flags, 'isolated', 0) or
                env.get('PYLAUNCH_MONITOR', '').strip().lower() in ('0', 'no', 'off', 'false')):
            return
        _install(os, env, spool, how)
        _cache_own_byte_code(os)
    except Exception:
        pass
