"""Which spread-edge plateau's picks make good 2D classes (issue 12's two-plateau dilemma).

    python bench/diameter_plateau_classes.py [--snr-cases ...] [--custom sim_250 ...]

A particle made of domains can give two spread-edge plateaus: its domains' (more trials, so
`spread_edge_diameter` takes it) and its own. Touching spheres can too: theirs and their
clusters'. For each session, every qualifying plateau (`spread_edge_plateaus`, on phase-flipped
micrographs with true CTFs) is grouped with those sharing a trial; each group's plateau of most
trials is a candidate diameter. At each candidate the micrographs are picked and extracted as
`screen run` does (`picked_stack`, `binned_stack`), classified by our 2D at 0.75, 1, 1.5 and 2
times the candidate (seed 1), and the averages judged by `screen run`'s class model; printed: the
share of the picks in good classes at the best of those masks, beside the particle's longest
dimension. Cases: ``diameter_snr.py``'s sessions (layout_size_defocus_snr, e.g.
``domains_300_2.6_0.3``, or with the structure's seed, ``domains_300_2.6_0.3_8``) and ``diameter_examples.py``'s simulated ones (``--custom``).
Measured 2026-12-07 (session 37, bench/README.md): domains' plateaus 0.30-0.49 of their picks in
good classes, whole particles' 0.87-1.00.
"""

from __future__ import annotations

import argparse
import time

import diameter_examples  # bench/ is on sys.path when run as a script
import diameter_snr
import numpy as np

from screen.models.class_examples import ExampleParams
from screen.stages import diameter as dm
from screen.stages.assess_classes import ClassAssessParams, assess_classes, load_class_model
from screen.stages.classify2d import Classify2DParams, classify_2d
from screen.stages.extraction import ExtractParams, binned_stack, picked_stack
from screen.stages.picking import PickParams

MASK_FACTORS = (0.75, 1.0, 1.5, 2.0)
SNR_CASES = ("domains_300_2.6_0.3", "domains_300_0.8_0.3", "globular_90_2.6_0.02")


def candidates(images, pixel_size_A: float, fits, optics, params: dm.DiameterParams) -> list:
    """(diameter, trials) of each group of overlapping qualifying plateaus, smallest first."""
    contrasts = [
        dm.corrected_contrast(i, pixel_size_A, f, optics) for i, f in zip(images, fits, strict=True)
    ]
    picks = dm.trial_picks(contrasts, pixel_size_A, params)
    measures = [
        dm.exclusion_gap(contrasts, found, pixel_size_A, trial_A, params)
        for trial_A, found in zip(params.scale_trials_A, picks, strict=True)
    ]
    groups: list[tuple[set, float, int]] = []
    plateaus = sorted(dm.spread_edge_plateaus(measures, params), key=lambda p: (-len(p[1]), -p[0]))
    for diameter_A, members in plateaus:
        trials = {m.trial_diameter_A for m in members}
        if not any(trials & shared for shared, _, _ in groups):
            groups.append((trials, diameter_A, len(members)))
        else:
            for shared, _, _ in groups:
                if trials & shared:
                    shared |= trials
    return sorted((d, n) for _, d, n in groups)


def good_share(images, fits, optics, diameter_A: float, model, params: ClassAssessParams):
    """Share of the picks at ``diameter_A`` in good classes at the best of `MASK_FACTORS`."""
    stack = picked_stack(images, fits, optics, diameter_A, PickParams(), ExtractParams())
    if stack is None or len(stack.images) < 10:
        return float("nan"), 0
    stack = binned_stack(stack, ExampleParams().max_box_px)
    best = 0.0
    for factor in MASK_FACTORS:
        classes = classify_2d(stack, factor * diameter_A, Classify2DParams(seed=1))
        verdicts = assess_classes(
            classes.averages, factor * diameter_A, classes.pixel_size_A, params, model
        )
        counts = np.bincount(
            classes.assignments[classes.assignments >= 0], minlength=len(verdicts.labels)
        )
        good = sum(
            int(c) for c, label in zip(counts, verdicts.labels, strict=True) if label == "good"
        )
        best = max(best, good / len(stack.images))
    return best, len(stack.images)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snr-cases", nargs="*", default=list(SNR_CASES))
    parser.add_argument("--custom", nargs="*", default=["sim_250", "sim_180"])
    args = parser.parse_args(argv)
    params = dm.DiameterParams()
    class_params = ClassAssessParams()
    model = load_class_model(class_params)
    print("| case | longest dimension Å | plateaus Å (trials) | picks in good classes | seconds |")
    print("| --- " * 5 + "|")
    sessions: list[tuple[str, tuple | None]] = []
    for name in args.snr_cases:
        layout, size, defocus, snr, *seed = name.split("_")
        defocus_um = next(d for d in diameter_snr.DEFOCI_UM if d[0] == float(defocus))
        snr_range = next(s for s in diameter_snr.SNRS if s[0] == float(snr))
        sessions.append((name, (float(size), layout, defocus_um, snr_range, int((seed or [7])[0]))))
    sessions += [(name, None) for name in args.custom]
    for name, snr_session in sessions:
        start = time.perf_counter()
        if snr_session is not None:
            size, layout, defocus_um, snr_range, seed = snr_session
            images, pixel_A, optics, fits, _, longest = diameter_snr.session(
                size, layout, defocus_um, snr_range, 8, structure_seed=seed
            )
        else:
            images, optics, fits, _, _, longest = diameter_examples._custom(name, 10)
            pixel_A = optics.pixel_size_A
        found = candidates(images, pixel_A, fits, optics, params)
        shares = [good_share(images, fits, optics, d, model, class_params) for d, _ in found]
        print(
            f"| {name} | {longest:.0f} | "
            + ", ".join(f"{d:.0f} ({n})" for d, n in found)
            + " | "
            + ", ".join(f"{s:.2f} of {k}" for s, k in shares)
            + f" | {time.perf_counter() - start:.0f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
