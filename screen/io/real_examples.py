"""The few real micrographs of ``shared/real_examples``: what they are and what a person says.

They are smoke checks on real pixels for tests and ``bench/`` (the folder's README gives their
sources and licences); the headers' pixel sizes are wrong or placeholders, so the values a
person measured are kept here. ``SCREEN_REAL_EXAMPLES`` overrides the folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REAL_EXAMPLES_DIR = Path(
    os.environ.get(
        "SCREEN_REAL_EXAMPLES", Path(__file__).resolve().parents[3] / "shared" / "real_examples"
    )
)
"""Where the examples are: ``shared/real_examples`` beside the repository by default."""

EMPIAR10017_PIXEL_A = 1.77
EMPIAR10017_DIAMETER_A = 180.0
"""β-galactosidase is about 180 Å across (the folder's README); the picks' discs are 108 px."""
MICASSESS_TRAINING_EXPORTS = (
    "empiar10017_Falcon_2012_06_12-15_07_41_0.jpg",
    "empiar10017_Falcon_2012_06_12-15_17_31_0.jpg",
    "empiar10017_Falcon_2012_06_12-15_30_21_0.jpg",
    "empiar10017_Falcon_2012_06_12-15_36_26_0.jpg",
    "empiar10017_Falcon_2012_06_12-15_43_48_0.jpg",
    "empiar10017_Falcon_2012_06_12-15_46_37_0.jpg",
)
"""The EMPIAR-10017 exports whose sub-fields trained ``micassess_small_v5``
(:mod:`screen.models.real_fields`): the even positions of the ten added later, sorted by name,
chosen by that rule before any score was seen. The first two exports (one with the 629 manual
picks) and the other four are held out of its training."""
MAGELLON_PIXEL_A = 6.32
MAGELLON_RING_DIAMETER_A = 120.0
"""Outer diameter of the Magellon rings, measured on the image (bench/README.md, ±15 %)."""


@dataclass(frozen=True)
class RealExample:
    """One real micrograph with a person's verdict and, when known, particle centres."""

    path: Path
    pixel_size_A: float
    verdict: str  # what a person says: "good" or "bad"
    what: str
    picks_path: Path | None = None
    diameter_A: float | None = None

    def read(self) -> np.ndarray:
        """The image as float32 (an 8-bit JPEG as grey levels: dark = dense, as in EM)."""
        from screen.io.images import read_image

        return np.asarray(read_image(self.path).data, dtype=np.float32)

    def picks_xy_px(self) -> np.ndarray:
        """``(n, 2)`` particle centres (x, y) in pixels, from the CSV beside the image."""
        if self.picks_path is None:
            raise ValueError(f"{self.path.name} has no particle centres")
        import pandas as pd

        table = pd.read_csv(self.picks_path)
        return table[["X-Coordinate", "Y-Coordinate"]].to_numpy(dtype=float)


def real_examples(folder: Path = REAL_EXAMPLES_DIR) -> list[RealExample]:
    """Every real example present in ``folder`` (empty when the folder is absent)."""
    out = []
    magellon = folder / "magellon_24dec03a_binned8.mrc"
    if magellon.exists():
        out.append(
            RealExample(
                magellon,
                MAGELLON_PIXEL_A,
                "good",
                "ring particles, one contamination ball, binned 8x",
                diameter_A=MAGELLON_RING_DIAMETER_A,
            )
        )
    contaminated = folder / "micrograph_cleaner_contaminated.mrc"
    if contaminated.exists():
        out.append(
            RealExample(contaminated, 1.0, "bad", "large contamination ball (1.0 Å/px placeholder)")
        )
    for path in sorted(folder.glob("empiar10017_*.jpg")):
        picks = [
            path.with_name(path.stem + suffix)
            for suffix in ("_manual_picks.csv", "_mask_picks.csv")
        ]
        picks_path = next((p for p in picks if p.exists()), None)
        out.append(
            RealExample(
                path,
                EMPIAR10017_PIXEL_A,
                "good",
                "dense β-galactosidase, denoised 8-bit JPEG",
                picks_path,
                EMPIAR10017_DIAMETER_A,
            )
        )
    return out
