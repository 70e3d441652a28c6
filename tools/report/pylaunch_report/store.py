"""The local SQLite database: which files were loaded, the records, their packages.

Loading is incremental: a file already loaded (same path, size and mtime, or the same
content under any name) is skipped; a record already in the database (same cluster,
job, node and end time: a sink file that grew, or the same record from a file sink and
from syslog) is counted as a duplicate and not stored twice. A malformed line is
counted, its first reasons kept, and loading goes on. Each file is loaded in one
transaction: an interrupted load leaves no half-loaded file behind.
"""
import collections
import gc
import gzip
import hashlib
import multiprocessing
import os
import sqlite3
import time
from datetime import datetime, timezone

from . import record

SCHEMA = """
CREATE TABLE IF NOT EXISTS files(id INTEGER PRIMARY KEY, path TEXT, size INT, mtime_ns INT,
    digest TEXT UNIQUE, loaded_at REAL, lines INT, records INT, duplicates INT, malformed INT);
CREATE INDEX IF NOT EXISTS files_stat ON files(path, size, mtime_ns);
CREATE TABLE IF NOT EXISTS malformed(file_id INT, line INT, reason TEXT);
CREATE TABLE IF NOT EXISTS names(id INTEGER PRIMARY KEY, kind TEXT, name TEXT, UNIQUE(kind, name));
CREATE TABLE IF NOT EXISTS records(id INTEGER PRIMARY KEY, file_id INT, schema_version INT,
    job_key INT, cluster_id INT, job_id INT, node TEXT, end_text TEXT, user_id INT, account TEXT,
    partition TEXT, num_nodes INT, exit_code INT, start REAL, end REAL, is_staff INT,
    is_container INT, partial INT, truncated INT, processes INT, processes_incomplete INT,
    logs_skipped INT, lines_skipped INT, dropped INT, without_hook INT, unlogged INT,
    sample_rate REAL, UNIQUE(cluster_id, job_id, node, end_text));
-- Per job, not per record: the report counts a package once per job, and a job of 4096
-- nodes sends 4096 records. version_id 0: unknown. nodes: records that name it.
CREATE TABLE IF NOT EXISTS job_packages(job_key INT, package_id INT, version_id INT,
    processes INT, incomplete INT, nodes INT, rank_count INT, distribution_id INT,
    origin_id INT, PRIMARY KEY(job_key, package_id, version_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS job_interpreters(job_key INT, executable_id INT, version_id INT,
    implementation_id INT, processes INT,
    PRIMARY KEY(job_key, executable_id, version_id, implementation_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sacct_jobs(cluster TEXT, job_id INT, user TEXT, num_nodes INT,
    start REAL, PRIMARY KEY(cluster, job_id));
"""

RECORD_COLUMNS = ("id", "file_id", "schema_version", "job_key", "cluster_id", "job_id", "node", "end_text",
                  "user_id", "account", "partition", "num_nodes", "exit_code", "start", "end",
                  "is_staff", "is_container", "partial", "truncated", "processes",
                  "processes_incomplete", "logs_skipped", "lines_skipped", "dropped",
                  "without_hook", "unlogged", "sample_rate")
# Records parsed before they are stored: small enough to stay in the CPU's caches.
BATCH = 2000
REASONS_KEPT = 20


def connect(path):
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA cache_size=-65536")  # 64 MiB: the records' unique index stays cached
    db.executescript(SCHEMA)
    return db


class Names:
    """Interned strings (users, packages, versions, ...) as small integers; of(kind) is the
    dictionary of one kind, for the loops that look up millions."""

    def __init__(self, db):
        self.db = db
        self.kinds = {}
        for i, k, n in db.execute("SELECT id, kind, name FROM names"):
            self.of(k)[n] = i

    def of(self, kind):
        return self.kinds.setdefault(kind, {})

    def id(self, kind, name):
        if name is None:
            return None
        ids = self.of(kind)
        got = ids.get(name)
        if got is None:
            got = self.db.execute("INSERT INTO names(kind, name) VALUES (?, ?)",
                                  (kind, name)).lastrowid
            ids[name] = got
        return got


class Outcome:
    def __init__(self, path, status, lines=0, records=0, duplicates=0, malformed=0, reasons=()):
        self.path, self.status = path, status
        self.lines, self.records, self.duplicates = lines, records, duplicates
        self.malformed, self.reasons = malformed, list(reasons)

    def __str__(self):
        if self.status != "loaded":
            return f"{self.path}: {self.status}"
        text = (f"{self.path}: {self.records} records, {self.duplicates} already loaded, "
                f"{self.malformed} malformed lines")
        return text + "".join(f"\n  line {n}: {why}" for n, why in self.reasons[:5])


