"""The opaque-contamination check on simulated and real micrographs.

    python bench/opaque_contamination.py [--n 128]

Prints, per ground-truth reason, the share of micrographs whose opaque fraction
(``screen.processing.contamination.opaque_fraction``) reaches the stage's limit
(``MicrographAssessParams.max_opaque_fraction``) and the largest fraction seen, for a
domain-randomised held-out set (other structures and frame sizes, every variation generator
possible) and v2's clean held-out distribution; then the fraction of every real example.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from train_micassess_v3 import HELD_OUT_V3  # noqa: E402

from screen.io.real_examples import real_examples  # noqa: E402
from screen.models import micassess as ma  # noqa: E402
from screen.processing.contamination import opaque_fraction  # noqa: E402
from screen.simulate.domain import GENERATORS, DomainSpec  # noqa: E402
from screen.stages.assess_micrographs import MicrographAssessParams  # noqa: E402


def simulated_fractions(spec: ma.SimulatedSetSpec) -> list[tuple[str, float]]:
    return [
        (plan.reason, opaque_fraction(image))
        for screen_spec in ma.session_specs(spec)
        for plan, image, _ in ma.session_micrographs(screen_spec, spec.domain)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=128, help="micrographs per simulated set")
    args = parser.parse_args(argv)
    limit = MicrographAssessParams().max_opaque_fraction
    every_generator = DomainSpec(tuple(GENERATORS), HELD_OUT_V3.domain.probability)
    sets = {
        "randomised (held-out structures)": replace(
            HELD_OUT_V3, n_micrographs=args.n, seed=991, domain=every_generator
        ),
        "clean (v2's held-out kind)": replace(ma.HELD_OUT_SET, n_micrographs=args.n, seed=992),
    }
    print(f"| set | truth | n | opaque >= {limit:g} | largest |\n| --- | --- | --- | --- | --- |")
    for name, spec in sets.items():
        rows = simulated_fractions(spec)
        for reason in ["good", *ma.MICROGRAPH_REASONS]:
            values = np.array([f for r, f in rows if r == reason])
            if values.size:
                print(
                    f"| {name} | {reason} | {values.size} | {np.mean(values >= limit):.3f} | "
                    f"{values.max():.3f} |",
                    flush=True,
                )
    print("\n| real example | a person | opaque fraction |\n| --- | --- | --- |")
    for example in real_examples():
        print(
            f"| {example.path.name} | {example.verdict} | {opaque_fraction(example.read()):.4f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
