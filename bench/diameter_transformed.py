"""The diameter stage on the EMPIAR-10017 exports under the transformations of
``real_examples_transformed.py``.

    python bench/diameter_transformed.py [--micrographs 6] [NAME ...]

For each transformation, the first ``--micrographs`` EMPIAR-10017 exports of ../shared/
real_examples (β-galactosidase, ~180 Å at 1.77 Å/px) are transformed, their CTFs fitted and the
diameter estimated the way ``screen run`` does (`estimate_diameter` with its defaults, at the
pixel size the transformation leaves); one table row per transformation: estimate ± uncertainty,
method, ratio to 180 Å, within issue 12's ±15 %, seconds.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from real_examples_transformed import TRANSFORMS  # noqa: E402

from screen.io.real_examples import EMPIAR10017_DIAMETER_A, real_examples  # noqa: E402
from screen.stages.ctf import CtfSearch, estimate_ctf  # noqa: E402
from screen.stages.diameter import DiameterParams, estimate_diameter  # noqa: E402
from screen.stages.records import Optics  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--micrographs", type=int, default=6, help="Exports used (default 6).")
    parser.add_argument("names", nargs="*", help="Transformations (default: all).")
    args = parser.parse_args(argv)
    examples = [e for e in real_examples() if "empiar" in e.path.name][: args.micrographs]
    originals = [e.read().astype(np.float64) for e in examples]
    print("| transformation | estimate Å | method | ratio | within 15 % | seconds |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in args.names or list(TRANSFORMS):
        start = time.perf_counter()
        images, pixel_size_A = [], examples[0].pixel_size_A
        for original in originals:
            image, pixel_size_A = TRANSFORMS[name](original, examples[0].pixel_size_A)
            images.append(np.asarray(image, np.float32))
        optics = Optics(pixel_size_A)
        fits = [estimate_ctf(image, optics, CtfSearch()) for image in images]
        estimate = estimate_diameter(images, pixel_size_A, DiameterParams(), fits, optics)
        ratio = estimate.diameter_A / EMPIAR10017_DIAMETER_A
        spread = f" ± {estimate.uncertainty_A:.0f}" if np.isfinite(estimate.uncertainty_A) else ""
        print(
            f"| {name} | {estimate.diameter_A:.0f}{spread} | {estimate.method} | {ratio:.2f} | "
            f"{'yes' if abs(ratio - 1.0) <= 0.15 else 'no'} | {time.perf_counter() - start:.0f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
