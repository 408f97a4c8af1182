"""Micrograph assessment on held-out variation generators, through `screen run`'s own verdicts.

    python bench/micassess_generators.py [--out /tmp/micassess_generators] [--n 160] [--jobs 2]
        [--generators hot_pixels bin_fourier ...] [--configs product v5 v2] [--field-A 4000]

Issue 10's measurement: for each generator of ``screen.simulate.domain.HELD_OUT_GENERATORS``
(never used to train any shipped weights) a set is simulated from ``HELD_OUT_V3`` of
``train_micassess_v3.py`` (other structures and frame sizes than training; every bad type; sessions
of 16) with that generator forced on every micrograph and the trained ones at their usual rate,
written as MRC files with a ``labels.csv`` of ``path,label,reason,pixel_size_A,session`` (kept in
``--out``: a second run only evaluates). ``trained`` is the same set with no held-out generator.
Each set is then scored as ``screen evaluate micrographs`` scores it (``screen.evaluation``):

- ``product``: `screen run`'s verdicts (the default model, the astigmatism, opaque and carbon
  checks, the session domain check and its fallback to ``DOMAIN_RANDOMISED_MODEL``, and that
  model's second opinion on sessions the default rejects in part);
- (``--per-session``: one chain of generators and its parameters per session, as a real session
  is processed, instead of one per micrograph, and since 2026-12-05 (session 17) one dose per
  session (within 2 %), as one exposure setting gives; the sets go to
  ``<generator>_per_session``)
- (``--alone``: the held-out generator alone, none of the trained ones: the set the issue names,
  "variation generators held out of training"; sets go to ``<generator>_alone``)
- ``v5`` / ``v2`` / ``v3``: one shipped model alone (``micassess_small_vN``), checks on, no
  fallback (what ``--micassess-weights`` gives);
- ``either``: a micrograph is good when v2 or v5 (each alone, checks on) calls it good; the
  reason of a bad one is v2's (a rule measured here, not `screen run`'s).

Binning stops at ``--max-pixel-size`` (default ``EXPORT_MAX_PIXEL_A``, 14 Å/px: a real micrograph
binned 8 x); the sets measured before 2026-12-06 evening went up to 42 Å/px (``0``: no limit,
sets in ``<out>/<set>_uncapped...``).

``--field-A`` makes each session's frames span that field at its pixel size (since session 37;
the sets before are 576 or 704 px whatever the pixel size, 1,440-4,900 Å, where real frames span
3,300-7,300 Å).

``clean`` is v2's own held-out kind (``micassess.HELD_OUT_SET``: no variation generator).
``irregular_contamination`` is the ``trained`` set with lumpy contaminants instead of balls
(`SessionSpec.contamination_shapes`; every shipped weight saw balls only); ``touching`` the
``trained`` set at coverage 0.45-0.75 with neighbours side by side (`SessionSpec.
particle_spacing` 0.55-0.65; every shipped weight saw 0.85, where they never touch).

Prints one row per set and configuration: accuracy, good called bad, reason right (bad
micrographs called bad for the right reason), the sessions that fell back, recall per reason, and
(since session 36) accuracy and reason right without the bad-CTF micrographs whose defect cannot
show at their exported pixel size (`ctf_defect_shows`: an astigmatism whose first zero lies past
Nyquist, a B-factor whose envelope is still over one half there), with how many were left out.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
from train_micassess_v3 import HELD_OUT_V3  # bench/ is on sys.path when run as a script

from screen.io.mrc import write_mrc
from screen.models import micassess as ma
from screen.processing.ctf import electron_wavelength_A
from screen.simulate.domain import (
    EXPORT_MAX_PIXEL_A,
    HELD_OUT_GENERATORS,
    TRAINING_DOMAIN,
    DomainSpec,
)

CONFIGS = ("product", "v5", "v2", "v3", "either")

SHOWS_CSV = "ctf_defect_shows.csv"
"""Beside a set's ``labels.csv``: whether each micrograph's bad CTF can show at its pixel size
(`ctf_defect_shows`; 1 for every other label)."""

SIMULATOR_KINDS = {
    "irregular_contamination": {"contamination_shapes": "irregular"},
    "touching": {"particle_spacing": (0.55, 0.65), "coverage": (0.45, 0.75)},
    "grown_aggregates": {"aggregate_shapes": "grown"},
}
"""Held-out kinds of the simulator itself rather than of processing, as settings of the trained
generators' set: ``irregular_contamination`` has lumpy contaminants
(`SessionSpec.contamination_shapes`) where every shipped weight saw only round ones;
``touching`` dense fields (coverage 0.45-0.75) whose particles may touch side by side
(`SessionSpec.particle_spacing` 0.55-0.65; every shipped weight saw 0.85 only, where they never
do), as in a real dense monolayer; ``grown_aggregates`` aggregates of particles stuck together
in 3D (`SessionSpec.aggregate_shapes`) where the shipped weights up to v5 saw loose scatters and
bead clouds."""


def ctf_defect_shows(plan, pixel_size_A: float, good_b_factor_max_A2: float) -> bool:
    """Whether a micrograph's bad CTF can show at its (exported) pixel size at all.

    Physics of the three kinds the simulator draws (`screen.simulate.plan`), nothing learnt:
    an astigmatism over 3,000 Å shows once the CTF's first zero along its larger defocus,
    at sqrt(wavelength x defocus), lies inside Nyquist (two pixels); a B-factor over 300 Å² once
    the envelope of its excess over the session's good range has fallen below one half at
    Nyquist; a defocus under 0.3 µm always (the particles lose their low-frequency contrast at any
    pixel size). A processing step that removes high frequencies (a denoiser) is not allowed
    for, so this over-counts what can show. Every other label: True.
    """
    if plan.reason != "bad_ctf":
        return True
    ctf = plan.ctf
    nyquist_A = 2.0 * pixel_size_A
    if abs(ctf.defocus_u_A - ctf.defocus_v_A) > 3000.0:
        larger = max(ctf.defocus_u_A, ctf.defocus_v_A)
        return float(np.sqrt(electron_wavelength_A(ctf.voltage_kV) * larger)) > nyquist_A
    if plan.b_factor_A2 > 300.0:
        excess = plan.b_factor_A2 - good_b_factor_max_A2
        return float(np.exp(-excess / nyquist_A**2 / 4.0)) < 0.5
    return True


def render_session(job: tuple[int, object, object, Path]) -> list[tuple]:
    """Render one session of a set into ``folder``; its label rows (and whether a bad CTF shows)."""
    index, screen_spec, domain, folder = job
    rows = []
    good_b_max = screen_spec.sessions[0].b_factor_A2[1]
    for number, (plan, image, pixel_size_A) in enumerate(
        ma.session_micrographs(screen_spec, domain)
    ):
        path = folder / f"s{index:03d}_m{number:03d}.mrc"
        if not path.exists():  # a set made before the sidecar: its images stand
            write_mrc(path, image, pixel_size_A)
        label = "good" if plan.reason == "good" else "bad"
        shows = ctf_defect_shows(plan, pixel_size_A, good_b_max)
        rows.append((path.name, label, plan.reason, pixel_size_A, f"s{index:03d}", shows))
    return rows


def set_spec(
    generator: str,
    n: int,
    per_session: bool = False,
    alone: bool = False,
    max_pixel_size_A: float | None = EXPORT_MAX_PIXEL_A,
) -> tuple[ma.SimulatedSetSpec, DomainSpec | None]:
    """The simulated set of one generator (see the module docstring) and its domain."""
    if generator == "clean":
        spec = replace(
            ma.HELD_OUT_SET, n_micrographs=n, micrographs_per_session=16, session_dose=per_session
        )
        return spec, None
    forced = () if generator == "trained" or generator in SIMULATOR_KINDS else (generator,)
    allowed = () if alone else TRAINING_DOMAIN.allowed
    domain = DomainSpec(allowed, TRAINING_DOMAIN.probability, forced, per_session, max_pixel_size_A)
    # A real session is one chain of processing and one exposure setting.
    spec = replace(
        HELD_OUT_V3,
        n_micrographs=n,
        domain=domain,
        session_dose=per_session,
    )
    spec = replace(spec, **SIMULATOR_KINDS.get(generator, {}))
    return spec, domain


def field_px(field_A: float, pixel_size_A: float) -> int:
    """Frame side (px, a multiple of 32) that spans ``field_A`` at ``pixel_size_A``."""
    return max(int(round(field_A / pixel_size_A / 32.0)) * 32, 256)


def write_set(
    generator: str,
    n: int,
    out: Path,
    jobs: int,
    per_session: bool = False,
    alone: bool = False,
    max_pixel_size_A: float | None = EXPORT_MAX_PIXEL_A,
    field_A: float | None = None,
) -> Path:
    """Simulate one held-out set (once) and return its ``labels.csv``."""
    name = generator + ("_alone" if alone and generator not in ("trained", "clean") else "")
    if max_pixel_size_A is None and generator != "clean":
        name += "_uncapped"
    folder = out / (f"{name}_per_session" if per_session else name)
    if field_A:
        folder = folder.with_name(f"{folder.name}_field{field_A:.0f}")
    labels = folder / "labels.csv"
    if labels.exists() and (folder / SHOWS_CSV).exists():
        return labels
    folder.mkdir(parents=True, exist_ok=True)
    spec, domain = set_spec(generator, n, per_session, alone, max_pixel_size_A)
    sessions = ma.session_specs(spec)
    if field_A:
        sessions = [replace(s, frame_px=(field_px(field_A, s.pixel_size_A),) * 2) for s in sessions]
    start = time.perf_counter()
    jobs_list = [(i, s, domain, folder) for i, s in enumerate(sessions)]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        rows = [row for part in pool.map(render_session, jobs_list) for row in part]
    tmp = labels.with_suffix(".tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "reason", "pixel_size_A", "session"])
        writer.writerows(row[:5] for row in rows)
    tmp.replace(labels)
    with open(folder / SHOWS_CSV, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "ctf_defect_shows"])
        writer.writerows((row[0], int(row[5])) for row in rows)
    print(
        f"{generator}: {len(rows)} micrographs in {time.perf_counter() - start:.0f} s",
        file=sys.stderr,
        flush=True,
    )
    return labels


def evaluate(
    labels: Path,
    config: str,
    thick_ice_transmission: float | None = None,
    session_reason_share: float | None = None,
    drift_outlier_sigma: float | None = None,
):
    """Score one set with one configuration (see the module docstring)."""
    from screen import evaluation
    from screen.models.micrograph_metrics import binary_metrics, reason_metrics

    if config == "either":
        first, second = evaluate(labels, "v2"), evaluate(labels, "v5")
        good = [
            a == "good" or b == "good"
            for a, b in zip(first.predicted_reasons, second.predicted_reasons, strict=True)
        ]
        reasons = tuple(
            "good" if g else r for g, r in zip(good, first.predicted_reasons, strict=True)
        )
        truth = [item.label == "good" for item in first.items]
        return replace(
            first,
            predicted_reasons=reasons,
            model=binary_metrics(np.array(truth), np.array(good)),
            reasons=reason_metrics([i.reason for i in first.items], list(reasons), np.array(good)),
            domain_warnings=(),
        )
    from screen.stages import assess_micrographs as am
    from screen.stages.ctf import CtfSearch

    items = evaluation.load_labelled_set(labels)
    params = am.MicrographAssessParams()
    if thick_ice_transmission is not None:
        params = replace(params, thick_ice_transmission=thick_ice_transmission)
    if session_reason_share is not None:
        params = replace(params, session_reason_share=session_reason_share)
    if drift_outlier_sigma is not None:
        params = replace(params, drift_outlier_sigma=drift_outlier_sigma)
    fallback = None
    if config == "product":
        fallback_params = replace(params, model=am.DOMAIN_RANDOMISED_MODEL)
        fallback = evaluation.DomainFallback(
            fallback_params, lambda: am.load_micrograph_model(fallback_params)
        )
    else:
        params = replace(params, model=f"micassess_small_{config}")
    model = am.load_micrograph_model(params)
    return evaluation.evaluate_micrographs(items, params, model, CtfSearch(), None, fallback)


def where_shown(result, shows_csv: Path) -> str:
    """Accuracy and reason right over the micrographs whose bad CTF (if any) can show."""
    with open(shows_csv, newline="") as handle:
        shows = {row["path"]: row["ctf_defect_shows"] == "1" for row in csv.DictReader(handle)}
    kept = [i for i, item in enumerate(result.items) if shows.get(Path(item.path).name, True)]
    right = [
        (result.items[i].label == "good") == (result.predicted_reasons[i] == "good") for i in kept
    ]
    bad = [i for i in kept if result.items[i].label == "bad"]
    reason = sum(result.predicted_reasons[i] == result.items[i].reason for i in bad)
    return (
        f"{len(result.items) - len(kept)}, {np.mean(right):.3f} / {reason / max(len(bad), 1):.3f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/micassess_generators"))
    parser.add_argument("--n", type=int, default=160, help="micrographs per set")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--generators",
        nargs="+",
        default=[*HELD_OUT_GENERATORS, "trained", "clean"],
        help="held-out generators to force ('trained': none, the trained ones only; 'clean': "
        "v2's held-out kind, no generator; 'irregular_contamination': the trained ones with "
        "lumpy contaminants instead of balls; 'touching': the trained ones on dense fields "
        "whose particles may touch)",
    )
    parser.add_argument("--configs", nargs="+", default=["product", "v5"], choices=CONFIGS)
    parser.add_argument(
        "--per-session",
        action="store_true",
        help="one chain of generators (and its parameters) per session, as a real session is "
        "processed, instead of one per micrograph (sets in <out>/<generator>_per_session); "
        "without it each micrograph also draws its own dose from the whole range (10-80 e/Å²: grey "
        "levels up to 7x apart in one session), which no real session does (bench/README.md, "
        "session 26)",
    )
    parser.add_argument(
        "--alone",
        action="store_true",
        help="the held-out generator alone, without the trained ones (sets in "
        "<out>/<generator>_alone): the issue's literal held-out set",
    )
    parser.add_argument(
        "--max-pixel-size",
        type=float,
        default=EXPORT_MAX_PIXEL_A,
        help="binning stops at this pixel size (Å; default: EXPORT_MAX_PIXEL_A, a real micrograph "
        "binned 8 x); 0: no limit, the sets measured before 2026-12-06 evening (session 28), in "
        "<out>/<set>_uncapped",
    )
    parser.add_argument(
        "--thick-ice-transmission",
        type=float,
        default=None,
        help="the session's thick-ice check's limit (0: off; default: the product's)",
    )
    parser.add_argument(
        "--session-reason-share",
        type=float,
        default=None,
        help="share of a session from which a spectral reason is the session's (0: off; "
        "default: the product's)",
    )
    parser.add_argument(
        "--drift-outlier-sigma",
        type=float,
        default=None,
        help="the session's drift check's outlier limit (0: off; default: the product's)",
    )
    parser.add_argument(
        "--field-A",
        type=float,
        default=None,
        help="frames spanning this field (Å) at each session's pixel size instead of 576 or 704 "
        "px (real frames span 3,300-7,300 Å: a K3 at 0.83 Å/px 4,780 x 3,400, the EMPIAR-10017 "
        "exports 7,250; 576 px at 2.5 Å/px only 1,440); sets in <out>/<set>_field<F>",
    )
    args = parser.parse_args(argv)
    print(
        "| set | verdicts | n (good) | accuracy | good called bad | reason right | sessions "
        "fallen back | per bad reason: called bad / reason right | where a bad CTF can show: "
        "left out, accuracy / reason right |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for generator in args.generators:
        labels = write_set(
            generator,
            args.n,
            args.out,
            args.jobs,
            args.per_session,
            args.alone,
            args.max_pixel_size if args.max_pixel_size > 0 else None,
            args.field_A,
        )
        for config in args.configs:
            start = time.perf_counter()
            result = evaluate(
                labels,
                config,
                args.thick_ice_transmission,
                args.session_reason_share,
                args.drift_outlier_sigma,
            )
            m = result.model
            n_sessions = len({item.session for item in result.items})
            per_reason = ", ".join(
                f"{reason} {values['called_bad']:.2f}/{values['reason_right']:.2f}"
                for reason, values in result.reasons.items()
            )
            bad = [i for i, item in enumerate(result.items) if item.label == "bad"]
            reason_right = sum(
                result.predicted_reasons[i] == result.items[i].reason for i in bad
            ) / max(len(bad), 1)
            print(
                f"| {generator}{' alone' if args.alone else ''}{' (per session)' if args.per_session else ''}"
                f"{f' ({args.field_A:.0f}-Å fields)' if args.field_A else ''} | "
                f"{config} | "
                f"{m.n} ({m.n_good}) | {m.accuracy:.3f} | "
                f"{m.good_called_bad:.3f} | {reason_right:.3f} | "
                f"{len(result.domain_warnings)} of {n_sessions} | {per_reason} | "
                f"{where_shown(result, labels.parent / SHOWS_CSV)} |",
                flush=True,
            )
            print(f"  ({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
