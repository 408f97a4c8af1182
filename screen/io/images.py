"""Image records, validity checks and a reader chosen by file extension."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from screen.errors import ImageReadError

MRC_EXTENSIONS: tuple[str, ...] = (".mrc", ".mrcs", ".st", ".map")
TIFF_EXTENSIONS: tuple[str, ...] = (".tif", ".tiff")
EXPORT_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png")  # 8/16-bit exports, no pixel size
LOSSY_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg")
"""Exports whose block transform quantises the finest frequencies away (JPEG): their spectrum near
Nyquist holds compression artefacts, not the specimen's."""


def is_lossy_export(path: Path | str) -> bool:
    """Whether ``path`` names a lossy (JPEG) export."""
    return Path(path).suffix.lower() in LOSSY_EXTENSIONS


IMAGE_EXTENSIONS: tuple[str, ...] = MRC_EXTENSIONS + TIFF_EXTENSIONS + EXPORT_EXTENSIONS


@dataclass(frozen=True, eq=False)
class MrcImage:
    """Pixels of one image file with the pixel size its header gives.

    Attributes
    ----------
    data : np.ndarray
        float32 pixels: 2D ``(y, x)`` for a single image, 3D ``(n, y, x)`` for a stack or movie.
    pixel_size_A : float or None
        Å per pixel from the file header; None when the header does not say.
    path : Path
        The file the pixels came from.
    """

    data: np.ndarray
    pixel_size_A: float | None
    path: Path


MIN_FIELD_A = 1000.0
"""A micrograph whose shorter side spans less than this many Å has a doubtful pixel size. The
cameras of single-particle work record at least ~3,700 pixels a side (K2 3838 x 3710, Falcon
4096, K3 5760 x 4092) at 0.3 Å/px or more (super-resolution), so a whole micrograph spans at least
~1,100 Å, and binning or Fourier cropping keeps the field. A copy binned k times whose header kept
the unbinned pixel size spans k times less: the Magellon micrograph of ``shared/real_examples``,
512 px at its header's 0.79 Å/px, 404 Å, is 8 x binned (6.32 Å/px, 3,236 Å). A fact of the
instruments, not of any data set."""


def doubtful_pixel_size(shape_px: tuple[int, ...], pixel_size_A: float) -> str | None:
    """Why a micrograph's pixel size is doubtful (its field under `MIN_FIELD_A`), else None."""
    rows, columns = shape_px[-2:]
    field_A = min(rows, columns) * pixel_size_A
    if field_A >= MIN_FIELD_A:
        return None
    return (
        f"{columns} x {rows} px at {pixel_size_A:g} Å/px spans {field_A:,.0f} Å, less than any "
        f"camera's field ({MIN_FIELD_A:,.0f} Å or more); if it was binned, its pixel size is the "
        "binned one (the unbinned one times the binning)"
    )


def check_image(data: np.ndarray, path: str | Path) -> None:
    """Raise `ImageReadError` unless ``data`` holds usable pixels.

    Parameters
    ----------
    data : np.ndarray
        Pixels of an image or stack.
    path : str or Path
        File the pixels came from, named in the error.

    Raises
    ------
    ImageReadError
        If the array is empty, holds NaN/Inf pixels, or is constant (zero variance).
    """
    if data.size == 0:
        raise ImageReadError(f"{path}: empty image (0 pixels, shape {data.shape})")
    # Two reductions, no temporary arrays: NaN anywhere makes min and max NaN, Inf shows in one.
    low, high = data.min(), data.max()
    if not (np.isfinite(low) and np.isfinite(high)):
        bad = int(data.size - np.count_nonzero(np.isfinite(data)))
        raise ImageReadError(f"{path}: {bad} of {data.size} pixels are NaN or Inf")
    if low == high:
        raise ImageReadError(f"{path}: constant image (zero variance): every pixel is {low:g}")


def image_kind(path: str | Path) -> str:
    """Say which reader handles a file: ``"mrc"``, ``"tiff"`` or ``"export"`` (JPEG/PNG).

    Parameters
    ----------
    path : str or Path
        Image file name; only its extension (case-insensitive) is used.

    Returns
    -------
    str
        ``"mrc"``, ``"tiff"`` or ``"export"``.

    Raises
    ------
    ImageReadError
        If the extension is not one of `IMAGE_EXTENSIONS`.
    """
    suffix = Path(path).suffix.lower()
    if suffix in MRC_EXTENSIONS:
        return "mrc"
    if suffix in TIFF_EXTENSIONS:
        return "tiff"
    if suffix in EXPORT_EXTENSIONS:
        return "export"
    supported = ", ".join(IMAGE_EXTENSIONS)
    raise ImageReadError(
        f"{path}: unsupported image extension {suffix or '(none)'!r}; supported: {supported}"
    )


def summed_frames(data: np.ndarray) -> np.ndarray:
    """A 2D image as it is; a stack (an unaligned movie) as the plain sum of its frames."""
    return data if data.ndim == 2 else data.sum(axis=0)


def read_image(path: str | Path) -> MrcImage:
    """Read an MRC, TIFF or JPEG/PNG image, choosing the reader by extension.

    Parameters
    ----------
    path : str or Path
        ``.mrc``, ``.mrcs``, ``.st``, ``.map`` (MRC), ``.tif``, ``.tiff`` (TIFF) or ``.jpg``,
        ``.jpeg``, ``.png`` (an export: grey levels as shown, no pixel size) file.

    Returns
    -------
    MrcImage
        float32 pixels, header pixel size (or None) and the path.

    Raises
    ------
    ImageReadError
        If the extension is unsupported or the file is unusable.
    """
    # Imported here because the readers import MrcImage and check_image from this module.
    kind = image_kind(path)
    if kind == "mrc":
        from screen.io.mrc import read_mrc

        return read_mrc(path)
    if kind == "export":
        from screen.io.exports import read_export

        return read_export(path)
    from screen.io.tiff import read_tiff

    return read_tiff(path)


T = TypeVar("T")
R = TypeVar("R")


def read_ahead(
    chunks: Sequence[T], read: Callable[[T], R], background: bool = True
) -> Iterator[tuple[T, R]]:
    """``(chunk, read(chunk))`` in order, the next chunk read while the caller works on this one.

    Reading a file is mostly the kernel copying pages while one core waits; with ``background``
    the next chunk's reading runs in a thread during the caller's work on the current one (the
    caller's numerical work keeps both cores busy otherwise). ``read`` must be safe to run beside
    the caller (files in, arrays out) and should return its errors rather than raise them; at
    most two chunks are in memory. ``background=False`` reads each chunk when it is reached.
    """
    if not background:
        for chunk in chunks:
            yield chunk, read(chunk)
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(read, chunks[0]) if chunks else None
        for index, chunk in enumerate(chunks):
            done = pending.result()
            pending = pool.submit(read, chunks[index + 1]) if index + 1 < len(chunks) else None
            yield chunk, done
