"""What the cluster benchmarks (startup.py, fanout.py) share: slowfs mounts, the test cluster held
under its lock, running jobs as the test user, the plugin's per-node staging lines, and a sampler
of every node's /dev/shm.

The machine has one test cluster (tests/cluster/cluster.sh) that the integration tests use too.
A benchmark holds /run/pylaunch-cluster.lock for the whole of a "hold": mount slowfs, `cluster.sh
up`, run points, `cluster.sh down`, unmount slowfs, and only then release the lock (a cluster
booted while our slowfs is mounted would copy the mount into its node namespaces).  Holds are
kept under --max-hold seconds so that others get the cluster in between.
"""
import contextlib
import datetime
import fcntl
import json
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
SLOWFS = os.path.join(BENCH, "slowfs")
CLUSTER_SH = os.path.join(REPO, "tests", "cluster", "cluster.sh")
CLUSTER_DIR = os.environ.get("CLUSTER_DIR", "/run/pylaunch-cluster")
LOCK_PATH = "/run/pylaunch-cluster.lock"
TEST_USER = os.environ.get("TEST_USER", "pltest")
WORK = os.environ.get("BENCH_WORK", "/var/tmp/pylaunch-bench")
BUILD = os.environ.get("BENCH_BUILD", "/var/tmp/bench-build")
DEFAULT_PLUGIN = os.path.join(BUILD, ".libs", "pylaunch.so")
PLUGIN_COPY = "/run/pylaunch-bench-plugin/pylaunch.so"  # readable by slurmd and the test user
SITE_CONFIG = os.path.join(CLUSTER_DIR, "etc", "pylaunch.yaml")
MAX_NODES = 16


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


def run(cmd, **kw):
    kw.setdefault("check", True)
    return subprocess.run(cmd, **kw)


def sigterm_is_exit():
    """SIGTERM/SIGHUP unwind like ^C, so every finally (down, umount, unlock) runs."""
    def handler(sig, _frame):
        raise SystemExit(128 + sig)
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


# ---------------------------------------------------------------- slowfs

class SlowFS:
    """One slowfs mount (bench/slowfs): SOURCE served at MNT with a per-request delay, a read cap
    and extra options (direct_io: the nodes share one page cache, so without it a node reading
    a file another node is reading would take the other's pages and slowfs would not see it)."""

    def __init__(self, src, mnt, delay_us=0, read_mbps=0, opts=""):
        self.src, self.mnt = src, mnt
        self.delay_us, self.read_mbps, self.opts = delay_us, read_mbps, opts

    def mounted(self):
        return subprocess.run(["mountpoint", "-q", self.mnt]).returncode == 0

    def mount(self, delay_us=None, read_mbps=None, opts=None):
        """Mounts (again) with the settings given, the others as they were."""
        if delay_us is not None:
            self.delay_us = delay_us
        if read_mbps is not None:
            self.read_mbps = read_mbps
        if opts is not None:
            self.opts = opts
        if self.mounted():
            self.umount()
        run([os.path.join(SLOWFS, "mount.sh"), self.mnt, self.src, str(self.delay_us),
             str(self.read_mbps)], stdout=subprocess.DEVNULL, env=dict(os.environ, SLOWFS_OPTS=self.opts))

    def umount(self):
        if subprocess.run([os.path.join(SLOWFS, "umount.sh"), self.mnt], stdout=subprocess.DEVNULL).returncode:
            log("warning: umount.sh", self.mnt, "failed")

    def stats(self, what="dump"):
        return json.loads(run([os.path.join(SLOWFS, "stats.sh"), self.mnt, what],
                              stdout=subprocess.PIPE, text=True).stdout)

    def reset(self):
        self.stats("reset")

    def settled(self):
        """Counters once the asynchronous RELEASEs of exited processes have arrived."""
        prev = self.stats()
        for _ in range(40):
            time.sleep(0.1)
            cur = self.stats()
            if cur["metadata_requests"] == prev["metadata_requests"] and cur["read"] == prev["read"]:
                return cur
            prev = cur
        return prev


