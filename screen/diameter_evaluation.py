"""`screen evaluate diameter`: the diameter stage against known particle diameters.

A labelled set is one or more of:

- a CSV with columns ``path,pixel_size_A,diameter_A[,session]`` (paths relative to the CSV):
  rows with the same ``session`` (or, without that column, the same pixel size and diameter)
  are one group, estimated together as `screen run` estimates a session;
- a simulated screening (``screen simulate`` output): each session's good micrographs (ground
  truth verdicts), its true diameter from ``ground_truth.csv``;
- the word ``real-examples``: the real micrographs of ``shared/real_examples`` whose particle size
  a person measured (`screen.io.real_examples`).

Each group goes through what ``screen run`` does: the CTF of its first ``max_micrographs``
micrographs is fitted, then `screen.stages.diameter.estimate_diameter` runs with the given
parameters. Each group's estimate, uncertainty and method are printed beside the truth, their
ratio and whether it lies within ±15 % (issue 12's bar).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from screen.errors import ScreenError
from screen.report.verdicts import LongAxis
from screen.stages.records import CtfFit, Optics

REAL_EXAMPLES = "real-examples"
"""The argument that names the real examples (`screen.io.real_examples`)."""

TOLERANCE = 0.15
"""An estimate within this fraction of the truth passes (issue 12)."""


@dataclass(frozen=True)
class DiameterGroup:
    """Micrographs of one session (or CSV group) with their true particle diameter."""

    name: str
    paths: tuple[Path, ...]
    optics: Optics
    truth_A: float
    reader: Callable[[Path], np.ndarray] | None = None  # None: `screen.io.images.read_image`

    def read(self, path: Path) -> np.ndarray:
        """One micrograph as float32."""
        if self.reader is not None:
            return self.reader(path)
        from screen.io.images import read_image

        return np.asarray(read_image(path).data, dtype=np.float32)


@dataclass(frozen=True)
class DiameterResult:
    """The diameter stage's answer on one group (``error`` set when it gave none)."""

    group: DiameterGroup
    n_micrographs: int
    diameter_A: float
    uncertainty_A: float
    method: str
    seconds: float
    error: str = ""
    long_axis: LongAxis | None = None  # with ``long_axis=True``: from the good 2D classes
    long_axis_error: str = ""

    @property
    def ratio(self) -> float:
        """Estimate / truth (NaN without an estimate)."""
        return self.diameter_A / self.group.truth_A

    @property
    def within(self) -> bool:
        """Within ±`TOLERANCE` of the truth."""
        return bool(np.isfinite(self.ratio) and abs(self.ratio - 1.0) <= TOLERANCE)

    @property
    def long_axis_within(self) -> bool:
        """The long axis (when measured) within ±`TOLERANCE` of the truth."""
        if self.long_axis is None:
            return False
        return abs(self.long_axis.long_axis_A / self.group.truth_A - 1.0) <= TOLERANCE


def load_diameter_sets(sources: list[str | Path]) -> list[DiameterGroup]:
    """Groups from every source (CSV, simulated screening folder or ``real-examples``)."""
    groups: list[DiameterGroup] = []
    for source in sources:
        if str(source) == REAL_EXAMPLES:
            groups += _real_groups()
            continue
        path = Path(source)
        if path.is_dir():
            groups += _simulated_groups(path)
        elif path.is_file():
            groups += _csv_groups(path)
        else:
            raise ScreenError(
                f"{path}: not found (expected a CSV of path,pixel_size_A,diameter_A[,session], "
                f"a `screen simulate` folder or {REAL_EXAMPLES!r})"
            )
    if not groups:
        raise ScreenError("no micrographs with a known diameter in " + ", ".join(map(str, sources)))
    return groups


def _real_groups() -> list[DiameterGroup]:
    from screen.io.real_examples import REAL_EXAMPLES_DIR, real_examples

    by_group: dict[tuple[str, float, float], list] = {}
    for example in real_examples(REAL_EXAMPLES_DIR):
        if example.diameter_A is None:
            continue
        key = (example.path.name.split("_")[0], example.pixel_size_A, example.diameter_A)
        by_group.setdefault(key, []).append(example)
    if not by_group:
        raise ScreenError(
            f"{REAL_EXAMPLES_DIR}: no real example with a known diameter "
            "(set SCREEN_REAL_EXAMPLES to the folder of shared/real_examples)"
        )
    readers = {e.path: e.read for examples in by_group.values() for e in examples}
    return [
        DiameterGroup(
            name,
            tuple(e.path for e in examples),
            Optics(pixel_A),
            truth_A,
            lambda path: readers[path](),
        )
        for (name, pixel_A, truth_A), examples in by_group.items()
    ]


