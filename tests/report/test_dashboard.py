import re
import shutil
import subprocess
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest
from typer.testing import CliRunner

from screen.cli import app
from screen.io.mrc import write_mrc
from screen.report.dashboard import (
    GROUPS,
    condition_ranking,
    fractions_by,
    make_server,
    render_dashboard,
    session_rows,
)
from screen.store.database import StoreRecords, open_store, record_run

EVIL = "<script>alert(1)</script>"


def _week(good_6uM: int, good_lacey: int, additive: str = "none") -> dict:
    return {
        "gbg_6uM": {
            "good_particles": good_6uM,
            "metadata": {"grid": "Quantifoil", "additive": additive},
            "top_good_classes": [
                {"mask_diameter_A": 150.0, "class_index": k, "n_particles": 9 - k} for k in range(3)
            ],
        },
        "apo_lacey": {
            "good_particles": good_lacey,
            "metadata": {"grid": "lacey carbon", "additive": EVIL},
        },
    }


@pytest.fixture(scope="module")
def db(tmp_path_factory, write_run):
    """A database of two weeks of two conditions (the second week with a report and classes)."""
    root = tmp_path_factory.mktemp("dash")
    week1 = write_run(root / "week1", "2026-11-18T09:00:00+00:00", _week(600, 0))
    week2 = write_run(root / "week2", "2026-11-25T09:00:00+00:00", _week(800, 100, "CHAPSO"))
    rng = np.random.default_rng(0)
    averages = rng.normal(size=(4, 16, 16)).astype(np.float32)
    write_mrc(week2 / "sessions" / "gbg_6uM" / "classes" / "d150A" / "averages.mrcs", averages, 4.0)
    (week2 / "report.html").write_text("<html><body>week 2 report</body></html>")
    (root / "secret.txt").write_text("outside the results folder")
    with open_store(root / "db.sqlite") as conn:
        for run in (week1, week2):
            record_run(conn, run)
    return root / "db.sqlite"


@pytest.fixture(scope="module")
def records(db):
    return StoreRecords(db).records()


def test_one_row_per_session_newest_first_with_metadata_metrics_and_decision(records):
    rows = session_rows(records)
    assert [(r["date"], r["session"]) for r in rows] == [
        ("2026-11-25 09:00", "gbg_6uM"),
        ("2026-11-25 09:00", "apo_lacey"),
        ("2026-11-18 09:00", "gbg_6uM"),
        ("2026-11-18 09:00", "apo_lacey"),
    ]
    newest = rows[0]
    assert newest["metadata"] == {"grid type": "Quantifoil", "additive": "CHAPSO"}
    assert newest["good_per_micrograph"] == 80.0 and newest["decision"] == "go"
    assert newest["thumbnail"].startswith("data:image/png;base64,")
    assert newest["report"].startswith("file://") and newest["report"].endswith("report.html")
    empty = rows[3]  # no good particles: no best mask diameter, a no-go
    assert empty["best_mask_A"] is None and empty["display"]["best_mask_A"] == "—"
    assert (empty["decision"], empty["why"]) == ("no-go", "no good particles")
    assert rows[2]["thumbnail"] is None and rows[2]["report"] is None


def test_conditions_are_ranked_across_sessions_with_their_latest_decision(records):
    ranking = condition_ranking(records)
    assert [(c["condition"], c["n_sessions"], c["mean_good_per_micrograph"]) for c in ranking] == [
        ("grid type: Quantifoil · additive: CHAPSO", 1, 80.0),
        ("grid type: Quantifoil · additive: none", 1, 60.0),  # same name, another additive
        (f"grid type: lacey carbon · additive: {EVIL}", 2, 5.0),
    ]
    lacey = ranking[2]
    assert lacey["latest_good_per_micrograph"] == 10.0 and lacey["decision"] == "go"
    assert lacey["sessions"] == ["apo_lacey (2026-11-18)", "apo_lacey (2026-11-25)"]


