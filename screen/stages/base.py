"""The contract every stage follows, so a backend can be swapped without touching the rest.

A stage is a pure function of arrays, typed parameters (a frozen dataclass) and, where needed, a
loaded model; it never reads files or prints. Each backend of a stage is described by a
``Backend``: the pipeline uses ``stage``, ``name`` and ``version`` (with the parameters) in its
cache key, so changing a backend's results means bumping its version.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


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
