"""One `screen run` at a time per results folder: an advisory lock on ``OUT/.lock``."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from screen.errors import RunError


@contextmanager
def results_lock(root: Path) -> Iterator[None]:
    """Hold ``root/.lock`` (``flock``, not blocking) while the block runs.

    The lock file keeps the holder's process id; the lock goes with the process, so a run killed
    with ``kill -9`` leaves no stale lock.

    Raises
    ------
    RunError
        If another process holds the lock (its pid is named).
    """
    path = Path(root) / ".lock"
    handle = open(path, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            pid = handle.read().strip() or "unknown"
            raise RunError(
                f"another screen run is using {root} (pid {pid}); wait for it to finish or "
                "choose another --out"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        handle.close()
