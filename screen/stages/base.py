"""The contract every stage follows, so a backend can be swapped without touching the rest.

A stage is a pure function of arrays, typed parameters (a frozen dataclass) and, where needed, a
loaded model; it never reads files or prints. Each backend of a stage is described by a
``Backend``: the pipeline uses ``stage``, ``name`` and ``version`` (with the parameters) in its
cache key, so changing a backend's results means bumping its version.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

THREADS = 2
"""Items a stage works on at once where its work is FFTs, filters and array reductions, which
release the GIL: the machines this runs on have 2 cores or more (measured in bench/README.md)."""


def threaded_map(
    function: Callable[[T], R],
    items: Sequence[T],
    quiet: tuple[type[Warning], ...] = (),
) -> list[R]:
    """``[function(item) for item in items]``, `THREADS` at a time, results in order.

    ``quiet``: warning categories the work silences in `warnings.catch_warnings` blocks of its
    own. Those blocks are not thread-safe (each saves and restores the process's filters), so one
    block around the threads silences the same categories and leaves the filters as they were,
    whatever order the threads' blocks ran in. The first exception is raised.
    """
    with warnings.catch_warnings():
        for category in quiet:
            warnings.simplefilter("ignore", category)
        with ThreadPoolExecutor(max_workers=THREADS) as pool:
            return list(pool.map(function, items))


@dataclass(frozen=True)
class Backend:
    """One implementation of a stage.

    Parameters
    ----------
    stage
        The stage it implements: ``"assess_micrographs"``, ``"ctf"``, ``"diameter"``,
        ``"picking"``, ``"extraction"``, ``"classify2d"`` or ``"assess_classes"``.
    name
        ``"builtin"`` for ours; the program's name for external tools (``"ctffind4"``...).
    version
        Bumped whenever the backend's results change.
    params_type
        The frozen dataclass of its parameters (defaults are the pipeline's defaults).
    compute
        The pure function.
    """

    stage: str
    name: str
    version: str
    params_type: type
    compute: Callable[..., Any]

    @property
    def key(self) -> str:
        """``stage/name@version``, as stored in provenance and cache keys."""
        return f"{self.stage}/{self.name}@{self.version}"
