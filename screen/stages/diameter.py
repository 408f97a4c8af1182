"""Particle diameter: the spread edge or the exclusion gap where found, else coarse estimates.

Both profile methods need no calibrated factor. Picks made at a sweep of trial diameters are
boxed, the boxes centred on their symmetrised average (pick errors would spread the particle
outwards), and the standard deviation across boxes is taken as a function of the radius
(`exclusion_gap`): high inside the particle (views, internal structure), falling off at its
edge, flat (ice and noise only) until the neighbours begin, where it rises again.

First, the spread edge (`spread_edge_px`, `spread_edge_diameter`): at each trial, the radius
where the profile has fallen to within a tenth of its drop above its minimum. Picks on noise
(or, at small trials, on a particle's domains) give an edge of about the trial's own size;
picks on the particles give one that stays where the particles end whatever the trial. The
median of the largest set of trials that agree within 10 % (at least five trials spanning 1.4x
of trial diameter, beginning at a trial no larger than the measure, one of them with a clear
drop) is the diameter, half their range the uncertainty. Measured (bench/README.md,
2026-12-04, 10 micrographs or fewer): EMPIAR-10017 164 Å for ~180 (0.91, full resolution and
2x binned); simulated P-Rex1 sessions (140-150 Å) 0.85-1.10; simulated particles whose mass
fills one ellipsoid 1.00-1.10 at 120-500 Å, domain structures 0.65-1.05 at 180-500 Å (their
visible core); no plateau (next methods) on the Magellon rings (one sparse micrograph), 60-Å
particles and a sparse 120-Å session.

Outline centres (``symmetry_reach``, `outline_centred_edge`). A blob picker's maximum on a hollow
particle (a shell, a ring) sits on its wall, 0.2-0.4 diameters off centre, beyond what the boxes'
centring recovers, and the spread edge then reads the particle up to 1.5x large (the shells of
bench/independent_sim.py: 1.50). Every stretch of a round outline points at its centre (the fast
radial symmetry transform, `screen.processing.symmetry`). So on CTF-corrected micrographs the
plateau's trials are measured again with their picks moved to their outline centres, and a
plateau that then lies lower (by more than ``edge_agreement``) replaces it; a compact particle's
picks are centred already and its plateau stays. Where no method below finds a diameter either,
the whole sweep is measured from outline centres before the fallback (an octahedral cage of
`screen simulate`: 1.93 by the fallback, 0.86). Applied to every trial of every sweep instead,
it had read the real Magellon rings 1.34 and a domain structure's domains (bench/README.md).

Then the exclusion gap (`gap_diameter`): where the profile's minimum is significant at several
trials and the trials agree, twice its radius is the diameter. It needs neighbours near contact;
it lies between a particle's edge and where its neighbours begin, so spaced fields read large
(simulated P-Rex1 sessions at 30 micrographs: 178 and 217 Å for 140 and 150 Å; EMPIAR-10017
181 Å ± 6 on four 2x-binned micrographs; dense ellipses of long axis 120 Å 136-139 Å).

Then (v12) a short plateau (``edge_short_trials``, method ``"short_plateau"``): a spread edge
that holds over four trials instead of five, under the plateau's other conditions. Less evidence
than a confident estimate, so it carries a caution and never sets the run's common diameter, but
a geometric measure rather than a calibrated factor (a 180-Å particle 1.09x where the fallback
read 1.49x; bench/README.md, 2026-12-07).

The fallback, with factors calibrated on our simulator (``scale_factor``, ``edge_factor``,
``feret_factor``): two coarse estimates, each refined on 2D class averages, the consistent
one kept. The paper's method (Li et al. 2020, SPEC §2.3) is one of the coarse estimates; the
scale-space estimate and the refinement are deviations from the paper.

Coarse estimate 1, the paper's method (``_canny_estimate``). For each trial diameter
(log-spaced), micrographs are phase-flipped, picked at that scale, and boxes of two trial
diameters are cut around the picks, translationally centred and averaged without rotation. A
Canny detector finds the blob's edge; edge x ``edge_factor`` is that trial's estimate, and d0 is
the self-consistent trial (where the estimate crosses the trial diameter, in log space). In
crowded samples the averages at large trials show a ring of neighbours, whose edge the detector
finds: on gbg_60uM it gave 312 Å for 150 Å.

Coarse estimate 2, scale space (``scale_space_diameter``): a high percentile of the picker's
scores (in noise sigmas) as a function of the trial diameter peaks near the particle's scale;
the first clear peak x ``scale_factor`` is d0.

Refinement (``refine_from``, needs the CTFs). Picks sit ~0.16 diameters off the particles'
centres, so a coarse estimate is off by up to ~2x. The refinement picks at d0 (at most
``refine_max_particles``, best scores), extracts phase-flipped boxes of 2.5 d0 (4 Å/px or coarser
so the box stays within ``refine_max_box_px``), removes each box's plane (fitted outside d0: ice
gradients and edges otherwise drive the classification), and runs a quick seeded ``classify_2d``
(4-10 classes, 8 iterations, mask 2 d0): alignment centres the particles. In the most populated
classes (up to 3, each with at least a quarter of the largest's particles) the bright central
object is segmented (Gaussian low-pass of fixed width in pixels, rim median subtracted,
threshold at half the peak, connected component at the centre, rejected if it reaches the mask's
rim) and its maximal Feret diameter is taken; their particle-weighted mean x ``feret_factor`` is
the new estimate. Rounds repeat until one changes the estimate by at most 25%.

Each coarse estimate starts its own refinement (one only when they agree within 25%); the chain
whose last round changed least is kept. A refinement that runs away (the measure grows with the
picking diameter when neighbours enter the boxes) or finds no object loses.

The low-pass and the pixel size are fixed, not scaled with d0: scaled, the measure followed the
trial diameter and the iteration drifted away from the truth.

``feret_factor`` (4.0) was calibrated on two simulator structures that no test uses (120 Å /
120 kDa and 180 Å / 250 kDa, four domains, 512² at 2.5 Å/px; one round from their own coarse
estimate: Feret / diameter = 0.240 and 0.255). It is large because the simulated particles'
mass sits in a few compact domains: at half-peak threshold the class average shows the densest
domains, about a quarter of the enclosing diameter the simulator defines, so the factor is tied
to this kind of structure (real particles with evenly spread mass would need a smaller one).

Measured (10 good micrographs, true CTFs; ratio estimate / truth): the six prex1_small sessions
(512² at 2.5 Å/px) apo_quantifoil 0.92, apo_lacey 0.80, ddm 1.01, lubrol 0.94, gbg_60uM 0.78
(the paper's step alone: 1.33), gbg_6uM 0.78; a 250 Å particle (768² at 3 Å/px) 1.14; a 90 Å
particle (512² at 2 Å/px) 1.53; 16 random structures of 97-258 Å (512² at 2.5 Å/px,
``class_examples.random_session_spec`` seeds 200-215) within 0.7-1.4 for 11 of 16 (on the nine of
them also run with the paper's step + refinement alone: 4 of 9 against its 5 of 9, so the gain
is on crowded mixtures like gbg_60uM, not across the board). Over all 24: 18 within 0.7-1.4.
15-35 s per 512² session on 2 shared cores (two refinements when the coarse estimates differ).

Limitations: particles of 235 Å and more on 1280 Å frames (only ~5 particles across) come out
1.8-2.5x too large, small particles (90 Å) ~1.5x too large (the picker's 4 Å working pixels
and the fixed blur inflate them); the measure is noisy (class averages of ~100-300 particles).
On real particles the refinement runs away: with the gap turned off, four binned EMPIAR-10017
exports (β-galactosidase, 180 Å) give 417-436 Å, and simulated particles with contiguous mass
1.8-2.4x (measured 2026-12-04, bench/README.md): its measure grows with the trial diameter, so
the fixed point of the x ``feret_factor`` chain is ill-conditioned, and a smaller factor collapses
the simulated cases instead. Where the gap is not found, expect real particles up to ~2x large.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import fft as sfft
from scipy import ndimage
from skimage.feature import canny
from skimage.measure import label, regionprops

from screen.processing.boxes import extract_boxes, radial_profile
from screen.processing.ctf import ctf_zero_frequencies_A, electron_wavelength_A
from screen.processing.filters import bin_to_pixel_size, clip_outliers, lowpass, relative_contrast
from screen.processing.symmetry import nearest_symmetry_centres, radial_symmetry_map
from screen.stages.base import Backend, threaded_map
from screen.stages.classify2d import Classify2DParams, classify_2d
from screen.stages.extraction import (
    ExtractParams,
    ctf_params,
    extract_particles,
    phase_flip,
    wiener_correct,
)
from screen.stages.picking import PickParams, pick_particles, working_pixel_size_A
from screen.stages.records import (
    ClassAverages,
    CtfFit,
    DiameterEstimate,
    Optics,
    ParticleStack,
    Picks,
)


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
    wiener_epsilon
        When the phase-flipped micrographs give no spread-edge plateau, or one so small that
        the flip's CTF fringes widen it (`WIENER_DELOCALISATION_SHARE`), the spread edge is
        measured again on micrographs corrected by ``-CTF (1 + e) / (CTF^2 + e)``
        (`screen.stages.extraction.wiener_correct`, ``e`` this value; 0 turns the retry off)
        before the exclusion gap and the fallback. Near the CTF's zeros the flip passes noise at
        full weight; the Wiener gain falls to zero there, which keeps a small particle's edge
        out of the flip's fringes (a 60-Å particle on 1536² frames: 61 Å against 70-78 Å) and
        gives a plateau where the flip found none (simulated 120-Å sessions: 1.05 and 1.09 of
        the diameter, where the flip left them to the fallback's simulator factors). It is not
        the first choice: on 400-500 Å particles it loses the plateau or reads smaller than the
        flip (bench/README.md, diameter, session 13). ``e`` is relative to the CTF's own scale
        (its largest square is 1), not to any image statistic.
    wiener_small_trials
        The Wiener retry's sweep adds this many trials below ``scale_trials_A``'s smallest, at
        its ratio (3: from 35 Å): a 60-Å particle needs five agreeing trials from one no larger
        than itself (on 1536² frames its edges agree at 61-73 Å from trial 35 Å, 1.02 of its
        diameter; from 50 Å there are four). The first sweep does not have them: there the
        domains of a 250-Å structure form the largest plateau (bench/README.md, session 12);
        the retry runs only where the first sweep found none or a small one (within the CTF
        fringes' reach), so no particle-sized plateau competes. CTF-shaped noise at 1-3 µm
        gives no plateau with them either (edge contrast 0.01-0.03).
    pick
        Picker parameters used at every trial diameter and in the refinement. They keep every
        maximum above shot noise (``robust_threshold_sigma=0``): the score curve and the
        refinement were measured with that picker, and the trial picks are a sample of blobs
        at each scale, not a particle set.
    refine_rounds
        Most rounds of refinement by 2D classification (0: the paper's method only).
    refine_tolerance
        Stop refining once a round changes the estimate by at most this fraction.
    refine_max_particles
        Classify at most this many picks (the best-scoring).
    refine_box_diameters
        Extraction box, in current-estimate diameters.
    refine_min_pixel_size_A
        Finest pixel size of the extracted particles.
    refine_max_box_px
        Largest extraction box (a coarser pixel size is used beyond it).
    refine_particles_per_class
        About this many particles per class ...
    refine_classes
        ... within these (min, max) numbers of classes.
    refine_iterations
        Iterations of the 2D classification.
    refine_mask_diameters
        Classification mask, in current-estimate diameters.
    refine_top_classes
        Measure at most this many classes (the most populated with a central object).
    refine_min_class_fraction
        Skip classes with fewer particles than this fraction of the largest measured one.
    measure_lowpass_px
        FWHM of the Gaussian low-pass of the class averages, in their pixels.
    measure_threshold
        Object threshold, as a fraction of the background-subtracted peak.
    feret_factor
        Diameter = particle-weighted mean Feret diameter x this factor (calibrated on simulator
        structures not used in tests; see the module docstring).
    coarse_method
        ``"both"`` (default): the scale-space and the paper's estimates are each refined, and
        the more self-consistent refinement wins (see `estimate_diameter`); ``"scale_space"``
        (`scale_space_diameter`) or ``"canny"`` (the paper's averaged picks and Canny edge,
        `self_consistent_diameter`) alone.
    scale_trials_A
        Trial diameters of the scale-space step (log-spaced).
    scale_percentile
        The pick-score percentile whose curve over trial diameters is searched for its peak.
    scale_drop
        A peak counts once the curve falls this fraction below it (before rising above it).
    scale_min_picks
        A trial needs at least this many picks per micrograph to be scored.
    scale_factor
        Diameter = peak trial diameter x this factor (calibrated on simulated sessions of random
        structures that no test uses; see `scale_space_diameter`).
    use_spread_edge
        Try the spread edge first (`spread_edge_diameter`; False: the gap, then the fallback).
    edge_depth
        The spread edge is where the spread profile has fallen to within this fraction of its
        inner drop above its minimum (`spread_edge_px`): where the particle's variation has
        died out, blur included. Chosen on EMPIAR-10017 (β-galactosidase) and three P-Rex1
        simulated sessions beside the half depth and the steepest descent (which read
        0.55-1.05 of the diameter over the cases of bench/README.md); it is a property of
        the profile's shape (a fraction of its own drop), not of any image scale.
    edge_min_contrast
        A trial's spread edge counts only where the spread falls by at least this fraction of
        its minimum (`GapMeasure.edge_contrast`) ...
    edge_strong_contrast
        ... and a plateau needs one trial that falls by at least this fraction. Detection
        thresholds, not scales (they decide whether edges are used, never where they lie).
        Picks in a textured background without particles (lacey carbon, ice: the CTF gives
        it a scale, and picks on it make a plateau of edges near three times the first zero's
        period, e.g. 59 Å at 1.5 µm) fall by 0.01-0.03 at every trial; particles by 0.02-0.06
        at the plateau's smallest trials and up to 0.04-1.0 at its largest (coarser boxes leave
        less noise: a 500-Å particle at 5 Å/px reaches 0.04, most simulated ones 0.06-1.0,
        EMPIAR-10017 0.11-0.30; measured 2026-12-04, bench/README.md). 0.05 first, lowered to
        0.04 for the 500-Å particle; texture stays at 0.03 or below.
    edge_agreement
        Trials whose spread edges agree within this fraction of each other form a plateau ...
    edge_min_trials
        ... which needs at least this many trials ...
    edge_min_span
        ... spanning at least this ratio of trial diameters (the measure does not follow the
        trial over it; picks on noise make edges of about their own trial's size).
    edge_short_trials
        Where no method finds a diameter (no plateau of ``edge_min_trials``, no gap, none from
        outline centres), a plateau of this many trials (under the same other conditions) is
        taken before the calibrated fallback, as method ``"short_plateau"``, with a caution
        (`fallback_caution`); 0 skips it. A geometric measure on less evidence rather than a
        calibrated factor: measured (bench/README.md, 2026-12-07) on the 15 held-out class
        sessions it replaced the fallback's 1.49x with 1.09x for a 180-Å particle whose ten
        512² fields hold 116-487 picks per trial, and changed nothing else; of 32 null sessions
        (no particles) it answers one, white noise, 195 Å where the scale-space fallback said
        364 Å (a session without particles gets a size either way, with a caution).
    use_gap
        Try the exclusion gap (False: the coarse estimates and refinement only).
    gap_trial_step
        The spread edge and the exclusion gap (`exclusion_gap`) are measured at every
        this-many scale-space trial (1: all; the edge's plateau needs them).
    gap_box_diameters
        Box of the gap's stack, in trial diameters (room for the neighbours beyond the gap).
    gap_max_boxes
        Use at most this many boxes per trial (the best-scoring picks).
    gap_min_boxes
        A trial needs this many boxes: the gap's significance comes from two half stacks.
    gap_min_significance
        A gap counts when the spread profile rises on both sides of its minimum by this many
        standard errors (split-half estimate). A detection threshold, not a scale: it decides
        whether the gap is used, never the diameter. Set before the Magellon and most
        simulated cases were measured, between the gaps of simulated sessions (up to 11 at
        most trials) and EMPIAR-10017's (15-77 after centring). Single trials pass it by
        chance (23 on a simulated 250 Å session, 30 on Magellon): ``gap_min_trials``
        agreeing ones are required as well; see `exclusion_gap`. On 32 null sessions (noise,
        sparse discs and ellipses; bench/diameter_gap_null.py) one passes it: identical 80-Å
        discs, 35 per 2,048-Å field, give a false 132 Å (a known limit).
    gap_error_groups
        The gap's standard error comes from this many interleaved sub-stacks (`spread_profile`):
        2 (half stacks, one degree of freedom, optimistic) as calibrated; 8 gives the honest
        scatter on noise but changed no null decision (bench/diameter_gap_null.py).
    gap_min_trials
        The gap must be found at this many trial diameters ...
    gap_agreement
        ... whose diameters agree within this fraction of their median (self-consistency: the
        measure must not follow the trial).
    symmetry_reach
        Where the spread edge found a plateau on CTF-corrected micrographs, its trials are
        measured again with their picks moved to the strongest centre of radial symmetry within
        this many trial diameters (`outline_centred_edge`; 0: not). A blob picker's maximum on a
        hollow particle (a shell, a ring) or a lobed one sits on a wall or a lobe, 0.2-0.4
        diameters off centre, and the spread of such boxes reads the particle up to 1.5x too
        large; every stretch of a round outline points at its centre. 0.4: wall picks lie within
        it; further, a pick could be moved to a neighbour.
    seed
        Seed of the 2D classification.
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
    wiener_epsilon: float = 0.1
    wiener_small_trials: int = 3
    # The sweep's picks keep the band-pass they were measured with (0.5 diameters; the picking
    # stage's default became 0.8 on 2026-12-05) and the absolute dark limit (dropped from the
    # stage's default on 2026-12-06; without it here the synthetic discs measured 158 Å for 120
    # and the hollow cage lost its outline centring, tests/stages/test_diameter.py): every
    # plateau and factor of this module was measured with both.
    pick: PickParams = field(
        default_factory=lambda: PickParams(
            robust_threshold_sigma=0.0, lowpass_fraction=0.5, dark_limit_contrast=0.08
        )
    )
    refine_rounds: int = 2
    refine_tolerance: float = 0.25
    refine_max_particles: int = 1500
    refine_box_diameters: float = 2.5
    refine_max_box_px: int = 112
    refine_min_pixel_size_A: float = 4.0
    refine_particles_per_class: int = 40
    refine_classes: tuple[int, int] = (4, 10)
    refine_iterations: int = 8
    refine_mask_diameters: float = 2.0
    refine_top_classes: int = 3
    refine_min_class_fraction: float = 0.25
    measure_lowpass_px: float = 2.5
    measure_threshold: float = 0.5
    feret_factor: float = 4.0
    coarse_method: str = "both"
    scale_trials_A: tuple[float, ...] = tuple(
        float(d) for d in np.round(np.geomspace(50.0, 400.0, 19), 1)
    )
    scale_percentile: float = 90.0
    scale_drop: float = 0.05
    scale_min_picks: float = 2.0
    scale_factor: float = 1.5
    use_spread_edge: bool = True
    edge_depth: float = 0.1
    edge_min_contrast: float = 0.02
    edge_strong_contrast: float = 0.04
    edge_agreement: float = 0.1
    edge_min_trials: int = 5
    edge_min_span: float = 1.4
    edge_short_trials: int = 4
    use_gap: bool = True
    gap_trial_step: int = 1
    gap_box_diameters: float = 3.0
    gap_max_boxes: int = 2000
    gap_min_boxes: int = 100
    gap_min_significance: float = 20.0
    gap_error_groups: int = 2
    gap_min_trials: int = 2
    gap_agreement: float = 0.25
    symmetry_reach: float = 0.4
    seed: int = 0


@dataclass(frozen=True)
class TrialAverage:
    """The centred average at one trial diameter and the diameter measured on it."""

    trial_diameter_A: float
    n_picks: int
    average: np.ndarray
    pixel_size_A: float
    edge_diameter_A: float  # NaN when no edge was found


@dataclass(frozen=True)
class GapMeasure:
    """The exclusion gap of the stack picked at one trial diameter (see `exclusion_gap`)."""

    trial_diameter_A: float
    n_boxes: int
    diameter_A: float  # twice the radius of the gap; NaN when the profile has no minimum
    significance: float  # rise on the weaker side of the minimum, in standard errors
    average: np.ndarray
    pixel_size_A: float
    relative_depth: float = float("nan")  # the same rise as a fraction of the spread at the gap
    edge_diameter_A: float = float("nan")  # where the spread has fallen off (`spread_edge_px`)
    edge_contrast: float = 0.0  # the spread's drop to its minimum, as a fraction of the minimum


def corrected_contrast(
    image: np.ndarray,
    pixel_size_A: float,
    ctf: CtfFit | None = None,
    optics: Optics | None = None,
    wiener_epsilon: float = 0.0,
) -> np.ndarray:
    """``image / median - 1`` (particles dark), CTF-corrected with ``ctf`` when it is given.

    The correction is the phase flip, or with ``wiener_epsilon`` > 0 the Wiener-like gain of
    `screen.stages.extraction.wiener_correct`. Hot and dead pixels are clipped first
    (`screen.processing.filters.clip_outliers`): the correction would spread each into rings.
    """
    contrast = relative_contrast(clip_outliers(image))
    if ctf is None:
        return contrast
    optics = optics or Optics(pixel_size_A)
    if wiener_epsilon > 0:
        return wiener_correct(contrast, pixel_size_A, ctf, optics, wiener_epsilon)
    return phase_flip(contrast, pixel_size_A, ctf, optics)


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
        picks = pick_particles(
            1.0 + contrast, pixel_size_A, trial_diameter_A, _contrast_pick(params)
        )
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


def _contrast_pick(params: DiameterParams) -> PickParams:
    """The picker's parameters on `corrected_contrast` maps (clipped before their correction)."""
    return replace(params.pick, clip_outliers=False)


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


