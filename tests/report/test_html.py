"""The page: what its tables say, and that headless chromium shows it without an error."""
import base64
import re

import pytest

import browser
from conftest import cli, write_lines
from test_aggregate import fixture_records

PLOTS = 5  # top by users, top by jobs, node counts, packages by size, per week


@pytest.fixture
def report(tmp_path):
    db = tmp_path / "r.db"
    cli("load", db, write_lines(tmp_path / "f.jsonl", fixture_records()))

    def make(*opts):
        out = tmp_path / "report.html"
        cli("html", db, "-o", out, *opts)
        return out
    return make


def section(text, anchor):
    """The HTML of one section, from its heading to the next."""
    start = text.index(f'<h2 id="{anchor}">')
    end = text.find("<h2", start + 4)
    return text[start:end if end > 0 else len(text)]


def cells(html):
    return [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", html)]


def test_tables_name_the_packages_with_their_counts(report):
    text = report("--staff-users", "erin").read_text()
    top = cells(section(text, "top-users"))
    assert top[:3] == ["numpy", "2", "3"] and "scipy" in top
    assert "torch" not in text and "h5py" not in text.replace("erin", "")  # staff left out
    assert "1.24.2" in cells(section(text, "versions"))
    assert "/usr/bin/python3" in cells(section(text, "interpreters"))
    assert "3 Python jobs of 2 users" in text


def test_include_staff_and_staff_users(report):
    text = report("--include-staff").read_text()
    assert "torch" in cells(section(text, "top-users"))
    assert cells(section(text, "top-users"))[:3] == ["numpy", "3", "4"]
    assert "h5py" in cells(section(report().read_text(), "top-users"))
    text = report("--staff-users", "ops,erin").read_text()
    assert "h5py" not in cells(section(text, "top-users"))


def test_sampled_counts_are_marked(report):
    plain = report().read_text()
    assert "<b>sampled</b>" not in plain and "est. jobs" not in plain and "†" not in plain
    text = report("--sample-rate", "0.5").read_text()
    assert "<b>sampled</b>" in text
    top = section(text, "top-jobs")
    assert "est. jobs" in top and "jobs †" in top and cells(top)[:4] == ["numpy", "2", "3", "6"]


def test_data_quality_section(report):
    q = dict(zip(*[iter(cells(section(report().read_text(), "quality")))] * 2))
    assert q["partial records (the epilog did not read every log)"] == "1"
    assert q["truncated records (a list hit its limit; see dropped)"] == "1"
    assert q["logs skipped (hostile or unreadable spool files)"] == "2"
    assert q["processes seen without the hook"].startswith("not recorded")
    assert q["sample rate"] == "not recorded"
    assert q["staff jobs (left out)"] == "1"  # carol's: is_staff


def test_page_is_self_contained(report):
    text = report().read_text()
    srcs = re.findall(r'(?:src|href)="([^"]*)"', text)
    assert len(srcs) == PLOTS and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "<script" not in text
    for s in srcs:
        assert base64.b64decode(s.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"


def test_html_usage_errors(tmp_path):
    out = cli("html", tmp_path / "none.db", "-o", tmp_path / "x.html", check=False)
    assert out.returncode == 1 and "none.db: No such file or directory" in out.stderr
    assert not (tmp_path / "none.db").exists()
    write_lines(tmp_path / "f.jsonl", fixture_records())
    cli("load", tmp_path / "r.db", tmp_path / "f.jsonl")
    out = cli("html", tmp_path / "r.db", "-o", tmp_path / "x.html", "--sample-rate", "2",
              check=False)
    assert out.returncode == 2 and "--sample-rate=2.0: expected a number in (0, 1]" in out.stderr


def test_chromium_shows_every_plot_and_no_error(report):
    page = browser.load(report().as_uri())
    assert page["errors"] == []
    assert page["title"] == "Python packages at the centre"
    plots = [i for i in page["images"] if i["cls"] == "plot"]
    assert len(plots) == PLOTS == len(page["images"])
    assert all(i["complete"] and i["width"] > 100 and i["height"] > 100 for i in plots), plots


def test_chromium_check_sees_a_broken_image_and_a_console_error(tmp_path):
    """The check above can fail: a page with a damaged PNG and a script error."""
    bad = tmp_path / "bad.html"
    png = base64.b64encode(b"\x89PNG\r\n\x1a\nnot really").decode()
    bad.write_text(f'<!DOCTYPE html><title>t</title><img class="plot" src="data:image/png;'
                   f'base64,{png}"><script>console.error("boom")</script>')
    page = browser.load(bad.as_uri())
    assert any("boom" in e for e in page["errors"]), page["errors"]
    assert page["images"][0]["width"] == 0


def test_an_empty_database_and_a_file_that_is_not_one(tmp_path):
    cli("load", tmp_path / "r.db", tmp_path, check=False)  # a directory: nothing loads
    cli("html", tmp_path / "r.db", "-o", tmp_path / "x.html")
    assert "No records loaded" in (tmp_path / "x.html").read_text()
    (tmp_path / "junk").write_text("not sqlite\n" * 100)
    out = cli("html", tmp_path / "junk", "-o", tmp_path / "y.html", check=False)
    assert out.returncode == 1 and "junk: file is not a database" in out.stderr
    assert not (tmp_path / "y.html").exists()
