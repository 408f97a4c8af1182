"""Typed results that stages return and the pipeline stores.

Coordinates are in micrograph pixels: ``x_px`` is the column, ``y_px`` the row, pixel (0, 0) has its
centre at (0, 0) (the simulator's ground truth uses the same convention). Defocus follows
CTFFIND/RELION (Å, positive underfocus, ``defocus_u_A`` along ``astigmatism_angle_deg``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MICROGRAPH_REASONS: tuple[str, ...] = (
    "empty",
    "crowded",
    "aggregated",
    "contaminated",
    "carbon",
    "thick_ice",
    "drift",
    "bad_ctf",
)
"""Reasons a micrograph is bad (the simulator's labels)."""

CLASS_LABELS: tuple[str, ...] = ("good", "clip", "edge", "noise")
"""2DAssess labels of a class average."""


@dataclass(frozen=True)
class Optics:
    """Microscope optics of a session (from the manifest)."""

    pixel_size_A: float
    voltage_kV: float = 300.0
    cs_mm: float = 2.7
    amplitude_contrast: float = 0.1


@dataclass(frozen=True)
class MicrographVerdict:
    """Micrograph assessment: P(good), the verdict at the threshold, and the likeliest bad reason."""

    p_good: float
    verdict: str  # "good" or "bad"
    reason: str | None  # one of MICROGRAPH_REASONS when bad
    reason_scores: dict[str, float]
    opaque_fraction: float | None = None  # share of the field under opaque contamination
    carbon_fraction: float | None = None  # share of the field behind a carbon film edge (0: none)
    # Share of the field's tiles with crystalline-ice reflections (None: not measured, or the
    # pixel size cannot resolve 3.9 Å).
    crystalline_fraction: float | None = None
    # The micrograph's median grey level and pixel-to-pixel noise variance
    # (`screen.processing.exposure`): how many electrons reached the camera, against its session.
    grey_level: float | None = None
    noise_variance: float | None = None
    # The 2-fold anisotropy of its log power between 80 and 30 Å and that measure's noise scale
    # (`screen.processing.anisotropy`): drift blur takes the power along one direction.
    anisotropy: float | None = None
    anisotropy_noise: float | None = None
    # The micrograph's lowest and highest values: a session whose micrographs share them was
    # stretched into one range by an export, and its grey levels say nothing about electrons.
    grey_min: float | None = None
    grey_max: float | None = None
    # Strong dark blobs per µm² and the score map's dark-side asymmetry at 80 Å
    # (`screen.stages.picking.dark_blob_census`): how much of the field looks like particles.
    strong_blobs: int | None = None
    strong_blobs_per_um2: float | None = None
    blob_tail_asymmetry: float | None = None
    # P(good) of the same network once the micrograph's smooth background (an ice gradient,
    # `screen.processing.background`) is subtracted; measured only where it called it bad.
    p_good_flattened: float | None = None


@dataclass(frozen=True)
class CtfFit:
    """CTF estimate of one micrograph."""

    defocus_u_A: float
    defocus_v_A: float
    astigmatism_angle_deg: float
    fit_resolution_A: float  # highest resolution where the fitted CTF still matches the spectrum
    score: float  # correlation of model and spectrum over the fitted band (0..1)
    # How far the two half fields' astigmatisms differ from this fit's, relative to it (the
    # larger of the two; 0 = the same, 1 = a half found none, 2 = the opposite direction); NaN
    # when not measured (see `screen.stages.ctf.half_field_astigmatism_spread`).
    astigmatism_spread: float = float("nan")

    @property
    def mean_defocus_A(self) -> float:
        """Mean of the two principal defoci, in Å."""
        return 0.5 * (self.defocus_u_A + self.defocus_v_A)


@dataclass(frozen=True)
class Picks:
    """Particle picks on one micrograph (arrays of equal length)."""

    x_px: np.ndarray
    y_px: np.ndarray
    score: np.ndarray

    def __len__(self) -> int:
        return len(self.x_px)


@dataclass(frozen=True)
class DiameterEstimate:
    """Particle diameter of a session (`screen.stages.diameter`) and how it was measured."""

    diameter_A: float
    edge_diameter_A: float
    average: np.ndarray  # the unaligned average the edge was found on
    pixel_size_A: float
    uncertainty_A: float = float("nan")  # NaN when the method gives none
    # "spread_edge", "gap", "short_plateau", "scale_space", "canny" or "refined" (the diameter
    # stage's names)
    method: str = ""
    # True when the spread edge came from picks moved to their outlines' centres: the blob
    # picker's maxima sat off the particles' centres (a hollow shell's wall), so picking should
    # move its picks there too (`screen.stages.picking.PickParams.symmetry_reach`)
    outline_centred: bool = False


@dataclass(frozen=True)
class ParticleStack:
    """Extracted, normalised particle images of one session (or one micrograph)."""

    images: np.ndarray  # (n, box, box) float32, zero mean and unit variance outside the particle
    pixel_size_A: float
    micrograph_index: np.ndarray  # (n,) index of the source micrograph
    x_px: np.ndarray  # (n,) centre in the source micrograph's pixels
    y_px: np.ndarray


@dataclass(frozen=True)
class ClassAverages:
    """Result of one 2D classification at one mask diameter."""

    averages: np.ndarray  # (k, box, box) float32
    assignments: np.ndarray  # (n,) class of each particle, -1 when discarded
    counts: np.ndarray  # (k,) particles per class
    mask_diameter_A: float
    pixel_size_A: float
    psi_deg: np.ndarray  # (n,) in-plane angle that aligns each particle to its class
    shift_px: np.ndarray  # (n, 2) shift (dx, dy) that aligns each particle to its class


@dataclass(frozen=True)
class ClassVerdicts:
    """2DAssess labels of the class averages of one classification."""

    labels: tuple[str, ...]  # one of CLASS_LABELS per class
    scores: np.ndarray  # (k, 4) probabilities in CLASS_LABELS order
    moved_by_saliency: np.ndarray  # (k,) bool: "good" moved to "clip" by the saliency check
    # (k,) bool: "good" moved to "clip" because the mask is under the particle (`cut_by_mask`)
    cut_by_mask: np.ndarray | None = None