def fallback_caution(estimate: DiameterEstimate) -> str | None:
    """A caution for the run's output when the diameter came from the fallback, else ``None``.

    Measured (bench/README.md, 2026-12-04): without the spread edge and the exclusion gap the
    fallback came out 0.8-1.5x on most of this simulator's particles (whose mass sits in
    spread-out domains) but 2.0-3.4x on simulated particles whose mass fills their envelope, as
    proteins' does, and 2.3-2.4x on real β-galactosidase; the user's ``diameter_A`` overrides it.
    """
    if estimate.method in ("spread_edge", "gap", "manifest"):
        return None
    if estimate.method == "short_plateau":
        return (
            f"the particle diameter ({estimate.diameter_A:.0f} Å) comes from a particle edge "
            "that held over fewer trial diameters than a confident estimate needs (no other "
            "measure found one); if you know the particle's size, give it in the manifest's "
            "diameter_A column."
        )
    return (
        f"the particle diameter ({estimate.diameter_A:.0f} Å) comes from the fallback "
        f"({estimate.method}): the picks showed no particle edge that held over the trial "
        "diameters, nor a gap to their neighbours. Measured on particles whose mass fills "
        "their envelope and on real β-galactosidase, the fallback came out 2-3.4x too large; "
        "if you know the particle's size, give it in the manifest's diameter_A column."
    )


