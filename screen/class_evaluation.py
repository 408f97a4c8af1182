"""`screen evaluate classes`: class assessment against labelled class averages.

A labelled set is a stack of averages (``.mrcs``/``.mrc``) or a folder of images, plus a CSV of
labels. CSV columns: ``label`` (good, clip, edge or noise) and ``index`` (0-based position in the
stack; default 0) and, for a folder, ``file`` (relative to the folder; a stack file takes
``index``); optional ``pixel_size_A`` and ``mask_diameter_A`` per row. Rows without a pixel size
take ``--pixel-size`` or the file's header; rows without a mask diameter take ``--mask-diameter``
or the whole box (RELION's averages are shown masked at its own ``--particle_diameter``: give that).
Every average is assessed as ``screen run`` assesses its own, and scored against the labels with
and without the saliency check.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from screen.errors import ScreenError
from screen.io.images import read_image
from screen.stages.records import CLASS_LABELS


@dataclass(frozen=True)
class LabelledAverage:
    """One class average of a labelled set."""

    image: np.ndarray  # (box, box) float32
    label: str  # one of CLASS_LABELS
    pixel_size_A: float
    mask_diameter_A: float  # the mask the average is judged at
    source: str  # "file" or "file[index]", for messages


@dataclass(frozen=True)
class ClassEvaluation:
    """Labels, predictions and metrics of a labelled set of class averages."""

    items: tuple[LabelledAverage, ...]
    true: np.ndarray  # (n,) CLASS_LABELS index
    cnn: np.ndarray  # (n,) CNN's label (index)
    with_saliency: np.ndarray  # (n,) after the saliency check (index)
    scores: np.ndarray  # (n, 4) CNN probabilities


def _number(text: str, what: str, line: int, problems: list[str]) -> float | None:
    text = str(text).strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        problems.append(f"line {line}: {what} {text!r} is not a number")
        return None
    if not 0.0 < value < math.inf:
        problems.append(f"line {line}: {what} {text!r} must be a positive number of Å")
        return None
    return value


def _read_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise ScreenError(f"{path}: labels file not found")
    if path.stat().st_size == 0:
        raise ScreenError(f"{path}: the file is empty (expected a header [file,]index,label)")
    try:
        table = pd.read_csv(path, sep=None, engine="python", dtype=str).fillna("")
    except (OSError, ValueError, csv.Error) as error:
        raise ScreenError(f"{path}: not a readable CSV table ({error})") from None
    table.columns = [c.strip().lower() for c in table.columns]
    if "label" not in table.columns:
        raise ScreenError(f"{path}: missing column label")
    if table.empty:
        raise ScreenError(f"{path}: no averages listed (only a header)")
    return table


def load_labelled_averages(
    source: str | Path,
    labels_csv: str | Path,
    pixel_size_A: float | None = None,
    mask_diameter_A: float | None = None,
) -> list[LabelledAverage]:
    """Read a labelled set of class averages (see the module docstring for the CSV).

    Parameters
    ----------
    source
        A stack of averages or a folder of image files.
    labels_csv
        The labels.
    pixel_size_A
        Pixel size of rows without one (default: the file header's).
    mask_diameter_A
        Mask diameter of rows without one (default: the whole box).

    Raises
    ------
    ScreenError
        Naming the file and line of every problem found (all at once).
    """
    source, labels_csv = Path(source), Path(labels_csv)
    if not source.exists():
        raise ScreenError(f"{source}: no such stack or folder")
    table = _read_table(labels_csv)
    if source.is_dir() and "file" not in table.columns:
        raise ScreenError(f"{labels_csv}: a folder of averages needs a file column")
    stacks: dict[Path, tuple[np.ndarray, float | None]] = {}
    items, problems = [], []
    for line, record in enumerate(table.to_dict("records"), start=2):
        label = record["label"].strip().lower()
        if label not in CLASS_LABELS:
            problems.append(
                f"line {line}: label {record['label']!r} is not one of {', '.join(CLASS_LABELS)}"
            )
            continue
        path = source / record["file"].strip() if source.is_dir() else source
        if path not in stacks:
            try:
                image = read_image(path)
            except ScreenError as error:
                problems.append(f"line {line}: {error}")
                continue
            data = image.data if image.data.ndim == 3 else image.data[None]
            stacks[path] = (data, image.pixel_size_A)
        data, header_px = stacks[path]
        index_text = str(record.get("index", "")).strip() or "0"
        if not index_text.isdigit() or int(index_text) >= len(data):
            problems.append(
                f"line {line}: index {index_text!r} is not in 0-{len(data) - 1} of {path}"
            )
            continue
        row_px = _number(record.get("pixel_size_a", ""), "pixel_size_A", line, problems)
        row_mask = _number(record.get("mask_diameter_a", ""), "mask_diameter_A", line, problems)
        px = row_px or pixel_size_A or header_px
        if not px:
            problems.append(
                f"line {line}: no pixel size (no pixel_size_A column, --pixel-size or header)"
            )
            continue
        image = np.asarray(data[int(index_text)], np.float32)
        mask = row_mask or mask_diameter_A or min(image.shape) * px
        source_name = f"{path.name}[{index_text}]" if len(data) > 1 else path.name
        items.append(LabelledAverage(image, label, float(px), float(mask), source_name))
    if problems:
        raise ScreenError(f"{labels_csv}: " + "; ".join(problems))
    return items


def evaluate_classes(items: list[LabelledAverage], params, model) -> ClassEvaluation:
    """Assess every average as ``screen run`` does (``assess_classes``) and keep both verdicts.

    ``params`` is a ``ClassAssessParams``; the saliency check is applied for the second verdict
    whatever ``params.use_saliency`` says.
    """
    from screen.stages.assess_classes import assess_classes

    params = dataclasses.replace(params, use_saliency=True)
    n = len(items)
    scores = np.zeros((n, len(CLASS_LABELS)), np.float32)
    final = np.zeros(n, np.int64)
    groups: dict[tuple, list[int]] = {}
    for i, item in enumerate(items):
        groups.setdefault((item.image.shape, item.pixel_size_A, item.mask_diameter_A), []).append(i)
    for (_, px, mask), members in groups.items():
        verdicts = assess_classes(
            np.stack([items[i].image for i in members]), mask, px, params, model
        )
        scores[members] = verdicts.scores
        final[members] = [CLASS_LABELS.index(label) for label in verdicts.labels]
    true = np.array([CLASS_LABELS.index(item.label) for item in items], np.int64)
    return ClassEvaluation(tuple(items), true, scores.argmax(axis=1), final, scores)


def with_mask(items: list[LabelledAverage], scale: float) -> list[LabelledAverage]:
    """The same averages judged at ``scale`` times their mask diameter (capped at the box)."""
    return [
        dataclasses.replace(
            item,
            mask_diameter_A=min(
                item.mask_diameter_A * scale, min(item.image.shape) * item.pixel_size_A
            ),
        )
        for item in items
    ]


def good_precision_recall(true: np.ndarray, predicted: np.ndarray) -> tuple[float, float]:
    """Precision and recall of the ``good`` label (NaN when undefined)."""
    good = CLASS_LABELS.index("good")
    tp = float(np.sum((true == good) & (predicted == good)))
    called, truly = float(np.sum(predicted == good)), float(np.sum(true == good))
    return (tp / called if called else math.nan, tp / truly if truly else math.nan)


def format_class_evaluation(result: ClassEvaluation) -> str:
    """Per-label precision and recall and the confusion matrix, CNN alone and with saliency."""
    from screen.models.class_assess import confusion_matrix, per_class_metrics

    lines = [
        f"{len(result.items)} labelled class averages: "
        + ", ".join(
            f"{int(np.sum(result.true == i))} {label}" for i, label in enumerate(CLASS_LABELS)
        )
    ]
    for title, predicted in (
        ("CNN alone", result.cnn),
        ("CNN + saliency check", result.with_saliency),
    ):
        precision, recall = good_precision_recall(result.true, predicted)
        lines += ["", f"{title}: good precision {precision:.3f}, recall {recall:.3f}", ""]
        lines.append(f"{'label':<8}{'precision':>10}{'recall':>8}{'n':>6}")
        for label, m in per_class_metrics(result.true, predicted).items():
            lines.append(f"{label:<8}{m['precision']:>10.3f}{m['recall']:>8.3f}{m['support']:>6}")
        lines += ["", "confusion (rows: true, columns: predicted)"]
        lines.append(f"{'':<8}" + "".join(f"{label:>7}" for label in CLASS_LABELS))
        for label, row in zip(CLASS_LABELS, confusion_matrix(result.true, predicted), strict=True):
            lines.append(f"{label:<8}" + "".join(f"{int(v):>7}" for v in row))
    return "\n".join(lines)