def counters(st, path=None):
    """The few numbers a point keeps of a slowfs dump (path: a file below the mount root)."""
    out = {k: st[k] for k in ("metadata_requests", "requests", "read", "read_bytes", "open", "lookup", "getattr")}
    if path:
        out["file_opens"] = st["opens_by_path"].get(path, 0)
        out["file_read_bytes"] = st["read_bytes_by_path"].get(path, 0)
    return out


# ---------------------------------------------------------------- the plugin's staging lines

# pylaunch: stage job=J node=NODE mode=tree|direct role=root|interior|leaf|single parent=NAME|-
#   outcome=staged|reattached|direct|failed bytes=B shared_bytes=S start=EPOCH end=EPOCH
#   seconds=SEC reason="..."      (one line per node and staging; reason last, quoted)
# (the reason runs to the line's last quote: it may hold quotes of its own)
STAGE_LINE = re.compile(r'pylaunch: stage (?P<kv>(?:\w+=\S+ )+)reason="(?P<reason>.*)"\s*$')
STAGE_INT = ("job", "bytes", "shared_bytes")
STAGE_FLOAT = ("start", "end", "seconds")
# Before the tree: "[2026-11-21T22:21:20.498] pylaunch: prolog job 1 on node1: staged ROOT in 0.47 s:
# 1 bundle(s), read 59.0 MiB, wrote 183.7 MiB in 6877 files, ..." (end = the line's time stamp)
LEGACY_STAGED = re.compile(r"^\[(?P<ts>[0-9T:.-]+)\] pylaunch: prolog job (?P<job>\d+) on (?P<node>\S+): "
                           r"staged (?P<root>\S+) in (?P<sec>[0-9.]+) s: (?P<msg>.*)$")
LEGACY_FAILED = re.compile(r"^\[(?P<ts>[0-9T:.-]+)\] pylaunch: prolog job (?P<job>\d+) on (?P<node>\S+): "
                           r"(?:--pybundle: |node fault, cannot stage: )(?P<msg>.*)$")
LOG_TS = re.compile(r"^\[(?P<ts>[0-9T:.-]+)\]")


def log_time(ts):
    """slurmd's time stamp (local time, milliseconds) as epoch seconds."""
    return datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%f").timestamp()


def parse_stage_line(line):
    """The plugin's per-node staging record (the line above) as a dict, or None."""
    m = STAGE_LINE.search(line)
    if not m:
        return None
    rec = dict(kv.split("=", 1) for kv in m.group("kv").split())
    for k in STAGE_INT + STAGE_FLOAT:  # "-": not known (shared_bytes of a node that cannot tell)
        if k in rec:
            rec[k] = None if rec[k] == "-" else (int if k in STAGE_INT else float)(rec[k])
    rec["reason"] = m.group("reason").replace('\\"', '"')
    rec["source"] = "stage-line"
    return rec


def parse_legacy_line(line):
    """The same record derived from the plugin's lines before the tree (direct path only)."""
    m = LEGACY_STAGED.match(line)
    if m:
        end, sec, msg = log_time(m.group("ts")), float(m.group("sec")), m.group("msg")
        read = re.search(r"read ([0-9.]+) MiB", msg)
        return {"job": int(m.group("job")), "node": m.group("node"), "mode": "direct", "role": "single",
                "parent": "-", "outcome": "reattached" if msg == "already staged" else "staged",
                "bytes": None, "shared_bytes": int(float(read.group(1)) * 2**20) if read else None,
                # the line's stamp is in ms, seconds in 10 ms: start is good to about 10 ms
                "start": end - sec, "end": end, "seconds": sec, "reason": msg, "source": "legacy"}
    m = LEGACY_FAILED.match(line)
    if m:
        t = log_time(m.group("ts"))
        return {"job": int(m.group("job")), "node": m.group("node"), "mode": "direct", "role": "single",
                "parent": "-", "outcome": "failed", "bytes": None, "shared_bytes": None,
                "start": None, "end": t, "seconds": None, "reason": m.group("msg"), "source": "legacy"}
    return None