CONFIDENT_METHODS: tuple[str, ...] = ("spread_edge", "gap", "manifest")
"""Diameters that need no calibrated factor (or are the user's): they set the run's common one."""

COMMON_DIAMETER_RANGE = 1.5
"""The run has a common diameter only when at least two conditions' confident diameters lie
within this factor of one another (largest over smallest): one particle, measured with the noise
of ten micrographs each and moved by spacing and free partners. The demo's P-Rex1 conditions
spread 1.34x (125-167 Å by the spread edge, 2026-12-04). A manifest that mixes samples of other
sizes (β-galactosidase and the 120-Å Magellon rings: 1.5x; most pairs of proteins more) has
none, and each condition is picked at its own estimate; a condition whose own confident diameter
lies further than this factor from the common one keeps its own as well. Two samples closer in
size share a compromise within about ±20 % of each; a user who screens such a mix gives their
``diameter_A`` in the manifest or runs with ``--per-condition-diameter``."""


@dataclass(frozen=True)
class CommonDiameter:
    """The particle diameter shared by the conditions of a run (`common_diameter`)."""

    diameter_A: float
    uncertainty_A: float  # half the range of the contributing diameters
    conditions: tuple[str, ...]  # the conditions whose diameters it is the median of


def common_diameter(estimates: dict[str, DiameterEstimate]) -> CommonDiameter | None:
    """The run's common particle diameter: the median of its conditions' confident diameters.

    The conditions of a screening run are usually one sample on different grids, with different
    additives or concentrations: one particle size. Each condition's own estimate comes from at
    most ten micrographs and moves with its particles' spacing and any free partner (the demo's
    P-Rex1 conditions: 125-167 Å by the spread edge for 140-150 Å); picking recall moves with
    the picking diameter (0.71 at 115 Å, 0.55 at 167 Å on one simulated condition), so conditions
    picked at different diameters are not compared fairly. Confident diameters
    (`CONFIDENT_METHODS`) within `COMMON_DIAMETER_RANGE` of their median are its members; there
    is a common diameter only with two members or more that lie within that factor of one
    another (one particle), else ``None``.
    """
    confident = {
        name: e.diameter_A
        for name, e in estimates.items()
        if e.method in CONFIDENT_METHODS and np.isfinite(e.diameter_A) and e.diameter_A > 0
    }
    if len(confident) < 2:
        return None
    middle = float(np.median(list(confident.values())))
    members = {
        name: d
        for name, d in confident.items()
        if abs(np.log(d / middle)) <= np.log(COMMON_DIAMETER_RANGE)
    }
    values = np.array(list(members.values()))
    if len(values) < 2 or values.max() / values.min() > COMMON_DIAMETER_RANGE:
        return None
    return CommonDiameter(
        float(np.median(values)),
        float(values.max() - values.min()) / 2.0,
        tuple(members),
    )


