"""manifest.csv -> validated sessions, with every problem reported at once.

A manifest has one row per session (grid condition). Column names are forgiving
(case, spaces, dashes, dots, common synonyms such as ``apix`` or ``kV``); values are
checked strictly, and all problems are collected into one `ManifestError`.
"""

from __future__ import annotations

import csv
import difflib
import glob
import io
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from screen.errors import ManifestError
from screen.io.images import EXPORT_EXTENSIONS, IMAGE_EXTENSIONS

SESSION = "session"
SOURCE_COLUMNS: tuple[str, ...] = ("micrographs", "movies")
CANONICAL_COLUMNS: tuple[str, ...] = (
    SESSION,
    *SOURCE_COLUMNS,
    "pixel_size_A",
    "voltage_kV",
    "cs_mm",
    "amplitude_contrast",
    "dose_e_per_A2",
    "diameter_A",
)
MAX_SESSION_NAME = 100
MAX_NAME_BYTES = 255
"""Longest folder name most file systems take, in bytes (UTF-8)."""

_SYNONYMS = MappingProxyType(
    {
        **dict.fromkeys(("session", "name", "condition", "dataset"), SESSION),
        **dict.fromkeys(("micrographs", "mics", "micrograph", "images", "path"), "micrographs"),
        **dict.fromkeys(("movies", "movie", "frames"), "movies"),
        **dict.fromkeys(
            (
                "pixel_size_a",
                "pixel_size",
                "apix",
                "angpix",
                "pixelsize",
                "pixel_size_angstrom",
                "psize",
            ),
            "pixel_size_A",
        ),
        **dict.fromkeys(("voltage_kv", "voltage", "kv", "kev", "ht"), "voltage_kV"),
        **dict.fromkeys(("cs_mm", "cs", "spherical_aberration"), "cs_mm"),
        **dict.fromkeys(("amplitude_contrast", "ac", "amp_contrast", "q0"), "amplitude_contrast"),
        **dict.fromkeys(("dose_e_per_a2", "dose", "total_dose", "dose_e_a2"), "dose_e_per_A2"),
        **dict.fromkeys(
            ("diameter_a", "diameter", "particle_diameter", "particle_diameter_a"), "diameter_A"
        ),
    }
)
_DEFAULTS = MappingProxyType(
    {
        "voltage_kV": "300 (the default)",
        "cs_mm": "2.7 (the default)",
        "amplitude_contrast": "0.1 (the default)",
        "dose_e_per_A2": "not given",
        "diameter_A": "estimated by the pipeline",
    }
)
MISSPELLING_CUTOFF = 0.8
"""`difflib` similarity above which a metadata column name is taken for a misspelling."""
_FORBIDDEN_IN_NAMES = frozenset('/\\:*?"<>|')