def _simulated_groups(folder: Path) -> list[DiameterGroup]:
    from screen.manifest import read_manifest

    manifest_path, truth_path = folder / "manifest.csv", folder / "ground_truth.csv"
    if not manifest_path.exists() or not truth_path.exists():
        raise ScreenError(
            f"{folder}: no manifest.csv and ground_truth.csv; is this a `screen simulate` folder?"
        )
    truth = pd.read_csv(truth_path).set_index("session")
    groups = []
    for row in read_manifest(manifest_path).sessions:
        table_path = folder / "sessions" / row.session / "ground_truth" / "micrographs.csv"
        if row.session not in truth.index or not table_path.exists():
            raise ScreenError(f"{folder}: no ground truth for session {row.session}")
        table = pd.read_csv(table_path)
        good = table[table["verdict"] == "good"]
        paths = tuple(folder / "sessions" / row.session / p for p in good["path"])
        if not paths:
            continue
        optics = Optics(row.pixel_size_A, row.voltage_kV, row.cs_mm, row.amplitude_contrast)
        groups.append(
            DiameterGroup(row.session, paths, optics, float(truth.loc[row.session, "diameter_A"]))
        )
    return groups


def _csv_groups(path: Path) -> list[DiameterGroup]:
    try:
        table = pd.read_csv(path, sep=None, engine="python", dtype=str).fillna("")
    except (OSError, ValueError, csv.Error) as error:
        raise ScreenError(f"{path}: not a readable CSV table ({error})") from None
    table.columns = [c.strip().lower() for c in table.columns]
    missing = {"path", "pixel_size_a", "diameter_a"} - set(table.columns)
    if missing:
        raise ScreenError(
            f"{path}: missing column(s) {', '.join(sorted(missing))} "
            "(expected path,pixel_size_A,diameter_A[,session])"
        )
    members: dict[str, list[Path]] = {}
    values: dict[str, tuple[float, float]] = {}
    problems = []
    for line, record in enumerate(table.to_dict("records"), start=2):
        numbers = []
        for column in ("pixel_size_a", "diameter_a"):
            try:
                number = float(record[column])
            except ValueError:
                number = math.nan
            if not 0.0 < number < math.inf:
                problems.append(f"line {line}: {column[:-1]}A {record[column]!r} is not > 0")
            numbers.append(number)
        image_path = Path(record["path"].strip())
        image_path = image_path if image_path.is_absolute() else path.parent / image_path
        name = record.get("session", "").strip() or f"{numbers[1]:g} Å at {numbers[0]:g} Å/px"
        if name in values and values[name] != tuple(numbers):
            problems.append(f"line {line}: session {name!r} has another pixel size or diameter")
        values.setdefault(name, (numbers[0], numbers[1]))
        members.setdefault(name, []).append(image_path)
    if problems:
        raise ScreenError(f"{path}: " + "; ".join(problems))
    return [
        DiameterGroup(name, tuple(paths), Optics(values[name][0]), values[name][1])
        for name, paths in members.items()
    ]


def evaluate_diameters(
    groups: list[DiameterGroup],
    params,
    ctf_search,
    progress=None,
    long_axis: bool = False,
    class_model=None,
) -> list[DiameterResult]:
    """Fit the CTFs and estimate the diameter of every group, as ``screen run`` does.

    Parameters
    ----------
    groups
        From `load_diameter_sets`.
    params
        `screen.stages.diameter.DiameterParams` (its ``max_micrographs`` first micrographs of
        each group are used).
    ctf_search
        `screen.stages.ctf.CtfSearch` for the CTF fits.
    progress
        Called with each result as it is made (e.g. to print a line to stderr).
    long_axis
        Also measure the particle's long axis as `screen run`'s report does
        (`long_axis_from_micrographs`: 2D classification of the picks over the mask sweep, class
        assessment, `particle_long_axis_A`) on the same micrographs.
    class_model
        The loaded class model for ``long_axis`` (default: `screen run`'s).

    A group whose micrographs cannot be read or whose estimate fails gets a result with its
    ``error`` and a NaN diameter; the others go on. A long axis that fails is reported in
    ``long_axis_error`` beside its diameter.
    """
    import dataclasses
    import time

    from screen.stages.ctf import estimate_ctf
    from screen.stages.diameter import estimate_diameter

    if long_axis and class_model is None:
        from screen.stages.assess_classes import ClassAssessParams, load_class_model

        class_model = load_class_model(ClassAssessParams())
    results = []
    for group in groups:
        start = time.perf_counter()
        paths = group.paths[: params.max_micrographs]
        try:
            images = [group.read(p) for p in paths]
            fits = [estimate_ctf(image, group.optics, ctf_search) for image in images]
            estimate = estimate_diameter(
                images, group.optics.pixel_size_A, params, fits, group.optics
            )
            result = DiameterResult(
                group,
                len(images),
                estimate.diameter_A,
                estimate.uncertainty_A,
                estimate.method + (" (outline centres)" if estimate.outline_centred else ""),
                time.perf_counter() - start,
            )
            if long_axis:
                try:
                    found = long_axis_from_micrographs(
                        images,
                        fits,
                        group.optics,
                        estimate.diameter_A,
                        class_model,
                        outline_centred=estimate.outline_centred,
                    )
                    result = dataclasses.replace(result, long_axis=found)
                except (ValueError, ScreenError) as error:
                    result = dataclasses.replace(
                        result, long_axis_error=f"{type(error).__name__}: {error}"
                    )
                result = dataclasses.replace(result, seconds=time.perf_counter() - start)
        except (OSError, ValueError, ScreenError) as error:
            result = DiameterResult(
                group,
                len(paths),
                math.nan,
                math.nan,
                "",
                time.perf_counter() - start,
                f"{type(error).__name__}: {error}",
            )
        results.append(result)
        if progress is not None:
            progress(result)
    return results


