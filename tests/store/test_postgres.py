"""The results database on a real PostgreSQL server started on 127.0.0.1 (``postgres`` fixture,
tests/store/conftest.py; skipped with the reason where it cannot start). Two processes recording
into it at once: tests/store/test_database.py."""

import threading
import urllib.request

import pytest
from typer.testing import CliRunner

from screen.cli import app
from screen.report.dashboard import make_server
from screen.store import database as store


def test_the_same_records_as_in_sqlite(postgres, tmp_path, week1):
    run = week1(tmp_path / "run", "2026-11-25T10:00:00+00:00")
    url = postgres("same_records")
    with store.open_store(url) as conn:
        assert (
            conn.dialect.name == "postgresql" and store.schema_version(conn) == store.SCHEMA_VERSION
        )
        assert store.record_run(conn, run) == 2
        assert store.record_run(conn, run) == 0  # the same run again: nothing added
        in_postgres = store.recorded_sessions(conn)
    with store.open_store(tmp_path / "db.sqlite") as conn:
        store.record_run(conn, run)
        in_sqlite = store.recorded_sessions(conn)
    assert in_postgres == in_sqlite  # every column, the mixed-case diameter_A too
    assert {r["session"]: r["decision"] for r in in_postgres} == {
        "quantifoil": "go",
        "lacey": "no-go",
    }
    assert in_postgres[0]["good_particle_fraction"] == 0.0 and in_postgres[1]["diameter_A"] == 120.0


def test_an_old_schema_is_migrated_and_a_failed_run_leaves_nothing(
    postgres, tmp_path, week1, monkeypatch
):
    url = postgres("old_schema")
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:  # a version-1 database
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version VALUES (1)")
        for statement in store.migration_statements(0, "postgresql"):
            conn.execute(statement)
    run = week1(tmp_path / "run", "2026-11-25")

    def dies(summary):
        raise KeyboardInterrupt  # as when the run is stopped between two inserts

    with store.open_store(url) as conn:
        assert store.schema_version(conn) == store.SCHEMA_VERSION
        with monkeypatch.context() as patch:
            patch.setattr("screen.report.verdicts.decision", dies)
            with pytest.raises(KeyboardInterrupt):
                store.record_run(conn, run)
        assert store.store_counts(conn) == (0, 0)
        assert store.record_run(conn, run) == 2
        assert {r["decision"] for r in store.recorded_sessions(conn)} == {"go", "no-go"}


def test_screen_store_and_a_served_dashboard_by_url(
    postgres, tmp_path, write_run, week1, monkeypatch
):
    url = postgres("by_url")
    runner = CliRunner()
    first = week1(tmp_path / "week1", "2026-11-18T09:00:00+00:00")
    result = runner.invoke(app, ["store", "import", str(first), "--db", url])
    assert result.exit_code == 0, result.output
    monkeypatch.setenv("SCREEN_DB", url)
    result = runner.invoke(app, ["store", "info"])
    assert result.output.strip() == f"{url}: schema version 2, 1 run(s), 2 session(s)"
    result = runner.invoke(app, ["dashboard", "--out", str(tmp_path / "dash.html")])
    assert result.exit_code == 0 and "(2 sessions)" in result.output
    server = make_server(store.StoreRecords(url), port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        page = f"http://127.0.0.1:{server.server_address[1]}/"
        with urllib.request.urlopen(page, timeout=10) as response:
            assert b"2 sessions from 1 run " in response.read()
        week2 = write_run(tmp_path / "week2", "2026-11-25T09:00:00+00:00", {"apo_wk2": {}})
        assert runner.invoke(app, ["store", "import", str(week2)]).exit_code == 0
        with urllib.request.urlopen(page, timeout=10) as response:
            assert b"<td>apo_wk2</td>" in response.read()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