@dataclass(frozen=True)
class _Range:
    """Allowed values of a numeric column."""

    low: float
    high: float
    unit: str
    low_open: bool = False

    def contains(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        return above and value <= self.high

    def describe(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        if self.low_open:
            return f"> {self.low:g} and ≤ {self.high:g}{unit}"
        return f"in {self.low:g}–{self.high:g}{unit}"


_RANGES = MappingProxyType(
    {
        "pixel_size_A": _Range(0.3, 20.0, "Å"),
        "voltage_kV": _Range(60.0, 400.0, "kV"),
        "cs_mm": _Range(0.0, 10.0, "mm"),
        "amplitude_contrast": _Range(0.0, 0.5, ""),
        "dose_e_per_A2": _Range(0.0, 500.0, "e/Å²", low_open=True),
        "diameter_A": _Range(20.0, 2000.0, "Å"),
    }
)


@dataclass(frozen=True)
class SessionRow:
    """One validated manifest row: a session (grid condition) and its images.

    Attributes
    ----------
    session : str
        Unique name, usable as a folder name.
    line : int
        Line of the row in the manifest (the header is line 1).
    micrograph_paths : tuple of Path
        Absolute, sorted image paths (micrographs, or movies when ``kind == "movies"``).
    kind : {"micrographs", "movies"}
        Whether the images are motion-corrected micrographs or raw movies.
    pixel_size_A, voltage_kV, cs_mm, amplitude_contrast : float
        Pixel size and microscope optics.
    dose_e_per_A2 : float or None
        Total dose, when given.
    diameter_A : float or None
        The particle diameter when the user gives it (column ``diameter_A``): it replaces the
        pipeline's estimate for this session.
    metadata : dict of str to str
        Every other column (original header text -> cell text), in file order.
    source : str
        The micrographs/movies cell as written (glob, folder or file).
    """

    session: str
    line: int
    micrograph_paths: tuple[Path, ...]
    kind: Literal["micrographs", "movies"]
    pixel_size_A: float
    voltage_kV: float = 300.0
    cs_mm: float = 2.7
    amplitude_contrast: float = 0.1
    dose_e_per_A2: float | None = None
    diameter_A: float | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    source: str = ""


@dataclass(frozen=True)
class Manifest:
    """A validated manifest.

    Attributes
    ----------
    path : Path
        The manifest file.
    sessions : tuple of SessionRow
        Sessions in file order.
    metadata_columns : tuple of str
        Names of the condition-metadata columns, in file order.
    warnings : tuple of str
        Likely mistakes that are not errors, e.g. a metadata column whose name is close to an
        optional column's (``voltge_kV``), so that its default is used.
    """

    path: Path
    sessions: tuple[SessionRow, ...]
    metadata_columns: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Column:
    """A header cell: its position, original text and canonical name (None for metadata)."""

    index: int
    original: str
    canonical: str | None

    @property
    def label(self) -> str:
        """Column name as shown in messages."""
        if self.canonical is None or self.canonical.casefold() == self.original.casefold():
            return f"'{self.original}'"
        return f"'{self.original}' ({self.canonical})"


@dataclass(frozen=True)
class _Header:
    """The columns of a manifest, split into known columns and metadata."""

    known: dict[str, _Column]
    metadata: tuple[_Column, ...]
    width: int
    unnamed: tuple[int, ...] = ()


def normalise_column(name: str) -> str:
    """Map a manifest column name to its canonical name.

    Parameters
    ----------
    name : str
        Header text as written, e.g. ``"Pixel size (Å)"``, ``"apix"``, ``"Voltage-kV"``.

    Returns
    -------
    str
        A name of `CANONICAL_COLUMNS` (e.g. ``"pixel_size_A"``) for a known column or
        synonym; otherwise the normalised key (lower case, spaces/dashes/dots/brackets
        as single underscores, ``Å`` as ``a``).

    Examples
    --------
    >>> normalise_column(" Pixel Size (Å) ")
    'pixel_size_A'
    >>> normalise_column("kV")
    'voltage_kV'
    >>> normalise_column("Grid type")
    'grid_type'
    """
    key = name.strip().lower().replace("å", "a").replace("²", "2")
    key = re.sub(r"[\s\-./()\[\]]+", "_", key).strip("_")
    return _SYNONYMS.get(key, key)


def find_images(pattern: str, base_dir: Path) -> tuple[Path, ...]:
    """Expand a folder, glob or file name into sorted image paths.

    Parameters
    ----------
    pattern : str
        A folder (its image files, not recursive), a glob (``**`` recurses) or a file;
        ``~`` and environment variables are expanded.
    base_dir : Path
        Folder that relative patterns start from (the manifest's folder).

    Returns
    -------
    tuple of Path
        Sorted paths of the matched files with an extension of `IMAGE_EXTENSIONS`;
        other files are ignored, and so are JPEG/PNG exports when MRC or TIFF files match too
        (thumbnails beside the micrographs).

    Raises
    ------
    FileNotFoundError
        If nothing matches, or nothing that matches is a supported image file.
    """
    expanded = os.path.expandvars(os.path.expanduser(pattern))
    full = Path(base_dir) / expanded
    if full.is_dir():
        found = [p for p in full.iterdir() if p.is_file() and not p.name.startswith(".")]
        where = f"folder '{pattern}'"
    elif any(char in expanded for char in "*?["):
        found = [Path(p) for p in glob.glob(str(full), recursive=True) if Path(p).is_file()]
        where = f"'{pattern}'"
    elif full.is_file():
        found, where = [full], f"'{pattern}'"
    else:
        raise FileNotFoundError(f"'{pattern}' does not exist (looked for {full})")
    kinds = ", ".join(IMAGE_EXTENSIONS)
    if not found:
        raise FileNotFoundError(f"{where} matches no file (looked for {full})")
    images = sorted(p for p in found if p.suffix.lower() in IMAGE_EXTENSIONS)
    microscope_files = [p for p in images if p.suffix.lower() not in EXPORT_EXTENSIONS]
    if microscope_files:  # JPEG/PNG beside MRC/TIFF are thumbnails (EPU writes them): not used
        images = microscope_files
    if not images:
        raise FileNotFoundError(
            f"{where} matches {len(found)} file(s) but none is an image ({kinds})"
        )
    return tuple(images)


def read_manifest(path: str | Path) -> Manifest:
    """Read and validate a manifest CSV.

    Parameters
    ----------
    path : str or Path
        CSV file (UTF-8, with or without BOM; comma, semicolon or tab separated), one
        row per session. Required columns: session, pixel size, and micrographs or
        movies (a folder, glob or file, relative to the manifest's folder).

    Returns
    -------
    Manifest
        Sessions in file order with resolved image paths and defaults filled in.

    Raises
    ------
    ManifestError
        Listing every problem found, each naming its line (header = line 1) and column.
    """
    path = Path(path)
    records = _read_records(path)
    header_line, header_cells = records[0]
    header, problems = _parse_header(header_cells, header_line)
    if len(records) == 1:
        problems.append(f"line {header_line}: header only, no session rows")
    sessions: list[SessionRow] = []
    seen: dict[str, int] = {}
    base_dir = path.resolve().parent
    for line, cells in records[1:]:
        row, row_problems = _parse_row(line, cells, header, base_dir)
        row_problems += _duplicate_problems(line, header, cells, seen)
        problems += row_problems
        if row is not None and not row_problems:
            sessions.append(row)
    if problems:
        raise ManifestError(str(path), problems)
    names = tuple(column.original for column in header.metadata)
    warnings = tuple(_misspelling_warnings(header, header_line))
    return Manifest(path=path, sessions=tuple(sessions), metadata_columns=names, warnings=warnings)


def _read_records(path: Path) -> list[tuple[int, list[str]]]:
    """Return the non-blank CSV records of ``path`` as (first line number, stripped cells)."""
    if not path.is_file():
        raise ManifestError(str(path), ["file not found"])
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        reason = f"not UTF-8 text (byte {err.object[err.start]:#04x} at offset {err.start})"
        raise ManifestError(str(path), [f"{reason}; save it as 'CSV UTF-8'"]) from err
    reader = csv.reader(io.StringIO(text), delimiter=_delimiter(text))
    records, previous = [], 0
    try:
        for cells in reader:
            stripped = [cell.strip() for cell in cells]
            if any(stripped):
                records.append((previous + 1, stripped))
            previous = reader.line_num
    except csv.Error as err:
        raise ManifestError(str(path), [f"line {reader.line_num}: not valid CSV ({err})"]) from err
    if not records:
        raise ManifestError(str(path), ["the file is empty (expected a header line)"])
    return records


def _delimiter(text: str) -> str:
    """Return ``,`` unless the first non-blank line uses only ``;`` or tabs."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    if "," in first:
        return ","
    counts = {sep: first.count(sep) for sep in ";\t"}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] else ","


def _parse_header(cells: list[str], line: int) -> tuple[_Header, list[str]]:
    """Map header cells to canonical columns and metadata, with header problems."""
    known: dict[str, _Column] = {}
    metadata: list[_Column] = []
    unnamed: list[int] = []
    problems: list[str] = []
    for index, text in enumerate(cells):
        if not text:
            unnamed.append(index)
            continue
        canonical = normalise_column(text)
        column = _Column(index, text, canonical if canonical in CANONICAL_COLUMNS else None)
        if column.canonical is None:
            if any(other.original == text for other in metadata):
                problems.append(f"line {line}, column '{text}': the column appears twice")
            metadata.append(column)
        elif column.canonical in known:
            first = known[column.canonical].original
            problems.append(
                f"line {line}, columns '{first}' and '{text}': both mean '{column.canonical}'; "
                "keep one"
            )
        else:
            known[column.canonical] = column
    problems += _missing_column_problems(known, line)
    header = _Header(known, tuple(metadata), len(cells), tuple(unnamed))
    return header, problems


def _misspelling_warnings(header: _Header, line: int) -> list[str]:
    """A warning for each metadata column whose name is close to a missing optional column's."""
    warnings = []
    for column in header.metadata:
        key = normalise_column(column.original)
        close = difflib.get_close_matches(key, _SYNONYMS.keys(), n=1, cutoff=MISSPELLING_CUTOFF)
        if not close or len(key) < 4:
            continue
        meant = _SYNONYMS[close[0]]
        if meant in header.known or meant not in _DEFAULTS:
            continue
        warnings.append(
            f"line {line}, column '{column.original}': did you mean '{meant}'? It is kept as "
            f"condition metadata and {meant} is {_DEFAULTS[meant]}"
        )
    return warnings


def _missing_column_problems(known: dict[str, _Column], line: int) -> list[str]:
    """Return a problem for each required column the header lacks."""
    problems = []
    if SESSION not in known:
        problems.append(
            f"line {line}: missing required column 'session' (or name, condition, dataset)"
        )
    if "pixel_size_A" not in known:
        problems.append(
            f"line {line}: missing required column 'pixel_size_A' (or apix, angpix, ...)"
        )
    if not any(name in known for name in SOURCE_COLUMNS):
        problems.append(f"line {line}: missing required column 'micrographs' or 'movies'")
    return problems


def _parse_row(
    line: int, cells: list[str], header: _Header, base_dir: Path
) -> tuple[SessionRow | None, list[str]]:
    """Validate one data row; return the session (None if unusable) and its problems."""
    problems = _width_problems(line, cells, header.width)
    cells = cells + [""] * (header.width - len(cells))
    problems += [
        f"line {line}, column {index + 1}: {cells[index]!r} lies under a column with no name"
        for index in header.unnamed
        if cells[index]
    ]
    values = {name: cells[column.index] for name, column in header.known.items()}
    session = values.get(SESSION, "")
    if SESSION in header.known:
        problems += _session_name_problems(line, header.known[SESSION], session)
    kind, source, paths, source_problems = _parse_source(line, header, values, base_dir)
    problems += source_problems
    numbers, number_problems = _parse_numbers(line, header, values)
    problems += number_problems
    if SESSION not in header.known or kind is None or "pixel_size_A" not in numbers:
        return None, problems
    metadata = {column.original: cells[column.index] for column in header.metadata}
    row = SessionRow(
        session=session,
        line=line,
        micrograph_paths=paths,
        kind=kind,
        metadata=metadata,
        source=source,
        **numbers,
    )
    return row, problems


def _width_problems(line: int, cells: list[str], width: int) -> list[str]:
    """Report non-empty cells beyond the header's columns."""
    extra = [cell for cell in cells[width:] if cell]
    if not extra:
        return []
    return [f"line {line}: {len(cells)} values but the header has {width} columns ({extra[0]!r})"]


def session_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a session (folder) name, or None when it can."""
    if not name:
        return "empty session name"
    if len(name) > MAX_SESSION_NAME:
        return f"session name is {len(name)} characters (at most {MAX_SESSION_NAME})"
    size = len(name.encode("utf-8"))
    if size > MAX_NAME_BYTES:
        return (
            f"session name is {size} bytes in UTF-8 (at most {MAX_NAME_BYTES}, the file-system "
            "limit of a folder name)"
        )
    if name.startswith("."):
        return f"'{name}' cannot be a folder name (starts with '.')"
    bad = sorted({c for c in name if c in _FORBIDDEN_IN_NAMES or not c.isprintable()})
    if bad:
        shown = " ".join(repr(c) for c in bad)
        return f"'{name}' cannot be a folder name (contains {shown})"
    return None


def _session_name_problems(line: int, column: _Column, name: str) -> list[str]:
    """Return problems that stop ``name`` being used as a folder name."""
    problem = session_name_problem(name)
    return [] if problem is None else [f"line {line}, column {column.label}: {problem}"]


def _duplicate_problems(
    line: int, header: _Header, cells: list[str], seen: dict[str, int]
) -> list[str]:
    """Report a session name already used (ignoring case); record new names in ``seen``."""
    column = header.known.get(SESSION)
    name = cells[column.index] if column is not None and column.index < len(cells) else ""
    if not name:
        return []
    key = name.casefold()
    if key not in seen:
        seen[key] = line
        return []
    return [
        f"line {line}, column {column.label}: session name '{name}' is already used on "
        f"line {seen[key]} (names must be unique, ignoring case)"
    ]


def _parse_source(
    line: int, header: _Header, values: dict[str, str], base_dir: Path
) -> tuple[Literal["micrographs", "movies"] | None, str, tuple[Path, ...], list[str]]:
    """Return (kind, cell text, image paths, problems) of the micrographs/movies columns."""
    present = [name for name in SOURCE_COLUMNS if name in header.known]
    if not present:
        return None, "", (), []
    filled = [name for name in present if values[name]]
    labels = " and ".join(header.known[name].label for name in present)
    if len(filled) != 1:
        what = "both are filled; give one" if filled else "no images given"
        column_word = "columns" if len(present) > 1 else "column"
        return None, "", (), [f"line {line}, {column_word} {labels}: {what}"]
    kind: Literal["micrographs", "movies"] = filled[0]  # type: ignore[assignment]
    source = values[kind]
    try:
        paths = find_images(source, base_dir)
    except FileNotFoundError as err:
        return None, source, (), [f"line {line}, column {header.known[kind].label}: {err}"]
    return kind, source, paths, []


def _parse_numbers(
    line: int, header: _Header, values: dict[str, str]
) -> tuple[dict[str, float], list[str]]:
    """Parse and range-check the numeric columns; empty optional cells keep defaults."""
    numbers: dict[str, float] = {}
    problems: list[str] = []
    for name, allowed in _RANGES.items():
        text = values.get(name, "")
        if name not in header.known or (not text and name != "pixel_size_A"):
            continue
        where = f"line {line}, column {header.known[name].label}"
        if not text:
            problems.append(f"{where}: missing value (required)")
            continue
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            problems.append(f"{where}: '{text}' is not a number")
        elif not allowed.contains(value):
            problems.append(f"{where}: '{text}' is not {allowed.describe()}")
        else:
            numbers[name] = value
    return numbers, problems
