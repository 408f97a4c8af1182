"""The diameter against particle SNR and defocus, and where its picks sit on the particles.

    python bench/diameter_snr.py [--sizes 90 150 300] [--layouts globular domains] [--micrographs 8]

Every other diameter measurement in bench/ draws the particle SNR from the simulator's default
range (0.02-0.08). Here it is a varied factor, with defocus: for each particle size and layout
(``globular``: residues uniform in a sphere, no internal structure; ``domains``: four compact
domains, elongation 1.4), sessions of 768² frames at D/50 Å/px and 20 % coverage, defocus 0.8-1.0
or 2.6-2.8 µm, SNR 0.02-0.08 (the default, about EMPIAR-10017's particle contrast over noise in
`realism.py`) or 0.3-0.4. Printed per session (true CTFs as fits, as ``diameter_examples.py``):

- the stage's estimate over the particle's longest dimension (`longest_extent_A`, 99 % of the
  mass) and the method;
- at the scale-space trial nearest D, the share of the boxes the spread profile uses that lie
  within half a diameter of a true particle, and the median distance of those from its centre
  before and after `centre_boxes` (the pick localisation error);
- the spread edge at true particle positions (no pick error) at a trial of D, with the stage's
  centring and without it.
"""

from __future__ import annotations

import argparse
import itertools
import time
from dataclasses import replace

import numpy as np
from scipy.spatial import cKDTree

from screen.processing.boxes import extract_boxes
from screen.processing.filters import bin_to_pixel_size, lowpass
from screen.simulate.render import render_micrograph
from screen.simulate.session import session_models, session_plans
from screen.simulate.spec import ScreenSpec, SessionSpec, SpeciesSpec, StructureSpec
from screen.simulate.structures import longest_extent_A
from screen.stages import diameter as dm
from screen.stages.records import CtfFit, Optics, Picks

DEFOCI_UM = ((0.8, 1.0), (2.6, 2.8))
SNRS = ((0.02, 0.08), (0.3, 0.4))
COVERAGE = 0.2


def session(
    diameter_A: float,
    layout: str,
    defocus_um,
    snr,
    n: int,
    frame_px: int = 768,
    structure_seed: int = 7,
) -> tuple[list[np.ndarray], float, Optics, list[CtfFit], list, float]:
    """Good micrographs of one session, their true CTFs, plans and the particle's longest extent."""
    pixel_A = diameter_A / 50.0
    density = COVERAGE / (np.pi / 4 * (diameter_A / 1e4) ** 2)  # particles per µm²
    structure = StructureSpec(
        f"{layout}_{diameter_A:.0f}",
        diameter_A,
        150.0 * (diameter_A / 120.0) ** 3,
        "C1",
        n_domains=4,
        elongation=1.0 if layout == "globular" else 1.4,
        seed=structure_seed,
        layout=layout,
    )
    spec = ScreenSpec(
        (
            SessionSpec(
                "snr",
                (SpeciesSpec(structure),),
                n + 2,
                particles_per_um2=density,
                defocus_um=defocus_um,
                particle_snr=snr,
            ),
        ),
        frame_px=(frame_px, frame_px),
        pixel_size_A=pixel_A,
        seed=5,
    )
    models = session_models(spec.sessions[0])
    plans = [p for p in session_plans(spec, 0) if p.reason == "good"][:n]
    images = [render_micrograph(p, models, spec.frame_px, pixel_A).counts for p in plans]
    optics = Optics(pixel_A, spec.voltage_kV, spec.cs_mm, spec.amplitude_contrast)
    fits = [
        CtfFit(p.ctf.defocus_u_A, p.ctf.defocus_v_A, p.ctf.astigmatism_angle_deg, 6.0, 1.0)
        for p in plans
    ]
    return images, pixel_A, optics, fits, plans, longest_extent_A(models[0])


