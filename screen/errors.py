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


class RunError(ScreenError):
    """A problem that stops a whole run (not one session): output folder, disk, model, lock."""


def os_error_message(error: OSError) -> str:
    """One line for an OS error: the file, what went wrong, and what to do when it is clear.

    Examples
    --------
    >>> import errno
    >>> os_error_message(OSError(errno.ENOSPC, "No space left on device", "/out/a.json"))
    '/out/a.json: No space left on device (the disk is full: free space or choose another --out)'
    """
    import errno

    where = f"{error.filename}: " if error.filename else ""
    what = error.strerror or str(error)
    hints = {
        errno.ENOSPC: "the disk is full: free space or choose another --out",
        errno.EDQUOT: "the disk quota is exceeded: free space or choose another --out",
        errno.EROFS: "a read-only file system: choose another --out",
        errno.EACCES: "no permission: choose another --out",
    }
    hint = hints.get(error.errno)
    return f"{where}{what}" + (f" ({hint})" if hint else "")
