"""Particle diameter from centred, unaligned averages of picks (Li et al. 2020, SPEC §2.3).

For each trial diameter (log-spaced), micrographs are picked at that scale, boxes of two trial
diameters are cut around the picks from a low-passed copy, and averaged without rotational
alignment: the average of many particles in random in-plane orientations is a round dark blob. A
Canny detector finds the blob's edge; the edge diameter times ``edge_factor`` is that trial's
estimate. The answer is the self-consistent trial: where the estimate crosses the trial diameter
(the fixed point of "pick at D, measure D'"), interpolated in log space.

Two steps aim at making the average the particles' and not the picker's:

1. When the micrographs' CTFs are given, each micrograph is phase-flipped first (its spectrum
   multiplied by ``sign(-CTF)``), so the averaged boxes carry no CTF fringes.
2. The boxes are centred before averaging: a few rounds of translational alignment (FFT
   cross-correlation within a small shift range, no rotation) of every box to the rotationally
   symmetrised average.

The low-pass filter scales with the trial diameter, so the measure is the same at every particle
size (a fixed resolution would blur small particles relatively more than big ones).

Limitations (measured on the simulator's P-Rex1 sessions, 512² at 2.5 Å/px): the estimate is
not yet reliable. Phase flipping does not move the picks (the picker's band lies below the first
CTF zero); the picks sit ~0.16 diameters off the particles' centres, on a compact dark feature,
so the plain average is a narrow core whatever the trial diameter, and translational centring on
the average (the default) or on a disc only partly removes it. With 10 good micrographs (true
CTFs) the estimates were 1.03, 0.71, 1.04, 1.03, 1.74 and 0.87 x the true diameter on the six
sessions, and 1.37 x on a 250 Å particle; the fixed point is fragile and moves with the number
of micrographs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import fft as sfft
from skimage.feature import canny

from screen.processing.boxes import extract_boxes, radial_profile
from screen.processing.filters import bin_to_pixel_size, lowpass
from screen.stages.base import Backend
from screen.stages.extraction import phase_flip
from screen.stages.picking import PickParams, pick_particles
from screen.stages.records import CtfFit, DiameterEstimate, Optics, Picks


@dataclass(frozen=True)
class DiameterParams:
    """Parameters of the diameter estimate.

    Attributes
    ----------
    trial_diameters_A
        Diameters to pick with (log-spaced 60–400 Å by default).
    max_micrographs
        Use at most this many micrographs (the first ones given).
    box_diameters
        Box of the average, in trial diameters.
    average_diameter_px
        The trial diameter in pixels of the average (sets its binning).
    lowpass_diameters
        Low-pass filter of the boxes before averaging, in trial diameters.
    min_score_sigma
        Only picks scoring at least this (in the picker's noise sigmas) are averaged: weak picks
        sit on noise maxima, whose average is the picker's own kernel, not the particle.
    max_boxes
        Average at most this many boxes per trial (the best-scoring picks).
    centring_iterations
        Rounds of translational alignment to the symmetrised average (0: plain average).
    max_shift_diameters
        Largest centring shift along x and y, in trial diameters.
    canny_sigma_px
        Gaussian smoothing of the Canny detector, in pixels of the average.
    edge_factor
        Diameter = Canny edge diameter x this factor. Li et al. (2020) use 1.5 on crYOLO picks
        of uncorrected micrographs. Averaged at the TRUE particle positions of simulated
        sessions (phase-flipped, low-passed to ``lowpass_diameters``), the edge lies at
        0.50–0.54 of the particle's largest extent (the sphere enclosing every atom) for
        particles of 140–250 Å, hence 1.9. With picked (not true) positions the edge is less
        reliable: see the module's limitations.
    phase_flip
        Phase-flip the micrographs with their CTFs, when CTFs are given.
    pick
        Picker parameters used at every trial diameter.
    """

    trial_diameters_A: tuple[float, ...] = tuple(
        float(d) for d in np.round(np.geomspace(60.0, 400.0, 9), 1)
    )
    max_micrographs: int = 10
    box_diameters: float = 2.0
    average_diameter_px: float = 32.0
    lowpass_diameters: float = 0.15
    min_score_sigma: float = 4.0
    max_boxes: int = 2000
    centring_iterations: int = 3
    max_shift_diameters: float = 0.2
    canny_sigma_px: float = 2.0
    edge_factor: float = 1.9
    phase_flip: bool = True
    pick: PickParams = field(default_factory=PickParams)


@dataclass(frozen=True)
class TrialAverage:
    """The centred average at one trial diameter and the diameter measured on it."""

    trial_diameter_A: float
    n_picks: int
    average: np.ndarray
    pixel_size_A: float
    edge_diameter_A: float  # NaN when no edge was found


def corrected_contrast(
    image: np.ndarray,
    pixel_size_A: float,
    ctf: CtfFit | None = None,
    optics: Optics | None = None,
) -> np.ndarray:
    """``image / median - 1`` (particles dark), phase-flipped with ``ctf`` when it is given."""
    image = np.asarray(image, dtype=np.float32)
    median = float(np.median(image))
    contrast = image / (median if median != 0 else 1.0) - 1.0
    if ctf is None:
        return contrast.astype(np.float32)
    return phase_flip(contrast, pixel_size_A, ctf, optics or Optics(pixel_size_A))


def symmetrised(image: np.ndarray) -> np.ndarray:
    """Rotational average of a square image about pixel ``(n // 2, n // 2)``, as an image.

    The mean of the outer ring (beyond ``0.45 n``) is subtracted, so the background is zero.
    """
    n = image.shape[0]
    profile = radial_profile(image)
    y, x = np.indices(image.shape)
    radius = np.hypot(x - n // 2, y - n // 2)
    out = np.interp(radius, np.arange(len(profile)), profile)
    outer = radius >= 0.45 * n
    background = float(out[outer].mean()) if outer.any() else 0.0
    return (out - background).astype(np.float32)


def centre_boxes(stack: np.ndarray, box_px: int, iterations: int) -> tuple[np.ndarray, np.ndarray]:
    """Centre boxes on their common rotationally symmetric average by translation only.

    Parameters
    ----------
    stack
        ``(n, B, B)`` boxes, larger than ``box_px`` by twice the largest shift.
    box_px
        Size of the centred boxes (``B - box_px`` even).
    iterations
        Rounds of: symmetrise the average, cross-correlate every box with it over the allowed
        shifts, re-cut each box at its best shift, re-average.

    Returns
    -------
    boxes : ndarray
        ``(n, box_px, box_px)`` centred boxes.
    shifts : ndarray
        ``(n, 2)`` shifts (dx, dy) in pixels applied to each box's centre.
    """
    n, big, _ = stack.shape
    margin = (big - box_px) // 2
    offsets = np.full((n, 2), margin, dtype=int)
    if n == 0 or margin <= 0 or iterations <= 0:
        return _crop(stack, offsets, box_px), offsets - margin
    spectra = sfft.rfft2(stack, workers=-1)
    for _ in range(iterations):
        average = _crop(stack, offsets, box_px).mean(axis=0)
        reference = np.zeros((big, big), dtype=np.float32)
        reference[:box_px, :box_px] = symmetrised(average)
        cc = sfft.irfft2(spectra * np.conj(sfft.rfft2(reference)), s=(big, big), workers=-1)
        window = cc[:, : 2 * margin + 1, : 2 * margin + 1].reshape(n, -1)
        best = np.argmax(window, axis=1)
        new = np.column_stack([best % (2 * margin + 1), best // (2 * margin + 1)])
        if np.array_equal(new, offsets):
            break
        offsets = new
    return _crop(stack, offsets, box_px), offsets - margin


def _crop(stack: np.ndarray, offsets: np.ndarray, box_px: int) -> np.ndarray:
    """Boxes of ``box_px`` cut from ``stack`` at per-box offsets ``(x0, y0)``."""
    out = np.empty((len(stack), box_px, box_px), dtype=np.float32)
    for i, (x0, y0) in enumerate(offsets):
        out[i] = stack[i, y0 : y0 + box_px, x0 : x0 + box_px]
    return out


def centred_average(
    contrasts: list[np.ndarray],
    pixel_size_A: float,
    trial_diameter_A: float,
    params: DiameterParams,
) -> TrialAverage:
    """Pick every (corrected) contrast image at ``trial_diameter_A``; average centred boxes.

    ``contrasts`` are ``corrected_contrast`` images (particles dark, background 0).
    """
    binned_px = max(pixel_size_A, trial_diameter_A / params.average_diameter_px)
    box_px = max(int(round(params.box_diameters * trial_diameter_A / binned_px / 2)) * 2, 8)
    collected, scores = [], []
    for contrast in contrasts:
        picks = pick_particles(1.0 + contrast, pixel_size_A, trial_diameter_A, params.pick)
        confident = picks.score >= params.min_score_sigma
        picks = Picks(picks.x_px[confident], picks.y_px[confident], picks.score[confident])
        if len(picks) == 0:
            continue
        binned, binned_px = bin_to_pixel_size(contrast, pixel_size_A, binned_px)
        smooth = lowpass(binned, binned_px, params.lowpass_diameters * trial_diameter_A)
        margin = int(round(params.max_shift_diameters * trial_diameter_A / binned_px))
        x = picks.x_px * binned.shape[1] / contrast.shape[1]
        y = picks.y_px * binned.shape[0] / contrast.shape[0]
        collected.append(extract_boxes(smooth, x, y, box_px + 2 * margin, fill=0.0))
        scores.append(picks.score)
    if not collected:
        empty = np.zeros((box_px, box_px), dtype=np.float32)
        return TrialAverage(trial_diameter_A, 0, empty, binned_px, float("nan"))
    stack = np.concatenate(collected)
    order = np.argsort(-np.concatenate(scores), kind="stable")[: params.max_boxes]
    boxes, _ = centre_boxes(stack[order], box_px, params.centring_iterations)
    average = boxes.mean(axis=0)
    edge_px = blob_edge_diameter_px(average, params.canny_sigma_px)
    return TrialAverage(
        trial_diameter_A, len(boxes), average.astype(np.float32), binned_px, edge_px * binned_px
    )


def blob_edge_diameter_px(average: np.ndarray, sigma_px: float) -> float:
    """Diameter (px) of the Canny edge around the centre of a round blob; NaN when none.

    The blob's boundary is where its radial profile first changes sign (it meets the background);
    the Canny edge pixels within two smoothing widths of that radius give the edge.
    """
    n = average.shape[0]
    image = (average - average.mean()) / (average.std() + 1e-12)
    edges = canny(image, sigma=sigma_px)
    y, x = np.nonzero(edges)
    radius = np.hypot(x - n // 2, y - n // 2)
    inside = (radius >= 1.0) & (radius < 0.45 * n)
    if not inside.any():
        return float("nan")
    profile = radial_profile(image)
    inner = profile[0] if profile[0] != 0 else -1.0
    outside = np.nonzero(np.sign(profile) != np.sign(inner))[0]
    boundary = float(outside[0]) if len(outside) else 0.45 * n
    near = np.abs(radius[inside] - boundary) <= max(2.0 * sigma_px, 2.0)
    if not near.any():
        return float("nan")
    return float(2.0 * np.median(radius[inside][near]))


def estimate_diameter(
    images: list[np.ndarray],
    pixel_size_A: float,
    params: DiameterParams,
    ctfs: list[CtfFit] | None = None,
    optics: Optics | None = None,
) -> DiameterEstimate:
    """Estimate the particle diameter from a few micrographs.

    Parameters
    ----------
    images
        Micrographs of one session (the first ``params.max_micrographs`` are used; good ones
        give the most reliable answer).
    pixel_size_A
        Their pixel size.
    params
        Trial diameters, centring, Canny smoothing, edge factor, picker parameters.
    ctfs
        CTF fit of each micrograph, in the same order (``None``: no phase flip; the estimate is
        then less reliable, as picks land on CTF fringes).
    optics
        Voltage, Cs and amplitude contrast for the phase flip (default: 300 kV, 2.7 mm, 0.1).

    Returns
    -------
    DiameterEstimate
        The diameter, the edge diameter it came from, and the average the edge was found on.
    """
    subset = list(images)[: params.max_micrographs]
    if not subset:
        raise ValueError("estimate_diameter needs at least one micrograph")
    if ctfs is not None and len(ctfs) < len(subset):
        raise ValueError(f"{len(subset)} micrographs but only {len(ctfs)} CTF fits")
    flip = params.phase_flip and ctfs is not None
    contrasts = [
        corrected_contrast(image, pixel_size_A, ctfs[i] if flip else None, optics)
        for i, image in enumerate(subset)
    ]
    trials = [centred_average(contrasts, pixel_size_A, d, params) for d in params.trial_diameters_A]
    chosen, diameter_A = self_consistent_diameter(trials, params.edge_factor)
    return DiameterEstimate(
        diameter_A=float(diameter_A),
        edge_diameter_A=float(diameter_A / params.edge_factor),
        average=chosen.average,
        pixel_size_A=chosen.pixel_size_A,
    )


def self_consistent_diameter(
    trials: list[TrialAverage], edge_factor: float
) -> tuple[TrialAverage, float]:
    """Fixed point of trial diameter -> measured diameter, and the trial nearest to it.

    ``log(measured / trial)`` is interpolated between trials; the first crossing from above to
    below zero (picking larger than the particle gives a smaller measure) is the answer. Without
    a crossing, the trial whose measure is closest to itself is taken.
    """
    valid = [t for t in trials if np.isfinite(t.edge_diameter_A) and t.n_picks > 0]
    if not valid:
        raise ValueError("no trial diameter gave picks with a detectable edge")
    trial = np.log([t.trial_diameter_A for t in valid])
    measured = np.log([t.edge_diameter_A * edge_factor for t in valid])
    gap = measured - trial
    for i in range(len(valid) - 1):
        if gap[i] >= 0 > gap[i + 1]:
            w = gap[i] / (gap[i] - gap[i + 1])
            diameter = float(np.exp(trial[i] + w * (trial[i + 1] - trial[i])))
            nearest = valid[i] if w < 0.5 else valid[i + 1]
            return nearest, diameter
    best = int(np.argmin(np.abs(gap)))
    return valid[best], float(np.exp(measured[best]))


BACKEND = Backend(
    stage="diameter",
    name="builtin",
    version="2",
    params_type=DiameterParams,
    compute=estimate_diameter,
)
