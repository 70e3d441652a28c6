"""pylaunch-report load DB FILE... | load-sacct DB FILE | html DB -o report.html"""
import argparse
import os
import sqlite3
import sys

from . import store

PROG = "pylaunch-report"


def _load(args):
    db = store.connect(args.db)
    totals = [0, 0, 0]
    status = 0
    with store.Loader(db, args.jobs) as loader:
        for path in args.files:
            try:
                out = loader.load(os.path.abspath(path))
            except OSError as e:
                print(f"{PROG}: {path}: {e.strerror}", file=sys.stderr)
                status = 1
                continue
            print(out, flush=True)
            totals[0] += out.records
            totals[1] += out.duplicates
            totals[2] += out.malformed
    print(f"total: {totals[0]} records loaded, {totals[1]} already loaded, "
          f"{totals[2]} malformed lines")
    return status


def _load_sacct(args):
    db = store.connect(args.db)
    try:
        jobs, bad = store.load_sacct(db, args.file)
    except OSError as e:
        print(f"{PROG}: {args.file}: {e.strerror}", file=sys.stderr)
        return 1
    print(f"{args.file}: {jobs} jobs, {bad} lines not understood")
    return 0


def _html(args):
    from . import aggregate, render  # pandas and matplotlib only where needed

    if not os.path.exists(args.db):
        print(f"{PROG}: {args.db}: No such file or directory", file=sys.stderr)
        return 1
    if args.sample_rate is not None and not 0 < args.sample_rate <= 1:
        print(f"{PROG}: --sample-rate={args.sample_rate}: expected a number in (0, 1]",
              file=sys.stderr)
        return 2
    db = store.connect(args.db)
    opts = aggregate.Options(top=args.top, include_staff=args.include_staff,
                             staff_users=tuple(u for u in args.staff_users.split(",") if u),
                             sample_rate=args.sample_rate)
    text = render.page(aggregate.build(db, opts), title=args.title)
    tmp = args.output + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, args.output)
    print(f"{args.output}: {len(text):,} bytes")
    return 0


def parser():
    p = argparse.ArgumentParser(prog=PROG, description="Report on the Python packages that "
                                "pylaunch --pymonitor recorded.")
    sub = p.add_subparsers(dest="command", required=True)
    load = sub.add_parser("load", help="load JSON Lines files (plain or gzip) into DB")
    load.add_argument("db")
    load.add_argument("files", nargs="+", metavar="FILE")
    load.add_argument("-j", "--jobs", type=int, default=store.default_jobs(),
                      help="worker processes parsing records (default 1: in this process)")
    load.set_defaults(func=_load)
    sacct = sub.add_parser("load-sacct", help="load the list of all jobs (sacct -P output)")
    sacct.add_argument("db")
    sacct.add_argument("file")
    sacct.set_defaults(func=_load_sacct)
    h = sub.add_parser("html", help="write the report as one self-contained HTML page")
    h.add_argument("db")
    h.add_argument("-o", "--output", required=True)
    h.add_argument("--top", type=int, default=20, help="packages in the top lists (20)")
    h.add_argument("--include-staff", action="store_true", help="count staff jobs too")
    h.add_argument("--staff-users", default="", metavar="U1,U2",
                   help="users counted as staff besides the records' is_staff")
    h.add_argument("--sample-rate", type=float, help="monitor.sample_rate, for records "
                   "that do not carry it")
    h.add_argument("--title", default="Python packages at the centre")
    h.set_defaults(func=_html)
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except sqlite3.DatabaseError as e:
        print(f"{PROG}: {args.db}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
