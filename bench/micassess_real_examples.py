"""Micrograph assessment on the few real micrographs of ``shared/real_examples`` (a smoke check).

    python bench/micassess_real_examples.py [--folder ../shared/real_examples] [--weights NAME]

Prints P(good), the verdict at 0.1 and the likeliest reason of each real image, at the pixel
sizes the folder's README gives (the headers are wrong or placeholders). Four images are no
measurement of accuracy; they show whether the network does something sensible on real pixels.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from screen.io.images import read_image
from screen.stages.assess_micrographs import (
    MicrographAssessParams,
    assess_micrographs,
    load_micrograph_model,
)

EXAMPLES = (
    ("magellon_24dec03a_binned8.mrc", 6.32, "ring-shaped particles, one contamination ball"),
    ("micrograph_cleaner_contaminated.mrc", 1.0, "large contamination ball (1.0 Å/px placeholder)"),
    ("empiar10017_Falcon_2012_06_12-14_33_35_0.jpg", 1.77, "dense β-galactosidase, denoised JPEG"),
    ("empiar10017_Falcon_2012_06_12-14_57_34_0.jpg", 1.77, "dense β-galactosidase, denoised JPEG"),
)


def read_any(path: Path) -> np.ndarray:
    """An MRC through the product's reader; a JPEG as grey levels (dark = dense, as in EM)."""
    if path.suffix.lower() in (".jpg", ".jpeg", ".png"):
        from skimage.io import imread

        return np.asarray(imread(path, as_gray=True), dtype=np.float32)
    return np.asarray(read_image(path).data, dtype=np.float32)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parents[2] / "shared" / "real_examples"
    parser.add_argument("--folder", type=Path, default=default)
    parser.add_argument("--weights", default=MicrographAssessParams().model)
    args = parser.parse_args(argv)
    params = MicrographAssessParams(model=args.weights)
    model = load_micrograph_model(params)
    print(f"weights: {args.weights}\n")
    print("| micrograph | what it is | P(good) | verdict @ 0.1 | likeliest reason |")
    print("| --- | --- | --- | --- | --- |")
    for name, pixel_size_A, what in EXAMPLES:
        path = args.folder / name
        if not path.exists():
            print(f"| {name} | missing | | | |")
            continue
        (verdict,) = assess_micrographs([read_any(path)], [pixel_size_A], params, model)
        reason = max(verdict.reason_scores, key=verdict.reason_scores.__getitem__, default="")
        print(
            f"| {name} ({pixel_size_A} Å/px) | {what} | {verdict.p_good:.3f} | "
            f"{verdict.verdict} | {reason} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
