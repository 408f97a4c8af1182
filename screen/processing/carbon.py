"""Carbon film across the field: a sharp step in the micrograph's smoothed grey level.

The edge of a hole in the support film (or of a carbon layer) divides the field into two parts
of different thickness: the carbon side scatters more electrons and is darker, and the step
between the two is sharp on the scale of the field. On a heavily smoothed copy, a line
(straight, or an arc of a hole's rim) at the right angle and position splits the field into two
sides whose mean grey levels differ by many times the grey-level spread within each side (the
step contrast), and the grey level across that line changes over a narrow band (the
transition). An ice-thickness gradient is a ramp, not a step: the best split of a linear ramp
differs by only sqrt(12) = 3.46 times the spread within its halves, however steep the ramp, and
it changes over much of the field. Particles, clumps and noise change the spread within the sides,
not the means. Like the opaque check (:mod:`screen.processing.contamination`) it needs no pixel
size and no noise model: every scale is a fraction of the field, every level relative to the
field's own spread, so it reads raw counts, binned, denoised or 8-bit exported micrographs
alike.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from screen.processing.filters import block_means

CARBON_WORK_SIDE_PX = 96
"""The micrograph is block-averaged to about this many pixels on its short side first."""

CARBON_SMOOTH_FRACTION = 1.5 / 128.0
"""Gaussian smoothing, as a fraction of the short side (after a 3 x 3 median for specks)."""

CARBON_ANGLES = 36
"""Directions of the dividing line tried (every 5 degrees)."""

CARBON_BINS = 48
"""Positions of the dividing line tried along each direction."""

CARBON_CURVATURES = (0.0, 0.6, -0.6, 1.2, -1.2)
"""Curvatures of the dividing line tried, per short side of the field: a hole's rim seen in a
frame (R1.2/1.3 holes in a K3 frame at 0.65-1 Å/px: 0.45-0.7; R2/1: 0.25-0.4; a straight edge
0). The line is the parabola that approximates the arc."""

CARBON_MIN_SIDE_FRACTION = 0.05
"""Each side of a split holds at least this share of the field."""

CARBON_MIN_STEP_CONTRAST = 4.0
"""A step counts as a film edge from this contrast (mean difference over the pooled spread within
the two sides) ..."""

CARBON_MAX_TRANSITION = 0.1
"""... and when the grey level across its line goes from 20 % to 80 % of its range within this
share of the field (`CarbonEdge.transition_fraction`). Measured 2026-12-05 (`bench/
carbon_edges.py`, 960 simulated micrographs of six sets, held-out structures, every variation
generator): among micrographs whose darker side holds 30 % of the field or more, the
simulator's carbon ones have contrasts of 4.1-16.3 (10th percentile to largest) and transitions
of 0.02 (a few striped or faint edges more), good ones contrasts up to 4.4 (ice gradients) but
transitions of 0.21 or more, other bad reasons contrasts up to 4.2 and transitions of 0.31 or
more; the 14 real examples (no film edge in any) contrasts 1.0-3.9, transitions 0.08-0.65,
darker sides 5-17 % of the field. A linear ramp gives a contrast of 3.47 and a transition of
0.54, whatever its slope (checked 2026-12-07). It should transfer because a film edge is a step in thickness, which no ice gradient,
particle field, detector or export makes, and all three measures are relative to the field; a
rim more curved than `CARBON_CURVATURES` spreads along the profile, so the check errs on the
side of keeping the micrograph."""


@dataclass(frozen=True)
class CarbonEdge:
    """The strongest straight step across a micrograph (see `carbon_edge`).

    Attributes
    ----------
    step_contrast
        Difference of the two sides' mean grey levels over the pooled spread within them.
    dark_fraction
        Share of the field (0-1) on the darker side of the line (the carbon side of a film edge).
    angle_deg
        Direction of the line's normal, degrees from the x axis (0-180).
    transition_fraction
        Share of the positions along that normal where the mean grey level lies between 20 % and
        80 % of its range (its 5th to 95th percentile): small for a step, large for a ramp.
    curvature
        Curvature of the line, per short side of the field (`CARBON_CURVATURES`; 0: straight).
    """

    step_contrast: float
    dark_fraction: float
    angle_deg: float
    transition_fraction: float = 1.0
    curvature: float = 0.0

    def carbon_fraction(self) -> float:
        """Share of the field behind a film edge: ``dark_fraction`` if the step counts, else 0.

        A step counts from `CARBON_MIN_STEP_CONTRAST` with a transition of at most
        `CARBON_MAX_TRANSITION`.
        """
        if (
            self.step_contrast >= CARBON_MIN_STEP_CONTRAST
            and self.transition_fraction <= CARBON_MAX_TRANSITION
        ):
            return self.dark_fraction
        return 0.0


def _smoothed_small(image: np.ndarray) -> np.ndarray:
    """Block means to about `CARBON_WORK_SIDE_PX` on the short side, median 3 x 3, Gaussian."""
    small = ndi.median_filter(block_means(image, CARBON_WORK_SIDE_PX), 3)
    return ndi.gaussian_filter(small, CARBON_SMOOTH_FRACTION * min(small.shape))


def carbon_edge(image: np.ndarray) -> CarbonEdge:
    """The line (straight, or an arc like a hole's rim) that best splits a micrograph in two.

    Parameters
    ----------
    image
        A micrograph, any grey-level scale where denser matter is darker (raw counts,
        dose-weighted sums, contrast-stretched exports); not a phase-flipped or inverted image.

    Returns
    -------
    CarbonEdge
        Over `CARBON_ANGLES` directions and `CARBON_BINS` positions of a line across the smoothed
        field (each side at least `CARBON_MIN_SIDE_FRACTION`), the split with the largest step
        contrast, and the width of the grey level's transition across it. Contrast 0 for a
        constant image or one too small to split.
    """
    small = _smoothed_small(image)
    values = small.ravel()
    n = values.size
    best = CarbonEdge(0.0, 0.0, 0.0)
    if n < 64 or not np.ptp(values) > 0:
        return best
    yy, xx = np.indices(small.shape, dtype=np.float64)
    yy = (yy - yy.mean()) / min(small.shape)
    xx = (xx - xx.mean()) / min(small.shape)
    squares = values * values
    value_sum, square_sum = float(values.sum()), float(squares.sum())
    profile = np.zeros(0)
    for theta in np.linspace(0.0, np.pi, CARBON_ANGLES, endpoint=False):
        normal = (xx * np.cos(theta) + yy * np.sin(theta)).ravel()
        tangent = (yy * np.cos(theta) - xx * np.sin(theta)).ravel()
        for curvature in CARBON_CURVATURES:
            # Lines of constant `along` are parabolas of this curvature: arcs of a hole's rim.
            along = normal + 0.5 * curvature * tangent**2
            edges = np.linspace(along.min(), along.max(), CARBON_BINS + 1)
            index = np.clip(np.searchsorted(edges, along, side="right") - 1, 0, CARBON_BINS - 1)
            per_bin = np.bincount(index, minlength=CARBON_BINS).astype(np.float64)
            sums = np.bincount(index, values, CARBON_BINS)
            count = np.cumsum(per_bin)[:-1]
            total = np.cumsum(sums)[:-1]
            total2 = np.cumsum(np.bincount(index, squares, CARBON_BINS))[:-1]
            other = n - count
            ok = (count >= CARBON_MIN_SIDE_FRACTION * n) & (other >= CARBON_MIN_SIDE_FRACTION * n)
            if not ok.any():
                continue
            count, other, total, total2 = count[ok], other[ok], total[ok], total2[ok]
            mean_a, mean_b = total / count, (value_sum - total) / other
            within = (total2 - count * mean_a**2) + (square_sum - total2 - other * mean_b**2)
            spread = np.sqrt(np.maximum(within / n, 1e-300))
            contrast = np.abs(mean_a - mean_b) / spread
            k = int(np.argmax(contrast))
            if contrast[k] > best.step_contrast:
                dark = count[k] / n if mean_a[k] < mean_b[k] else other[k] / n
                best = CarbonEdge(
                    float(contrast[k]), float(dark), float(np.degrees(theta)), curvature=curvature
                )
                profile = sums[per_bin > 0] / per_bin[per_bin > 0]
    if profile.size == 0:
        return best
    low, high = np.percentile(profile, [5.0, 95.0])
    level = (profile - low) / (high - low) if high > low else np.zeros_like(profile)
    transition = float(np.mean((level > 0.2) & (level < 0.8)))
    return dataclasses.replace(best, transition_fraction=transition)
