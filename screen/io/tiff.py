"""Read and write TIFF images and multi-page stacks (e.g. movies of electron counts)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from screen.errors import ImageReadError
from screen.io.atomic import atomic_path
from screen.io.images import MrcImage, check_image


def read_tiff(path: str | Path) -> MrcImage:
    """Read a TIFF image or multi-page stack as float32.

    Parameters
    ----------
    path : str or Path
        ``.tif`` / ``.tiff`` file: one page (2D image) or several pages of the same
        shape (3D ``(n, y, x)`` stack, e.g. movie frames).

    Returns
    -------
    MrcImage
        float32 pixels; ``pixel_size_A`` is None because TIFF resolution tags do not
        carry Å reliably.

    Raises
    ------
    ImageReadError
        If the file is missing, not a TIFF, truncated or corrupt, not grey-scale, has
        pages of different shapes, or holds empty, NaN/Inf or constant pixels.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: file not found")
    try:
        with tifffile.TiffFile(path) as tif:
            raw = _read_pages(tif, path)
    except ImageReadError:
        raise
    except Exception as err:  # tifffile and its codecs raise many types on corrupt files
        raise ImageReadError(f"{path}: not a readable TIFF file ({err})") from err
    if raw.ndim not in (2, 3):
        raise ImageReadError(f"{path}: expected a grey-scale image or stack, got shape {raw.shape}")
    data = np.asarray(raw, dtype=np.float32)
    check_image(data, path)
    return MrcImage(data=data, pixel_size_A=None, path=path)


def _read_pages(tif: tifffile.TiffFile, path: Path) -> np.ndarray:
    """Return every page of ``tif`` (stacked when there are several), checking completeness."""
    pages = list(tif.pages)
    if not pages:
        raise ImageReadError(f"{path}: TIFF file has no pages")
    _check_strips(pages, path)
    if any(page.samplesperpixel > 1 for page in pages):
        raise ImageReadError(f"{path}: expected a grey-scale image, got colour/multi-sample pages")
    shapes = {page.shape for page in pages}
    if len(shapes) > 1:
        raise ImageReadError(f"{path}: TIFF pages differ in shape: {sorted(shapes)}")
    data = pages[0].asarray() if len(pages) == 1 else tif.asarray(key=range(len(pages)))
    _check_declared_shape(tif, data, path)
    return data


def _check_strips(pages: list, path: Path) -> None:
    """Raise if any page's pixel data would lie beyond the end of the file."""
    size = path.stat().st_size
    for index, page in enumerate(pages):
        ends = [o + c for o, c in zip(page.dataoffsets, page.databytecounts, strict=False)]
        if ends and max(ends) > size:
            raise ImageReadError(
                f"{path}: truncated: page {index} needs {max(ends)} bytes but the file has {size}"
            )


def _check_declared_shape(tif: tifffile.TiffFile, data: np.ndarray, path: Path) -> None:
    """Raise if tifffile's own shape metadata promises more pixels than were read."""
    for meta in tif.shaped_metadata or ():
        declared = meta.get("shape")
        if declared and int(np.prod(declared)) > data.size:
            raise ImageReadError(
                f"{path}: truncated: the file declares shape {tuple(declared)} but only "
                f"{data.shape} could be read"
            )


def write_tiff(path: str | Path, data: np.ndarray, *, compression: str | None = "zlib") -> Path:
    """Write an image or stack to a TIFF file atomically, keeping its dtype.

    Parameters
    ----------
    path : str or Path
        Destination; parent folders are created. The file appears complete or not at
        all (written beside it, then renamed).
    data : np.ndarray
        2D image ``(y, x)`` or 3D stack ``(n, y, x)`` written as ``n`` pages. Integer
        dtypes (uint8/uint16 electron counts) are stored as they are.
    compression : str or None, optional
        tifffile compression name (default ``"zlib"``, lossless); None for none.

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    ValueError
        If ``data`` is not 2D or 3D.
    """
    pixels = np.asarray(data)
    if pixels.ndim not in (2, 3):
        raise ValueError(f"TIFF data must be 2D or 3D, got shape {pixels.shape}")
    target = Path(path)
    with atomic_path(target) as tmp:
        tifffile.imwrite(tmp, pixels, compression=compression, photometric="minisblack")
    return target
