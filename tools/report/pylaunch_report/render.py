"""One self-contained HTML page: tables, and plots embedded as PNG data: URIs. No script,
no external resource: the page can be mailed, archived or served as a file."""
import base64
import html
import io
from datetime import datetime, timezone

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

CSS = """
body{font-family:sans-serif;margin:1em auto;max-width:80em;color:#222;padding:0 1em}
.row{display:flex;flex-wrap:wrap;gap:0 2em;align-items:flex-start}
h1{font-size:1.6em}h2{font-size:1.25em;border-bottom:1px solid #ccc;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}
td.t,th.t{text-align:left}.note{color:#555;font-size:.9em}.warn{color:#a40}
img{max-width:100%}.sampled{color:#a40}
"""


def esc(v):
    return html.escape(str(v), quote=True)


def _png(fig):
    buf = io.BytesIO()
    # tight_layout, not bbox_inches="tight": the latter draws the figure twice (a third of
    # the page's rendering time); the labels fit the same way.
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def img(uri, alt):
    return f'<p><img class="plot" src="{uri}" alt="{esc(alt)}"></p>'


def _barh(df, col, title):
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(df) + 1))
    ax.barh(df["package"][::-1], df[col][::-1], color="#3b6ea8")
    ax.set_xlabel(col)
    ax.set_title(title)
    return _png(fig)


def _sizes_plot(sizes, sampled):
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.bar(sizes["size"].astype(str), sizes["jobs"], color="#3b6ea8")
    ax.set_yscale("log")
    ax.set_xlabel("nodes")
    ax.set_ylabel("Python jobs" + (" (sample)" if sampled else ""))
    ax.set_title("Python jobs by node count")
    plt.setp(ax.get_xticklabels(), rotation=45)
    return _png(fig)


def _heatmap(table):
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(table) + 1.5))
    data = table.to_numpy().astype(float)
    masked = data.copy()
    masked[masked == 0] = float("nan")
    im = ax.imshow(masked, aspect="auto", cmap="viridis", norm=matplotlib.colors.LogNorm())
    ax.set_yticks(range(len(table)), table.index)
    ax.set_xticks(range(len(table.columns)), [str(c) for c in table.columns], rotation=45)
    ax.set_xlabel("nodes")
    fig.colorbar(im, ax=ax, label="jobs")
    ax.set_title("Packages by job size (jobs)")
    return _png(fig)


def _weekly_plot(weekly, per_package):
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.plot(weekly["week"], weekly["python_jobs"], marker="o", label="Python jobs", color="#222")
    for p in per_package.columns:
        ax.plot(per_package.index, per_package[p], marker=".", label=p)
    ax.set_ylabel("jobs per week")
    ax.legend(fontsize=7, ncol=3)
    fig.autofmt_xdate()
    ax.set_title("Per week")
    return _png(fig)