def _digest(path):
    """The content's identity, to skip a copy of a loaded file under another name. BLAKE2b:
    SHA-256 took 4 s of a 1.4 GB load here, BLAKE2b half that; a digest of another algorithm
    (an older database's SHA-256) never equals it, and records are deduplicated anyway."""
    h = hashlib.blake2b(digest_size=32)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _open(path):
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else open(path, "rb")


def _texts(stream, bad):
    """(line number, record text) of each line; syslog parts joined; bad(n, why) for the rest."""
    pending = {}
    for n, raw in enumerate(stream, 1):
        if raw[:1] == b"{":  # a sink's line: json.loads reads the bytes as they are
            yield n, raw
            continue
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not line.strip():
            continue
        try:
            key, part, of, payload = record.framing(line)
        except record.Malformed as e:
            bad(n, str(e))
            continue
        if of == 1:
            yield n, payload
            continue
        got = pending.setdefault((key, of), {})
        got.setdefault(part, payload)
        if len(got) == of:
            del pending[(key, of)]
            yield n, "".join(got[k] for k in range(1, of + 1))
    for (key, of), got in pending.items():
        bad(0, f"syslog record {key}: {len(got)} of {of} parts")


def parse_chunk(chunk):
    """[(line number, record dict or the reason it is malformed)]; runs in a worker."""
    gc.disable()  # see Loader.load
    out = []
    for n, text in chunk:
        try:
            out.append((n, record.parse(text)))
        except record.Malformed as e:
            out.append((n, str(e)))
    return out


def _chunks(texts, size):
    chunk = []
    for item in texts:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def default_jobs():
    """Parsing processes: PYLAUNCH_REPORT_JOBS, else 1. On this 2-core machine shared with
    other work, 2 workers took 45 % more CPU (pickling the parsed records) and more time
    (bench/results/report.json); they help only where cores are idle."""
    try:
        return max(1, int(os.environ.get("PYLAUNCH_REPORT_JOBS", "")))
    except ValueError:
        return 1