def check_parser():
    """Unit check of both parsers on sample lines (bench/run unit)."""
    line = ('[2026-11-22T10:00:01.250] pylaunch: stage job=42 node=node3 mode=tree role=interior parent=node1 '
            'outcome=staged bytes=199578641 shared_bytes=0 start=1795300000.125 end=1795300001.250 '
            'seconds=1.125 reason="ok: 6877 files, \\"fine\\""')
    r = parse_stage_line(line)
    assert r == {"job": 42, "node": "node3", "mode": "tree", "role": "interior", "parent": "node1",
                 "outcome": "staged", "bytes": 199578641, "shared_bytes": 0, "start": 1795300000.125,
                 "end": 1795300001.25, "seconds": 1.125, "reason": 'ok: 6877 files, "fine"',
                 "source": "stage-line"}, r
    r = parse_stage_line('pylaunch: stage job=7 node=n1 mode=direct role=single parent=- outcome=failed '
                         'bytes=0 shared_bytes=- start=1.000 end=2.500 seconds=1.50 reason=""')
    assert r["outcome"] == "failed" and r["parent"] == "-" and r["reason"] == "" and r["end"] == 2.5, r
    assert r["shared_bytes"] is None and r["bytes"] == 0, r
    r = parse_stage_line('pylaunch: stage job=8 node=n2 mode=tree role=leaf parent=n1 outcome=direct bytes=5 '
                         'shared_bytes=9 start=1.0 end=2.0 seconds=1.00 reason="entry "../x": leaves"')
    assert r["reason"] == 'entry "../x": leaves' and r["outcome"] == "direct", r
    assert parse_stage_line("pylaunch: stage job=7 node=n1 reason=unquoted") is None
    assert parse_stage_line("pylaunch: prolog job 1 on node1: staged /x in 0.47 s: ...") is None
    legacy = ("[2026-11-21T22:21:20.498] pylaunch: prolog job 1 on node1: staged /dev/shm/pylaunch/1/050f "
              "in 0.47 s: 1 bundle(s), read 59.0 MiB, wrote 183.7 MiB in 6877 files, 592 dirs")
    r = parse_legacy_line(legacy)
    end = log_time("2026-11-21T22:21:20.498")
    assert r["job"] == 1 and r["node"] == "node1" and r["outcome"] == "staged", r
    assert abs(r["end"] - end) < 1e-6 and abs(r["start"] - (end - 0.47)) < 1e-6, r
    assert r["shared_bytes"] == int(59.0 * 2**20), r
    r = parse_legacy_line("[2026-11-21T22:21:20.498] pylaunch: prolog job 3 on node2: --pybundle: /b: "
                          "entry '../x': path leaves the bundle (the job's tasks on this node will fail)")
    assert r["outcome"] == "failed" and r["node"] == "node2", r
    assert parse_legacy_line("[2026-11-21T22:21:20.498] pylaunch: epilog job 1 on node1 user x") is None
    return "stage-line parser: 12 checks passed"


def staging_summary(recs, t0=None):
    """Per-job figures from the nodes' records: span = max(end) - min(start), the time every node
    was staged; from t0 (srun's start) to the last end; all outcomes; shared bytes summed."""
    ok = [r for r in recs if r["outcome"] in ("staged", "reattached", "direct") and r["end"]]
    out = {"nodes": len(recs), "outcomes": sorted({r["outcome"] for r in recs}),
           "modes": sorted({r["mode"] for r in recs}), "roles": sorted({r["role"] for r in recs}),
           "source": sorted({r["source"] for r in recs})}
    if ok:
        out["span_s"] = round(max(r["end"] for r in ok) - min(r["start"] for r in ok), 3)
        out["node_seconds_max"] = round(max(r["seconds"] for r in ok), 3)
        if t0 is not None:
            out["from_srun_s"] = round(max(r["end"] for r in ok) - t0, 3)
    sb = [r["shared_bytes"] for r in recs if r["shared_bytes"] is not None]
    out["shared_bytes_sum"] = sum(sb) if sb else None
    return out


