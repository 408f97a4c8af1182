import multiprocessing
import os
import socket
import sqlite3
import sys

import pytest
from typer.testing import CliRunner

from screen.cli import app
from screen.store import database
from screen.store.database import (
    SCHEMA_VERSION,
    StoreError,
    database_location,
    migration_statements,
    open_store,
    record_run,
    recorded_sessions,
    schema_version,
    store_counts,
)


def test_a_run_is_recorded_once_with_its_metrics_metadata_and_date(tmp_path, week1):
    run = week1(tmp_path / "run", "2026-11-25T10:00:00+00:00")
    with open_store(tmp_path / "db.sqlite") as conn:
        assert record_run(conn, run) == 2
        assert record_run(conn, run) == 0  # the same run again: nothing added
        rows = {r["session"]: r for r in recorded_sessions(conn)}
    assert set(rows) == {"quantifoil", "lacey"}
    q = rows["quantifoil"]
    assert q["metadata"] == {"grid": "Quantifoil", "additive": "none"}
    assert q["good_particles"] == 500 and q["good_particles_per_micrograph"] == 50.0
    assert q["run_date"] == "2026-11-25T10:00:00+00:00" and q["screen_version"] == "0.1.0"
    assert q["results_dir"] == str(run.resolve()) and q["decision"] == "go"
    assert q["summary"]["best_mask_diameter_A"] == 150.0
    assert rows["lacey"]["decision"] == "no-go"
    assert rows["lacey"]["best_mask_diameter_A"] is None


def test_the_location_is_the_option_then_the_environment_then_the_data_folder(monkeypatch):
    monkeypatch.setenv("SCREEN_DB", "/from/env.sqlite")
    assert database_location() == database.Path("/from/env.sqlite")
    assert database_location("/opt.sqlite") == database.Path("/opt.sqlite")
    monkeypatch.setenv("SCREEN_DB", "postgresql://screen@db.lab.org:5433/screening")
    assert database_location() == "postgresql://screen@db.lab.org:5433/screening"  # a URL
    monkeypatch.delenv("SCREEN_DB")
    monkeypatch.setenv("XDG_DATA_HOME", "/data")
    assert database_location() == database.Path("/data/screen/results.sqlite")


def test_wal_mode_and_an_old_schema_is_migrated(tmp_path, week1):
    path = tmp_path / "db.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)  # a version-1 database of an older screen
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    conn.execute("INSERT INTO schema_version VALUES (1)")
    for statement in migration_statements(0, "sqlite"):
        conn.execute(statement)
    conn.close()
    with open_store(path) as conn:
        assert schema_version(conn) == SCHEMA_VERSION == 2
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        record_run(conn, week1(tmp_path / "run", "2026-11-25"))
        assert {r["decision"] for r in recorded_sessions(conn)} == {"go", "no-go"}


def test_a_newer_schema_or_a_file_that_is_not_a_database_is_a_clear_error(tmp_path):
    newer = tmp_path / "newer.sqlite"
    conn = sqlite3.connect(newer)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    conn.execute("INSERT INTO schema_version VALUES (99)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="schema version 99 is newer"):
        with open_store(newer):
            pass
    junk = tmp_path / "junk.sqlite"
    junk.write_text("not a database " * 100)
    with pytest.raises(StoreError, match="junk.sqlite: not a usable results database"):
        with open_store(junk):
            pass


def test_a_folder_without_results_is_a_clear_error_and_records_nothing(tmp_path, week1):
    run = week1(tmp_path / "run", "2026-11-25")
    (run / "sessions" / "lacey" / "summary.json").write_text("{truncated")
    with open_store(tmp_path / "db.sqlite") as conn:
        with pytest.raises(StoreError, match="lacey/summary.json: cannot be read"):
            record_run(conn, run)
        with pytest.raises(StoreError, match="no sessions/<name>/summary.json found"):
            record_run(conn, tmp_path)
        assert recorded_sessions(conn) == []  # the failed run left no half record


def _record_many(db, runs):
    with open_store(db) as conn:
        for run in runs:
            record_run(conn, run)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_processes_recording_at_once_lose_nothing(backend, tmp_path, write_run, request):
    runs = [
        write_run(tmp_path / f"run{i}", f"2026-11-{10 + i:02d}", {f"s{i}": {}, f"t{i}": {}})
        for i in range(16)
    ]
    # neither process has made the tables yet: both migrate, then record 4 runs twice
    db = (
        tmp_path / "db.sqlite"
        if backend == "sqlite"
        else request.getfixturevalue("postgres")("two")
    )
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_record_many, args=(db, runs[k::2] + runs[:4])) for k in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    with open_store(db) as conn:
        rows = recorded_sessions(conn)
        assert store_counts(conn) == (16, 32)
    assert len(rows) == 32
    assert [r["run_date"] for r in rows] == sorted(r["run_date"] for r in rows)
    assert {r["session"] for r in rows} == {f"{p}{i}" for i in range(16) for p in "st"}


