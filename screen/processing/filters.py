"""Fourier-space filters of images: Gaussian low/high/band-pass, Laplacian of Gaussian, binning.

Every filter multiplies the image's ``rfft2`` by a real, radially symmetric transfer function, so
the output has the input's shape (periodic boundaries: keep features of interest away from edges).
Lengths are in Å with the image's pixel size, or in pixels where the name says ``_px``.
"""

from __future__ import annotations

import numpy as np
from scipy import fft as sfft

from screen.processing.ctf import frequency_grid
from screen.processing.fourier import fourier_crop


def radial_frequency_A(shape: tuple[int, int], pixel_size_A: float) -> np.ndarray:
    """Spatial frequency magnitude (1/Å) on the ``rfft2`` grid of an image of ``shape``."""
    kx, ky = frequency_grid(shape, pixel_size_A)
    return np.hypot(kx, ky)


def apply_transfer(image: np.ndarray, transfer: np.ndarray) -> np.ndarray:
    """Multiply the ``rfft2`` of ``image`` by ``transfer``; return the float32 real image."""
    spectrum = sfft.rfft2(np.asarray(image, dtype=np.float32), workers=-1)
    return sfft.irfft2(spectrum * transfer, s=image.shape, workers=-1).astype(np.float32)


def gaussian_lowpass_transfer(k_A: np.ndarray, resolution_A: float) -> np.ndarray:
    """Gaussian low-pass whose amplitude falls to 1/2 at frequency ``1 / resolution_A``."""
    k_half = 1.0 / resolution_A
    return np.exp(-np.log(2.0) * (k_A / k_half) ** 2).astype(np.float32)


def gaussian_highpass_transfer(k_A: np.ndarray, resolution_A: float) -> np.ndarray:
    """Gaussian high-pass whose amplitude reaches 1/2 at frequency ``1 / resolution_A``."""
    return (1.0 - gaussian_lowpass_transfer(k_A, resolution_A)).astype(np.float32)


def lowpass(image: np.ndarray, pixel_size_A: float, resolution_A: float) -> np.ndarray:
    """Gaussian low-pass filter to ``resolution_A`` (amplitude 1/2 there)."""
    k = radial_frequency_A(image.shape, pixel_size_A)
    return apply_transfer(image, gaussian_lowpass_transfer(k, resolution_A))


def bandpass(
    image: np.ndarray, pixel_size_A: float, low_resolution_A: float, high_resolution_A: float
) -> np.ndarray:
    """Keep detail between ``low_resolution_A`` (coarse limit) and ``high_resolution_A`` (fine).

    Gaussian edges at both ends (amplitude 1/2 at each limit); the mean is removed.
    """
    if high_resolution_A >= low_resolution_A:
        raise ValueError(
            f"band-pass limits {low_resolution_A} Å and {high_resolution_A} Å: the coarse limit "
            "must be the larger length"
        )
    k = radial_frequency_A(image.shape, pixel_size_A)
    transfer = gaussian_highpass_transfer(k, low_resolution_A) * gaussian_lowpass_transfer(
        k, high_resolution_A
    )
    return apply_transfer(image, transfer)


def log_transfer(k_A: np.ndarray, sigma_A: float) -> np.ndarray:
    """Scale-normalised negative Laplacian of Gaussian, ``-sigma^2 * lap(G_sigma)``, in Fourier space.

    Its response is positive at the centre of a bright blob of radius ``sqrt(2) * sigma`` and
    negative at a dark one; the ``sigma^2`` factor makes responses comparable across scales.
    """
    k2 = (2.0 * np.pi * k_A) ** 2
    return (sigma_A**2 * k2 * np.exp(-0.5 * sigma_A**2 * k2)).astype(np.float32)


def laplacian_of_gaussian(image: np.ndarray, pixel_size_A: float, sigma_A: float) -> np.ndarray:
    """Scale-normalised negative Laplacian of Gaussian of ``image`` (see ``log_transfer``)."""
    k = radial_frequency_A(image.shape, pixel_size_A)
    return apply_transfer(image, log_transfer(k, sigma_A))


