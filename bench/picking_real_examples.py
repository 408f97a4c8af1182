"""The built-in diameter estimate and picker on the real EMPIAR-10017 micrographs of shared/real_examples.

    python bench/picking_real_examples.py [--folder ../shared/real_examples] [--no-estimate]

Estimates the particle diameter the way ``screen run`` does (CTF fits, then the diameter stage
on up to 10 micrographs of the session), then picks every micrograph at that diameter and at the
known one (β-galactosidase, ~180 Å) and matches the picks one to one to the particle centres
beside each image (the 629 manual picks of the first one; centres recovered from particle masks
for the others, which miss some particles, so precision there is a lower bound). A pick within
0.3 diameters (54 Å) of a centre is a hit.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from screen.io.real_examples import EMPIAR10017_DIAMETER_A, REAL_EXAMPLES_DIR, real_examples
from screen.processing.boxes import match_picks
from screen.stages.ctf import CtfSearch, estimate_ctf
from screen.stages.diameter import DiameterParams, estimate_diameter
from screen.stages.picking import PickParams, pick_particles
from screen.stages.records import Optics

MATCH_DIAMETERS = 0.3


def recall_precision(examples, images, diameter_A: float) -> list[tuple[str, int, int, int]]:
    """``(name, hits, false picks, missed)`` of every micrograph picked at ``diameter_A``."""
    rows = []
    for example, image in zip(examples, images, strict=True):
        picks = pick_particles(image, example.pixel_size_A, diameter_A, PickParams())
        xy = np.column_stack([picks.x_px, picks.y_px])
        radius_px = MATCH_DIAMETERS * EMPIAR10017_DIAMETER_A / example.pixel_size_A
        rows.append((example.path.name, *match_picks(xy, example.picks_xy_px(), radius_px)))
    return rows


def _table(label: str, rows) -> list[str]:
    lines = []
    for name, tp, fp, fn in rows:
        lines.append(
            f"| {label} | {name} | {tp + fn} | {tp + fp} | {tp / max(tp + fn, 1):.3f} | "
            f"{tp / max(tp + fp, 1):.3f} |"
        )
    tp, fp, fn = (sum(r[i] for r in rows) for i in (1, 2, 3))
    lines.append(
        f"| {label} | **all {len(rows)}** | {tp + fn} | {tp + fp} | **{tp / max(tp + fn, 1):.3f}** | "
        f"**{tp / max(tp + fp, 1):.3f}** |"
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=REAL_EXAMPLES_DIR)
    parser.add_argument("--no-estimate", action="store_true", help="Only the known diameter.")
    args = parser.parse_args(argv)
    examples = [e for e in real_examples(args.folder) if e.picks_path is not None]
    images = [e.read() for e in examples]
    diameters = {"known 180 Å": EMPIAR10017_DIAMETER_A}
    if not args.no_estimate:
        start = time.perf_counter()
        optics = Optics(examples[0].pixel_size_A)
        ctfs = [estimate_ctf(image, optics, CtfSearch()) for image in images]
        estimate = estimate_diameter(images, optics.pixel_size_A, DiameterParams(), ctfs, optics)
        seconds = time.perf_counter() - start
        print(
            f"pipeline diameter estimate: {estimate.diameter_A:.0f} Å "
            f"({estimate.diameter_A / EMPIAR10017_DIAMETER_A:.2f} x the known 180 Å; "
            f"CTF + diameter {seconds:.0f} s)\n"
        )
        diameters[f"estimated {estimate.diameter_A:.0f} Å"] = estimate.diameter_A
    print("| diameter | micrograph | centres | picks | recall | precision |")
    print("| --- | --- | --- | --- | --- | --- |")
    for label, diameter_A in diameters.items():
        for line in _table(label, recall_precision(examples, images, diameter_A)):
            print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