def _table(df, cols, text_cols=(), fmt=None):
    fmt = fmt or {}
    head = "".join(f'<th class="{"t" if c in text_cols else ""}">{esc(label)}</th>'
                   for c, label in cols)
    rows = []
    for _, r in df.iterrows():
        cells = []
        for c, _ in cols:
            v = r[c]
            shown = fmt[c](v) if c in fmt else v
            cells.append(f'<td class="{"t" if c in text_cols else ""}">{esc(shown)}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _when(t):
    if t is None or t != t:
        return "?"
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _count(n, noun):
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _n(v):
    return "not known" if v is None else f"{v:,}"


def _sample_note(rep):
    if not rep.sampled:
        return ""
    return ('<p class="sampled">&#8224; Counts of jobs marked &#8224; are of the <b>sampled</b> '
            "jobs only (monitor.sample_rate &lt; 1); &#8220;est. jobs&#8221; weighs each job by "
            "1/rate to estimate all jobs. Users are counted as seen in the sample.</p>")


def _top_section(rep, by):
    df = rep.by_users if by == "users" else rep.by_jobs
    jobs_label = "jobs &#8224;" if rep.sampled else "jobs"
    cols = [("package", "package"), ("users", "users"), ("jobs", html.unescape(jobs_label))]
    fmt = {}
    if rep.sampled:
        cols.append(("est_jobs", "est. jobs"))
        fmt["est_jobs"] = lambda v: f"{v:,.0f}"
    title = f"Top {len(df)} packages by {'distinct users' if by == 'users' else 'jobs'}"
    plot = img(_barh(df, by, title), title) if len(df) else ""
    return (f'<h2 id="top-{by}">{title}</h2><div class="row">' + plot +
            _table(df, cols, text_cols=("package",), fmt=fmt) + "</div>")


def _quality_section(rep):
    q = rep.quality
    rates = q["sample_rates"]
    rate_text = ", ".join(f"{r:g}" for r in rates) if rates else "not recorded"
    if q["sample_rate_unknown"] and rates:
        rate_text += f" ({q['sample_rate_unknown']:,} records without one)"
    hook = (_n(q["without_hook"]) + f" (in {q['without_hook_known']:,} records that count them)"
            if q["without_hook_known"] else "not recorded by these records (schema 1)")
    rows = [
        ("records (one per job and node)", _n(q["records"])),
        ("files loaded", _n(q["files"])),
        ("malformed lines (skipped)", _n(q["malformed_lines"])),
        ("records loaded twice (skipped)", _n(q["duplicates"])),
        ("partial records (the epilog did not read every log)", _n(q["partial"])),
        ("truncated records (a list hit its limit; see dropped)", _n(q["truncated"])),
        ("entries dropped from truncated lists", _n(q["dropped"])),
        ("records with logs skipped", _n(q["records_with_logs_skipped"])),
        ("logs skipped (hostile or unreadable spool files)", _n(q["logs_skipped"])),
        ("log lines skipped", _n(q["lines_skipped"])),
        ("Python processes recorded", _n(q["processes"])),
        ("processes incomplete (killed before exit)", _n(q["processes_incomplete"])),
        ("processes seen without the hook", hook),
        ("processes whose log was lost", _n(q["unlogged"])),
        ("sample rate", rate_text),
        ("staff jobs " + ("(included)" if rep.options.include_staff else "(left out)"),
         _n(q["staff_jobs"])),
        ("schema versions", ", ".join(map(str, q["schema_versions"])) or "none"),
    ]
    body = "".join(f'<tr><td class="t">{esc(k)}</td><td>{esc(v)}</td></tr>' for k, v in rows)
    share = q.get("top_user_share", 0)
    notes = (f'<p class="note">Biases: the user with the most Python jobs ran {share:.0%} of '
             "them (repeated jobs of one user weigh on job counts; user counts do not); jobs "
             "killed before the epilog sends nothing; users and processes that opt out "
             "(--pymonitor=no) are not seen.</p>")
    reasons = "".join(f"<li>{esc(p)} line {n}: {esc(why)}</li>" for p, n, why in q["reasons"])
    if reasons:
        reasons = f"<p>First malformed lines:</p><ul>{reasons}</ul>"
    return f'<h2 id="quality">Data quality</h2><table>{body}</table>{notes}{reasons}'


def _coverage_section(rep):
    if rep.coverage is None:
        return ('<h2 id="coverage">Monitored jobs among all jobs</h2><p class="note">Not known: '
                "load the cluster's job list with <code>pylaunch-report load-sacct DB FILE</code> "
                "(<code>sacct -X -P -n -o Cluster,JobIDRaw,User,NNodes,Start</code>).</p>")
    cov = rep.coverage
    fmt = {"week": lambda w: w.strftime("%Y-%m-%d"),
           "monitored_share": lambda v: "?" if v != v else f"{v:.1%}"}
    cols = [("week", "week of"), ("all_jobs", "all jobs"), ("monitored_jobs", "monitored jobs"),
            ("python_jobs", "Python jobs"), ("monitored_share", "monitored share")]
    return ('<h2 id="coverage">Monitored jobs among all jobs</h2>' +
            _table(cov, cols, text_cols=("week",), fmt=fmt))


def page(rep, title="Python packages at the centre"):
    t = rep.totals
    opts = rep.options
    parts = [f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{esc(title)}</title>"
             f"<style>{CSS}</style></head><body><h1>{esc(title)}</h1>"]
    staff = "staff jobs included" if opts.include_staff else "staff jobs left out"
    if not t.get("records"):
        parts.append("<p>No records loaded.</p>" + _quality_section(rep) + "</body></html>")
        return "".join(parts)
    parts.append(
        f'<p>{_count(t["python_jobs"], "Python job")}{" &#8224;" if rep.sampled else ""} of '
        f'{_count(t["users"], "user")} ({_count(t["jobs"], "monitored job")}, '
        f'{_count(t["records"], "record")}, {_count(t["packages"], "package")}), '
        f'{esc(_when(t["first"]))} to {esc(_when(t["last"]))}; '
        f"{staff}. A job counts a package once, whatever its nodes and processes.</p>")
    parts.append(_sample_note(rep))
    parts.append(_top_section(rep, "users"))
    parts.append(_top_section(rep, "jobs"))
    parts.append('<h2 id="sizes">Python jobs by node count</h2><div class="row">' +
                 img(_sizes_plot(rep.sizes, rep.sampled), "Python jobs by node count"))
    scols = [("size", "nodes"), ("jobs", "Python jobs" + (" †" if rep.sampled else ""))]
    parts.append(_table(rep.sizes[rep.sizes["jobs"] > 0], scols, text_cols=("size",)) +
                 "</div>")
    ps = rep.package_sizes
    parts.append('<h2 id="package-sizes">Packages by job size</h2><p class="note">Jobs that '
                 "imported the package, by the job's node count.</p>")
    if ps is not None and len(ps) and ps.to_numpy().sum() > 0:
        parts.append(img(_heatmap(ps), "Packages by job size"))
        tbl = ps.reset_index()
        tbl.columns = [str(c) for c in tbl.columns]
        parts.append(_table(tbl, [(c, c) for c in tbl.columns], text_cols=("package",)))
    parts.append('<h2 id="versions">Versions per package</h2>')
    parts.append(_table(rep.versions, [("package", "package"), ("version", "version"),
                                       ("jobs", "jobs"), ("users", "users"),
                                       ("processes", "processes")],
                        text_cols=("package", "version")))
    parts.append('<h2 id="interpreters">Interpreters</h2>')
    parts.append(_table(rep.interpreter_versions,
                        [("version", "version"), ("implementation", "implementation"),
                         ("jobs", "jobs"), ("users", "users"), ("processes", "processes"),
                         ("executables", "executables")],
                        text_cols=("version", "implementation")))
    shown = rep.interpreters.head(opts.top)
    parts.append(f'<p class="note">The {len(shown)} executables run by most jobs '
                 f"(of {len(rep.interpreters):,}):</p>")
    parts.append(_table(shown, [("executable", "executable"), ("version", "version"),
                                ("implementation", "implementation"), ("jobs", "jobs"),
                                ("users", "users"), ("processes", "processes")],
                        text_cols=("executable", "version", "implementation")))
    parts.append(_coverage_section(rep))
    parts.append('<h2 id="weekly">Per week</h2>')
    if len(rep.weekly):
        parts.append(img(_weekly_plot(rep.weekly, rep.weekly_packages), "Per week"))
        wcols = [("week", "week of"), ("python_jobs", "Python jobs"), ("users", "users")]
        parts.append(_table(rep.weekly, wcols, text_cols=("week",),
                            fmt={"week": lambda w: w.strftime("%Y-%m-%d")}))
    parts.append(_quality_section(rep))
    parts.append("</body></html>")
    return "".join(parts)
