import multiprocessing
import os
import sqlite3

import pytest

from screen.store import database
from screen.store.database import (
    SCHEMA_VERSION,
    StoreError,
    database_path,
    open_store,
    record_run,
    recorded_sessions,
    schema_version,
)

WEEK1 = {
    "quantifoil": {"metadata": {"grid": "Quantifoil", "additive": "none"}},
    "lacey": {"metadata": {"grid": "lacey", "additive": "CHAPSO"}, "good_particles": 0},
}


def test_a_run_is_recorded_once_with_its_metrics_metadata_and_date(tmp_path, write_run):
    run = write_run(tmp_path / "run", "2026-11-25T10:00:00+00:00", WEEK1)
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
    assert str(database_path()) == "/from/env.sqlite"
    assert str(database_path(database.Path("/opt.sqlite"))) == "/opt.sqlite"
    monkeypatch.delenv("SCREEN_DB")
    monkeypatch.setenv("XDG_DATA_HOME", "/data")
    assert str(database_path()) == "/data/screen/results.sqlite"


def test_wal_mode_and_an_old_schema_is_migrated(tmp_path, write_run):
    path = tmp_path / "db.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)  # a version-1 database of an older screen
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    conn.execute("INSERT INTO schema_version VALUES (1)")
    for statement in database.MIGRATIONS[0].split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.close()
    with open_store(path) as conn:
        assert schema_version(conn) == SCHEMA_VERSION == 2
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        record_run(conn, write_run(tmp_path / "run", "2026-11-25", WEEK1))
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


def test_a_folder_without_results_is_a_clear_error_and_records_nothing(tmp_path, write_run):
    run = write_run(tmp_path / "run", "2026-11-25", WEEK1)
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


def test_two_processes_recording_at_once_lose_nothing(tmp_path, write_run):
    runs = [
        write_run(tmp_path / f"run{i}", f"2026-11-{10 + i:02d}", {f"s{i}": {}, f"t{i}": {}})
        for i in range(16)
    ]
    db = tmp_path / "db.sqlite"
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
        assert conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 16
    assert len(rows) == 32
    assert [r["run_date"] for r in rows] == sorted(r["run_date"] for r in rows)
    assert {r["session"] for r in rows} == {f"{p}{i}" for i in range(16) for p in "st"}


def test_a_run_failing_midway_through_recording_leaves_no_part_of_it(
    tmp_path, write_run, monkeypatch
):
    run = write_run(tmp_path / "run", "2026-11-25", WEEK1)
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
        assert conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0
        assert recorded_sessions(conn) == []


def test_an_old_run_without_a_date_is_dated_by_its_run_json(tmp_path, write_run):
    run = write_run(tmp_path / "old", "", WEEK1)  # run.json of an older screen: no "created"
    os.utime(run / "run.json", (1_700_000_000, 1_700_000_000))
    (run / "sessions" / "stray").mkdir()  # not listed in run.json: not recorded
    with open_store(tmp_path / "db.sqlite") as conn:
        assert record_run(conn, run) == 2
        dates = {r["run_date"] for r in recorded_sessions(conn)}
    assert dates == {"2023-11-14T22:13:20+00:00"}
