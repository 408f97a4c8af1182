"""The picker on the manual-picks EMPIAR-10017 export under the transformations of
``real_examples_transformed.py``.

    python bench/picking_transformed.py [NAME ...]

Picks the export (629 manual picks) at the known 180 Å after each transformation and matches the
picks one to one to the manual picks (a hit within 0.3 diameters), in the export's pixels.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from real_examples_transformed import TRANSFORMS  # noqa: E402

from screen.io.real_examples import EMPIAR10017_DIAMETER_A, real_examples  # noqa: E402
from screen.processing.boxes import match_picks  # noqa: E402
from screen.stages.picking import PickParams, pick_particles  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    names = (sys.argv[1:] if argv is None else argv) or list(TRANSFORMS)
    (example,) = [e for e in real_examples() if e.picks_path and "manual" in e.picks_path.name]
    image, truth = example.read().astype(np.float64), example.picks_xy_px()
    print("| transformation | picks | recall | precision |")
    print("| --- | --- | --- | --- |")
    for name in names:
        transformed, pixel_size_A = TRANSFORMS[name](image, example.pixel_size_A)
        if transformed.shape[0] < image.shape[0] and pixel_size_A == example.pixel_size_A:
            continue  # a crop: the manual picks outside it would count as missed
        picks = pick_particles(
            np.asarray(transformed, np.float32), pixel_size_A, EMPIAR10017_DIAMETER_A, PickParams()
        )
        scale = pixel_size_A / example.pixel_size_A
        xy = np.column_stack([picks.x_px, picks.y_px]) * scale
        tp, fp, fn = match_picks(xy, truth, 0.3 * EMPIAR10017_DIAMETER_A / example.pixel_size_A)
        print(f"| {name} | {len(picks)} | {tp / (tp + fn):.2f} | {tp / max(tp + fp, 1):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
