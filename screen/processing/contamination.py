"""Opaque contamination: the share of a micrograph's field hidden under a nearly opaque object.

Ethane and ice balls, ice crystals and grid bars are hundreds of nanometres to micrometres
thick: almost no electron crosses them unscattered, so they are far darker than any ice, carbon
or protein around them. The measure here uses only that: on a heavily smoothed copy of the
micrograph, the area that lies many robust standard deviations below the field's median. It
needs no pixel size (all scales are fractions of the field), and no noise model (the spread is
the smoothed field's own median absolute deviation, so it holds for raw counts, dose-weighted,
binned, denoised or 8-bit exported micrographs alike).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from screen.processing.filters import block_means

OPAQUE_WORK_SIDE_PX = 256
"""The micrograph is block-averaged to about this many pixels on its short side first."""

OPAQUE_SMOOTH_FRACTION = 2.0 / 256.0
"""Gaussian smoothing, as a fraction of the short side (about 1 % of the field across)."""

OPAQUE_DEPTH_SIGMA = 16.0
"""How far below the median, in robust standard deviations of the smoothed field, a pixel lies
to count as opaque. Measured on 2026-12-03 (`bench/opaque_contamination.py`): the ball of the real
contaminated example lies ~1,400 sigma down (13 % of its field below 16 sigma); the good real
examples have at most 0.2 % of their field below 16 sigma (particles, clumps, the Magellon
micrograph's small ball). Simulated carbon edges in good micrographs reach 6 % of the field at 8
sigma but at most 2.6 % at 16 (our carbon is darker than thin real carbon). It should transfer
because opaque objects remove most of the beam, which no protein, carbon film or ice gradient
does, whatever the detector or export; the simulator's balls are only semi-opaque, so it
catches fewer of them than of real ones."""

OPAQUE_MARGIN_SIGMAS = 3.0
"""A margin of this many smoothing widths along the frame's edges is left out (the median, the
spread and the area are the interior's): a dark row or column at the border (a partial block
left by binning, a zero-filled edge after motion correction or an export) would otherwise be
smeared inwards and counted. Measured 2026-12-04: two good NL-means-denoised, binned simulated
micrographs (234 px) lost to the check on a 2-px dark border (3.4 % of the field each). A ball of
contamination at the edge still counts with the part of it inside the margin."""

OPAQUE_MIN_REGION_FRACTION = 0.0005
"""Dark regions smaller than this share of the field (single particles, specks) are ignored."""


def opaque_fraction(image: np.ndarray) -> float:
    """Share of the field (0-1) covered by nearly opaque objects (contamination, grid bars).

    Parameters
    ----------
    image
        A micrograph, any grey-level scale where denser matter is darker (raw counts,
        dose-weighted sums, contrast-stretched exports); not a phase-flipped or inverted image.

    Returns
    -------
    float
        The summed area of the connected regions that lie ``OPAQUE_DEPTH_SIGMA`` robust standard
        deviations below the median of the smoothed field, each at least
        ``OPAQUE_MIN_REGION_FRACTION`` of the field, over the field's area; all within the
        field less a margin along its edges (``OPAQUE_MARGIN_SIGMAS``). 0 for a constant image.
    """
    # A median over 3 x 3 blocks first: a hot pixel raises one block's mean (one at 20 times
    # the frame's maximum, smoothed into the field, outweighed a real ball of ice: the
    # contaminated real micrograph with 300 of them added was kept, 2026-12-06).
    small = ndi.median_filter(block_means(image, OPAQUE_WORK_SIDE_PX), 3)
    sigma = OPAQUE_SMOOTH_FRACTION * min(small.shape)
    smooth = ndi.gaussian_filter(small, sigma)
    margin = int(np.ceil(OPAQUE_MARGIN_SIGMAS * sigma))
    if margin > 0 and min(smooth.shape) > 4 * margin:
        smooth = smooth[margin:-margin, margin:-margin]
    median = float(np.median(smooth))
    spread = 1.4826 * float(np.median(np.abs(smooth - median)))
    if not spread > 0:
        return 0.0
    labels, n = ndi.label(smooth < median - OPAQUE_DEPTH_SIGMA * spread)
    if n == 0:
        return 0.0
    sizes = np.bincount(labels.ravel())[1:] / smooth.size
    return float(sizes[sizes >= OPAQUE_MIN_REGION_FRACTION].sum())