def test_a_run_failing_midway_through_recording_leaves_no_part_of_it(tmp_path, week1, monkeypatch):
    run = week1(tmp_path / "run", "2026-11-25")
    calls = []

    def dies_on_the_second(summary):
        calls.append(summary["session"])
        if len(calls) == 2:
            raise KeyboardInterrupt  # as when the run is stopped between two inserts
        return ("go", "")

    monkeypatch.setattr("screen.report.verdicts.decision", dies_on_the_second)
    with open_store(tmp_path / "db.sqlite") as conn:
        with pytest.raises(KeyboardInterrupt):
            record_run(conn, run)
        assert store_counts(conn) == (0, 0)
        assert recorded_sessions(conn) == []


def test_an_old_run_without_a_date_is_dated_by_its_run_json(tmp_path, week1):
    run = week1(tmp_path / "old", "")  # run.json of an older screen: no "created"
    os.utime(run / "run.json", (1_700_000_000, 1_700_000_000))
    (run / "sessions" / "stray").mkdir()  # not listed in run.json: not recorded
    with open_store(tmp_path / "db.sqlite") as conn:
        assert record_run(conn, run) == 2
        dates = {r["run_date"] for r in recorded_sessions(conn)}
    assert dates == {"2023-11-14T22:13:20+00:00"}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when this returns: nothing listens there


def test_a_server_database_that_cannot_be_used_is_a_clear_error(monkeypatch):
    url = f"postgresql://screen:secret@127.0.0.1:{_closed_port()}/screening"
    shown = url.replace(":secret@", ":***@")
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "psycopg", None)  # the driver is not installed
        with pytest.raises(StoreError) as error:
            with open_store(url):
                pass
    assert str(error.value).startswith(f"{shown}: the PostgreSQL driver is not installed")
    assert str(error.value).endswith("install it with: pip install 'screen[postgres]'")
    with pytest.raises(StoreError, match="unsupported database 'mysql'; use an SQLite file or a"):
        with open_store("mysql://screen@127.0.0.1/screening"):
            pass
    pytest.importorskip("psycopg", reason="needs psycopg: pip install 'screen[postgres]'")
    with pytest.raises(StoreError) as error:
        with open_store(url):
            pass
    message = str(error.value)
    assert message.startswith(f"{shown}: cannot connect to the database server: ")
    assert "Connection refused" in message and "secret" not in message
    result = CliRunner().invoke(app, ["store", "info", "--db", url])
    assert result.exit_code == 2 and "cannot connect to the database server" in result.output


def test_the_wal_switch_waits_for_another_process_making_it(monkeypatch):
    import sqlite3

    from screen.store import database

    class Cursor:
        def __init__(self, failures: int, message: str = "database is locked"):
            self.failures, self.message, self.calls = failures, message, 0

        def execute(self, sql):
            self.calls += 1
            if self.calls <= self.failures:
                raise sqlite3.OperationalError(self.message)

    monkeypatch.setattr(database.time, "sleep", lambda s: None)
    busy = Cursor(failures=3)
    database._set_wal(busy)
    assert busy.calls == 4  # locked three times, then switched
    broken = Cursor(failures=1, message="disk I/O error")
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        database._set_wal(broken)  # anything but a lock is not waited for
    assert broken.calls == 1
