"""Template-free particle picking: a Difference-of-Gaussians blob detector at the particle's scale.

Steps, on a copy Fourier-cropped to 4–8 Å per pixel (the particle spans ~``diameter_px`` pixels):

1. contrast image ``binned / median - 1``, mirror-padded (no wrap-around at the edges);
2. a DoG band-pass between a few diameters (removes ice gradients, contamination balls, carbon)
   and half a diameter (removes noise and most CTF fringes). On simulated P-Rex1 data this
   detects particles better than a LoG at the particle's scale, whose kernel is wider than the
   compact dark core a CTF-modulated projection shows. Particles are dark: the score is the
   negated response;
3. the score in units of the filtered shot noise (white-noise level measured in a high-frequency
   band of the spectrum): dimensionless, and independent of how many particles there are, so
   empty ice gets few confident picks;
4. local maxima above ``threshold_sigma`` with non-maximum suppression within
   ``min_distance_fraction`` diameters, away from the edges;
5. rejection of picks on dark contamination (a local mean far below the frame's robust range).

The threshold is low on purpose (as crYOLO's 0.1 in Li et al. 2020): false positives are left to
2D classification. Coordinates are returned in the original micrograph's pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from screen.processing.anisotropy import reduced_frame
from screen.processing.boxes import inside_frame, local_maxima
from screen.processing.filters import (
    bandpass,
    bin_to_pixel_size,
    clip_outliers,
    gaussian_highpass_transfer,
    gaussian_lowpass_transfer,
    mean_square_transfer,
    radial_frequency_A,
    relative_contrast,
    robust_location_scale,
    robust_standardise,
    white_noise_std,
)
from screen.processing.symmetry import nearest_symmetry_centres, radial_symmetry_map
from screen.stages.base import Backend
from screen.stages.records import Picks


@dataclass(frozen=True)
class PickParams:
    """Parameters of the built-in DoG picker (lengths as fractions of the particle diameter).

    Attributes
    ----------
    threshold_sigma
        Minimum score, in standard deviations of the filtered shot noise (low on purpose: false
        positives are left to 2D classification).
    robust_threshold_sigma
        A pick must also stand this many robust standard deviations (1.4826 MAD) above the
        median of its own micrograph's score map. On raw counts the score map is mostly filtered
        shot noise (robust std ~1), so this adds nothing to ``threshold_sigma``; on denoised or
        8-bit exported micrographs there is almost no shot noise left, every maximum of the
        texture scores hundreds of noise sigmas, and only this rule separates particles from
        the ice between them (EMPIAR-10017 denoised exports at the true 180 Å: precision
        0.57 -> 0.66 at recall 0.75, ``bench/picking_real_examples.py``).
    min_distance_fraction
        Non-maximum suppression distance, in diameters.
    edge_margin_fraction
        Minimum distance of a pick from the micrograph edge, in diameters (0.5 keeps every
        particle whole; 1.0 keeps a box of two diameters inside).
    diameter_px
        The particle's size in pixels of the working (binned) copy.
    min_pixel_size_A, max_pixel_size_A
        Limits of the working pixel size.
    highpass_diameters
        Coarse limit of the band-pass (the wide Gaussian of the DoG), in diameters.
    lowpass_fraction
        Fine limit of the band-pass (the narrow Gaussian of the DoG), in diameters. 0.8 since
        2026-12-05 (was 0.5): the narrower blur let a particle's domains and edges, not the
        particle, carry the darkest points. Measured against 0.5 (session 15): the D2 tetramers
        of an independent simulator (``bench/independent_sim.py``) picked at their true size
        within 0.1 diameters of the centre 16 % -> 61 % of picks (recall 0.54 -> 0.48 within
        0.3, precision 1.00); its 79-Å globules recall / precision 0.71 / 0.77 -> 0.81 / 0.93;
        the real EMPIAR-10017 exports at the pipeline's 162 Å 0.748 / 0.691 -> 0.744 / 0.741
        (the 629 manual picks 0.863 / 0.717 -> 0.874 / 0.763); `screen simulate`'s fields
        (``bench/picking_crowded.py --n 16``) sparse 0.78 / 0.30 -> 0.84 / 0.48, medium 0.72 /
        0.71 -> 0.75 / 0.85, touching 0.64 / 0.92 -> 0.66 / 0.97; its P-Rex1 demo sessions at
        140 Å 0.885 / 0.71 -> 0.784 / 0.82 (neighbours closer than the wider blur merge). At 1.0
        the real exports lose recall (0.717). Hollow, ring-shaped particles (apoferritin-like
        shells) are still picked on their walls, 0.2-0.3 diameters off centre (0.3-0.5 at 0.5):
        the CTF removes the low frequencies that would fill the ring, whatever the blur. The
        diameter stage keeps 0.5 for its own sweep (`screen.stages.diameter.DiameterParams.pick`),
        on which it was measured.
    symmetry_reach
        Move each pick to the strongest centre of radial symmetry within this many diameters
        (`screen.processing.symmetry`; 0, the default: not), then keep the best-scoring of picks
        that meet within ``min_distance_fraction``. For hollow particles, whose darkest points
        are their walls: `screen run` sets it for a condition whose diameter stage found its
        picks off centre (`screen.stages.records.DiameterEstimate.outline_centred`).
    clip_outliers
        Clip the darkest and brightest 0.05 % of the image's pixels first
        (`screen.processing.filters.clip_outliers`): a few dozen hot pixels would otherwise
        dominate the white-noise level that scales the score (before 2026-12-05, no pick at all
        on `screen simulate` micrographs through `screen.simulate.domain.hot_pixels`). Off for
        images already clipped before a CTF correction (the diameter stage's contrast maps),
        whose extremes are then the strongest particles.
    dark_limit_sigma
        A pick whose neighbourhood (smoothed over half a diameter) lies this many robust
        standard deviations below the frame's is on dark contamination and dropped.
    dark_limit_contrast
        Also drop picks whose smoothed neighbourhood is this fraction darker than the median
        (``None``, the default: no such limit). A fraction of the beam means something only on
        a camera's counts: on exports it moves with the stretch (an 8-bit stretch of the
        0.5-99.5 % range cut the real EMPIAR-10017 export's recall 0.81 -> 0.74, a +-10 %
        ramp to 0.67). 0.08 until 2026-12-06; without it the eleven real exports at 180 Å
        0.690 / 0.759 -> 0.736 / 0.724 recall / precision (masks' centres: a lower bound),
        `screen simulate`'s fields from sparse to crowded the same (`bench/picking_crowded.py`).
    max_picks_per_um2
        Keep at most this many best picks per µm² (``None``: no cap).
    pad_diameters
        Mirror padding before filtering, in diameters (no wrap-around at the frame's edges).
    """

    threshold_sigma: float = 2.5
    robust_threshold_sigma: float = 2.0
    min_distance_fraction: float = 0.7
    edge_margin_fraction: float = 0.5
    diameter_px: float = 17.5
    min_pixel_size_A: float = 4.0
    max_pixel_size_A: float = 8.0
    highpass_diameters: float = 3.0
    lowpass_fraction: float = 0.8
    noise_band: tuple[float, float] = (0.6, 0.95)
    dark_limit_sigma: float = 5.0
    dark_limit_contrast: float | None = None
    max_picks_per_um2: float | None = None
    pad_diameters: float = 1.5
    symmetry_reach: float = 0.0
    clip_outliers: bool = True


def working_pixel_size_A(pixel_size_A: float, diameter_A: float, params: PickParams) -> float:
    """Pixel size of the binned copy the picker works on (never finer than the micrograph's)."""
    target = np.clip(
        diameter_A / params.diameter_px, params.min_pixel_size_A, params.max_pixel_size_A
    )
    return float(max(target, pixel_size_A))


def pick_score_map(
    image: np.ndarray, pixel_size_A: float, diameter_A: float, params: PickParams
) -> tuple[np.ndarray, np.ndarray, float]:
    """Contrast image and DoG score map on the binned copy.

    Returns
    -------
    contrast : ndarray
        ``binned / median - 1`` (particles and contamination dark).
    score : ndarray
        Dark-blob response in shot-noise standard deviations (particles positive).
    binned_pixel_size_A : float
        Pixel size of both maps.

    Notes
    -----
    With ``params.clip_outliers`` the image's darkest and brightest 0.05 % of pixels are
    clipped first (`screen.processing.filters.clip_outliers`).
    """
    binned, px = bin_to_pixel_size(
        clip_outliers(image) if params.clip_outliers else image,
        pixel_size_A,
        working_pixel_size_A(pixel_size_A, diameter_A, params),
    )
    contrast = relative_contrast(binned)
    pad = int(np.ceil(params.pad_diameters * diameter_A / px))
    pad = min(pad, min(contrast.shape) - 1)
    padded = np.pad(contrast, pad, mode="reflect")
    low_A = params.highpass_diameters * diameter_A
    high_A = params.lowpass_fraction * diameter_A
    response = -bandpass(padded, px, low_A, high_A)
    if pad:
        response = response[pad:-pad, pad:-pad]
    k = radial_frequency_A(padded.shape, px)
    transfer = gaussian_highpass_transfer(k, low_A) * gaussian_lowpass_transfer(k, high_A)
    noise_std = white_noise_std(contrast, params.noise_band) * np.sqrt(
        mean_square_transfer(transfer, padded.shape)
    )
    score = (response - np.median(response)) / max(noise_std, 1e-12)
    return contrast, score.astype(np.float32), px


def pick_particles(
    image: np.ndarray, pixel_size_A: float, diameter_A: float, params: PickParams
) -> Picks:
    """Pick dark blobs of ``diameter_A`` on a micrograph.

    Parameters
    ----------
    image
        Motion-corrected micrograph (counts or any positive intensity; particles dark).
    pixel_size_A
        Its pixel size.
    diameter_A
        Expected particle diameter.
    params
        Picker parameters.

    Returns
    -------
    Picks
        Positions in the micrograph's pixels (best score first) and their z-scores.
    """
    image = np.asarray(image, dtype=np.float32)
    contrast, score, px = pick_score_map(image, pixel_size_A, diameter_A, params)
    diameter_bin = diameter_A / px
    step = max(1, int(np.sqrt(score.size / 250_000)))  # about 250,000 samples
    centre, scale = robust_location_scale(score[::step, ::step])
    threshold = max(params.threshold_sigma, centre + params.robust_threshold_sigma * scale)
    y, x, values = local_maxima(score, params.min_distance_fraction * diameter_bin, threshold)
    if params.symmetry_reach > 0 and len(x):
        x, y, values = _outline_centred(contrast, px, diameter_A, x, y, values, params)
    keep = _not_contamination(contrast, x, y, diameter_bin, params)
    x, y, values = x[keep], y[keep], values[keep]

    scale_y = image.shape[0] / score.shape[0]
    scale_x = image.shape[1] / score.shape[1]
    x_px, y_px = x * scale_x, y * scale_y
    keep = inside_frame(
        x_px, y_px, image.shape, params.edge_margin_fraction * diameter_A / pixel_size_A
    )
    x_px, y_px, values = x_px[keep], y_px[keep], values[keep]
    if params.max_picks_per_um2 is not None:
        area_um2 = image.shape[0] * image.shape[1] * pixel_size_A**2 / 1e8
        n_max = int(np.floor(params.max_picks_per_um2 * area_um2))
        x_px, y_px, values = x_px[:n_max], y_px[:n_max], values[:n_max]
    return Picks(
        x_px=x_px.astype(np.float64), y_px=y_px.astype(np.float64), score=values.astype(np.float32)
    )


def _outline_centred(
    contrast: np.ndarray,
    pixel_size_A: float,
    diameter_A: float,
    x: np.ndarray,
    y: np.ndarray,
    values: np.ndarray,
    params: PickParams,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Peaks (binned pixels, best first) moved to their outlines' centres, duplicates dropped.

    Two walls of one hollow particle move to the same centre; of peaks closer than
    ``min_distance_fraction`` diameters the first (best-scoring) is kept.
    """
    votes = radial_symmetry_map(contrast, pixel_size_A, diameter_A)
    reach_px = params.symmetry_reach * diameter_A / pixel_size_A
    moved_x, moved_y = nearest_symmetry_centres(votes, x, y, reach_px)
    order = np.argsort(-values, kind="stable")
    limit_px = params.min_distance_fraction * diameter_A / pixel_size_A
    kept: list[int] = []
    for i in order:
        d = np.hypot(moved_x[kept] - moved_x[i], moved_y[kept] - moved_y[i]) if kept else ()
        if not len(d) or float(np.min(d)) > limit_px:
            kept.append(int(i))
    kept_index = np.asarray(kept, dtype=int)
    return (
        np.rint(moved_x[kept_index]).astype(int),
        np.rint(moved_y[kept_index]).astype(int),
        values[kept_index],
    )


def _not_contamination(
    contrast: np.ndarray, x: np.ndarray, y: np.ndarray, diameter_px: float, params: PickParams
) -> np.ndarray:
    """Mask of peaks whose neighbourhood is not far darker than the frame's robust range."""
    if len(x) == 0:
        return np.ones(len(x), dtype=bool)
    smooth = ndimage.gaussian_filter(contrast, max(diameter_px / 2.0, 1.0), mode="reflect")
    keep = robust_standardise(smooth)[y, x] > -params.dark_limit_sigma
    if params.dark_limit_contrast is not None:
        keep &= smooth[y, x] > -params.dark_limit_contrast
    return keep


CENSUS_DIAMETER_A = 80.0
"""Blob size of `dark_blob_census`: 80 Å, under most particles' size (60-500 Å): a larger
particle's dark core or domains answer at this scale too, and it is what the picker's band-pass
keeps of a 60-100 Å one."""

CENSUS_PIXEL_SIZE_A = 8.0
"""Working pixel size of the census (the frame's own where coarser): 10 pixels per blob, and a
K3 frame binned to about 500 x 700 pixels, cheap beside the assessment's network."""

STRONG_BLOB_SIGMA = 4.0
"""A blob counts as strong when its score stands this many robust standard deviations above
the median of its own micrograph's score map: a filtered noise field (or ice texture) gives few
such maxima, a field of particles many."""


@dataclass(frozen=True)
class DarkBlobCensus:
    """How much of a micrograph looks like particles, on the picker's score map at 80 Å.

    Attributes
    ----------
    strong
        Local maxima of the score at least `STRONG_BLOB_SIGMA` robust standard deviations above
        the map's median (half a blob away from the frame's edges).
    strong_per_um2
        The same per µm² of the frame.
    tail_asymmetry
        ``(q99.5 - q50) / (q50 - q0.5)`` of the score map: how far its dark-blob side (positive
        scores) reaches beyond its bright side. About 1 for noise and ice texture, whatever the
        processing (a linear filter of symmetric noise is symmetric); above 1 where dark
        particles are present, dense fields included (the real EMPIAR-10017 exports 1.20-1.48).
    """

    strong: int
    strong_per_um2: float
    tail_asymmetry: float


def dark_blob_census(
    image: np.ndarray, pixel_size_A: float, reduced: tuple[np.ndarray, float] | None = None
) -> DarkBlobCensus | None:
    """The micrograph's strong dark blobs and its score map's asymmetry (None: too small).

    A micrograph measure for the assessment's session check of empty fields
    (`screen.stages.assess_micrographs.empty_in_session`): both numbers are read relative to the
    micrograph's own score map, so they mean the same on counts, exports and denoised frames.
    ``reduced``: the frame's `screen.processing.anisotropy.reduced_frame` when already made.
    """
    if pixel_size_A <= 0:
        raise ValueError(f"pixel size must be positive, got {pixel_size_A}")
    params = PickParams(
        min_pixel_size_A=CENSUS_PIXEL_SIZE_A,
        max_pixel_size_A=CENSUS_PIXEL_SIZE_A,
        clip_outliers=False,  # clipped before the block means
    )
    # Clipped block means to at most 3.3 Å/px first (shared with the drift check's measure;
    # the frame itself from 1.67 Å/px up), then the picker's Fourier crop to 8 Å/px: a K3 frame
    # in ~50 ms, with no full-frame FFT.
    if reduced is None:
        reduced = reduced_frame(image, pixel_size_A)
    image = np.asarray(image)
    _, score, px = pick_score_map(*reduced, CENSUS_DIAMETER_A, params)
    margin = int(np.ceil(0.5 * CENSUS_DIAMETER_A / px))
    if min(score.shape) < 4 * margin + 16:
        return None
    inner = score[margin:-margin, margin:-margin]
    step = max(1, int(np.sqrt(inner.size / 250_000)))
    centre, scale = robust_location_scale(inner[::step, ::step])
    low, median, high = np.percentile(inner[::step, ::step], [0.5, 50.0, 99.5])
    if not scale > 0 or not median > low:
        return None
    y, x, _ = local_maxima(
        score,
        params.min_distance_fraction * CENSUS_DIAMETER_A / px,
        centre + STRONG_BLOB_SIGMA * scale,
    )
    inside = (
        (x >= margin)
        & (y >= margin)
        & (x < score.shape[1] - margin)
        & (y < score.shape[0] - margin)
    )
    area_um2 = float(image.shape[0] * image.shape[1] * pixel_size_A**2 / 1e8)
    return DarkBlobCensus(
        strong=int(inside.sum()),
        strong_per_um2=float(inside.sum()) / area_um2,
        tail_asymmetry=float((high - median) / (median - low)),
    )


BACKEND = Backend(
    stage="picking",
    name="builtin",
    version="6",  # 5: contrast of zero-centred images (`relative_contrast`); 6: no absolute
    # dark limit by default
    params_type=PickParams,
    compute=pick_particles,
)
