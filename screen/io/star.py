"""RELION STAR files: a thin, strict layer over `starfile`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import starfile

from screen.errors import StarError
from screen.io.atomic import atomic_path

PARTICLE_COLUMNS: tuple[str, ...] = ("rlnCoordinateX", "rlnCoordinateY", "rlnMicrographName")
COORDINATE_COLUMNS: tuple[str, ...] = ("rlnCoordinateX", "rlnCoordinateY")
MICROGRAPH_COLUMNS: tuple[str, ...] = ("rlnMicrographName",)


def read_star(path: str | Path) -> dict[str, pd.DataFrame]:
    """Read every data block of a STAR file.

    Parameters
    ----------
    path : str or Path
        STAR file.

    Returns
    -------
    dict of str to pd.DataFrame
        Blocks by name without the ``data_`` prefix (``""`` for a bare ``data_``);
        key-value (non-loop) blocks become one-row frames.

    Raises
    ------
    StarError
        If the file is missing, unreadable or holds no data block.
    """
    path = Path(path)
    if not path.is_file():
        raise StarError(f"{path}: STAR file not found")
    try:
        blocks = starfile.read(path, always_dict=True)
    except Exception as err:  # starfile/pandas raise many types on malformed text
        raise StarError(f"{path}: malformed STAR file ({err})") from err
    if not blocks:
        raise StarError(f"{path}: no data blocks found (is this a STAR file?)")
    return {name: _as_frame(block) for name, block in blocks.items()}


def _as_frame(block: pd.DataFrame | dict[str, Any]) -> pd.DataFrame:
    """Return a loop block as is and a key-value block as a one-row frame."""
    if isinstance(block, pd.DataFrame):
        return block
    return pd.DataFrame([block])


def write_star(path: str | Path, blocks: dict[str, pd.DataFrame]) -> Path:
    """Write data blocks to a STAR file atomically.

    Parameters
    ----------
    path : str or Path
        Destination; parent folders are created. The file appears complete or not at
        all (written beside it, then renamed).
    blocks : dict of str to pd.DataFrame
        Blocks by name (written as ``data_<name>``), in order.

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    StarError
        If ``blocks`` is empty.
    """
    target = Path(path)
    if not blocks:
        raise StarError(f"{target}: nothing to write (no data blocks)")
    with atomic_path(target) as tmp:
        starfile.write(dict(blocks), tmp)
        _drop_timestamp_comment(Path(tmp))
    return target


def _drop_timestamp_comment(path: Path) -> None:
    """Replace starfile's "created at <time>" first line so equal data give equal bytes."""
    text = path.read_text()
    first, _, rest = text.partition("\n")
    if first.startswith("# Created by the starfile"):
        path.write_text("# Written by screen\n" + rest)


@dataclass(frozen=True, kw_only=True)
class OpticsGroup:
    """Microscope optics shared by a set of micrographs or particles (RELION 3.1 optics row).

    Attributes
    ----------
    name : str
        ``rlnOpticsGroupName``.
    number : int
        ``rlnOpticsGroup``, referenced by each particle/micrograph row.
    pixel_size_A : float
        Å per pixel of the micrographs, or of the particle images when ``image_size_px``
        is set.
    voltage_kV, cs_mm, amplitude_contrast : float
        Acceleration voltage, spherical aberration and amplitude contrast.
    image_size_px : int or None
        Box size of extracted particle images; None for micrographs or bare coordinates.
    """

    name: str = "opticsGroup1"
    number: int = 1
    pixel_size_A: float
    voltage_kV: float = 300.0
    cs_mm: float = 2.7
    amplitude_contrast: float = 0.1
    image_size_px: int | None = None

    def __post_init__(self) -> None:
        if not self.pixel_size_A > 0:
            raise ValueError(f"pixel_size_A must be positive, got {self.pixel_size_A}")
        if self.image_size_px is not None and self.image_size_px <= 0:
            raise ValueError(f"image_size_px must be positive, got {self.image_size_px}")

    def to_row(self) -> dict[str, Any]:
        """Return the optics group as RELION 3.1 labels and values.

        Returns
        -------
        dict of str to Any
            ``rlnImagePixelSize``, ``rlnImageSize`` and ``rlnImageDimensionality`` when
            ``image_size_px`` is set, else ``rlnMicrographPixelSize``; plus name, number,
            voltage, Cs and amplitude contrast.
        """
        row: dict[str, Any] = {"rlnOpticsGroupName": self.name, "rlnOpticsGroup": self.number}
        if self.image_size_px is None:
            row["rlnMicrographPixelSize"] = self.pixel_size_A
        else:
            row["rlnImagePixelSize"] = self.pixel_size_A
            row["rlnImageSize"] = self.image_size_px
            row["rlnImageDimensionality"] = 2
        row["rlnVoltage"] = self.voltage_kV
        row["rlnSphericalAberration"] = self.cs_mm
        row["rlnAmplitudeContrast"] = self.amplitude_contrast
        return row


