"""Crystalline-ice reflections (`screen.processing.ice`) on noise, real examples and simulated data.

    python bench/crystalline_ice.py [--n 32]

Prints, per image, the share of tiles with reflections (the check makes a micrograph bad from
0.25), the largest 3 x 3 mean of band samples over their radius's mean (a tile counts from 8) and
its d-spacing, and the time per image: for shot noise (a K3-sized frame at 0.83 Å/px), every
real example of `shared/real_examples`, and simulated good and contaminated micrographs at
0.8-1.8 Å/px (half the contaminated ones have crystalline domains, ``crystalline_coverage``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import screen.models.micassess as ma
from screen.io.real_examples import real_examples
from screen.processing.ice import ice_reflections
from screen.simulate.render import render_micrograph
from screen.simulate.session import session_models, session_plans


def row(name: str, truth: str, image: np.ndarray, pixel_size_A: float) -> str:
    begin = time.perf_counter()
    found = ice_reflections(image, pixel_size_A)
    seconds = time.perf_counter() - begin
    if found is None:
        return f"| {name} | {truth} | {pixel_size_A:.2f} | not measurable | - | - | {seconds:.3f} |"
    return (
        f"| {name} | {truth} | {pixel_size_A:.2f} | {found.tile_share:.2f} of {found.tiles} | "
        f"{found.strongest_ratio:.1f} | {found.strongest_spacing_A:.2f} | {seconds:.3f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=32, help="simulated micrographs")
    args = parser.parse_args()
    print("| image | truth | Å/px | tiles with reflections | strongest | at Å | seconds |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    noise = np.random.default_rng(0).poisson(3.0, size=(4092, 5760)).astype(np.float32)
    ice_reflections(noise, 0.83)  # first call imports scipy's windows
    print(row("shot noise, K3 frame", "no ice", noise, 0.83))
    for example in real_examples():
        print(row(example.path.name[:48], example.verdict, example.read(), example.pixel_size_A))
    spec = ma.SimulatedSetSpec(
        n_micrographs=args.n,
        seed=5,
        micrographs_per_session=8,
        frame_px=(768,),
        pixel_size_A=(0.8, 1.8),
        bad_reasons=("contaminated",),
    )
    for session in ma.session_specs(spec):
        models = session_models(session.sessions[0])
        for plan in session_plans(session, 0):
            image = render_micrograph(plan, models, session.frame_px, session.pixel_size_A).counts
            truth = plan.reason
            if plan.crystalline_coverage > 0:
                truth += f" (crystalline {plan.crystalline_coverage:.2f})"
            print(row(f"simulated {plan.name}", truth, image, session.pixel_size_A))


if __name__ == "__main__":
    main()