# ---------------------------------------------------------------- the cluster

class LogWatch:
    """The nodes' slurmd logs from a point in time on."""

    def __init__(self, nodes):
        self.offsets = {n: self._size(n) for n in nodes}

    @staticmethod
    def path(node):
        return os.path.join(CLUSTER_DIR, "log", f"slurmd-{node}.log")

    def _size(self, node):
        try:
            return os.path.getsize(self.path(node))
        except FileNotFoundError:
            return 0

    def lines(self, node):
        with open(self.path(node), "rb") as f:
            f.seek(self.offsets[node])
            return f.read().decode("utf-8", "replace").splitlines()

    def stage_records(self, job, nodes, timeout=30):
        """Every node's staging record for the job: its stage line, else the legacy lines."""
        deadline = time.time() + timeout
        while True:
            recs = {}
            for n in nodes:
                new = [r for r in map(parse_stage_line, self.lines(n)) if r and r["job"] == job]
                old = [r for r in map(parse_legacy_line, self.lines(n)) if r and r["job"] == job]
                if new or old:
                    recs[n] = (new or old)[0]  # the prolog's staging, not a later step's
            if len(recs) == len(nodes) or time.time() > deadline:
                return [recs[n] for n in nodes if n in recs]
            time.sleep(0.2)


class Cluster:
    """The booted test cluster: configuration, jobs as the test user, node namespaces."""

    def __init__(self, nodes):
        self.nodes = nodes
        self.t_up = time.time()

    def env(self):
        return dict(os.environ, SLURM_CONF=os.path.join(CLUSTER_DIR, "etc", "slurm.conf"))

    def node_names(self, n):
        return [f"node{i}" for i in range(1, n + 1)]

    def write_config(self, text):
        tmp = SITE_CONFIG + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, SITE_CONFIG)

    def as_user(self, cmd, timeout=1800, cwd=None):
        wrapped = ["runuser", "-u", TEST_USER, "--", "env",
                   f"SLURM_CONF={os.path.join(CLUSTER_DIR, 'etc', 'slurm.conf')}"] + list(cmd)
        return subprocess.run(wrapped, cwd=cwd or user_home(), text=True, capture_output=True,
                              timeout=timeout)

    def probe(self, config_text, bundle):
        """Does the plugin accept this configuration?  srun --test-only runs the submit side's
        checks (configuration, bundle) and queues nothing."""
        self.write_config(config_text)
        r = self.as_user(["srun", "--test-only", "-N1", f"--pybundle={bundle}", "true"], timeout=60)
        return r.returncode == 0, (r.stderr.strip().splitlines() or [""])[0]

    def wait_idle(self, timeout=120):
        """No job left, epilogs included (a completing job stays in squeue)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            out = subprocess.run(["squeue", "-h", "-o", "%i"], env=self.env(), text=True,
                                 capture_output=True).stdout.strip()
            if not out:
                return True
            time.sleep(0.2)
        log("warning: jobs still in squeue after", timeout, "s")
        return False

    def holder_pid(self, node):
        with open(os.path.join(CLUSTER_DIR, "run", f"holder-{node}.pid")) as f:
            return int(f.read().strip())

    def elapsed(self):
        return time.time() - self.t_up


def cluster_sh(*args, env=None, check=True):
    full = dict(os.environ, CLUSTER_DIR=CLUSTER_DIR, TEST_USER=TEST_USER)
    full.update(env or {})
    return subprocess.run(["bash", CLUSTER_SH, *args], env=full, check=check, text=True, capture_output=True)


def user_home():
    return os.path.expanduser(f"~{TEST_USER}")


def install_plugin(src):
    """A copy of the plugin slurmd and the test user can read; replaced, never rewritten (a running
    slurmd may have the old one mapped)."""
    if not os.path.isfile(src):
        sys.exit(f"plugin not built: {src} (bench/run plugin, or --plugin PATH)")
    os.makedirs(os.path.dirname(PLUGIN_COPY), mode=0o755, exist_ok=True)
    tmp = PLUGIN_COPY + ".new"
    run(["cp", src, tmp])
    os.chmod(tmp, 0o755)
    os.replace(tmp, PLUGIN_COPY)
    return PLUGIN_COPY


@contextlib.contextmanager
def hold(nodes, mounts, label=""):
    """Lock, mount, boot `nodes` nodes, yield the Cluster; always down, unmount, unlock."""
    with open(LOCK_PATH, "w") as lock:
        t = time.time()
        fcntl.flock(lock, fcntl.LOCK_EX)
        if time.time() - t > 1:
            log(f"waited {time.time() - t:.0f} s for {LOCK_PATH}")
        t_lock = time.time()
        try:
            for fs in mounts:
                fs.mount()
            env = {"PLUGIN": PLUGIN_COPY, "PLUGIN_ARGS": f"config={SITE_CONFIG}", "NODES": str(nodes)}
            up = cluster_sh("up", env=env, check=False)
            if up.returncode:
                raise RuntimeError(f"cluster.sh up failed:\n{up.stderr[-3000:]}")
            log(f"hold {label}: {nodes} nodes up")
            yield Cluster(nodes)
        finally:
            down = cluster_sh("down", check=False)
            if down.returncode:
                log("warning: cluster.sh down:", down.stderr[-2000:])
            for fs in mounts:
                fs.umount()
            log(f"hold {label}: released after {time.time() - t_lock:.0f} s")
            fcntl.flock(lock, fcntl.LOCK_UN)
    time.sleep(2)  # let a waiting test session take the lock before our next hold


def run_holds(groups, estimate, max_hold, run_point, make_hold):
    """Runs the points of each group (points sharing the mounts: one delay, ...) in holds that
    end before an estimate would take them past max_hold seconds.  make_hold(group_key) is the
    hold context manager; run_point(cluster, point) runs one.  A point whose estimate alone
    exceeds max_hold is returned, not run."""
    too_long = []
    for key, points in groups:
        todo = []
        for p in points:
            (too_long if estimate(p) > max_hold else todo).append(p)
        while todo:
            with make_hold(key) as c:
                first = True
                while todo and (first or c.elapsed() + estimate(todo[0]) <= max_hold):
                    run_point(c, todo.pop(0))
                    first = False
    return too_long


class ShmSampler(threading.Thread):
    """Used bytes of every node's private /dev/shm tmpfs, every `period` s, from one thread of
    ours: /proc/<holder>/root/dev/shm is that tmpfs seen through the node's mount namespace, and
    fstatvfs of a directory opened there costs no process per node."""

    def __init__(self, cluster, nodes, period=0.05):
        super().__init__(daemon=True)
        self.fds = {n: os.open(f"/proc/{cluster.holder_pid(n)}/root/dev/shm", os.O_RDONLY | os.O_DIRECTORY)
                    for n in nodes}
        self.period, self.stop_ev = period, threading.Event()
        self.base = {n: 0 for n in nodes}
        self.peak = dict(self.base)
        self.samples = 0

    @staticmethod
    def used(fd):
        st = os.fstatvfs(fd)
        return (st.f_blocks - st.f_bfree) * st.f_frsize

    def run(self):
        while not self.stop_ev.is_set():
            for n, fd in self.fds.items():
                u = self.used(fd)
                if u > self.peak[n]:
                    self.peak[n] = u
            self.samples += 1
            time.sleep(self.period)

    def begin(self):
        """Baseline: what the idle node holds now."""
        self.base = {n: self.used(fd) for n, fd in self.fds.items()}
        self.peak = dict(self.base)
        self.samples = 0

    def end(self):
        """Peak bytes above the baseline per node since begin()."""
        time.sleep(self.period * 2)
        return {n: self.peak[n] - self.base[n] for n in self.fds}, self.samples

    def close(self):
        self.stop_ev.set()
        self.join()
        for fd in self.fds.values():
            os.close(fd)


# ---------------------------------------------------------------- misc

def cpu_busy_s():
    """CPU seconds this machine has spent busy (all cores, /proc/stat): around a point, what the
    whole simulated cluster used, the plugin's processes, slowfs and the kernel included."""
    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def cpu_model():
    """The CPU's model name from /proc/cpuinfo, "" if it has none."""
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return cpu