def test_a_condition_is_matched_on_its_metadata_not_its_session_name(tmp_path, write_run):
    weeks = {
        "2026-11-04": {
            "apo_quantifoil": {
                "metadata": {"grid": "Quantifoil R1.2/1.3", "additive": "none", "notes": "first"}
            },
            "gbg_6uM": {"metadata": {"grid": "Quantifoil R1.2/1.3", "partner": "Gbg 6 uM"}},
            "legacy": {"good_particles": 300},  # an older manifest without condition columns
        },
        "2026-11-11": {
            "apo_qf_wk2": {  # the same condition under another name, written differently
                "good_particles": 700,
                "metadata": {"Grid type": " quantifoil  r1.2/1.3", "Additive": "None"},
            },
            "gbg_6uM": {"metadata": {"grid": "Quantifoil R1.2/1.3", "partner": "Gbg 2 uM"}},
            "legacy": {"good_particles": 100, "metadata": {"Notes": "only notes"}},
        },
    }
    with open_store(tmp_path / "db.sqlite") as conn:
        for date, sessions in weeks.items():
            record_run(conn, write_run(tmp_path / date, f"{date}T09:00:00+00:00", sessions))
    records = StoreRecords(tmp_path / "db.sqlite").records()
    ranking = {c["condition"]: c for c in condition_ranking(records)}
    assert set(ranking) == {
        "grid type: quantifoil r1.2/1.3 · additive: None",  # as written the last time
        "grid type: Quantifoil R1.2/1.3 · partner: Gbg 6 uM",
        "grid type: Quantifoil R1.2/1.3 · partner: Gbg 2 uM",
        "session: legacy",
    }
    apo = ranking["grid type: quantifoil r1.2/1.3 · additive: None"]
    assert apo["sessions"] == ["apo_quantifoil (2026-11-04)", "apo_qf_wk2 (2026-11-11)"]
    assert apo["matched_on"] == "grid type, additive" and apo["rank"] == 1
    assert apo["mean_good_per_micrograph"] == 60.0 and apo["latest_good_per_micrograph"] == 70.0
    legacy = ranking["session: legacy"]
    assert legacy["matched_on"] == "session name" and legacy["n_sessions"] == 2
    assert fractions_by(records, GROUPS["grid type"]) == {  # the plots group the same way
        "Quantifoil R1.2/1.3": [0.5, 0.5, 0.7, 0.5],  # as last written
        "(not given)": [0.3, 0.1],
    }
    page = render_dashboard(records)
    header = re.search(r"<thead>\s*<tr>\s*<th data-type=\"text\">date.*?</tr>", page, re.S)
    assert re.findall(r'<th data-type="text">([^<]+)</th>', header.group(0)) == [
        "date",
        "session",
        "grid type",
        "additive",
        "notes",
        "partner",
        "go / no-go",
    ]  # one column per metadata column as matched: Grid, Grid type (and grid) are one
    assert "apo_quantifoil (2026-11-04), apo_qf_wk2 (2026-11-11)" in page
    assert "not compared: notes, note, comment" in page
    assert page.count('<td class="why">grid type, partner</td>') == 2