def adopts_common(own: DiameterEstimate, common: CommonDiameter) -> bool:
    """Whether a condition is picked at the run's common diameter rather than its own.

    Never a diameter the user gave; a confident one when it lies within `COMMON_DIAMETER_RANGE`
    of the common diameter (the same particle); always the fallback's (see `fallback_caution`:
    measured 2-3.4x off on particles that fill their envelope, where the common diameter comes
    from conditions with a factor-free measure).
    """
    if own.method == "manifest":
        return False
    if own.method in CONFIDENT_METHODS:
        return abs(np.log(own.diameter_A / common.diameter_A)) <= np.log(COMMON_DIAMETER_RANGE)
    return True


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
        Trial diameters, centring, Canny smoothing, edge factor, picker parameters, and the
        refinement by 2D classification.
    ctfs
        CTF fit of each micrograph, in the same order (``None``: no phase flip, and no
        refinement, which extracts phase-flipped particles; the coarse estimate is then less
        reliable, as picks land on CTF fringes).
    optics
        Voltage, Cs and amplitude contrast for the phase flip (default: 300 kV, 2.7 mm, 0.1).

    Returns
    -------
    DiameterEstimate
        The diameter and its ``method``. From the exclusion gap (``"gap"``), ``edge_diameter_A``
        is the diameter itself, ``uncertainty_A`` half the spread of the agreeing trials and
        ``average`` the uncentred average at the trial nearest it. After refinement, ``edge_diameter_A`` is the Feret diameter of the object
        measured in the class averages (diameter = it x ``feret_factor``) and ``average`` is the
        most populated measured class average; without refinement, they are the coarse step's
        measure (Canny edge or scale-space peak) and its average (empty for the scale space).

    Notes
    -----
    The spread edge (`spread_edge_diameter`) is tried first, on the picks of the scale-space
    sweep of the phase-flipped micrographs; then (``wiener_epsilon`` > 0, CTFs given), when it
    found none or one within reach of the CTF's fringes (`WIENER_DELOCALISATION_SHARE`), on
    those of Wiener-corrected ones; then the exclusion gap (`gap_diameter`) of the flipped sweep; only
    when none finds a diameter do the coarse estimates run. With
    ``coarse_method="both"`` each coarse estimate (scale-space peak, the paper's Canny
    edge) starts its own refinement (unless they agree within ``refine_tolerance``), and the one
    whose last round changed least is kept: a refinement that converges is self-consistent, one
    that runs away (picking at too large a diameter in a crowded sample averages neighbours, and
    the measure grows) or finds no object is not.
    """
    subset = list(images)[: params.max_micrographs]
    if not subset:
        raise ValueError("estimate_diameter needs at least one micrograph")
    if ctfs is not None and len(ctfs) < len(subset):
        raise ValueError(f"{len(subset)} micrographs but only {len(ctfs)} CTF fits")
    if ctfs is not None and not ctfs_trustworthy(
        ctfs[: len(subset)], optics or Optics(pixel_size_A)
    ):
        ctfs = None  # a phase flip by an unconfirmed CTF scrambles the particles: no refinement
    flip = params.phase_flip and ctfs is not None
    contrasts = [
        corrected_contrast(image, pixel_size_A, ctfs[i] if flip else None, optics)
        for i, image in enumerate(subset)
    ]
    if params.coarse_method not in ("both", "canny", "scale_space"):
        raise ValueError(f"unknown coarse_method {params.coarse_method!r}")
    profiles = params.use_spread_edge or params.use_gap
    needs_sweep = profiles or params.coarse_method != "canny"
    picks = trial_picks(contrasts, pixel_size_A, params) if needs_sweep else None
    measures = _spread_measures(contrasts, picks, pixel_size_A, params) if profiles else []
    found = _from_measures(measures, params, ("spread_edge",))
    source = (contrasts, picks, measures, params)  # what the spread edge was measured on
    sweeps = [source]  # every corrected sweep, for the outline-centred retry
    halo = (
        flip
        and found is not None
        and flip_delocalisation_share(
            found.diameter_A, ctfs[: len(subset)], optics or Optics(pixel_size_A), params
        )
        > WIENER_DELOCALISATION_SHARE
    )
    if (found is None or halo) and flip and params.use_spread_edge and params.wiener_epsilon > 0:
        wiener = [
            corrected_contrast(image, pixel_size_A, ctfs[i], optics, params.wiener_epsilon)
            for i, image in enumerate(subset)
        ]
        retry = replace(params, scale_trials_A=_with_smaller_trials(params))
        wiener_picks = trial_picks(wiener, pixel_size_A, retry)
        wiener_measures = _spread_measures(wiener, wiener_picks, pixel_size_A, retry)
        from_wiener = _from_measures(wiener_measures, retry, ("spread_edge",))
        sweeps.append((wiener, wiener_picks, wiener_measures, retry))
        if from_wiener is not None:
            found, source = from_wiener, sweeps[-1]
    if found is not None and flip:
        found = _outline_centred(found, pixel_size_A, *source)
    if found is None:
        found = _from_measures(measures, params, ("gap",))
    if found is None and flip and params.use_spread_edge and params.symmetry_reach > 0:
        for sweep_contrasts, sweep_picks, _, sweep_params in sweeps:
            found = _outline_centred_sweep(sweep_contrasts, sweep_picks, pixel_size_A, sweep_params)
            if found is not None:
                break
    if found is None and params.use_spread_edge and 0 < params.edge_short_trials:
        for _, _, sweep_measures, sweep_params in sweeps:
            short = replace(sweep_params, edge_min_trials=params.edge_short_trials)
            plateau = spread_edge_diameter(sweep_measures, short)
            if plateau is not None:
                found = _estimate(plateau, "short_plateau")
                break
    if found is not None:
        return found
    makers = {
        "scale_space": lambda c, px, p: _scale_space_estimate(c, px, p, picks),
        "canny": _canny_estimate,
    }
    names = ("scale_space", "canny") if params.coarse_method == "both" else (params.coarse_method,)
    candidates: list[DiameterEstimate] = []
    failures = []
    for name in names:
        try:
            candidate = makers[name](contrasts, pixel_size_A, params)
        except ValueError as exc:  # no picks or no edge at any trial
            failures.append(f"{name}: {exc}")
            continue
        close = candidates and abs(
            np.log(candidate.diameter_A / candidates[0].diameter_A)
        ) <= np.log1p(params.refine_tolerance)
        if not close:  # two estimates that agree need one refinement only
            candidates.append(candidate)
    if not candidates:
        raise ValueError("no coarse diameter estimate: " + "; ".join(failures))
    if ctfs is None or params.refine_rounds <= 0:
        return candidates[0]
    optics = optics or Optics(pixel_size_A)
    refined = [
        refine_from(subset, pixel_size_A, c, ctfs[: len(subset)], optics, params)
        for c in candidates
    ]
    # The most self-consistent chain wins: the smallest change in its last round (first on ties).
    best = min(range(len(refined)), key=lambda i: (refined[i][1], i))
    return refined[best][0]


def _outline_centred(
    found: DiameterEstimate,
    pixel_size_A: float,
    contrasts: list[np.ndarray],
    picks: list[list[Picks]],
    measures: list[GapMeasure],
    params: DiameterParams,
) -> DiameterEstimate:
    """``found`` (a spread edge), or the edge of its trials' picks moved to outline centres."""
    step = max(params.gap_trial_step, 1)
    by_trial = dict(list(zip(params.scale_trials_A, picks, strict=True))[::step])
    members = spread_edge_members(measures, params)
    centred = outline_centred_edge(contrasts, by_trial, pixel_size_A, members, params)
    if centred is None:
        return found
    return _estimate(centred, found.method, outline_centred=True)


def _outline_centred_sweep(
    contrasts: list[np.ndarray],
    picks: list[list[Picks]],
    pixel_size_A: float,
    params: DiameterParams,
) -> DiameterEstimate | None:
    """The spread edge of every trial's picks moved to their outline centres (``None``: none).

    Tried only where neither the spread edge nor the gap found a diameter, before the calibrated
    fallback: a hollow particle's wall picks at every trial can leave no plateau at all.
    """
    step = max(params.gap_trial_step, 1)
    measures = [
        exclusion_gap(
            contrasts,
            [
                _symmetry_centred(contrast, found, pixel_size_A, trial_A, params)
                for contrast, found in zip(contrasts, per_image, strict=True)
            ],
            pixel_size_A,
            trial_A,
            params,
        )
        for trial_A, per_image in list(zip(params.scale_trials_A, picks, strict=True))[::step]
    ]
    found = _from_measures(measures, params, ("spread_edge",))
    return None if found is None else replace(found, outline_centred=True)


def ctf_confirmed(ctf: CtfFit, optics: Optics) -> bool:
    """True when a CTF fit matches its spectrum beyond the fitted CTF's first zero.

    A fit that does not even reach its own first zero has seen no Thon ring (on a denoised or
    heavily binned export it can return any defocus): phase flipping by it, which changes sign
    at the zeros, has no support in the data. A geometric criterion, not a calibrated one.
    """
    if not (np.isfinite(ctf.fit_resolution_A) and ctf.fit_resolution_A > 0):
        return False
    k_fit = 1.0 / ctf.fit_resolution_A
    zeros = ctf_zero_frequencies_A(ctf_params(ctf, optics), k_fit)
    return len(zeros) > 0


def ctfs_trustworthy(ctfs: list[CtfFit], optics: Optics) -> bool:
    """True when at least half of the fits are :func:`ctf_confirmed` (the refinement needs them)."""
    return bool(ctfs) and 2 * sum(ctf_confirmed(c, optics) for c in ctfs) >= len(ctfs)


