"""Empty micrographs against their session: the dark-blob census of micrograph assessment.

    python bench/empty_fields.py LABELS.csv [LABELS.csv ...] [--jobs 2]

For every labelled set (a ``labels.csv`` of ``path,label,reason,pixel_size_A,session``, as
``micassess_generators.py --per-session`` and ``micassess_independent.py`` write them) this runs
``screen.stages.picking.dark_blob_census`` on each micrograph and prints, per set, where empty and
good micrographs lie against their session: the ratio of strong dark blobs per µm² to the
session's median (what `assess_micrographs.empty_in_session` compares with ``empty_blob_ratio``,
0.1) and the score map's tail asymmetry (``EMPTY_MAX_TAIL_ASYMMETRY``, 1.15), and how many the
rule would call empty. Then the same for the real examples of ``shared/real_examples`` (the 12
EMPIAR-10017 exports as one session). Only the measure and the rule: the verdicts themselves are
`screen evaluate micrographs`'s (bench/README.md, "Empty micrographs against their session").
"""

from __future__ import annotations

import argparse
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from screen.io.exports import read_export
from screen.io.images import read_image
from screen.io.real_examples import real_examples
from screen.stages.assess_micrographs import (
    EMPTY_BLOB_RATIO,
    EMPTY_MAX_TAIL_ASYMMETRY,
    EMPTY_MIN_MICROGRAPHS,
    EMPTY_MIN_SESSION_BLOBS,
)
from screen.stages.picking import dark_blob_census


def _census(job: tuple[str, float]) -> tuple[float, float, float]:
    path, pixel_size_A = job
    try:
        image = read_image(path).data
    except (OSError, ValueError):
        image = read_export(path).data
    image = np.asarray(image, np.float32)
    if image.ndim == 3:
        image = image.mean(axis=0)
    census = dark_blob_census(image, pixel_size_A)
    if census is None:
        return np.nan, np.nan, np.nan
    return census.strong, census.strong_per_um2, census.tail_asymmetry


def with_census(table: pd.DataFrame, jobs: int) -> pd.DataFrame:
    """``table`` (columns path, pixel_size_A, session) with each micrograph's census and ratio."""
    with ProcessPoolExecutor(jobs) as pool:
        measured = list(pool.map(_census, zip(table.path, table.pixel_size_A, strict=True)))
    table = table.assign(
        strong=[m[0] for m in measured],
        per_um2=[m[1] for m in measured],
        asymmetry=[m[2] for m in measured],
    )
    median = table.groupby("session").per_um2.transform("median")
    counted = table.groupby("session").strong.transform("median")
    size = table.groupby("session").per_um2.transform("count")
    judged = (size >= EMPTY_MIN_MICROGRAPHS) & (counted >= EMPTY_MIN_SESSION_BLOBS)
    ratio = table.per_um2 / median
    return table.assign(
        ratio=ratio,
        called_empty=judged
        & (ratio < EMPTY_BLOB_RATIO)
        & (table.asymmetry <= EMPTY_MAX_TAIL_ASYMMETRY),
    )


def _set_name(labels: Path) -> str:
    """The set's folder, and the labels file's name where it is not ``labels.csv``."""
    return labels.parent.name + ("" if labels.stem == "labels" else f" ({labels.stem})")


def _range(values: pd.Series) -> str:
    values = values.dropna()
    return f"{values.min():.2f}-{values.max():.2f}" if len(values) else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("labels", nargs="*", type=Path)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    print(
        "| set | empty: ratio (median, max) | empty called | good: lowest two ratios | good "
        "called | good asymmetry (5 %) | empty asymmetry |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for labels in args.labels:
        table = pd.read_csv(labels)
        table["path"] = [str(labels.parent / p) for p in table.path]
        table = with_census(table, args.jobs)
        empty, good = table[table.reason == "empty"], table[table.label == "good"]
        lowest = ", ".join(f"{r:.2f}" for r in np.sort(good.ratio.dropna())[:2])
        print(
            f"| {_set_name(labels)} | {empty.ratio.median():.2f}, {empty.ratio.max():.2f} | "
            f"{int(empty.called_empty.sum())} of {len(empty)} | {lowest} | "
            f"{int(good.called_empty.sum())} of {len(good)} | "
            f"{good.asymmetry.quantile(0.05):.2f} | {_range(empty.asymmetry)} |"
        )
    examples = real_examples()
    table = pd.DataFrame(
        {
            "path": [str(e.path) for e in examples],
            "pixel_size_A": [e.pixel_size_A for e in examples],
            "session": [
                "empiar10017" if "empiar" in e.path.name else e.path.stem for e in examples
            ],
        }
    )
    table = with_census(table, args.jobs)
    print("\nreal examples (the 12 EMPIAR-10017 exports as one session):")
    print("| example | strong blobs | ratio to its session | tail asymmetry | called empty |")
    print("| --- | --- | --- | --- | --- |")
    for row in table.itertuples():
        print(
            f"| {Path(row.path).name[:44]} | {row.strong:.0f} | {row.ratio:.2f} | "
            f"{row.asymmetry:.2f} | {row.called_empty} |"
        )


if __name__ == "__main__":
    main()