def pick_offsets(contrasts, picks: list[Picks], plans, pixel_A: float, trial_A: float, params):
    """Share of the gap stack's boxes on a particle, and their median offset before/after centring.

    The boxes are those `exclusion_gap` uses at ``trial_A`` (best scores first, at most
    ``gap_max_boxes``), centred as it centres them.
    """
    binned_A = max(pixel_A, trial_A / params.average_diameter_px)
    box_px = max(int(round(params.gap_box_diameters * trial_A / binned_A / 2)) * 2, 8)
    margin = int(round(params.max_shift_diameters * trial_A / binned_A))
    smooths, xs, ys, owners, scores, true_x, true_y = [], [], [], [], [], [], []
    for k, (contrast, found, plan) in enumerate(zip(contrasts, picks, plans, strict=True)):
        binned, binned_A = bin_to_pixel_size(contrast, pixel_A, binned_A)
        smooths.append(lowpass(binned, binned_A, params.lowpass_diameters * trial_A))
        scale = binned.shape[1] / contrast.shape[1]
        x, y = found.x_px * scale, found.y_px * scale
        centres = np.column_stack([plan.particle_x_A, plan.particle_y_A]) / binned_A
        _, nearest = cKDTree(centres).query(np.column_stack([x, y]))
        xs.append(x)
        ys.append(y)
        owners.append(np.full(len(found), k))
        scores.append(found.score)
        true_x.append(centres[nearest, 0])
        true_y.append(centres[nearest, 1])
    order = np.argsort(-np.concatenate(scores), kind="stable")[: params.gap_max_boxes]
    x, y, owner, tx, ty = (np.concatenate(v)[order] for v in (xs, ys, owners, true_x, true_y))
    stack = np.empty((len(x), box_px + 2 * margin, box_px + 2 * margin), np.float32)
    for k, smooth in enumerate(smooths):
        mine = owner == k
        stack[mine] = extract_boxes(smooth, x[mine], y[mine], box_px + 2 * margin, fill=0.0)
    _, shifts = dm.centre_boxes(stack, box_px, params.centring_iterations)
    before = np.hypot(x - tx, y - ty) * binned_A
    after = np.hypot(x + shifts[:, 0] - tx, y + shifts[:, 1] - ty) * binned_A
    on = before < 0.5 * trial_A
    if not on.any():
        return 0.0, float("nan"), float("nan")
    return float(on.mean()), float(np.median(before[on])), float(np.median(after[on]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[90.0, 150.0, 300.0])
    parser.add_argument("--layouts", nargs="+", default=["globular", "domains"])
    parser.add_argument("--micrographs", type=int, default=8)
    args = parser.parse_args(argv)
    params = dm.DiameterParams()
    print(
        "| layout | D Å (longest) | defocus µm | SNR | estimate / longest (method) | boxes on "
        "particles at trial ~D | offset Å before / after centring | true positions: edge / "
        "longest, centred / not | seconds |"
    )
    print("| --- " * 9 + "|")
    for layout, diameter_A, defocus, snr in itertools.product(
        args.layouts, args.sizes, DEFOCI_UM, SNRS
    ):
        start = time.perf_counter()
        images, pixel_A, optics, fits, plans, longest = session(
            diameter_A, layout, defocus, snr, args.micrographs
        )
        estimate = dm.estimate_diameter(images, pixel_A, params, fits, optics)
        contrasts = [
            dm.corrected_contrast(i, pixel_A, f, optics) for i, f in zip(images, fits, strict=True)
        ]
        trials = np.asarray(params.scale_trials_A)
        nearest = int(np.argmin(np.abs(np.log(trials / diameter_A))))
        picks = dm.trial_picks(
            contrasts, pixel_A, replace(params, scale_trials_A=(trials[nearest],))
        )[0]
        on, before, after = pick_offsets(contrasts, picks, plans, pixel_A, trials[nearest], params)
        true = [
            Picks(p.particle_x_A / pixel_A, p.particle_y_A / pixel_A, np.ones(p.n_particles))
            for p in plans
        ]
        edges = [
            dm.exclusion_gap(
                contrasts, true, pixel_A, diameter_A, replace(params, centring_iterations=it)
            ).edge_diameter_A
            / longest
            for it in (params.centring_iterations, 0)
        ]
        print(
            f"| {layout} | {diameter_A:.0f} ({longest:.0f}) | {defocus[0]}-{defocus[1]} | "
            f"{snr[0]}-{snr[1]} | {estimate.diameter_A / longest:.2f} ({estimate.method}) | "
            f"{on:.2f} | {before:.0f} / {after:.0f} | {edges[0]:.2f} / {edges[1]:.2f} | "
            f"{time.perf_counter() - start:.0f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