def bin_to_pixel_size(image: np.ndarray, pixel_size_A: float, target_pixel_size_A: float):
    """Fourier-crop ``image`` to about ``target_pixel_size_A`` (never finer than the input).

    Returns
    -------
    binned : ndarray
        The down-sampled image (float32); the input unchanged (as float32) when no binning helps.
    binned_pixel_size_A : float
        Its pixel size along x (the same along y up to rounding of the shape).
    """
    if pixel_size_A >= target_pixel_size_A:
        return np.asarray(image, dtype=np.float32), float(pixel_size_A)
    ny, nx = image.shape
    factor = target_pixel_size_A / pixel_size_A
    shape = (max(int(round(ny / factor / 2)) * 2, 2), max(int(round(nx / factor / 2)) * 2, 2))
    shape = (min(shape[0], ny), min(shape[1], nx))
    if shape == (ny, nx):
        return np.asarray(image, dtype=np.float32), float(pixel_size_A)
    return fourier_crop(image, shape), float(pixel_size_A * nx / shape[1])


def robust_location_scale(values: np.ndarray) -> tuple[float, float]:
    """Median and 1.4826 x median absolute deviation (the std of Gaussian values).

    Neither moves with a few extreme values (hot pixels, a contamination ball, a carbon edge),
    and both mean the same on counts, 8-bit exports and denoised images. Falls back to the
    standard deviation when over half the values are equal (a quantised, flat image).
    """
    values = np.asarray(values, dtype=np.float32).reshape(-1)
    centre = float(np.median(values))
    scale = 1.4826 * float(np.median(np.abs(values - centre)))
    if not scale > 0:
        scale = float(values.std())
    return centre, scale if scale > 0 else 1.0


def robust_standardise(values: np.ndarray, sample: np.ndarray | None = None) -> np.ndarray:
    """``(values - median) / (1.4826 * MAD)``: a z-score that a few outliers do not move.

    ``sample`` (default ``values``) gives the median and MAD.
    """
    sample = values if sample is None else sample
    median = float(np.median(sample))
    mad = float(np.median(np.abs(sample - median))) * 1.4826
    return ((values - median) / (mad if mad > 0 else 1.0)).astype(np.float32)


