"""Does a micrograph's CTF fit, judged against its own session, tell the spectral reasons apart?

    python bench/ctf_session_check.py [--n 160]

For simulated sessions (held-out structures; every variation generator possible, and v2's clean
held-out kind), fits the CTF of every micrograph with the built-in stage and prints, per
ground-truth reason, the fit resolution and its ratio to the session's median fit resolution:
the numbers a session-relative rule ("a fit much worse than the session's own") would act on.
Thick ice, drift and bad CTF damp the Thon rings, so their fits should end early; denoised or
binned exports end every fit early alike, which only a session-relative rule can ignore.
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
from screen.stages.ctf import CtfSearch, estimate_ctf  # noqa: E402
from screen.stages.records import Optics  # noqa: E402


def session_rows(spec: ma.SimulatedSetSpec) -> list[tuple[int, str, float]]:
    """``(session, reason, fit resolution Å)`` of every micrograph of the set."""
    rows = []
    for session, screen_spec in enumerate(ma.session_specs(spec)):
        for plan, image, pixel_A in ma.session_micrographs(screen_spec, spec.domain):
            try:
                fit = estimate_ctf(image, Optics(pixel_A), CtfSearch())
            except ValueError:  # binned beyond the fitting band: the stage fails it alike
                continue
            rows.append((session, plan.reason, float(fit.fit_resolution_A)))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=160, help="micrographs per simulated set")
    args = parser.parse_args(argv)
    every = DomainSpec(tuple(GENERATORS), HELD_OUT_V3.domain.probability)
    sets = {
        "randomised": replace(HELD_OUT_V3, n_micrographs=args.n, seed=995, domain=every),
        "clean": replace(ma.HELD_OUT_SET, n_micrographs=args.n, seed=996),
    }
    print(
        "| set | truth | n | fit resolution Å: 10/50/90 % | / session median: 10/50/90 % |"
        " share >= 1.5x / 2x session median |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for name, spec in sets.items():
        rows = session_rows(spec)
        sessions = np.array([r[0] for r in rows])
        resolution = np.array([r[2] for r in rows])
        median = {s: np.median(resolution[sessions == s]) for s in set(sessions)}
        ratio = resolution / np.array([median[s] for s in sessions])
        for reason in ["good", *ma.MICROGRAPH_REASONS]:
            mine = np.array([r[1] == reason for r in rows])
            if not mine.any():
                continue
            q = np.percentile(resolution[mine], [10, 50, 90])
            qr = np.percentile(ratio[mine], [10, 50, 90])
            print(
                f"| {name} | {reason} | {mine.sum()} | {q[0]:.1f} / {q[1]:.1f} / {q[2]:.1f} | "
                f"{qr[0]:.2f} / {qr[1]:.2f} / {qr[2]:.2f} | "
                f"{np.mean(ratio[mine] >= 1.5):.2f} / {np.mean(ratio[mine] >= 2.0):.2f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
