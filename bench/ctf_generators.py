"""CTF fits against the simulator's true defocus on the held-out variation generators' sets.

    python bench/ctf_generators.py [--out /tmp/micassess_generators] [--generators ...]
        [--jobs 2] [--tolerance 0.1] [--list]

The sets are `micassess_generators.py --per-session`'s (simulated there once, in ``--out``; one
chain of processing per session). Each micrograph is fitted as `screen run` fits it
(`screen.stages.ctf.estimate_ctf`, default `CtfSearch`) and compared with its plan's true mean
defocus. Per set: good micrographs fitted (not `CtfNotMeasurable`), fitted within
``--tolerance`` of the true defocus, fits at the band's low end (no ring followed), and the three
kinds of bad CTF (astigmatism 4,000-12,000 Å; 0.05-0.25 µm defocus; envelope B 400-900 Å²) with
their fits. ``--list`` prints every session's good fits against the truth.
"""

from __future__ import annotations

import argparse
import math
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from micassess_generators import set_spec, write_set  # bench/ is on sys.path

from screen.io.mrc import read_mrc
from screen.models import micassess as ma
from screen.simulate.session import session_plans
from screen.stages import ctf
from screen.stages.records import CtfFit, Optics


@dataclass(frozen=True)
class Row:
    session: str
    reason: str
    kind: str  # bad CTF's kind: "astigmatism", "near_focus", "envelope"; "" otherwise
    pixel_size_A: float
    true_defocus_A: float
    true_astigmatism_A: float
    fitted_defocus_A: float  # NaN: not measurable
    fitted_astigmatism_A: float
    fit_resolution_A: float


def _kind(plan) -> str:
    if plan.reason != "bad_ctf":
        return ""
    astig = plan.ctf.defocus_u_A - plan.ctf.defocus_v_A
    if astig >= 3000.0:
        return "astigmatism"
    if plan.b_factor_A2 >= 400.0:
        return "envelope"
    return "near_focus"


def _fit(job: tuple[Path, float]) -> CtfFit | None:
    path, pixel_size_A = job
    image = read_mrc(path).data
    try:
        return ctf.estimate_ctf(image, Optics(pixel_size_A=pixel_size_A), ctf.CtfSearch())
    except ctf.CtfNotMeasurable:
        return None


def set_rows(generator: str, out: Path, n: int, jobs: int) -> list[Row]:
    """Fit every micrograph of one per-session set; its plans give the truth."""
    labels = write_set(generator, n, out, jobs, per_session=True)
    folder = labels.parent
    spec, _ = set_spec(generator, n, per_session=True)
    lines = labels.read_text().splitlines()[1:]
    pixel = {row.split(",")[0]: float(row.split(",")[3]) for row in lines}
    plans, jobs_list = [], []
    for index, session in enumerate(ma.session_specs(spec)):
        for number, plan in enumerate(session_plans(session, 0)):
            name = f"s{index:03d}_m{number:03d}.mrc"
            plans.append((f"s{index:03d}", plan))
            jobs_list.append((folder / name, pixel[name]))
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        fits = list(pool.map(_fit, jobs_list, chunksize=4))
    # As `screen run` does: a session's fits that agree too well are a processing pattern.
    for session in {s for s, _ in plans}:
        rows_of = [i for i, (s, _) in enumerate(plans) if s == session]
        marked, _ = ctf.without_fixed_pattern([fits[i] for i in rows_of], ctf.CtfSearch())
        for i, fit in zip(rows_of, marked, strict=True):
            fits[i] = fit
    rows = []
    for (session, plan), (_path, pixel_size_A), fit in zip(plans, jobs_list, fits, strict=True):
        dz, astig, res = (
            (math.nan,) * 3
            if fit is None
            else (fit.mean_defocus_A, fit.defocus_u_A - fit.defocus_v_A, fit.fit_resolution_A)
        )
        rows.append(
            Row(
                session,
                plan.reason,
                _kind(plan),
                pixel_size_A,
                0.5 * (plan.ctf.defocus_u_A + plan.ctf.defocus_v_A),
                plan.ctf.defocus_u_A - plan.ctf.defocus_v_A,
                dz,
                astig,
                res,
            )
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/micassess_generators"))
    parser.add_argument("--n", type=int, default=160)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--generators",
        nargs="+",
        default=[
            "trained",
            "hot_pixels",
            "bin_fourier",
            "nl_means_denoise",
            "jpeg_round_trip",
            "clean",
        ],
    )
    parser.add_argument("--tolerance", type=float, default=0.1)
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args(argv)
    print(
        "| set | good micrographs | rings fitted: defocus right | rings fitted: defocus wrong | "
        "no ring fitted | not measurable | bad CTF: astigmatism fitted > 3000 Å / near focus "
        "fitted < 0.5 µm / envelope fit > 1.5x session median |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for generator in args.generators:
        rows = set_rows(generator, args.out, args.n, args.jobs)
        good = [r for r in rows if r.reason == "good"]
        fitted = [r for r in good if math.isfinite(r.fitted_defocus_A)]
        floor = [r for r in fitted if r.fit_resolution_A >= ctf.CtfSearch().low_res_A - 1e-6]
        ringed = [r for r in fitted if r not in floor]
        within = [
            r
            for r in ringed
            if abs(r.fitted_defocus_A - r.true_defocus_A) <= args.tolerance * r.true_defocus_A
        ]
        medians = {}
        for session in {r.session for r in rows}:
            values = [r.fit_resolution_A for r in fitted if r.session == session]
            medians[session] = float(np.median(values)) if values else math.nan
        bad = [r for r in rows if r.kind]
        parts = []
        for kind in ("astigmatism", "near_focus", "envelope"):
            these = [r for r in bad if r.kind == kind]
            if kind == "astigmatism":
                hit = sum(r.fitted_astigmatism_A > 3000.0 for r in these)
            elif kind == "near_focus":
                hit = sum(r.fitted_defocus_A < 5000.0 for r in these)
            else:
                hit = sum(r.fit_resolution_A > 1.5 * medians[r.session] for r in these)
            parts.append(f"{kind} {hit}/{len(these)}")
        print(
            f"| {generator} | {len(good)} | {len(within)} | {len(ringed) - len(within)} | "
            f"{len(floor)} | {len(good) - len(fitted)} | {', '.join(parts)} |",
            flush=True,
        )
        if args.list:
            for session in sorted(medians):
                these = [r for r in good if r.session == session]
                print(
                    f"    {session} {these[0].pixel_size_A:.2f} Å/px: "
                    + " ".join(
                        f"{r.true_defocus_A / 1e4:.2f}->{r.fitted_defocus_A / 1e4:.2f}"
                        f"@{r.fit_resolution_A:.0f}"
                        for r in these
                    ),
                    file=sys.stderr,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