def long_axis_from_micrographs(
    images: list[np.ndarray],
    fits: list[CtfFit],
    optics: Optics,
    diameter_A: float,
    class_model,
    config=None,
    outline_centred: bool = False,
) -> LongAxis | None:
    """The particle's long axis as `screen run`'s report gives it, from these micrographs.

    Picks at ``diameter_A`` (with `screen run`'s outline-centring where the diameter stage used
    it), extracts, classifies at every mask of ``config.mask_factors`` (a `screen.config.RunConfig`,
    default `screen run`'s), judges the classes (`assess_classes`, `cut_by_mask`) and measures
    the good averages (`particle_long_axis_A`). None without a good class.
    """
    import dataclasses

    from screen.config import RunConfig
    from screen.report.verdicts import particle_long_axis_A
    from screen.stages.assess_classes import assess_classes, cut_by_mask
    from screen.stages.classify2d import classify_2d
    from screen.stages.extraction import binned_stack, picked_stack, stack_subset

    config = RunConfig() if config is None else config
    pick_params = config.picking
    if outline_centred:
        from screen.pipeline import OUTLINE_PICK_REACH

        pick_params = dataclasses.replace(pick_params, symmetry_reach=OUTLINE_PICK_REACH)
    stack = picked_stack(images, fits, optics, diameter_A, pick_params, config.extraction)
    if stack is None:
        return None
    stack, _ = stack_subset(stack, config.max_particles_2d, config.seed)
    stack = binned_stack(stack, config.max_box_2d_px)
    averages, counts, masks_A = [], [], []
    for factor in config.mask_factors:
        mask_A = float(round(factor * diameter_A))
        classes = classify_2d(stack, mask_A, config.classify)
        verdicts = cut_by_mask(
            assess_classes(
                classes.averages, mask_A, classes.pixel_size_A, config.class_assess, class_model
            ),
            mask_A,
            diameter_A,
            config.class_assess.min_mask_diameters,
        )
        for k, label in enumerate(verdicts.labels):
            if label == "good" and classes.counts[k] > 0:
                averages.append(classes.averages[k])
                counts.append(int(classes.counts[k]))
                masks_A.append(mask_A)
    return particle_long_axis_A(averages, counts, masks_A, stack.pixel_size_A, diameter_A)


def format_diameter_evaluation(results: list[DiameterResult], long_axis: bool = False) -> str:
    """A Markdown table, one row per group, and how many are within ±15 %.

    ``long_axis``: two more columns, the long axis (`long_axis_from_micrographs`) and its ratio
    to the truth, and how many of those are within ±15 %.
    """
    head = "| group | micrographs | estimate Å | method | truth Å | ratio | within ±15 % |"
    rule = "| --- | --- | --- | --- | --- | --- | --- |"
    if long_axis:
        head += " long axis Å | long axis / truth |"
        rule += " --- | --- |"
    lines = [head + " seconds |", rule + " --- |"]
    for r in results:
        if r.error:
            estimate, ratio, within = f"failed: {r.error}", "—", "no"
        else:
            spread = f" ± {r.uncertainty_A:.0f}" if np.isfinite(r.uncertainty_A) else ""
            estimate = f"{r.diameter_A:.0f}{spread}"
            ratio, within = f"{r.ratio:.2f}", "yes" if r.within else "no"
        line = (
            f"| {r.group.name} | {r.n_micrographs} | {estimate} | {r.method or '—'} | "
            f"{r.group.truth_A:.0f} | {ratio} | {within} |"
        )
        if long_axis:
            line += f" {_long_axis_cell(r)} |"
        lines.append(f"{line} {r.seconds:.0f} |")
    passed = sum(r.within for r in results)
    lines.append("")
    lines.append(f"{passed} of {len(results)} within ±{TOLERANCE:.0%} of the truth")
    if long_axis:
        missing = sum(r.long_axis is None for r in results)
        near = sum(r.long_axis_within for r in results)
        lines.append(
            f"long axis: {near} of {len(results)} within ±{TOLERANCE:.0%} of the truth"
            + (f" ({missing} without one: no good class or no estimate)" if missing else "")
        )
    return "\n".join(lines)


def _long_axis_cell(result: DiameterResult) -> str:
    """The long axis and its ratio to the truth as two table cells' text."""
    from screen.report.context import long_axis_text

    if result.long_axis_error:
        return f"failed: {result.long_axis_error} | —"
    if result.long_axis is None:
        return "— (no good class) | —"
    found = result.long_axis
    aspect = found.aspect_ratio if np.isfinite(found.aspect_ratio) else None
    text = long_axis_text(
        {
            "long_axis_A": found.long_axis_A,
            "classes_length_A": found.classes_length_A,
            "aspect_ratio": aspect,
        },
        unit="",
        short=True,
    )
    return f"{text} | {found.long_axis_A / result.group.truth_A:.2f}"
