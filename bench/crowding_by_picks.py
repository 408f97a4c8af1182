"""Can the picks tell a crowded micrograph from a good one? (Measured: no, see bench/README.md.)

    python bench/crowding_by_picks.py [--n 48]

For simulated good and crowded micrographs (held-out structures, every variation generator
possible; and v2's clean held-out kind), the share of the field that the built-in picker's discs
cover (picks x pi (d/2)^2 / field area) at the true diameter and at 0.7 of it (about what the
particles project), beside the true coverage of the placed particles.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from train_micassess_v3 import HELD_OUT_V3  # noqa: E402

from screen.models import micassess as ma  # noqa: E402
from screen.simulate.domain import GENERATORS, DomainSpec  # noqa: E402
from screen.stages.picking import PickParams, pick_particles  # noqa: E402


def disc_coverage(n: int, diameter_A: float, field_A2: float) -> float:
    return n * np.pi * (diameter_A / 2) ** 2 / field_A2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=48, help="micrographs per simulated set")
    args = parser.parse_args(argv)
    every = DomainSpec(tuple(GENERATORS), HELD_OUT_V3.domain.probability)
    sets = {
        "randomised": replace(
            HELD_OUT_V3, n_micrographs=args.n, seed=993, domain=every, bad_reasons=("crowded",)
        ),
        "clean": replace(ma.HELD_OUT_SET, n_micrographs=args.n, seed=994, bad_reasons=("crowded",)),
    }
    rows = []
    for name, spec in sets.items():
        for screen_spec in ma.session_specs(spec):
            diameter_A = screen_spec.sessions[0].species[0].structure.diameter_A
            field_A2 = np.prod(screen_spec.frame_px) * screen_spec.pixel_size_A**2
            for plan, image, pixel_A in ma.session_micrographs(screen_spec, spec.domain):
                row = [
                    name,
                    plan.reason,
                    disc_coverage(len(plan.particle_x_A), diameter_A, field_A2),
                ]
                for factor in (1.0, 0.7):
                    picks = pick_particles(image, pixel_A, factor * diameter_A, PickParams())
                    row.append(disc_coverage(len(picks), factor * diameter_A, field_A2))
                rows.append(row)
    print(
        "| set | truth | n | true coverage (median) | picks' coverage at d: 10/50/90 % | at 0.7 d: 10/50/90 % |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for name in sets:
        for reason in ("good", "crowded"):
            values = np.array([r[2:] for r in rows if r[0] == name and r[1] == reason])
            if len(values):
                q = [np.percentile(values[:, k], [10, 50, 90]).round(2) for k in (1, 2)]
                print(
                    f"| {name} | {reason} | {len(values)} | {np.median(values[:, 0]):.2f} | "
                    f"{'/'.join(map(str, q[0]))} | {'/'.join(map(str, q[1]))} |"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
