"""Atomic file writes: write beside the target, then rename over it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path that replaces ``path`` when the block succeeds.

    The temporary file lies in the same folder (so the final rename is atomic on one
    file system) and is removed if the block raises. Parent folders are created. The
    temporary file is not created here, so the writer creates it with the usual
    permissions (umask), not the owner-only ones of `tempfile.mkstemp`.

    Parameters
    ----------
    path : str or Path
        Final location of the file.

    Yields
    ------
    Path
        Where the block should write; no file exists there yet.

    Examples
    --------
    >>> with atomic_path(tmp / "a.txt") as tmp_file:  # doctest: +SKIP
    ...     tmp_file.write_text("done")
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
