"""Fixtures of the store tests: a real PostgreSQL server on 127.0.0.1."""

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest


def _postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), reverse=True)
    return found[0].parent if found and (found[0].parent / "initdb").is_file() else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_server_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", "nobody", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture(scope="session")
def postgres():
    """``new_database(name) -> URL``: an empty database on a PostgreSQL server started here.

    Needs Debian's ``postgresql`` (initdb and pg_ctl under /usr/lib/postgresql/*/bin) and the
    psycopg driver (``pip install 'screen[postgres]'``); skips with the reason otherwise. As
    root, the server runs as ``nobody`` (initdb refuses root).
    """
    psycopg = pytest.importorskip("psycopg", reason="needs psycopg: pip install 'screen[postgres]'")
    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.skip("needs PostgreSQL's initdb and pg_ctl (Debian package postgresql)")
    root = Path(tempfile.mkdtemp(prefix="screen-pg-"))  # not under pytest's root-only folder
    if os.geteuid() == 0:
        shutil.chown(root, "nobody")
    data, port = root / "data", _free_port()
    subprocess.run(
        _as_server_user([str(bin_dir / "initdb"), "-D", str(data), "-U", "screen"])
        + ["--auth=trust", "-E", "UTF8", "--no-sync"],
        check=True,
        capture_output=True,
        timeout=60,
        cwd=root,  # the server's user may not enter the current folder
    )
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    pg_ctl = _as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "log")])
    subprocess.run(
        [*pg_ctl, "-w", "-t", "30", "-o", options, "start"],
        check=True,
        capture_output=True,
        timeout=60,
        cwd=root,
    )
    base = f"postgresql://screen@127.0.0.1:{port}"

    def new_database(name: str) -> str:
        with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"{base}/{name}"

    try:
        yield new_database
    finally:
        subprocess.run(
            [*pg_ctl, "-m", "immediate", "stop"], capture_output=True, timeout=60, cwd=root
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def week1(write_run):
    """``week1(root, created)``: a run of a Quantifoil session (go) and a lacey one (no good
    particles: no-go), with grid and additive metadata."""
    sessions = {
        "quantifoil": {"metadata": {"grid": "Quantifoil", "additive": "none"}},
        "lacey": {"metadata": {"grid": "lacey", "additive": "CHAPSO"}, "good_particles": 0},
    }
    return lambda root, created: write_run(root, created, sessions)