class Loader:
    """Parsing JSON is most of a load's time: with jobs > 1 it runs in that many worker
    processes, chunk by chunk and in order, while this process stores what they return."""

    def __init__(self, db, jobs=1):
        self.db = db
        self.names = Names(db)
        self.jobs = jobs
        self.pool = multiprocessing.get_context("fork").Pool(jobs) if jobs > 1 else None

    def close(self):
        if self.pool:
            self.pool.close()
            self.pool.join()
            self.pool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.pool and exc[0]:
            self.pool.terminate()
        self.close()

    def _parsed(self, chunks):
        """parse_chunk of each chunk, in order; a bounded number in flight."""
        if not self.pool:
            yield from map(parse_chunk, chunks)
            return
        pending = collections.deque()
        for chunk in chunks:
            pending.append(self.pool.apply_async(parse_chunk, (chunk,)))
            if len(pending) >= 2 * self.jobs:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()

    def load(self, path):
        st = os.stat(path)
        seen = self.db.execute("SELECT 1 FROM files WHERE path=? AND size=? AND mtime_ns=?",
                               (path, st.st_size, st.st_mtime_ns)).fetchone()
        if seen:
            return Outcome(path, "already loaded")
        digest = _digest(path)
        same = self.db.execute("SELECT path FROM files WHERE digest=?", (digest,)).fetchone()
        if same:
            return Outcome(path, f"already loaded (same content as {same[0]})")
        # The records are trees of small objects that live one batch: the cyclic garbage
        # collector would scan them over and over (it doubled the time of a load).
        gc.disable()
        try:
            with self.db:
                return self._load(path, st, digest)
        except BaseException:
            self.names = Names(self.db)  # names the rollback took back
            raise
        finally:
            gc.enable()

    def _load(self, path, st, digest):
        file_id = self.db.execute(
            "INSERT INTO files(path, size, mtime_ns, digest, loaded_at) VALUES (?,?,?,?,?)",
            (path, st.st_size, st.st_mtime_ns, digest, time.time())).lastrowid
        out = Outcome(path, "loaded")

        def bad(n, why):
            out.malformed += 1
            if len(out.reasons) < REASONS_KEPT:
                out.reasons.append((n, why))

        lines = 0
        with _open(path) as stream:
            for parsed in self._parsed(_chunks(_texts(stream, bad), BATCH)):
                batch = []
                for n, got in parsed:
                    if type(got) is str:  # noqa: E721
                        bad(n, got)
                    else:
                        batch.append(got)
                lines = parsed[-1][0]
                self._store(file_id, batch, out)
        out.reasons.sort()
        out.lines = max(lines, out.reasons[-1][0] if out.reasons else 0)
        self.db.executemany("INSERT INTO malformed VALUES (?,?,?)",
                            [(file_id, n, why) for n, why in out.reasons])
        self.db.execute("UPDATE files SET lines=?, records=?, duplicates=?, malformed=? WHERE id=?",
                        (out.lines, out.records, out.duplicates, out.malformed, file_id))
        return out

    def _store(self, file_id, recs, out):
        if not recs:
            return
        first = (self.db.execute("SELECT MAX(id) FROM records").fetchone()[0] or 0) + 1
        nid = self.names.id
        clusters, users = self.names.of("cluster"), self.names.of("user")
        rows = []
        for i, r in enumerate(recs):
            cluster = clusters.get(r["cluster"]) or nid("cluster", r["cluster"])
            r["job_key"] = job_key(cluster, r["job_id"])
            rows.append((first + i, file_id, r["schema_version"], r["job_key"], cluster,
                         r["job_id"], r["node"], r["end_text"],
                         users.get(r["user"]) or nid("user", r["user"]),
                         r["account"], r["partition"], r["num_nodes"], r["exit_code"],
                         r["start"], r["end"], r["is_staff"], r["is_container"], r["partial"],
                         r["truncated"], r["processes"], r["processes_incomplete"],
                         r["logs_skipped"], r["lines_skipped"], r["dropped"], r["without_hook"],
                         r["unlogged"], r["sample_rate"]))
        marks = ",".join("?" * len(RECORD_COLUMNS))
        self.db.executemany(f"INSERT OR IGNORE INTO records VALUES ({marks})", rows)
        stored = {i for (i,) in self.db.execute("SELECT id FROM records WHERE id BETWEEN ? AND ?",
                                                (first, first + len(recs) - 1))}
        out.records += len(stored)
        out.duplicates += len(recs) - len(stored)
        # One row per job, package and version: the records of a job's nodes are summed
        # here before SQLite sums them across batches and files.
        pkgs, interps = {}, {}
        packages, versions = self.names.of("package"), self.names.of("version")
        dists, origins = self.names.of("distribution"), self.names.of("origin")
        exes, impls = self.names.of("executable"), self.names.of("implementation")
        for i, r in enumerate(recs):
            if first + i not in stored:
                continue
            key = r["job_key"]
            for name, processes, incomplete, ranks, dist, origin, vers in r["packages"]:
                pid = packages.get(name) or nid("package", name)
                for version, n in vers:
                    vid = 0 if version is None else (versions.get(version) or
                                                     nid("version", version))
                    row = pkgs.get((key, pid, vid))
                    if row is None:
                        pkgs[(key, pid, vid)] = [
                            n, incomplete, 1, ranks or 0,
                            None if dist is None
                            else dists.get(dist) or nid("distribution", dist),
                            None if origin is None
                            else origins.get(origin) or nid("origin", origin)]
                    else:
                        row[0] += n
                        row[1] += incomplete
                        row[2] += 1
                        row[3] = max(row[3], ranks or 0)
            for exe, version, impl, processes in r["interpreters"]:
                k = (key, 0 if exe is None else exes.get(exe) or nid("executable", exe),
                     0 if version is None else versions.get(version) or nid("version", version),
                     0 if impl is None else impls.get(impl) or nid("implementation", impl))
                interps[k] = interps.get(k, 0) + processes
        self.db.executemany(
            "INSERT INTO job_packages VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT DO UPDATE SET"
            " processes = processes + excluded.processes,"
            " incomplete = incomplete + excluded.incomplete, nodes = nodes + excluded.nodes,"
            " rank_count = MAX(rank_count, excluded.rank_count)",
            [k + tuple(v) for k, v in pkgs.items()])
        self.db.executemany(
            "INSERT INTO job_interpreters VALUES (?,?,?,?,?) ON CONFLICT DO UPDATE SET"
            " processes = processes + excluded.processes",
            [k + (v,) for k, v in interps.items()])


def job_key(cluster_id, job_id):
    """One integer per (cluster, job): Slurm job ids are below 2^32."""
    return (cluster_id << 32) | (job_id & 0xFFFFFFFF)


def _sacct_time(text):
    """sacct's Start (2026-12-06T01:45:17, the cluster's time zone, taken as UTC), or None."""
    try:
        return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return None  # Unknown, None: the job never started


def load_sacct(db, path):
    """Lines of `sacct -X -P -n -o Cluster,JobIDRaw,User,NNodes,Start`: every job, monitored or
    not, so that the report can say which share of all jobs it covers. Returns (jobs, bad)."""
    rows, bad = [], 0
    with _open(path) as f:
        for raw in f:
            parts = raw.decode("utf-8", "replace").strip().split("|")
            if len(parts) < 5 or not parts[1].isdigit():
                bad += 1 if raw.strip() else 0
                continue
            start = _sacct_time(parts[4])
            nodes = int(parts[3]) if parts[3].isdigit() else None
            rows.append((parts[0], int(parts[1]), parts[2], nodes, start))
    with db:
        db.executemany("INSERT OR REPLACE INTO sacct_jobs VALUES (?,?,?,?,?)", rows)
    return len(rows), bad
