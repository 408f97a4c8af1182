"""The cross-session results database: every run's sessions and metrics, for the dashboard.

An SQLite file (stdlib ``sqlite3``), in WAL mode so that readers never block a writer and several
runs can record at once (a writer waits up to `BUSY_TIMEOUT_S` for another one's transaction).
Where it lives (`database_path`): ``--db PATH``, else ``$SCREEN_DB``, else
``$XDG_DATA_HOME/screen/results.sqlite`` (``~/.local/share/screen/results.sqlite``).

A run is recorded from its results folder alone (run.json and every listed session's
summary.json, `record_run`), in one transaction: a run killed before it finishes records nothing
and leaves earlier records whole; recording the same finished run again changes nothing (a run
is known by its folder and run.json's content). The schema has a version (``schema_version``)
and `MIGRATIONS` bring an older file up to date when it is opened.

Tables::

    runs      one row per recorded run: results folder, manifest, date, screen version, run.json
    sessions  one row per session of a run: status, metadata (JSON), key metrics, decision,
              the whole summary.json
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from screen.errors import ScreenError
from screen.store.layout import RunLayout

ENV_VAR = "SCREEN_DB"
"""Environment variable naming the database file (``--db`` wins over it)."""

BUSY_TIMEOUT_S = 60.0
"""How long a writer waits for another process's transaction before giving up."""

METRIC_COLUMNS = (
    "n_micrographs",
    "n_good_micrographs",
    "good_micrograph_fraction",
    "picked_particles",
    "good_particles",
    "good_particle_fraction",
    "good_particles_per_micrograph",
    "diameter_A",
    "best_mask_diameter_A",
)
"""summary.json numbers kept as columns (the whole summary is kept too, as JSON)."""

MIGRATIONS: tuple[str, ...] = (
    # 1: runs and their sessions
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        run_key TEXT NOT NULL UNIQUE,
        results_dir TEXT NOT NULL,
        manifest TEXT,
        run_date TEXT NOT NULL,
        screen_version TEXT,
        provenance_json TEXT NOT NULL,
        recorded_at TEXT NOT NULL
    );
    CREATE TABLE sessions (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        session TEXT NOT NULL,
        status TEXT NOT NULL,
        metadata_json TEXT NOT NULL,
        n_micrographs INTEGER,
        n_good_micrographs INTEGER,
        good_micrograph_fraction REAL,
        picked_particles INTEGER,
        good_particles INTEGER,
        good_particle_fraction REAL,
        good_particles_per_micrograph REAL,
        diameter_A REAL,
        best_mask_diameter_A REAL,
        summary_json TEXT NOT NULL,
        UNIQUE (run_id, session)
    );
    CREATE INDEX sessions_by_name ON sessions (session);
    """,
    # 2: the go/no-go decision per session (from its verdicts), for ranking across runs
    """
    ALTER TABLE sessions ADD COLUMN decision TEXT;
    """,
)
"""Schema changes in order; the database's version is how many have been applied."""

SCHEMA_VERSION = len(MIGRATIONS)


class StoreError(ScreenError):
    """The results database cannot be opened, read or written."""


def database_path(option: Path | None = None) -> Path:
    """Where the results database lives: ``option``, else ``$SCREEN_DB``, else the user's data dir.

    Examples
    --------
    >>> database_path(Path("/tmp/x.sqlite"))
    PosixPath('/tmp/x.sqlite')
    """
    if option is not None:
        return Path(option)
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "screen" / "results.sqlite"


@contextmanager
def open_store(path: Path) -> Iterator[sqlite3.Connection]:
    """Open (create, migrate) the database at ``path``; close it after the block.

    Raises
    ------
    StoreError
        If the file cannot be made or opened, is not an SQLite database, or was written by a
        newer `screen` (a higher schema version).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    except (OSError, sqlite3.Error) as error:
        raise StoreError(f"{path}: cannot open the results database: {error}") from None
    try:
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
            _migrate(conn, path)
        except sqlite3.Error as error:
            raise StoreError(f"{path}: not a usable results database: {error}") from None
        yield conn
    finally:
        conn.close()


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE (take the write lock now, waiting for others) ... COMMIT or ROLLBACK."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def schema_version(conn: sqlite3.Connection) -> int:
    """The database's schema version (0 for a new, empty file)."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_version'"
    ).fetchone()
    if not exists:
        return 0
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    return int(row[0]) if row else 0


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    if schema_version(conn) == SCHEMA_VERSION:
        return
    with _transaction(conn):  # re-read under the write lock: another process may have migrated
        version = schema_version(conn)
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{path}: schema version {version} is newer than this screen's "
                f"({SCHEMA_VERSION}); upgrade screen or choose another --db"
            )
        if version == 0:
            conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            conn.execute("INSERT INTO schema_version VALUES (0)")
        for script in MIGRATIONS[version:]:
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise StoreError(f"{path}: cannot be read: {error}") from None
    if not isinstance(data, dict):
        raise StoreError(f"{path}: not a JSON object")
    return data


