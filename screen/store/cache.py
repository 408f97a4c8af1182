"""Per-stage result cache.

A result is stored under a key made of its inputs, parameters and the stage backend's version,
written atomically, so re-running skips finished work and a run killed midway (even with kill -9)
resumes without losing what was finished.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from screen.io.atomic import atomic_path

T = TypeVar("T")

SHAPE_ERRORS = (TypeError, KeyError, ValueError, IndexError, AttributeError)
"""What a parser raises on a cache entry that reads but has the wrong shape (a miss)."""


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()
    return value


def cache_key(*parts: Any) -> str:
    """Stable hex key of any mix of dataclasses, dicts, paths, numbers, strings and arrays."""
    text = json.dumps(_plain(list(parts)), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def file_identity(path: Path) -> dict[str, Any]:
    """What identifies an input file's content cheaply: path, size and modification time."""
    stat = os.stat(path)
    return {"path": str(Path(path).resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


class StageCache:
    """Cached stage results under ``root/<stage>/<name>.<key>.{json,npz}``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, stage: str, name: str, key: str, suffix: str) -> Path:
        return self.root / stage / f"{name}.{key}{suffix}"

    def get_json(
        self, stage: str, name: str, key: str, parse: Callable[[Any], T] | None = None
    ) -> Any | None:
        """The stored JSON value (``parse(value)`` when given), or None when absent or unusable.

        An entry that reads but that ``parse`` rejects (it raises one of `SHAPE_ERRORS`: missing
        fields, wrong types) is a miss, so it is recomputed instead of failing every re-run.
        """
        path = self._path(stage, name, key, ".json")
        try:
            value = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return _parsed(value, parse)

    def put_json(self, stage: str, name: str, key: str, value: Any) -> None:
        """Store a JSON-able value atomically."""
        with atomic_path(self._path(stage, name, key, ".json")) as tmp:
            tmp.write_text(json.dumps(_plain(value)))

    def get_cpu_seconds(self, stage: str, name: str, key: str) -> float:
        """CPU seconds the entry cost when it was computed (0 when unknown)."""
        try:
            return float(self._path(stage, name, key, ".cpu").read_text())
        except (OSError, ValueError):
            return 0.0

    def put_cpu_seconds(self, stage: str, name: str, key: str, seconds: float) -> None:
        """Record what an entry cost, so CPU totals survive cached re-runs."""
        with atomic_path(self._path(stage, name, key, ".cpu")) as tmp:
            tmp.write_text(f"{seconds:.6f}")

    def get_arrays(
        self,
        stage: str,
        name: str,
        key: str,
        parse: Callable[[dict[str, np.ndarray]], T] | None = None,
    ) -> Any | None:
        """The stored arrays (``parse(arrays)`` when given), or None when absent or unusable.

        As for `get_json`, arrays that ``parse`` rejects are a miss.
        """
        path = self._path(stage, name, key, ".npz")
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
            return None
        return _parsed(arrays, parse)

    def put_arrays(self, stage: str, name: str, key: str, arrays: dict[str, np.ndarray]) -> None:
        """Store named arrays atomically (uncompressed npz)."""
        with atomic_path(self._path(stage, name, key, ".npz")) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, **arrays)


def _parsed(value: Any, parse: Callable[[Any], T] | None) -> Any | None:
    """``parse(value)``, or None when the value has the wrong shape for it."""
    if parse is None:
        return value
    try:
        return parse(value)
    except SHAPE_ERRORS:
        return None
