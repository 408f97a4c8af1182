"""How deep the exclusion gap comes out where there is none, and where there is one.

    python bench/diameter_gap_null.py [--fields 4]

The gap (``screen.stages.diameter.exclusion_gap``) is a minimum of the boxes' spread by radius,
counted when it is ``gap_min_significance`` standard errors deep. This script measures that
depth at every trial the stage uses (every ``gap_trial_step``-th scale-space trial), with the
error from two half stacks (v6) and from eight interleaved sub-stacks, on fields that have no
gap by construction (pure white noise; smoothed and 8-bit quantised noise, as denoised exports
are; sparse dark discs and ellipses with no neighbour near contact) and on fields that have one
(a dense field of ellipses; the real Magellon rings and an EMPIAR-10017 export, 2x binned).
The null rows set the detection threshold; the others show what it keeps.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "stages"))
from test_diameter import _dark_discs, _ellipse_field  # noqa: E402

from screen.io.real_examples import real_examples  # noqa: E402
from screen.processing.filters import bin_to_pixel_size  # noqa: E402
from screen.stages.diameter import (  # noqa: E402
    DiameterParams,
    corrected_contrast,
    exclusion_gap,
    gap_diameter,
    trial_picks,
)

GROUPS = (2, 8)
THRESHOLDS = (4.0, 5.0, 6.0, 8.0, 10.0, 20.0)


def null_session(seed: int, fields: int) -> tuple[str, list[np.ndarray]]:
    """A session of fields without neighbours near contact: noise, or sparse discs/ellipses."""
    rng = np.random.default_rng([seed, 17])
    kind = ["white noise", "smoothed 8-bit noise", "sparse discs", "sparse ellipses"][seed % 4]
    size_A = float(rng.choice([80.0, 120.0, 200.0]))
    count = int(rng.integers(4, 16) * (120.0 / size_A) ** 2) + 2
    seeds = [1000 * seed + k for k in range(fields)]
    if kind == "white noise":
        images = [np.random.default_rng(s).normal(100, 10, (512, 512)) for s in seeds]
    elif kind == "smoothed 8-bit noise":
        images = [smoothed_noise(s) for s in seeds]
    elif kind == "sparse discs":
        images = [_dark_discs(s, size_A, 4.0, n=count) for s in seeds]
    else:
        images = [_ellipse_field(s, size_A, count) for s in seeds]
    label = kind if "noise" in kind else f"{kind} ({size_A:.0f} Å, {count} per field)"
    return label, images


def null_summary(n_sessions: int, fields: int) -> None:
    """False gaps over many null sessions: how many pass at each threshold (8 sub-stacks)."""
    false = {t: 0 for t in THRESHOLDS}
    deepest = []
    for seed in range(n_sessions):
        label, images = null_session(seed, fields)
        found = measures(images, 4.0, 8)
        depths = [m.significance for m in found if np.isfinite(m.diameter_A)]
        relative = [
            f"{m.trial_diameter_A:.0f}: {m.diameter_A:.0f}, {m.significance:.1f} ({m.relative_depth:.3f})"
            for m in found
            if np.isfinite(m.diameter_A) and m.significance >= 4.0
        ]
        deepest.append(max(depths, default=0.0))
        passed = []
        for t in THRESHOLDS:
            gap = gap_diameter(found, replace(DiameterParams(), gap_min_significance=t))
            false[t] += gap is not None
            if gap is not None:
                passed.append(f"{t:g}: {gap[0]:.0f}")
        print(
            f"| {label} | {len(depths)} | {max(depths, default=0.0):.1f} | "
            f"{'; '.join(relative) or '-'} | {', '.join(passed) or 'none'} |",
            flush=True,
        )
    print(
        f"\nnull sessions: {n_sessions}; deepest single trial: median {np.median(deepest):.1f}, max {max(deepest):.1f}"
    )
    print("false gap diameters by threshold: " + ", ".join(f"{t:g}: {c}" for t, c in false.items()))


def smoothed_noise(seed: int, shape=(512, 512)) -> np.ndarray:
    """Noise low-passed over ~2 px and quantised to 8 bits (a denoised export's texture)."""
    rng = np.random.default_rng(seed)
    smooth = ndimage.gaussian_filter(rng.normal(size=shape), 2.0)
    grey = np.clip(np.round(128 + 40 * smooth / smooth.std()), 0, 255)
    return 100.0 + grey


def measures(images: list[np.ndarray], pixel_size_A: float, groups: int):
    params = replace(DiameterParams(), gap_error_groups=groups)
    contrasts = [corrected_contrast(image, pixel_size_A) for image in images]
    picks = trial_picks(contrasts, pixel_size_A, params)
    step = max(params.gap_trial_step, 1)
    rows = list(zip(params.scale_trials_A, picks, strict=True))[::step]
    return [exclusion_gap(contrasts, per, pixel_size_A, trial, params) for trial, per in rows]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fields", type=int, default=4, help="synthetic fields per case")
    parser.add_argument("--null-sessions", type=int, default=0, help="only the null summary")
    args = parser.parse_args(argv)
    if args.null_sessions:
        print(
            "| null session | trials measured | deepest | trials >= 4 (trial: gap Å, depth "
            "(relative depth)) | gap diameter at threshold |"
        )
        print("| --- | --- | --- | --- | --- |")
        null_summary(args.null_sessions, args.fields)
        return 0
    n = args.fields
    cases: dict[str, tuple[list[np.ndarray], float, str]] = {
        "white noise": (
            [np.random.default_rng(s).normal(100, 10, (512, 512)) for s in range(n)],
            4.0,
            "none",
        ),
        "smoothed 8-bit noise": ([smoothed_noise(s) for s in range(n)], 4.0, "none"),
        "sparse discs (120 Å, 8 per field)": (
            [_dark_discs(s, 120.0, 4.0, n=8) for s in range(n)],
            4.0,
            "none",
        ),
        "sparse ellipses (120 Å, 12 per field)": (
            [_ellipse_field(s, 120.0, 12) for s in range(n)],
            4.0,
            "none",
        ),
        "dense ellipses (120 Å long axis)": (
            [_ellipse_field(s, 120.0, None) for s in range(2)],
            4.0,
            "120",
        ),
    }
    for example in real_examples():
        if example.path.name.startswith("magellon"):
            cases["Magellon rings (real)"] = ([example.read()], example.pixel_size_A, "120")
        if example.path.name.endswith("14_33_35_0.jpg"):
            binned, pixel_A = bin_to_pixel_size(
                example.read(), example.pixel_size_A, 2 * example.pixel_size_A
            )
            cases["EMPIAR-10017, one export 2x binned (real)"] = ([binned], pixel_A, "180")
    print(
        "| case | truth Å | error from | depth by trial (trial Å: gap Å, depth) | gap diameter at 20 / 10 / 6 |"
    )
    print("| --- | --- | --- | --- | --- |")
    for name, (images, pixel_A, truth) in cases.items():
        for groups in GROUPS:
            found = measures(images, pixel_A, groups)
            depth = "; ".join(
                f"{m.trial_diameter_A:.0f}: {m.diameter_A:.0f}, {m.significance:.1f} "
                f"({m.relative_depth:.3f})"
                for m in found
                if np.isfinite(m.diameter_A)
            )
            answers = []
            for threshold in (20.0, 10.0, 6.0):
                gap = gap_diameter(found, replace(DiameterParams(), gap_min_significance=threshold))
                answers.append("none" if gap is None else f"{gap[0]:.0f} ± {gap[1]:.0f}")
            print(f"| {name} | {truth} | {groups} | {depth} | {' / '.join(answers)} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
