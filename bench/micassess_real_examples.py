"""Micrograph assessment on the real micrographs of ``shared/real_examples`` (a smoke check).

    python bench/micassess_real_examples.py [--folder ../shared/real_examples] [--weights NAME]

Prints P(good), the verdict at 0.1, the likeliest reason and what a person would say of each
real image, at the pixel sizes the folder's README gives (the headers are wrong or placeholders).
Fourteen images of three sources are no measurement of accuracy; they show whether the network
does something sensible on real pixels (denoised 8-bit JPEGs, a binned MRC, a dose-weighted one).
The six exports whose fields trained ``micassess_small_v5`` are marked.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from screen.io.real_examples import (
    MICASSESS_TRAINING_EXPORTS,
    REAL_EXAMPLES_DIR,
    real_examples,
)
from screen.stages.assess_micrographs import (
    MicrographAssessParams,
    assess_micrographs,
    load_micrograph_model,
)


def real_examples_table(model, folder: Path = REAL_EXAMPLES_DIR, threshold: float = 0.1) -> str:
    """A markdown table of the model's verdict on every real example beside a person's."""
    params = MicrographAssessParams(threshold=threshold)
    lines = [
        "| micrograph | what it is | a person says | P(good) | verdict @ 0.1 | likeliest reason |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    right = 0
    examples = real_examples(folder)
    for example in examples:
        image = example.read()
        (verdict,) = assess_micrographs([image], [example.pixel_size_A], params, model)
        reason = max(verdict.reason_scores, key=verdict.reason_scores.__getitem__, default="")
        right += verdict.verdict == example.verdict
        what = example.what
        if example.path.name in MICASSESS_TRAINING_EXPORTS:
            what += " (its fields trained micassess_small_v5: not evidence for v5)"
        lines.append(
            f"| {example.path.name} ({example.pixel_size_A} Å/px) | {what} | "
            f"{example.verdict} | {verdict.p_good:.3f} | {verdict.verdict} | {reason} |"
        )
    lines.append(f"\n{right} of {len(examples)} verdicts as a person gives them.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=REAL_EXAMPLES_DIR)
    parser.add_argument("--weights", default=MicrographAssessParams().model)
    args = parser.parse_args(argv)
    model = load_micrograph_model(MicrographAssessParams(model=args.weights))
    print(f"weights: {args.weights}\n")
    print(real_examples_table(model, args.folder))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
