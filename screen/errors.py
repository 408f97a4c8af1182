"""Exceptions a user can act on: each names the file (and row/column) and what is wrong."""

from __future__ import annotations


class ScreenError(Exception):
    """Base class for errors that `screen` reports to the user without a traceback."""


class ImageReadError(ScreenError):
    """An image file cannot be used: unreadable, truncated, not MRC/TIFF, NaN-filled or constant."""


class StarError(ScreenError):
    """A STAR file is missing, malformed or lacks required columns."""


class ManifestError(ScreenError):
    """A manifest has one or more problems; ``problems`` lists every one of them."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{path}: {len(self.problems)} problem(s) in the manifest:\n{lines}")