def _rfft_weights(shape: tuple[int, int]) -> np.ndarray:
    """Multiplicity of each ``rfft2`` column in the full spectrum (1 or 2)."""
    nx = shape[1]
    weights = np.full(nx // 2 + 1, 2.0)
    weights[0] = 1.0
    if nx % 2 == 0:
        weights[-1] = 1.0
    return weights


def mean_square_transfer(transfer: np.ndarray, shape: tuple[int, int]) -> float:
    """Mean of ``|transfer|^2`` over the full 2D spectrum of an image of ``shape``.

    A filter with this transfer turns white noise of variance ``s^2`` into noise of variance
    ``s^2 * mean_square_transfer``.
    """
    weights = _rfft_weights(shape)
    return float(np.sum(np.abs(transfer) ** 2 * weights) / (shape[0] * shape[1]))


def white_noise_std(image: np.ndarray, band: tuple[float, float] = (0.6, 0.95)) -> float:
    """Standard deviation of white noise whose power matches the image's in a frequency band.

    ``band`` is given as fractions of the Nyquist frequency; at high frequency a micrograph's
    power is mostly shot noise, so this measures the noise level independently of the
    particles, the ice and contamination (which live at low frequency).
    """
    ny, nx = image.shape
    spectrum = sfft.rfft2(np.asarray(image, dtype=np.float32) - np.mean(image), workers=-1)
    k = radial_frequency_A(image.shape, 0.5)  # in units of the Nyquist frequency
    ring = (k >= band[0]) & (k < band[1])
    weights = np.broadcast_to(_rfft_weights(image.shape), k.shape)[ring]
    power = np.sum(np.abs(spectrum[ring]) ** 2 * weights) / max(np.sum(weights), 1.0)
    return float(np.sqrt(power / (ny * nx)))


def block_means(image: np.ndarray, work_side_px: int) -> np.ndarray:
    """Means of square blocks, about ``work_side_px`` of them on the image's short side.

    Whole blocks only (a ragged edge is dropped); rows of blocks are summed first, so a K3 frame
    takes ~15 ms and no full-frame float copy. An image already that small is returned as float.
    """
    image = np.asarray(image)
    factor = max(1, min(image.shape) // work_side_px)
    rows, cols = (side // factor for side in image.shape)
    strips = image[: rows * factor, : cols * factor].reshape(rows, factor, cols * factor)
    sums = strips.sum(axis=1, dtype=np.float64).reshape(rows, cols, factor).sum(axis=2)
    return sums / factor**2


OUTLIER_QUANTILE = 5e-4
"""Share of pixels at each end of the grey levels clipped by :func:`clip_outliers`."""


def outlier_limits(image: np.ndarray, bright_outliers: bool = False) -> tuple[float, float] | None:
    """The grey levels :func:`clip_outliers` clips to: ``OUTLIER_QUANTILE`` from each end.

    Read from at most about 2**20 evenly strided pixels; ``None`` for a mostly constant image
    (a blank frame: left to the checks). With ``bright_outliers``, the upper limit is at most
    `BRIGHT_OUTLIER_SIGMA` robust sigmas above the median (:func:`bright_outlier_level`): hot
    pixels spread by binning or a denoiser cover more than the quantile's share of the frame.
    On a frame without them that level lies far above the quantile (white noise's 0.05 % tail
    is 3.3 sigma), so the limits are the quantile's.
    """
    if not bright_outliers:
        low, high = np.quantile(_grey_sample(image), [OUTLIER_QUANTILE, 1.0 - OUTLIER_QUANTILE])
        # Python floats: NumPy 2 would promote a float32 frame to float64 with NumPy scalars
        return (float(low), float(high)) if high > low else None
    limits, bright = _limits_and_bright_level(image)
    if limits is None or bright is None:
        return limits
    low, high = limits[0], min(limits[1], bright[1])
    return (low, high) if high > low else None


def _limits_and_bright_level(
    image: np.ndarray,
) -> tuple[tuple[float, float] | None, tuple[float, float] | None]:
    """:func:`outlier_limits` and :func:`bright_outlier_level` from one quantile pass."""
    low, quarter, median, three_quarters, high = np.quantile(
        _grey_sample(image), [OUTLIER_QUANTILE, 0.25, 0.5, 0.75, 1.0 - OUTLIER_QUANTILE]
    )
    limits = (float(low), float(high)) if high > low else None
    return limits, _bright_level((quarter, median, three_quarters))


def _grey_sample(image: np.ndarray) -> np.ndarray:
    """At most about 2**20 evenly strided pixels of the image, float32, flat."""
    stride = max(1, int(np.sqrt(image.size / 2**20)))
    return np.asarray(image[::stride, ::stride], dtype=np.float32).reshape(-1)


BRIGHT_OUTLIER_SIGMA = 8.0
"""`clipped_block_means` sets pixels this many robust standard deviations (the middle half's
spread / 1.349) above the image's median to the median. Particles, ice, carbon and contamination
are dark against the ice or level with it: nothing a micrograph records stands 8 sigma brighter
than its median but a detector defect, as such or spread by binning or a denoiser (hot pixels
summed into a binned frame hold up to 16 times their share of its pixels, 1e-4 to 5e-3, more than
the 0.05 % quantile clip takes, and their white power hid drift's directional loss). Measured
2026-12-06 (session 25, `/tmp/s25/aniso2.py`): drifted micrographs of held-out sessions whose hot
pixels were binned or denoised stood 0-3.7 robust spreads above their session's anisotropy, 3.1-13.8
with this; good ones (at most 2.5) and sessions without hot pixels unchanged."""


def bright_outlier_level(image: np.ndarray) -> tuple[float, float] | None:
    """The image's median and the grey level `BRIGHT_OUTLIER_SIGMA` robust sigmas above it.

    None for a mostly constant image (its middle half on one value).
    """
    return _bright_level(np.quantile(_grey_sample(image), [0.25, 0.5, 0.75]))


def _bright_level(quartiles) -> tuple[float, float] | None:
    quarter, median, three_quarters = (float(q) for q in quartiles)
    sigma = (three_quarters - quarter) / 1.349
    return (median, median + BRIGHT_OUTLIER_SIGMA * sigma) if sigma > 0 else None


def clipped_block_means(image: np.ndarray, factor: int) -> np.ndarray:
    """Means of ``factor`` x ``factor`` blocks (float32), hot and dead pixels clipped first.

    The clip is :func:`outlier_limits`'s, and pixels `BRIGHT_OUTLIER_SIGMA` robust standard
    deviations above the median are set to the median (:func:`bright_outlier_level`: hot pixels
    spread by binning or a denoiser); whole blocks only; one strip of rows at a time, so a K3
    frame is reduced without a full-frame float copy (a cheap first step before a Fourier crop
    to a coarse working pixel size).
    """
    image = np.asarray(image)
    limits, bright = _limits_and_bright_level(image)
    if bright is not None and limits is not None and bright[1] >= limits[1]:
        bright = None  # the clip already holds every pixel under the level (counts without defects)
    factor = max(1, int(factor))
    rows, cols = image.shape[0] // factor, image.shape[1] // factor
    out = np.empty((rows, cols), dtype=np.float32)
    strip_rows = max(1, 256 // factor)
    for r0 in range(0, rows, strip_rows):
        r1 = min(rows, r0 + strip_rows)
        block = np.asarray(image[r0 * factor : r1 * factor, : cols * factor], dtype=np.float32)
        if limits is not None:
            block = np.clip(block, *limits)
        if bright is not None:
            block = np.where(block > bright[1], np.float32(bright[0]), block)
        sums = block.reshape(r1 - r0, factor, cols * factor).sum(axis=1)
        out[r0:r1] = sums.reshape(r1 - r0, cols, factor).sum(axis=2) / factor**2
    return out


def clip_outliers(image: np.ndarray) -> np.ndarray:
    """Clip the darkest and brightest ``OUTLIER_QUANTILE`` of the pixels to the quantiles there.

    Hot and dead detector pixels (1e-5 to 3e-4 of a frame on real cameras) would otherwise
    spread, through the Fourier crop, into rings and white noise that no simulator's noise
    model predicts, and a few of them swamp a power spectrum's Thon rings (the CTF fit). A quantile is a statistic of the image's own grey levels, so the clip means
    the same on counts, 8-bit exports or denoised images; contamination, carbon and particles
    cover far more than 0.05 % of a frame and keep their values (`outlier_limits`).
    """
    image = np.asarray(image, dtype=np.float32)
    limits = outlier_limits(image)
    return image if limits is None else np.clip(image, *limits)


LEVEL_MIN_SPREADS = 1.0
"""An image whose median grey level is under this many robust standard deviations of its pixels
is not an intensity (a z-scored or otherwise centred MRC: median within ~0.3 of them). Counts
give about the square root of the counts per pixel (>= 3 from 9 e/px), 8-bit exports 5-9: the
twelve EMPIAR-10017 exports 5.4-8.5, the simulator's micrographs 1.3-400 (`screen simulate`'s
clean, binned, denoised, JPEG and hot-pixel sets, 2026-12-06)."""

NORMALISED_LEVEL_SPREADS = 7.0
"""For such an image the level is taken this many robust standard deviations: the median ratio of
the twelve real EMPIAR-10017 exports, so that a z-scored export gets the contrast scale its
export had. Only absolute contrast limits read the scale (the picker's contamination limit);
scores in noise standard deviations do not."""


def relative_contrast(image: np.ndarray, level: float | None = None) -> np.ndarray:
    """``image / level - 1`` (particles dark; ``level`` the median by default), as float32.

    For an intensity (counts, dose-weighted sums, exports) that is the fractional contrast. An
    image normalised to a zero mean has no level: dividing by its near-zero median would blow the
    contrast up and, for a negative one, turn particles bright (picking on a z-scored real
    export found 105 picks, recall 0.13, 2026-12-06). Where the median is under
    ``LEVEL_MIN_SPREADS`` robust standard deviations, the contrast is ``(image - median) /
    (NORMALISED_LEVEL_SPREADS x robust std)`` instead.
    """
    image = np.asarray(image, dtype=np.float32)
    centre = float(np.median(image)) if level is None else float(level)
    stride = max(1, int(np.sqrt(image.size / 2**18)))
    median, spread = robust_location_scale(image[::stride, ::stride])
    if spread > 0 and not centre >= LEVEL_MIN_SPREADS * spread:
        return ((image - median) / (NORMALISED_LEVEL_SPREADS * spread)).astype(np.float32)
    return (image / (centre if centre != 0 else 1.0) - 1.0).astype(np.float32)
