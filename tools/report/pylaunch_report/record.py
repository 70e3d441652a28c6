"""Everything this tool knows about the record format, in one place.

The records are those of src/monitor/monitor_record.c (share/monitor-record.schema.json):
schema "pylaunch-monitor-record", schema_version 1 or 2. A field that is missing, null
or of an unexpected type is "not known" (None), never an error: a newer plugin may add
fields and an older one lacks some. Only a line that is not a JSON object, or an
object of another schema, or of a schema_version this module does not know, is
malformed.

A line is either a record (a sink file's line) or a stored syslog message (RFC 5424,
possibly in several parts: [pylaunch@32473 id="JOB.NODE" part="K" of="N"] then bytes).
"""
import re
from datetime import datetime

try:  # ujson (Debian's python3-ujson) decodes a record in 60 % of json's time
    from ujson import loads as _loads
except ImportError:  # pragma: no cover (the tests run where it is installed)
    from json import loads as _loads

SCHEMA = "pylaunch-monitor-record"
VERSIONS = (1, 2)
SD_ID = "pylaunch@32473"

_SYSLOG_SD = re.compile(r'\[' + re.escape(SD_ID) +
                        r' id="((?:[^"\\]|\\.)*)" part="(\d+)" of="(\d+)"\] ?')


class Malformed(ValueError):
    """A line that holds no record this tool can read; the text says why."""


def framing(line):
    """(id, part, of, payload) for a syslog message, (None, 1, 1, line) for a plain line."""
    if line.startswith("{"):
        return None, 1, 1, line
    m = _SYSLOG_SD.search(line)
    if not m:
        if "{" in line:  # a syslog daemon's own prefix before a record sent without parts
            return None, 1, 1, line[line.index("{"):]
        raise Malformed("no JSON object and no pylaunch syslog header")
    part, of = int(m.group(2)), int(m.group(3))
    if not 1 <= part <= of:
        raise Malformed(f"syslog part {part} of {of}")
    return m.group(1), part, of, line[m.end():]


def _str(v):
    return v if type(v) is str and v else None  # noqa: E721


def _int(v):
    return v if type(v) is int and v >= 0 else None  # noqa: E721 (bool is not a count)


def _float(v):
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    return None


def _bool(v):
    """True/False; a number or an object counts as true when non-zero/non-empty."""
    if v is True or v is False:
        return v
    if isinstance(v, (int, float)):
        return v != 0
    if isinstance(v, dict):
        return any(_bool(x) for x in v.values())
    return None


def _count(v):
    """A count, or the sum of an object's counts ({"packages": 1, "steps": 0})."""
    if type(v) is dict:  # noqa: E721
        n = 0
        for x in v.values():
            if type(x) is int and x > 0:  # noqa: E721
                n += x
        return n
    return _int(v)


def _time(v):
    """Unix seconds of an RFC 3339 time ("2026-11-21T21:01:49.138Z"), or None."""
    if type(v) is not str:  # noqa: E721
        return None
    try:
        return _fromiso(v).timestamp()
    except ValueError:
        try:
            return datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None


_fromiso = datetime.fromisoformat  # Python >= 3.11 reads the "Z"; older ones take the replace


def _versions(pkg, processes):
    """[(version or None, processes)]: schema 1 lists "versions", schema 2 may give one
    "version"; processes not under any listed version count under an unknown one."""
    listed = pkg.get("versions")
    out = []
    seen = 0
    if type(listed) is list:  # noqa: E721
        for v in listed:
            if type(v) is dict:  # noqa: E721
                n, version = v.get("processes"), v.get("version")
                n = n if type(n) is int and n >= 0 else 0  # noqa: E721
                out.append((version if type(version) is str and version else None, n))  # noqa
                seen += n
    if not out:
        version = pkg.get("version")
        if type(version) is dict:  # noqa: E721 (a tally, as schema 1's list items)
            version = version.get("version")
        return [(_str(version), processes)]
    if seen < processes:
        out.append((None, processes - seen))
    return out


def _origin(pkg):
    """Where most of the package's processes imported it from (schema 2's "origins":
    bundle, venv, user, system, other), or a plain "origin"; None when not known."""
    origins = pkg.get("origins")
    if type(origins) is list:  # noqa: E721
        best, most = None, 0
        for o in origins:
            if type(o) is dict:  # noqa: E721
                name, n = _str(o.get("origin")), _int(o.get("processes")) or 0
                if name and n > most:
                    best, most = name, n
        return best
    return _str(pkg.get("origin"))