def _canny_estimate(contrasts, pixel_size_A: float, params: DiameterParams) -> DiameterEstimate:
    """The paper's coarse estimate: averaged picks, Canny edge, self-consistent trial."""
    trials = [centred_average(contrasts, pixel_size_A, d, params) for d in params.trial_diameters_A]
    chosen, diameter_A = self_consistent_diameter(trials, params.edge_factor)
    return DiameterEstimate(
        diameter_A=float(diameter_A),
        edge_diameter_A=float(diameter_A / params.edge_factor),
        average=chosen.average,
        pixel_size_A=chosen.pixel_size_A,
        method="canny",
    )


def _scale_space_estimate(
    contrasts, pixel_size_A: float, params: DiameterParams, picks=None
) -> DiameterEstimate:
    diameter_A, _ = scale_space_diameter(contrasts, pixel_size_A, params, picks)
    return DiameterEstimate(
        diameter_A=float(diameter_A),
        edge_diameter_A=float(diameter_A / params.scale_factor),
        average=np.zeros((0, 0), np.float32),
        pixel_size_A=pixel_size_A,
        method="scale_space",
    )


WIENER_DELOCALISATION_SHARE = 0.1
"""A phase-flipped spread edge ``d`` whose CTF delocalisation (`flip_delocalisation_share`) is
more than this share of ``d`` is measured again on Wiener-corrected micrographs, whose plateau
replaces it when there is one. The flip keeps the CTF's fringes, which reach this far from the
particle at the frequencies the measure sees, so they widen a small particle's edge: a 60-Å
particle on 1536² frames at 2.4 µm read 71 Å flipped (share 0.27) and 61 Å Wiener-corrected
(bench/README.md, diameter, session 13). Every simulated and real case the flip read within ±15 %
has a share of 0.03-0.097 (EMPIAR-10017 binned 0.03, P-Rex1 0.07, a 120-Å particle at 2.4 µm 0.097;
its Wiener plateau would read 1.08 instead of 1.00), so this is where the flip's fringes begin to
matter; the share is optics (wavelength, defocus) over size, not an image statistic."""


def flip_delocalisation_share(
    diameter_A: float, ctfs: list[CtfFit], optics: Optics, params: DiameterParams
) -> float:
    """The CTF's delocalisation at the spread measure's resolution, over ``diameter_A``.

    Features at spatial frequency ``k`` are displaced by ``λ Δf k``; the measure at trial ``d``
    low-passes its boxes with a Gaussian of FWHM ``lowpass_diameters * d``, whose transfer is
    half at ``k = 0.44 / FWHM``. ``Δf`` is the median of the fits' mean defoci.
    """
    defocus_A = float(np.median([0.5 * (c.defocus_u_A + c.defocus_v_A) for c in ctfs]))
    k_half = 0.44 / (params.lowpass_diameters * diameter_A)
    return electron_wavelength_A(optics.voltage_kV) * abs(defocus_A) * k_half / diameter_A


def _with_smaller_trials(params: DiameterParams) -> tuple[float, ...]:
    """``scale_trials_A`` with ``wiener_small_trials`` more below its smallest, at its ratio."""
    trials = tuple(params.scale_trials_A)
    if params.wiener_small_trials <= 0 or len(trials) < 2:
        return trials
    ratio = trials[1] / trials[0]
    below = [trials[0] / ratio**i for i in range(params.wiener_small_trials, 0, -1)]
    return tuple(round(t, 1) for t in below) + trials


def _spread_measures(
    contrasts, picks: list[list[Picks]], pixel_size_A: float, params: DiameterParams
) -> list[GapMeasure]:
    """The spread profiles' measures (`exclusion_gap`) at every ``gap_trial_step``-th trial."""
    step = max(params.gap_trial_step, 1)
    trials = list(zip(params.scale_trials_A, picks, strict=True))[::step]
    # Trials two at a time (`threaded_map`; four EMPIAR-10017 exports: 19 trials' picks 28 ->
    # 18 s, their measures as one after another); the measures silence empty-slice warnings.
    return threaded_map(
        lambda trial: exclusion_gap(contrasts, trial[1], pixel_size_A, trial[0], params),
        trials,
        quiet=(RuntimeWarning,),
    )


def _from_measures(
    measures: list[GapMeasure], params: DiameterParams, methods: tuple[str, ...]
) -> DiameterEstimate | None:
    """The first of ``methods`` (``"spread_edge"``, ``"gap"``) that finds a diameter, else None."""
    finders = {
        "spread_edge": (params.use_spread_edge, spread_edge_diameter),
        "gap": (params.use_gap, gap_diameter),
    }
    for method in methods:
        use, find = finders[method]
        found = find(measures, params) if use and measures else None
        if found is not None:
            return _estimate(found, method)
    return None


def _estimate(
    found: tuple[float, float, GapMeasure], method: str, outline_centred: bool = False
) -> DiameterEstimate:
    """The estimate of a profile method's ``(diameter, uncertainty, measure)``."""
    diameter_A, uncertainty_A, measure = found
    return DiameterEstimate(
        diameter_A=diameter_A,
        edge_diameter_A=diameter_A,
        average=measure.average,
        pixel_size_A=measure.pixel_size_A,
        uncertainty_A=uncertainty_A,
        method=method,
        outline_centred=outline_centred,
    )


def refine_from(
    images: list[np.ndarray],
    pixel_size_A: float,
    start: DiameterEstimate,
    ctfs: list[CtfFit],
    optics: Optics,
    params: DiameterParams,
) -> tuple[DiameterEstimate, float]:
    """Refinement rounds from ``start`` until a round changes it by at most the tolerance.

    Returns the last estimate and that last round's change ``|log(new / old)|``; the change is
    infinite when no round succeeded (``start`` is returned then).
    """
    estimate, change = start, float("inf")
    for _ in range(max(params.refine_rounds, 0)):
        refined = refine_diameter(images, pixel_size_A, estimate.diameter_A, ctfs, optics, params)
        if refined is None:
            break
        change = float(abs(np.log(refined.diameter_A / estimate.diameter_A)))
        estimate = refined
        if change <= np.log1p(params.refine_tolerance):
            break
    return estimate, change


def trial_picks(
    contrasts: list[np.ndarray], pixel_size_A: float, params: DiameterParams
) -> list[list[Picks]]:
    """Picks of every contrast image at every scale-space trial diameter (trial-major)."""
    if not contrasts:
        return [[] for _ in params.scale_trials_A]
    pick = _contrast_pick(params)
    pairs = [(trial_A, contrast) for trial_A in params.scale_trials_A for contrast in contrasts]
    flat = threaded_map(
        lambda pair: pick_particles(1.0 + pair[1], pixel_size_A, pair[0], pick), pairs
    )
    n = len(contrasts)
    return [flat[start : start + n] for start in range(0, len(flat), n)]


def score_curve(
    contrasts: list[np.ndarray],
    pixel_size_A: float,
    params: DiameterParams,
    picks: list[list[Picks]] | None = None,
) -> np.ndarray:
    """Pick-score percentile at every scale-space trial diameter (NaN: too few picks).

    ``contrasts`` are ``corrected_contrast`` images; each is picked at every trial diameter and
    the ``params.scale_percentile`` of all pick scores (in noise sigmas) is that trial's value.
    ``picks`` (from `trial_picks`) saves picking again.
    """
    if picks is None:
        picks = trial_picks(contrasts, pixel_size_A, params)
    values = []
    for per_image in picks:
        pooled = np.concatenate([p.score for p in per_image]) if per_image else np.zeros(0)
        enough = len(pooled) >= params.scale_min_picks * max(len(contrasts), 1)
        values.append(float(np.percentile(pooled, params.scale_percentile)) if enough else np.nan)
    return np.asarray(values)


def first_peak(trials_A: np.ndarray, curve: np.ndarray, drop: float) -> float:
    """Trial diameter of the curve's first clear peak (parabolic interpolation in log diameter).

    The curve is smoothed over three neighbours; the first point that is the running maximum and
    after which the curve falls ``drop`` below it before ever exceeding it is the peak. Without
    such a point the curve rises to a plateau (or keeps rising), and the onset of the plateau is
    taken: the first trial whose smoothed value is within ``drop`` of the curve's top (log-linear
    between that trial and the one before). Where the curve is flat within ``drop``, which trial
    holds the maximum is decided by noise; where the response stops growing is a property of the
    particles. Measured 2026-12-03: the real Magellon micrograph (~120-Å rings, 6.32 Å/px) has a
    curve flat within 4 % from 100 to 400 Å, whose maximum (400 Å) gave 566 Å and whose onset
    gives 89 Å (x 1.5: 134 Å); of the six demo sessions only the lacey-carbon one has no clear
    peak, and its curve keeps rising (onset = maximum, unchanged).
    """
    log_d = np.log(np.asarray(trials_A, dtype=float))
    raw = np.asarray(curve, dtype=float)
    smooth = np.full_like(raw, np.nan)
    for i in range(len(raw)):
        window = raw[max(i - 1, 0) : i + 2]
        if np.isfinite(raw[i]):
            smooth[i] = float(np.nanmean(window))
    finite = np.isfinite(smooth)
    if not finite.any():
        raise ValueError("no trial diameter gave enough picks")
    best, peak = -np.inf, None
    for k in np.flatnonzero(finite):
        if smooth[k] < best:
            continue
        best = smooth[k]
        after = smooth[k + 1 :]
        below = np.flatnonzero(after < (1.0 - drop) * best)
        above = np.flatnonzero(after > best)
        if below.size and (above.size == 0 or above[0] > below[0]):
            peak = int(k)
            break
    if peak is None:
        return _plateau_onset(log_d, smooth, drop)
    if (
        0 < peak < len(smooth) - 1
        and np.isfinite(smooth[peak - 1])
        and np.isfinite(smooth[peak + 1])
    ):
        curvature = smooth[peak - 1] - 2 * smooth[peak] + smooth[peak + 1]
        slope = smooth[peak + 1] - smooth[peak - 1]
        if curvature < 0:
            step = log_d[peak + 1] - log_d[peak]
            offset = float(np.clip(-0.5 * slope / curvature, -0.5, 0.5))
            return float(np.exp(log_d[peak] + offset * step))
    return float(np.exp(log_d[peak]))