def machine():
    cpu = cpu_model()
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "kernel": platform.release(), "cpu": cpu, "cores": os.cpu_count(),
            "loadavg_start": os.getloadavg(),
            "slurm": subprocess.run(["dpkg-query", "-W", "-f=${Version}", "slurmd"], text=True,
                                    capture_output=True).stdout,
            "git": subprocess.run(["git", "-C", REPO, "describe", "--always", "--dirty"], text=True,
                                  capture_output=True).stdout.strip()}


def plugin_info(path):
    st = os.stat(path)
    return {"path": path, "mtime": datetime.datetime.fromtimestamp(st.st_mtime).isoformat(timespec="seconds"),
            "size": st.st_size}


def ints(text):
    return [int(x) for x in str(text).split(",") if x]


def redraw(args, out_json, out_png, derive, plot, markdown):
    """--plot-only / --markdown: the PNG or the README table again from the JSON, its figures
    derived by the code as it is now (not by the code that wrote the JSON). True when asked."""
    if not (args.plot_only or args.markdown):
        return False
    with open(out_json) as f:
        res = json.load(f)
    derive(res)
    if args.plot_only:
        plot(res, out_png)
    else:
        print(markdown(res))
    return True


def save_json(path, res):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def run_and_save(res, out_json, out_png, run, derive, plot):
    """run() the points; whatever happens, derive the figures and write the JSON (a partial run
    is kept), then the plot.  The two cluster benchmarks end the same way."""
    t_start = time.time()
    try:
        res["not_run"] = run()
    finally:
        res["machine"]["loadavg_end"] = os.getloadavg()
        res["duration_s"] = round(time.time() - t_start, 1)
        derive(res)
        save_json(out_json, res)
        if os.path.exists(out_json + ".partial"):
            os.unlink(out_json + ".partial")
    plot(res, out_png)
    log(f"wrote {out_json} and {out_png} in {res['duration_s'] / 60:.1f} min; targets: {res['targets']}")


def config_text(extra=""):
    """The site configuration of every benchmark job; `extra` adds YAML sections (tree: ...)."""
    return ("stage:\n  dir: /dev/shm/pylaunch\n"
            f"monitor:\n  default: off\n  hook_dir: {os.path.join(REPO, 'share', 'monitor')}\n" + extra)


class OpenWatch:
    """Opens of one file on a local disk by any process of any node (inotify watches the inode,
    whatever the mount namespace), each stamped with the time it was seen: an open before the
    job's first prolog started is srun's check of the archive at submission, the rest the nodes'."""

    def __init__(self, path):
        self.times = []
        self.proc = subprocess.Popen(["stdbuf", "-oL", "inotifywait", "-m", "-e", "open", "--format", "%e",
                                      path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for line in self.proc.stderr:  # "Watches established." once it counts
            if "established" in line:
                break
        else:
            raise RuntimeError(f"inotifywait {path}: did not start")
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            if "OPEN" in line:
                self.times.append(time.time())

    def stop(self):
        """Every open's time (epoch seconds), once the last events have arrived."""
        time.sleep(0.3)
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.reader.join(timeout=10)
        return list(self.times)