def write_particles_star(path: str | Path, optics: OpticsGroup, particles: pd.DataFrame) -> Path:
    """Write particles in the RELION 3.1+ layout (``data_optics`` + ``data_particles``).

    Parameters
    ----------
    path : str or Path
        Destination (written atomically).
    optics : OpticsGroup
        The optics group of every particle.
    particles : pd.DataFrame
        One row per particle with at least ``rlnCoordinateX``, ``rlnCoordinateY`` and
        ``rlnMicrographName``; ``rlnOpticsGroup`` is added when absent.

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    StarError
        If required columns are missing.
    """
    table = _with_optics_group(path, particles, PARTICLE_COLUMNS, optics, "particles")
    return write_star(path, {"optics": pd.DataFrame([optics.to_row()]), "particles": table})


def write_micrographs_star(
    path: str | Path, optics: OpticsGroup, micrographs: pd.DataFrame
) -> Path:
    """Write micrographs in the RELION 3.1+ layout (``data_optics`` + ``data_micrographs``).

    Parameters
    ----------
    path : str or Path
        Destination (written atomically).
    optics : OpticsGroup
        The optics group of every micrograph.
    micrographs : pd.DataFrame
        One row per micrograph with at least ``rlnMicrographName``; ``rlnOpticsGroup``
        is added when absent.

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    StarError
        If ``rlnMicrographName`` is missing.
    """
    table = _with_optics_group(path, micrographs, MICROGRAPH_COLUMNS, optics, "micrographs")
    return write_star(path, {"optics": pd.DataFrame([optics.to_row()]), "micrographs": table})


def _with_optics_group(
    path: str | Path,
    table: pd.DataFrame,
    required: tuple[str, ...],
    optics: OpticsGroup,
    what: str,
) -> pd.DataFrame:
    """Check required columns and return a copy with ``rlnOpticsGroup`` filled in."""
    _require_columns(path, table, required, what)
    if "rlnOpticsGroup" in table.columns:
        return table
    return table.assign(rlnOpticsGroup=optics.number)


def _require_columns(
    path: str | Path, table: pd.DataFrame, required: tuple[str, ...], what: str
) -> None:
    """Raise `StarError` listing every column of ``required`` absent from ``table``."""
    missing = [column for column in required if column not in table.columns]
    if missing:
        raise StarError(f"{path}: {what} lack required column(s): {', '.join(missing)}")


def read_particles_star(path: str | Path) -> tuple[pd.DataFrame | None, pd.DataFrame]:
    """Read particles from a RELION 3.1+ or RELION 3.0 STAR file.

    Parameters
    ----------
    path : str or Path
        STAR file with ``data_optics`` + ``data_particles`` blocks (RELION 3.1+) or a
        single block of particles (RELION 3.0, e.g. autopick coordinates).

    Returns
    -------
    optics : pd.DataFrame or None
        The optics block, or None when the file has none (RELION 3.0).
    particles : pd.DataFrame
        One row per particle, with at least ``rlnCoordinateX`` and ``rlnCoordinateY``.

    Raises
    ------
    StarError
        If the file is unreadable, no particle block can be identified, or the
        coordinate columns are missing.
    """
    blocks = read_star(path)
    if "particles" in blocks:
        particles = blocks["particles"]
    else:
        candidates = [name for name in blocks if name != "optics"]
        if len(candidates) != 1:
            names = ", ".join(f"data_{name}" for name in blocks)
            raise StarError(f"{path}: no data_particles block and no single other block: {names}")
        particles = blocks[candidates[0]]
    _require_columns(path, particles, COORDINATE_COLUMNS, "particles")
    return blocks.get("optics"), particles