def test_the_page_is_standalone_with_trend_plots_sorting_filtering_and_escaped_text(records):
    html = render_dashboard(records)
    for plot in ("by grid type", "by additive", "over time"):
        assert f'alt="good-particle fraction {plot}"' in html
    assert html.count("data:image/png;base64,") == 3 + 1  # three plots, one thumbnail
    assert 'id="filter"' in html and 'addEventListener("click"' in html
    assert EVIL not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "http" not in html.replace("http-equiv", "")  # nothing fetched from anywhere


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_served_on_localhost_with_each_runs_report_and_nothing_else(db, records):
    server = make_server(StoreRecords(db), port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        assert host == "127.0.0.1"
        base = f"http://127.0.0.1:{port}"
        status, page = _get(base + "/")
        assert status == 200 and b'<table id="sessions">' in page
        run_id = session_rows(records)[0]["run_id"]
        assert f'href="/runs/{run_id}/report.html"'.encode() in page
        assert _get(f"{base}/runs/{run_id}/report.html") == (
            200,
            b"<html><body>week 2 report</body></html>",
        )
        assert _get(f"{base}/runs/{run_id}/../secret.txt")[0] == 404
        assert _get(f"{base}/runs/{run_id}/%2e%2e/secret.txt")[0] == 404
        assert _get(f"{base}/runs/{run_id}/run.json")[0] == 404  # report files only
        assert _get(f"{base}/runs/999/report.html")[0] == 404
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    assert not thread.is_alive()


def test_a_served_dashboard_shows_a_run_recorded_after_it_started(tmp_path, write_run):
    db = tmp_path / "db.sqlite"
    with open_store(db) as conn:
        record_run(conn, write_run(tmp_path / "week1", "2026-11-18T09:00:00+00:00", _week(600, 0)))
    server = make_server(StoreRecords(db), port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        status, before = _get(base + "/")
        assert status == 200 and b"2 sessions from 1 run " in before
        assert _get(base + "/")[1] == before and server.page.renders == 1  # unchanged: not redone
        week2 = write_run(
            tmp_path / "week2", "2026-11-25T09:00:00+00:00", {"gbg_2uM_chapso": {}, "apo": {}}
        )
        (week2 / "report.html").write_text("<html><body>week 2 report</body></html>")
        with open_store(db) as conn:  # another process's `screen run` records a run meanwhile
            record_run(conn, week2)
        status, after = _get(base + "/")
        assert status == 200 and b"4 sessions from 2 runs " in after
        assert b"<td>gbg_2uM_chapso</td>" in after and b"gbg_2uM_chapso" not in before
        run_id = session_rows(StoreRecords(db).records())[0]["run_id"]
        assert _get(f"{base}/runs/{run_id}/report.html")[0] == 200  # its report is served too
        assert server.page.renders == 2
        (db.parent / "db.sqlite").unlink()
        (db.parent / "db.sqlite").write_text("not a database " * 100)  # the store breaks
        assert _get(base + "/") == (
            503,
            f"{db}: not a usable results database: file is not a database\n".encode(),
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_screen_dashboard_writes_the_page_or_says_the_database_is_empty(tmp_path, write_run):
    db, out = tmp_path / "db.sqlite", tmp_path / "dash.html"
    result = CliRunner().invoke(app, ["dashboard", "--db", str(db), "--out", str(out)])
    assert result.exit_code == 2 and "no session recorded yet" in result.output
    run = write_run(tmp_path / "run", "2026-11-25T09:00:00+00:00", _week(800, 100))
    assert CliRunner().invoke(app, ["store", "import", str(run), "--db", str(db)]).exit_code == 0
    result = CliRunner().invoke(app, ["dashboard", "--db", str(db), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"dashboard: {out} (2 sessions)" in result.output
    assert len(re.findall("<tr[ >]", out.read_text())) == 2 + 2 + 2  # sessions, ranking, headers


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="needs Debian's chromium (bash .ci/install)")
def test_the_served_page_renders_in_headless_chromium_without_console_errors(db, tmp_path):
    server = make_server(StoreRecords(db), port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        browser = [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--enable-logging=stderr",
            "--virtual-time-budget=5000",
        ]
        dom = subprocess.run(
            [*browser, "--dump-dom", url], capture_output=True, text=True, timeout=120
        )
        filtered = {  # a filter given in the address, as typed in the box or chosen in the list
            query: subprocess.run(
                [*browser, "--dump-dom", url + query], capture_output=True, text=True, timeout=120
            ).stdout
            for query in ("?q=go", "?q=lacey+GO", "?decision=no-go")
        }
        shot = tmp_path / "dashboard.png"
        subprocess.run(
            [*browser, "--window-size=1400,1000", f"--screenshot={shot}", url],
            capture_output=True,
            timeout=120,
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    assert dom.returncode == 0, dom.stderr[-2000:]
    page = dom.stdout
    assert 'id="shown" class="meta">4 of 4 shown</span>' in page  # the table's script ran
    assert len(re.findall("<tr[ >]", page)) == 4 + 3 + 2  # sessions, ranking, header rows
    assert 'data-images="4/4"' in page  # three plots and a thumbnail decoded
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line]
    assert console == []  # the page logs nothing: any message is an error or a failed load
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    # "go" matches the GO rows only (not NO-GO, which contains it); other words match any text
    assert _shown(filtered["?q=go"]) == ["go", "go", "go"]
    assert 'id="shown" class="meta">3 of 4 shown</span>' in filtered["?q=go"]
    assert _shown(filtered["?q=lacey+GO"]) == ["go"]
    assert _shown(filtered["?decision=no-go"]) == ["no-go"]


def _shown(page: str) -> list[str]:
    """The go / no-go of the table rows the page's filter left visible, top to bottom."""
    rows = re.findall(r'<tr data-decision="([^"]+)"( style="display: none;")?>', page)
    assert len(rows) == 4, page[-2000:]
    return [decision for decision, hidden in rows if not hidden]
