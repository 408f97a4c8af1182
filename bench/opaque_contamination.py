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
from screen.simulate.domain import GENERATORS, DomainSpec, randomise  # noqa: E402
from screen.simulate.render import render_micrograph  # noqa: E402
from screen.simulate.session import session_models, session_plans  # noqa: E402
from screen.stages.assess_micrographs import MicrographAssessParams  # noqa: E402


def simulated_fractions(spec: ma.SimulatedSetSpec) -> list[tuple[str, float]]:
    rows = []
    for screen_spec in ma.session_specs(spec):
        models = session_models(screen_spec.sessions[0])
        for index, plan in enumerate(session_plans(screen_spec, 0)):
            image = render_micrograph(
                plan, models, screen_spec.frame_px, screen_spec.pixel_size_A
            ).counts
            if spec.domain is not None:
                rng = np.random.default_rng([screen_spec.seed, index, 7])
                image, _, _ = randomise(image, screen_spec.pixel_size_A, spec.domain, rng)
            rows.append((plan.reason, opaque_fraction(image)))
    return rows


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