def _plateau_onset(log_d: np.ndarray, smooth: np.ndarray, drop: float) -> float:
    """First trial diameter where the smoothed curve comes within ``drop`` of its top."""
    level = (1.0 - drop) * float(np.nanmax(smooth))
    k = int(np.flatnonzero(np.isfinite(smooth) & (smooth >= level))[0])
    j = k - 1
    if j >= 0 and np.isfinite(smooth[j]) and smooth[k] > smooth[j]:
        t = (level - smooth[j]) / (smooth[k] - smooth[j])
        return float(np.exp(log_d[j] + t * (log_d[k] - log_d[j])))
    return float(np.exp(log_d[k]))


def scale_space_diameter(
    contrasts: list[np.ndarray],
    pixel_size_A: float,
    params: DiameterParams,
    picks: list[list[Picks]] | None = None,
) -> tuple[float, np.ndarray]:
    """Coarse diameter from the scale at which picks stand out most from the noise.

    A blob filter (the picker's DoG) gives its highest signal-to-noise ratio at the scale of the
    blobs: smaller kernels see more noise, larger ones dilute the particle. The picker's scores are
    in units of the filtered noise, so a high percentile of them, as a function of the trial
    diameter, peaks near the particle's size; diameter = peak x ``params.scale_factor``. Larger
    structures (aggregates, ice and carbon gradients) make the curve rise again at large trials,
    so the *first* clear peak is taken (`first_peak`), not the global maximum.

    ``scale_factor`` 1.5 (the paper's edge factor, here for a different measure) was measured on
    24 simulated sessions (the six prex1-small conditions, 90 and 250 Å particles, 16 random
    structures of 97-258 Å): peak x 1.5 / truth within 0.7-1.4 on 17 of 24; the misses are a
    carbon-rich lacey grid (3.0), large particles on small frames (1.9-3.1: the peak lies beyond
    the largest trial that still finds picks) and particles under 100 Å (1.7: the picker's
    4 Å working pixels blur them).

    Returns the diameter and the score curve (``params.scale_trials_A`` order).
    """
    curve = score_curve(contrasts, pixel_size_A, params, picks)
    peak = first_peak(np.asarray(params.scale_trials_A), curve, params.scale_drop)
    return peak * params.scale_factor, curve