def _run_summaries(layout: RunLayout, provenance: dict) -> list[dict]:
    listed = provenance.get("sessions")
    if isinstance(listed, list):
        names = [str(n) for n in listed]
    else:
        names = sorted(p.name for p in (layout.root / "sessions").glob("*") if p.is_dir())
    summaries = []
    for name in names:
        path = layout.session(name).summary
        if path.is_file():
            summary = _read_json(path)
            summary.setdefault("session", name)
            summaries.append(summary)
    return summaries


def run_date(layout: RunLayout, provenance: dict) -> str:
    """When the run finished (ISO 8601, UTC): run.json's ``created``, else its file time."""
    if provenance.get("created"):
        return str(provenance["created"])
    source = layout.provenance if layout.provenance.is_file() else layout.root
    return datetime.fromtimestamp(source.stat().st_mtime, UTC).isoformat(timespec="seconds")


def record_run(conn: sqlite3.Connection, run_root: Path) -> int:
    """Record a finished run folder's sessions in one transaction; return how many were added.

    Recording the same run again (same folder, same run.json) adds nothing and returns 0.

    Raises
    ------
    StoreError
        If the folder holds no ``sessions/<name>/summary.json`` or a file cannot be read.
    """
    from screen.report.verdicts import decision

    layout = RunLayout(Path(run_root).resolve())
    provenance = _read_json(layout.provenance) if layout.provenance.is_file() else {}
    summaries = _run_summaries(layout, provenance)
    if not summaries:
        raise StoreError(
            f"{layout.root}: no sessions/<name>/summary.json found; is it a folder written by "
            "`screen run`?"
        )
    content = json.dumps([provenance, summaries], sort_keys=True)
    run_key = hashlib.sha256(f"{layout.root}\n{content}".encode()).hexdigest()
    now = datetime.now(UTC).isoformat(timespec="seconds")
    with _transaction(conn):
        if conn.execute("SELECT 1 FROM runs WHERE run_key = ?", (run_key,)).fetchone():
            return 0
        run_id = conn.execute(
            "INSERT INTO runs (run_key, results_dir, manifest, run_date, screen_version, "
            "provenance_json, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                run_key,
                str(layout.root),
                provenance.get("manifest"),
                run_date(layout, provenance),
                provenance.get("screen_version"),
                json.dumps(provenance),
                now,
            ),
        ).lastrowid
        for summary in summaries:
            metrics = [summary.get(column) for column in METRIC_COLUMNS]
            conn.execute(
                f"INSERT INTO sessions (run_id, session, status, metadata_json, "
                f"{', '.join(METRIC_COLUMNS)}, decision, summary_json) "
                f"VALUES ({', '.join('?' * (len(METRIC_COLUMNS) + 6))})",
                (
                    run_id,
                    str(summary["session"]),
                    str(summary.get("status", "ok")),
                    json.dumps(summary.get("metadata") or {}),
                    *metrics,
                    decision(summary)[0],
                    json.dumps(summary),
                ),
            )
    return len(summaries)


def recorded_sessions(conn: sqlite3.Connection) -> list[dict]:
    """Every recorded session with its run's facts, oldest run first.

    Each dict holds the session columns (``metadata`` and ``summary`` decoded) and the run's
    ``run_id``, ``results_dir``, ``manifest``, ``run_date`` and ``screen_version``.
    """
    rows = conn.execute(
        "SELECT s.*, r.results_dir, r.manifest, r.run_date, r.screen_version "
        "FROM sessions s JOIN runs r ON r.id = s.run_id ORDER BY r.run_date, r.id, s.session"
    ).fetchall()
    out = []
    for row in rows:
        record = dict(row)
        record["metadata"] = json.loads(record.pop("metadata_json"))
        record["summary"] = json.loads(record.pop("summary_json"))
        out.append(record)
    return out


def store_stamp(conn: sqlite3.Connection) -> tuple:
    """What changes whenever a run is recorded (runs are only ever added): count, last id, time."""
    row = conn.execute("SELECT COUNT(*), MAX(id), MAX(recorded_at) FROM runs").fetchone()
    return tuple(row)


@dataclass(frozen=True)
class StoreRecords:
    """The recorded sessions of the database at ``location``, read afresh at each call.

    For a long-lived reader (the served dashboard): `stamp` is cheap and changes when a run is
    recorded; `records` reads every session (`recorded_sessions`).
    """

    location: Path

    def stamp(self) -> tuple:
        """`store_stamp` of the database now."""
        with open_store(self.location) as conn:
            return store_stamp(conn)

    def records(self) -> list[dict]:
        """`recorded_sessions` of the database now."""
        with open_store(self.location) as conn:
            return recorded_sessions(conn)
