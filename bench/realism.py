"""Simulated beside real micrographs, by numbers: spectrum shape, grey-level histogram, particle contrast.

    python bench/realism.py [--folder ../shared/real_examples]

For every real example of ``shared/real_examples`` (at the pixel size its README gives) and for a
simulated look-alike of each kind, rendered at the same pixel size and field of view (raw counts,
and through the export the real images went through: a denoise and an 8-bit JPEG for
EMPIAR-10017), prints one row of:

* **spectrum shape**: log10 of the rotationally averaged power at 1/40, 1/20 and 1/12 1/Å and at
  Nyquist, relative to the power at 1/100 1/Å (a denoised image falls steeply; raw counts flatten
  to the shot-noise floor);
* **histogram**: robust skewness ``(q95 + q5 - 2 q50) / (q95 - q5)``, excess kurtosis, the share of
  pixels beyond 4 robust standard deviations, and the number of distinct grey levels;
* **particle contrast**: where particle centres are known (the picks beside EMPIAR-10017 images;
  ground truth for simulated ones), the mean inside the particles minus the background median,
  over the background's robust standard deviation, after a 20 Å low-pass.

Numbers a simulator has to match before it can be called realistic; the look-alikes are not
tuned to them.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from screen.io.real_examples import REAL_EXAMPLES_DIR, real_examples
from screen.processing.filters import lowpass, robust_location_scale
from screen.processing.fourier import periodogram_average, rotational_average
from screen.simulate import domain
from screen.simulate.render import render_micrograph
from screen.simulate.session import session_models, session_plans
from screen.simulate.spec import ScreenSpec, SessionSpec, SpeciesSpec, StructureSpec

SPECTRUM_K_A = (1 / 40, 1 / 20, 1 / 12)
REFERENCE_K_A = 1 / 100


@dataclass(frozen=True)
class Statistics:
    """The realism numbers of one image."""

    spectrum: tuple[float, ...]  # log10 P(k) / P(1/100 Å) at SPECTRUM_K_A and Nyquist
    skewness: float
    kurtosis: float
    tails: float
    grey_levels: int
    particle_contrast: float | None


def image_statistics(
    image: np.ndarray, pixel_size_A: float, centres_px: np.ndarray | None, diameter_A: float
) -> Statistics:
    image = np.asarray(image, np.float32)
    power = periodogram_average(image, tile_px=min(512, min(image.shape) // 2))
    k_A, values = rotational_average(power, pixel_size_A)
    log_power = np.log10(np.maximum(values, 1e-30))
    reference = np.interp(REFERENCE_K_A, k_A, log_power)
    nyquist = 0.5 / pixel_size_A
    shape = [
        float(np.interp(k, k_A, log_power) - reference) if k < nyquist else float("nan")
        for k in SPECTRUM_K_A
    ]
    shape.append(float(log_power[-2] - reference))
    sample = image[:: max(1, image.shape[0] // 1024), :: max(1, image.shape[1] // 1024)].ravel()
    q5, q50, q95 = np.percentile(sample, [5, 50, 95])
    centre, scale = robust_location_scale(sample)
    standard = (sample - sample.mean()) / max(float(sample.std()), 1e-12)
    contrast = None
    if centres_px is not None and len(centres_px):
        smooth = lowpass(image, pixel_size_A, 20.0)
        yy, xx = np.indices(image.shape)
        step = 2  # every other pixel is enough
        points = np.column_stack([xx[::step, ::step].ravel(), yy[::step, ::step].ravel()])
        distance, _ = cKDTree(centres_px).query(points)
        radius_px = 0.5 * diameter_A / pixel_size_A
        values_sub = smooth[::step, ::step].ravel()
        inside = values_sub[distance < 0.7 * radius_px]
        outside = values_sub[distance > 1.3 * radius_px]
        if len(inside) and len(outside) > 100:
            background, noise = robust_location_scale(outside)
            contrast = float((inside.mean() - background) / noise)
    return Statistics(
        tuple(shape),
        float((q95 + q5 - 2 * q50) / max(q95 - q5, 1e-12)),
        float(np.mean(standard**4) - 3.0),
        float(np.mean(np.abs(sample - centre) > 4 * scale)),
        int(len(np.unique(sample[:200_000]))),
        contrast,
    )


def _render(structure: StructureSpec, frame_px, pixel_size_A, reason="good", snr=(0.05, 0.05)):
    """One rendered micrograph and its particle centres (px)."""
    session = SessionSpec(
        "lookalike",
        (SpeciesSpec(structure),),
        1,
        bad_mix={reason: 1.0} if reason != "good" else {},
        particles_per_um2=0.3e8 / (np.pi / 4 * structure.diameter_A**2),
        defocus_um=(1.5, 2.5),
        particle_snr=snr,
        good_contamination_prob=0.0,
        good_carbon_edge_prob=0.0,
    )
    spec = ScreenSpec((session,), frame_px=frame_px, pixel_size_A=pixel_size_A, seed=17)
    (plan,) = session_plans(spec, 0)
    rendered = render_micrograph(plan, session_models(session), frame_px, pixel_size_A)
    centres = np.column_stack([plan.particle_x_A, plan.particle_y_A]) / pixel_size_A
    return rendered.counts, centres


def lookalikes() -> list[tuple[str, np.ndarray, float, np.ndarray | None, float]]:
    """Simulated images beside the real kinds: (label, image, pixel size, centres, diameter)."""
    out = []
    betagal = StructureSpec(
        "beta-gal-like", 180.0, 465.0, "D2", n_domains=3, elongation=1.2, seed=21
    )
    # Per-pixel SNR at 1.77 Å/px of the training spec's 1-Å reference range (0.004-0.1) x 1.77^2.
    for snr in (0.02, 0.15):
        counts, centres = _render(betagal, (2048, 2048), 1.77, snr=(snr, snr))
        out.append((f"simulated β-gal-like, raw counts, SNR {snr:g}", counts, 1.77, centres, 180.0))
        rng = np.random.default_rng(3)
        denoised, _ = domain.gaussian_denoise(counts, 1.77, rng)
        exported, _ = domain.jpeg_round_trip(denoised, 1.77, rng)
        out.append(
            (f"simulated β-gal-like, denoised + JPEG, SNR {snr:g}", exported, 1.77, centres, 180.0)
        )
    ring = StructureSpec("ring-like", 120.0, 480.0, "D4", n_domains=2, elongation=1.0, seed=5)
    counts, centres = _render(ring, (512, 512), 6.32, snr=(0.6, 0.6))
    out.append(("simulated 120-Å particles at 6.32 Å/px, SNR 0.6", counts, 6.32, centres, 120.0))
    small = StructureSpec("small", 100.0, 150.0, "C1", seed=8)
    counts, _ = _render(small, (927, 959), 1.0, reason="contaminated", snr=(0.02, 0.02))
    out.append(("simulated contaminated at 1.0 Å/px", counts, 1.0, None, 100.0))
    return out


def _row(label: str, stats: Statistics) -> str:
    spectrum = " / ".join("–" if np.isnan(v) else f"{v:+.2f}" for v in stats.spectrum)
    contrast = "–" if stats.particle_contrast is None else f"{stats.particle_contrast:+.2f}"
    return (
        f"| {label} | {spectrum} | {stats.skewness:+.2f} | {stats.kurtosis:+.2f} | "
        f"{stats.tails:.4f} | {stats.grey_levels} | {contrast} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=REAL_EXAMPLES_DIR)
    args = parser.parse_args(argv)
    print(
        "| image | log10 P/P(1/100 Å) at 1/40, 1/20, 1/12 Å⁻¹, Nyquist | robust skew | "
        "kurtosis | beyond 4σ | grey levels | particle contrast / noise |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for example in real_examples(args.folder):
        centres = example.picks_xy_px() if example.picks_path else None
        stats = image_statistics(
            example.read(), example.pixel_size_A, centres, example.diameter_A or 150.0
        )
        print(_row(f"real {example.path.name} ({example.pixel_size_A} Å/px)", stats))
    for label, image, pixel_size_A, centres, diameter_A in lookalikes():
        print(_row(label, image_statistics(image, pixel_size_A, centres, diameter_A)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