def _packages(items):
    """[(name, processes, incomplete, rank_count, distribution, origin, versions)]; items
    that are not packages are left out. The loop is written out: it runs for every
    package of every record."""
    out = []
    if type(items) is not list:  # noqa: E721
        return out
    for pkg in items:
        if type(pkg) is not dict:  # noqa: E721
            continue
        get = pkg.get
        name = get("name")
        if type(name) is not str or not name:  # noqa: E721
            continue
        processes, incomplete, ranks = get("processes"), get("incomplete"), get("rank_count")
        processes = processes if type(processes) is int and processes >= 0 else 0  # noqa: E721
        incomplete = incomplete if type(incomplete) is int and incomplete >= 0 else 0  # noqa
        ranks = ranks if type(ranks) is int and ranks >= 0 else None  # noqa: E721
        dist = get("distribution")
        out.append((name, processes, incomplete, ranks,
                    dist if type(dist) is str and dist else None,  # noqa: E721
                    _origin(pkg) if "origins" in pkg or "origin" in pkg else None,
                    _versions(pkg, processes)))
    return out


def _interpreter(item):
    if not isinstance(item, dict):
        return None
    return (_str(item.get("executable")), _str(item.get("version")),
            _str(item.get("implementation")), _int(item.get("processes")) or 0)


def _list(rec, key):
    v = rec.get(key)
    return v if isinstance(v, list) else []


def _exit_code(rec):
    e = rec.get("exit")
    return _int(e.get("code")) if isinstance(e, dict) else None


def _first(rec, *keys):
    """The first of keys present (a field renamed between schema versions)."""
    for k in keys:
        if k in rec:
            return rec[k]
    return None


def parse(text):
    """The record in text (str, or bytes in UTF-8) as a flat dict (see normalise), or raise
    Malformed."""
    try:
        rec = _loads(text)
    except ValueError as e:
        raise Malformed(f"not JSON: {e}") from None
    if not isinstance(rec, dict):
        raise Malformed("not a JSON object")
    return normalise(rec)


def normalise(rec):
    """The decoded record as the flat dict the loader stores: the job's fields (None when
    not known), the counts of the data quality section, "interpreters" as (executable,
    version, implementation, processes) and "packages" as (name, processes, incomplete,
    rank_count, distribution, origin, [(version, processes)]). Schema 2's renamed or new
    fields are read here and nowhere else."""
    if rec.get("schema") != SCHEMA:
        raise Malformed(f"schema {rec.get('schema')!r} is not {SCHEMA}")
    version = rec.get("schema_version")
    if version not in VERSIONS:
        raise Malformed(f"schema_version {version!r} not one of {VERSIONS}")
    get = rec.get
    job_id = _int(get("job_id"))
    if job_id is None:
        raise Malformed("no job_id")
    user = _str(get("user")) or (f"uid {rec['uid']}" if _int(get("uid")) is not None
                                 else "unknown")
    end_time = get("end_time")
    # The flags are JSON booleans in every record the plugin writes: _flag only for others.
    staff, container, partial, truncated = (get("is_staff"), get("is_container"),
                                            get("partial"), get("truncated"))
    return {
        "schema_version": version,
        "cluster": _str(get("cluster")) or "",
        "job_id": job_id,
        "node": _str(get("node")) or "",
        "user": user,
        "account": _str(get("account")),
        "partition": _str(get("partition")),
        "num_nodes": _int(get("num_nodes")),
        "exit_code": _exit_code(rec),
        "start": _time(get("start_time")),
        "end": _time(end_time),
        "end_text": end_time if type(end_time) is str else "",  # noqa: E721
        "is_staff": staff if staff is True or staff is False else _flag(staff),
        "is_container": (container if container is True or container is False
                         else _flag(container)),
        "partial": partial if partial is True or partial is False else _flag(partial),
        "truncated": (truncated if truncated is True or truncated is False
                      else _flag(truncated)),
        "processes": _int(get("processes")) or 0,
        "processes_incomplete": _int(get("processes_incomplete")) or 0,
        "logs_skipped": _int(get("logs_skipped")),
        "lines_skipped": _int(get("lines_skipped")),
        "dropped": _count(get("dropped")),
        # Schema 2: Python tasks that ran without the hook (python -I/-S/-E, an unwritable
        # spool), and processes whose log could not be made (a full spool).
        "without_hook": _count(_first(rec, "python_tasks_unhooked", "processes_without_hook")),
        "unlogged": _count(_first(rec, "processes_unlogged", "unlogged")),
        # Not in schema 2: the report's --sample-rate gives it.
        "sample_rate": _float(_first(rec, "sample_rate", "sampling")),
        "interpreters": [i for i in map(_interpreter, _list(rec, "interpreters")) if i],
        "packages": _packages(get("packages")),
    }


def _flag(v):
    return bool(_bool(v))