def spread_profile(boxes: np.ndarray, groups: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Radial profile of the per-pixel standard deviation across boxes, and its standard error.

    Pixels that are NaN (outside the micrograph) are left out. The error comes from ``groups``
    interleaved sub-stacks: the standard deviation of their profiles over sqrt(``groups``)
    (with two, half the difference of the even and odd boxes' profiles), as an RMS over five
    neighbouring radii.
    """
    with warnings.catch_warnings():  # pixels outside every box's micrograph are NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        full = np.sqrt(radial_profile(np.nan_to_num(np.nanvar(boxes, axis=0))))
        parts = np.array(
            [
                np.sqrt(radial_profile(np.nan_to_num(np.nanvar(boxes[k::groups], axis=0))))
                for k in range(groups)
            ]
        )
    error = parts.std(axis=0, ddof=1) / np.sqrt(groups)
    window = min(5, len(error))  # a profile of fewer radii (a box of 8 px) keeps its length
    error = np.sqrt(np.convolve(error**2, np.ones(window) / window, mode="same"))
    return full, np.maximum(error, 1e-12 * (1.0 + full))


def exclusion_gap(
    contrasts: list[np.ndarray],
    picks: list[Picks],
    pixel_size_A: float,
    trial_diameter_A: float,
    params: DiameterParams,
) -> GapMeasure:
    """The radius where picked boxes vary least: between the particle and its neighbours.

    Boxes of ``gap_box_diameters`` trial diameters are cut around the best picks (low-passed
    to ``lowpass_diameters`` trials) and centred by translation on their symmetrised average
    (`centre_boxes`; pick errors would spread the particle outwards); the spread across boxes,
    pixel by pixel, is averaged in rings. Inside a particle it is high (views, internal
    structure, position errors); just outside, no other particle can be (two particles do not
    overlap), so only ice and noise vary there; further out neighbours raise it again. The
    minimum between 0.25 and 1.2 trial diameters is the particle's edge, and twice its radius
    is the diameter: a geometric measure (no factor), independent of the CTF's sign and of the
    particle's internal contrast. It needs both rises: without neighbours (a sparse field) the
    profile just flattens and no minimum is significant.

    A pick sits on a local extreme, which raises the spread at the very centre whatever the
    particle: the inner rise is taken from 0.25 trial diameters outwards.

    Measured: on four 2x-binned EMPIAR-10017 exports (β-galactosidase, ~180 Å, dense) the gap
    lies at 179-189 Å for trials of 126-252 Å, 15-64 standard errors deep (189-200 Å without
    the centring); on simulated sessions and on the Magellon rings (sparse) at most one trial
    at a time passes ``gap_min_significance``.
    """
    binned_A = max(pixel_size_A, trial_diameter_A / params.average_diameter_px)
    box_px = max(int(round(params.gap_box_diameters * trial_diameter_A / binned_A / 2)) * 2, 8)
    margin = int(round(params.max_shift_diameters * trial_diameter_A / binned_A))
    smooths, xs, ys, images, scores = [], [], [], [], []
    for contrast, found in zip(contrasts, picks, strict=True):
        if len(found) == 0:
            continue
        binned, binned_A = bin_to_pixel_size(contrast, pixel_size_A, binned_A)
        smooths.append(lowpass(binned, binned_A, params.lowpass_diameters * trial_diameter_A))
        xs.append(found.x_px * binned.shape[1] / contrast.shape[1])
        ys.append(found.y_px * binned.shape[0] / contrast.shape[0])
        images.append(np.full(len(found), len(smooths) - 1))
        scores.append(found.score)
    empty = np.zeros((box_px, box_px), np.float32)
    if not smooths:
        return GapMeasure(trial_diameter_A, 0, float("nan"), 0.0, empty, binned_A)
    order = np.argsort(-np.concatenate(scores), kind="stable")[: params.gap_max_boxes]
    x, y, image = (np.concatenate(v)[order] for v in (xs, ys, images))
    boxes = _centred_boxes(smooths, x, y, image, box_px, margin, params.centring_iterations)
    with warnings.catch_warnings():  # pixels outside every box's micrograph are NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        average = np.nan_to_num(np.nanmean(boxes, axis=0)).astype(np.float32)
    if len(boxes) < params.gap_min_boxes:
        return GapMeasure(trial_diameter_A, len(boxes), float("nan"), 0.0, average, binned_A)
    spread, error = spread_profile(boxes, params.gap_error_groups)
    radius_A = np.arange(len(spread)) * binned_A
    window = np.flatnonzero(
        (radius_A >= 0.25 * trial_diameter_A) & (radius_A <= 1.2 * trial_diameter_A)
    )
    if window.size == 0:
        return GapMeasure(trial_diameter_A, len(boxes), float("nan"), 0.0, average, binned_A)
    k = int(window[np.argmin(spread[window])])
    first = int(window[0])
    inner, outer = spread[first:k], spread[k + 1 :]
    if inner.size == 0 or outer.size == 0:
        return GapMeasure(trial_diameter_A, len(boxes), float("nan"), 0.0, average, binned_A)
    rise = min(inner.max(), outer.max()) - spread[k]
    return GapMeasure(
        trial_diameter_A,
        len(boxes),
        float(2.0 * radius_A[k]),
        float(rise / error[k]),
        average,
        binned_A,
        float(rise / spread[k]) if spread[k] > 0 else float("inf"),
        float(2.0 * spread_edge_px(spread, first, k, params.edge_depth) * binned_A),
        float((inner.max() - spread[k]) / spread[k]) if spread[k] > 0 else 0.0,
    )


def spread_edge_px(spread: np.ndarray, first: int, minimum: int, depth: float) -> float:
    """Radius (px) where the spread profile has fallen off: the particle's edge.

    From the profile's highest point between ``first`` and its ``minimum`` outwards, the first
    radius (interpolated) where it lies within ``depth`` of that drop above the minimum. Unlike
    the minimum itself, which sits anywhere in the flat stretch between a particle and its
    neighbours (a spaced field reads large; a sparse one has no minimum worth the name), the
    fall-off marks where the particle's own variation ends. NaN without a fall-off.
    """
    if minimum <= first:
        return float("nan")
    top = first + int(np.argmax(spread[first:minimum]))
    drop = spread[top] - spread[minimum]
    if not drop > 0:
        return float("nan")
    level = spread[minimum] + depth * drop
    below = top + int(np.flatnonzero(spread[top : minimum + 1] <= level)[0])
    if below == top:
        return float(top)
    return float(np.interp(level, [spread[below], spread[below - 1]], [below, below - 1]))


def _centred_boxes(smooths, x, y, image, box_px: int, margin: int, iterations: int) -> np.ndarray:
    """Boxes centred on their symmetrised average (`centre_boxes`), NaN outside the micrograph.

    A pick lies off its particle's centre by a fraction of a diameter, which spreads the
    particle's own variation outwards; the centring shifts are found on zero-filled boxes, and
    the boxes are then cut again at the shifted centres.
    """
    stack = np.empty((len(x), box_px + 2 * margin, box_px + 2 * margin), np.float32)
    for k, smooth in enumerate(smooths):
        mine = image == k
        stack[mine] = extract_boxes(smooth, x[mine], y[mine], box_px + 2 * margin, fill=0.0)
    _, shifts = centre_boxes(stack, box_px, iterations)
    boxes = np.empty((len(x), box_px, box_px), np.float32)
    for k, smooth in enumerate(smooths):
        mine = image == k
        boxes[mine] = extract_boxes(
            smooth, x[mine] + shifts[mine, 0], y[mine] + shifts[mine, 1], box_px, fill=np.nan
        )
    return boxes


def spread_edge_diameter(
    measures: list[GapMeasure], params: DiameterParams
) -> tuple[float, float, GapMeasure] | None:
    """Diameter from the spread edges of several trials where they form a plateau.

    Picks on noise, or on a particle's domains at small trials, give an edge of about their own
    trial's size: that measure follows the trial. Picks on the particles give an edge that stays
    where the particles end whatever the trial. Only trials whose spread falls by at least
    ``edge_min_contrast`` count. The largest set of them whose edges agree within
    ``edge_agreement`` is taken when it has at least ``edge_min_trials`` trials spanning at
    least ``edge_min_span`` of trial diameter, one of them falls by ``edge_strong_contrast``
    (picks on a textured background without particles make a plateau too, of low contrast),
    and it begins at a trial no larger than its diameter, give or take ``edge_agreement`` (picks
    made at a larger scale than what they measure sit on clusters or texture). It may end below
    its diameter: picks at half a particle's size still land on the particles (a 400-Å globular
    particle: edges of 376-412 Å at trials of 178-283 Å; larger trials have too few boxes). Ties
    go to the larger diameter. The diameter is the set's median, the uncertainty half its range, the
    measure returned the one nearest the diameter. ``None`` without such a set.

    Measured (10 micrographs or fewer, bench/README.md): EMPIAR-10017 0.91 of ~180 Å; see the
    module docstring for the simulated cases. No plateau on noise, CTF-shaped noise and 32 null
    sessions but two of sparse discs (93 Å for 80-Å discs, 94 Å for 120-Å ones).
    """
    found = _spread_edge_plateau(measures, params)
    return None if found is None else _plateau(*found)


def _spread_edge_plateau(
    measures: list[GapMeasure], params: DiameterParams
) -> tuple[float, list[GapMeasure]] | None:
    """The plateau `spread_edge_diameter` takes: its median edge and its measures."""
    found = spread_edge_plateaus(measures, params)
    if not found:
        return None
    return max(found, key=lambda plateau: (len(plateau[1]), plateau[0]))


def spread_edge_plateaus(
    measures: list[GapMeasure], params: DiameterParams
) -> list[tuple[float, list[GapMeasure]]]:
    """Every set of trials that qualifies as a plateau (`spread_edge_diameter`'s conditions).

    One per anchoring trial, as (median edge, measures); sets overlap. `spread_edge_diameter`
    takes the one with most trials (ties: the larger diameter); a particle's domains and the
    particle itself can both qualify (bench/README.md, session 37).
    """
    valid = [
        m
        for m in measures
        if np.isfinite(m.edge_diameter_A)
        and m.edge_diameter_A > 0
        and m.edge_contrast >= params.edge_min_contrast
    ]
    tolerance = np.log1p(params.edge_agreement)
    found: list[tuple[float, list[GapMeasure]]] = []
    for anchor in valid:
        members = [
            m for m in valid if abs(np.log(m.edge_diameter_A / anchor.edge_diameter_A)) <= tolerance
        ]
        trials = [m.trial_diameter_A for m in members]
        diameter_A = float(np.median([m.edge_diameter_A for m in members]))
        if (
            len(members) < params.edge_min_trials
            or max(m.edge_contrast for m in members) < params.edge_strong_contrast
            or max(trials) / min(trials) < params.edge_min_span
            or not min(trials) <= diameter_A * (1 + params.edge_agreement)
        ):
            continue
        found.append((diameter_A, members))
    return found


def _plateau(diameter_A: float, members: list[GapMeasure]) -> tuple[float, float, GapMeasure]:
    """The diameter, its uncertainty (half the members' range, at least a pixel) and a measure."""
    values = np.array([m.edge_diameter_A for m in members])
    pixel_A = max(m.pixel_size_A for m in members)
    uncertainty_A = max(float(values.max() - values.min()) / 2.0, pixel_A)
    nearest = min(members, key=lambda m: abs(m.edge_diameter_A - diameter_A))
    return diameter_A, uncertainty_A, nearest


def spread_edge_members(measures: list[GapMeasure], params: DiameterParams) -> list[GapMeasure]:
    """The measures of the plateau `spread_edge_diameter` finds (empty when none)."""
    found = _spread_edge_plateau(measures, params)
    return [] if found is None else found[1]


def outline_centred_edge(
    contrasts: list[np.ndarray],
    picks: dict[float, list[Picks]],
    pixel_size_A: float,
    members: list[GapMeasure],
    params: DiameterParams,
) -> tuple[float, float, GapMeasure] | None:
    """The plateau's trials measured again with picks at their centres of radial symmetry.

    ``picks`` maps each trial diameter to its picks per contrast image; ``members`` are the
    plateau's measures (`spread_edge_members`). At each of their trials the picks move to the
    largest vote of `screen.processing.symmetry.radial_symmetry_map` within ``symmetry_reach``
    trial diameters (on the picker's binned copy), and the spread edge is measured again. When
    those edges form a plateau themselves (`spread_edge_diameter`) that lies below the first by
    more than ``edge_agreement``, it is returned: the first picks sat off their particles'
    centres (on a shell's wall, a ring's side), and centred they see the particle's own edge.
    Otherwise ``None`` (the picks were centred already: a compact particle's plateau moves by a
    few % at most); the member nearest the plateau's median is measured first, and when its own
    edge does not fall by more than ``edge_agreement`` the others are not measured (on compact
    particles the check then costs one trial's measure, not the plateau's).
    """
    if params.symmetry_reach <= 0 or not members:
        return None
    first = float(np.median([m.edge_diameter_A for m in members]))
    # The member nearest the plateau's median first: where its edge does not fall by more than
    # the agreement, the picks were centred already and the other trials are not measured.
    members = sorted(members, key=lambda m: abs(m.edge_diameter_A - first))
    remeasured = []
    for member in members:
        trial_A = member.trial_diameter_A
        moved = [
            _symmetry_centred(contrast, found, pixel_size_A, trial_A, params)
            for contrast, found in zip(contrasts, picks[trial_A], strict=True)
        ]
        remeasured.append(exclusion_gap(contrasts, moved, pixel_size_A, trial_A, params))
        edge_A = remeasured[0].edge_diameter_A
        if len(remeasured) == 1 and not edge_A * (1 + params.edge_agreement) < first:
            return None  # also when NaN: no edge at the central trial
    found = spread_edge_diameter(remeasured, params)
    if found is None or found[0] * (1 + params.edge_agreement) >= first:
        return None
    return found


def _symmetry_centred(
    contrast: np.ndarray, picks: Picks, pixel_size_A: float, trial_A: float, params: DiameterParams
) -> Picks:
    """``picks`` moved to their nearest centres of radial symmetry (`outline_centred_edge`)."""
    if len(picks) == 0:
        return picks
    binned, binned_px = bin_to_pixel_size(
        contrast, pixel_size_A, working_pixel_size_A(pixel_size_A, trial_A, params.pick)
    )
    votes = radial_symmetry_map(binned, binned_px, trial_A)
    scale_x = binned.shape[1] / contrast.shape[1]
    scale_y = binned.shape[0] / contrast.shape[0]
    x, y = nearest_symmetry_centres(
        votes,
        picks.x_px * scale_x,
        picks.y_px * scale_y,
        params.symmetry_reach * trial_A / binned_px,
    )
    return Picks(x_px=x / scale_x, y_px=y / scale_y, score=picks.score)


def gap_diameter(
    measures: list[GapMeasure], params: DiameterParams
) -> tuple[float, float, GapMeasure] | None:
    """Self-consistent diameter from the gaps of several trials, its uncertainty, and a measure.

    A trial's gap is kept when it is significant (``gap_min_significance``) and within a factor
    two of its trial diameter. The kept gaps within ``gap_agreement`` of their median must come
    from at least ``gap_min_trials`` trials: the measure then does not follow the picking scale.
    The diameter is their median, the uncertainty half their range (at least one pixel of the
    coarsest stack), and the measure returned is the agreeing one nearest the diameter.
    ``None`` when there is no such set.
    """
    kept = [
        m
        for m in measures
        if np.isfinite(m.diameter_A)
        and m.significance >= params.gap_min_significance
        and 0.5 <= m.diameter_A / m.trial_diameter_A <= 2.0
    ]
    if not kept:
        return None
    middle = float(np.median([m.diameter_A for m in kept]))
    agree = [
        m for m in kept if abs(np.log(m.diameter_A / middle)) <= np.log1p(params.gap_agreement)
    ]
    if len(agree) < max(params.gap_min_trials, 1):
        return None
    values = np.array([m.diameter_A for m in agree])
    diameter_A = float(np.median(values))
    pixel_A = max(m.pixel_size_A for m in agree)
    uncertainty_A = max(float(values.max() - values.min()) / 2.0, pixel_A)
    nearest = min(agree, key=lambda m: abs(m.diameter_A - diameter_A))
    return diameter_A, uncertainty_A, nearest


def detrended(images: np.ndarray, radius_px: float) -> np.ndarray:
    """Boxes minus the plane fitted outside ``radius_px``, scaled to unit std there.

    Ice gradients, carbon edges and neighbours make the boxes' largest variance; left in, 2D
    classification groups boxes by gradient, not by particle view.
    """
    n, box = images.shape[0], images.shape[-1]
    y, x = np.indices((box, box), dtype=np.float64) - box // 2
    outside = np.hypot(x, y) > radius_px
    if outside.sum() < 8 or n == 0:
        return images.astype(np.float32)
    design = np.column_stack([np.ones(outside.sum()), x[outside], y[outside]])
    coef, *_ = np.linalg.lstsq(design, images[:, outside].T.astype(np.float64), rcond=None)
    planes = coef[0][:, None, None] + coef[1][:, None, None] * x + coef[2][:, None, None] * y
    residual = images - planes
    std = residual[:, outside].std(axis=1)
    return (residual / np.where(std > 0, std, 1.0)[:, None, None]).astype(np.float32)


def refined_classes(
    images: list[np.ndarray],
    pixel_size_A: float,
    diameter_A: float,
    ctfs: list[CtfFit],
    optics: Optics,
    params: DiameterParams,
) -> ClassAverages | None:
    """Pick at ``diameter_A``, extract phase-flipped boxes, detrend them, classify them in 2D.

    Returns ``None`` when fewer particles than two classes' worth were picked.
    """
    target_A = max(
        pixel_size_A,
        params.refine_min_pixel_size_A,
        params.refine_box_diameters * diameter_A / params.refine_max_box_px,
    )
    extract = ExtractParams(
        target_pixel_size_A=target_A, box_diameters=params.refine_box_diameters, min_box_px=16
    )
    stacks, scores, binned_A = [], [], target_A
    for image, ctf in zip(images, ctfs, strict=True):
        picks = pick_particles(image, pixel_size_A, diameter_A, params.pick)
        if len(picks) == 0:
            continue
        stack = extract_particles(image, picks, pixel_size_A, diameter_A, ctf, optics, extract)
        stacks.append(stack.images)
        scores.append(picks.score)
        binned_A = stack.pixel_size_A
    if not stacks:
        return None
    order = np.argsort(-np.concatenate(scores), kind="stable")[: params.refine_max_particles]
    n = len(order)
    low, high = params.refine_classes
    if n < 2 * low:
        return None
    boxes = detrended(np.concatenate(stacks)[order], 0.5 * diameter_A / binned_A)
    stack = ParticleStack(boxes, binned_A, np.zeros(n, np.int64), np.zeros(n), np.zeros(n))
    n_classes = int(np.clip(n // params.refine_particles_per_class, low, high))
    # ``feret_factor`` was calibrated on averages of the classification without the noise
    # correction (2D v2): the refinement keeps it, so its measure means what was calibrated.
    classify = Classify2DParams(
        n_classes=n_classes,
        n_iterations=params.refine_iterations,
        noise_corrected=False,
        seed=params.seed,
    )
    return classify_2d(stack, params.refine_mask_diameters * diameter_A, classify)


def object_feret_px(
    average: np.ndarray, mask_diameter_px: float, lowpass_px: float, threshold: float
) -> float:
    """Longest dimension (px) of the bright object at the centre of a class average; NaN if none.

    The average (protein white) is low-passed (Gaussian of FWHM ``lowpass_px``), its median in a
    ring just inside the mask is subtracted, and it is thresholded at ``threshold`` x its maximum
    within half the mask radius. The connected component that contains the centre (or, failing
    that, comes closest to it, within a quarter of the mask radius) is the object; its maximal
    Feret diameter plus one pixel is returned. An object reaching the mask's rim is no particle
    (a gradient, an edge or a neighbour): NaN.
    """
    box = average.shape[-1]
    smooth = ndimage.gaussian_filter(np.asarray(average, np.float64), max(lowpass_px / 2.355, 0.5))
    y, x = np.indices(average.shape)
    radius = np.hypot(x - box // 2, y - box // 2)
    mask_radius = min(0.5 * mask_diameter_px, 0.5 * box)
    rim = (radius > 0.8 * mask_radius) & (radius < 0.95 * mask_radius)
    inside = radius < 0.9 * mask_radius
    if not rim.any():
        return float("nan")
    smooth = smooth - np.median(smooth[rim])
    peak = float(smooth[inside & (radius < 0.5 * mask_radius)].max())
    if peak <= 0:
        return float("nan")
    labels = label((smooth > threshold * peak) & inside)
    centre = labels[box // 2, box // 2]
    if centre == 0:
        distance = np.where(labels > 0, radius, np.inf)
        nearest = np.unravel_index(np.argmin(distance), distance.shape)
        if not np.isfinite(distance[nearest]) or distance[nearest] > 0.25 * mask_radius:
            return float("nan")
        centre = labels[nearest]
    component = labels == centre
    if radius[component].max() >= 0.85 * mask_radius:
        return float("nan")
    return float(regionprops(component.astype(np.uint8))[0].feret_diameter_max + 1.0)


def measure_classes(
    classes: ClassAverages, diameter_A: float, params: DiameterParams
) -> tuple[float, int]:
    """Particle-weighted mean Feret diameter (Å) of the most populated measurable classes.

    Returns the diameter (NaN when no class has an object) and the index of the largest class
    measured.
    """
    px = classes.pixel_size_A
    lowpass_px = params.measure_lowpass_px
    ferets, weights, first = [], [], -1
    for k in range(len(classes.averages)):
        feret = object_feret_px(
            classes.averages[k],
            classes.mask_diameter_A / px,
            lowpass_px,
            params.measure_threshold,
        )
        if not np.isfinite(feret):
            continue
        if (
            first >= 0
            and classes.counts[k] < params.refine_min_class_fraction * classes.counts[first]
        ):
            break
        first = k if first < 0 else first
        ferets.append(feret * px)
        weights.append(classes.counts[k])
        if len(ferets) == params.refine_top_classes:
            break
    if not ferets:
        return float("nan"), -1
    return float(np.average(ferets, weights=weights)), first


def refine_diameter(
    images: list[np.ndarray],
    pixel_size_A: float,
    diameter_A: float,
    ctfs: list[CtfFit],
    optics: Optics,
    params: DiameterParams,
) -> DiameterEstimate | None:
    """One refinement round: classify particles picked at ``diameter_A``, measure the classes.

    Returns ``None`` when too few particles were picked or no class shows a central object.
    """
    classes = refined_classes(images, pixel_size_A, diameter_A, ctfs, optics, params)
    if classes is None or len(classes.averages) == 0:
        return None
    feret_A, first = measure_classes(classes, diameter_A, params)
    if not np.isfinite(feret_A):
        return None
    return DiameterEstimate(
        diameter_A=float(feret_A * params.feret_factor),
        edge_diameter_A=float(feret_A),
        average=classes.averages[first],
        pixel_size_A=classes.pixel_size_A,
        method="refined",
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
    version="12",  # 8: the spread edge of Wiener-corrected micrographs before the gap; 9: the
    # plateau measured again from outline centres (`outline_centred_edge`); 10: hot pixels clipped;
    # 11: contrast of zero-centred images (`relative_contrast`); 12: a short plateau before the
    # fallback (`edge_short_trials`)
    params_type=DiameterParams,
    compute=estimate_diameter,
)
