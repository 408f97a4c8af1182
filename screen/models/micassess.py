"""MicAssess v2: a small Keras CNN that scores micrographs good/bad and names the reason.

Inputs (made by :func:`preprocess`, pure numpy):

* ``image``: the whole frame Fourier-cropped to about ``TARGET_PIXEL_A`` (8 Å) per pixel, so
  particles, ice gradients and carbon edges have the same size in pixels on any detector; square
  crops of it (one for a square frame, two for K2/K3 shapes), normalised to mean 0 / std 1,
  clipped to +-``CLIP_SIGMA`` and zeroed outside the inscribed circle (as Li et al. 2020 do at
  494 px). The network is fully convolutional, so the square's side may vary;
* ``spectrum``: the rotationally averaged log power spectrum on a fixed grid of *physical*
  frequencies (``SPECTRUM_K_A``, 1/Å), so that micrographs of different pixel sizes give the
  same feature for the same physics (Thon rings, ice and damping fall-off, low-frequency texture);
* ``anisotropy``: the 2-fold angular harmonic of the log power on the same grid (directional
  damping of drift, elliptical rings of strong astigmatism);
* ``power``: the 2D log power spectrum resampled to fixed physical frequencies (``POWER_PX``
  squared, out to 7.2 Å), the picture of Thon rings a person reads;
* ``blobs``: tail statistics of the crop band-passed at particle-like scales
  (:func:`blob_statistics`): how many particle-sized dark and bright blobs stand out of the ice
  noise. Empty ice gives Gaussian noise; particles, aggregates and contamination give tails.

Output: one softmax ``classes`` over good + :data:`screen.stages.records.MICROGRAPH_REASONS`;
P(good) is its first entry, the reason of a bad micrograph the likeliest of the others
(:func:`scores_from_outputs`). A micrograph is bad when P(good) < 0.1 (the paper's rule).
Networks with separate ``p_good``/``reason`` heads, and the paper's one-output ResNet34
(:mod:`screen.models.micassess_paper`), are read too.

Training data come from the simulator (:func:`simulate_labelled_set`); TensorFlow/Keras are
imported inside the functions that need them, never at import time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from screen.processing.filters import outlier_limits
from screen.processing.fourier import fourier_crop, periodogram_average, rotational_average
from screen.stages.records import MICROGRAPH_REASONS

if TYPE_CHECKING:
    from screen.simulate.domain import DomainSpec

TARGET_PIXEL_A = 8.0
"""Pixel size (Å) the CNN sees: every frame is Fourier-cropped to about this sampling, so a
particle, an ice gradient or a carbon edge has the same size in pixels whatever the detector."""
SIZE_STEP_PX = 16
"""Square sides are rounded to a multiple of this (few distinct shapes: batching, tracing)."""
MIN_IMAGE_PX = 64
MAX_IMAGE_PX = 640
"""Bounds of the square side the CNN sees (a 5760x4092 K3 frame at 0.83 Å/px gives 416)."""
N_SPECTRUM_BINS = 64
"""Number of physical-frequency bins of the 1D spectrum inputs."""
SPECTRUM_K_A = np.linspace(1.0 / 200.0, 1.0 / 7.2, N_SPECTRUM_BINS)
"""Frequencies (1/Å) of the spectrum inputs: 200 Å to 7.2 Å (Nyquist of 3.6 Å/px)."""
SPECTRUM_TILE_PX = 256
"""Tile of the averaged periodogram (half the frame's side for frames under 512 px)."""
SPECTRUM_MAX_PX = 2048
"""The spectrum is averaged over the central ``SPECTRUM_MAX_PX`` square at most (speed)."""
CLIP_SIGMA = 5.0
MIN_SIDE_PX = 64
"""Micrographs whose short side is below this cannot be assessed."""
PREPROCESS_THREADS = 2
"""Micrographs preprocessed at once in :func:`predict_micrographs`."""
POWER_PX = 65
"""Side of the 2D log power spectrum input (odd: its centre is a pixel, so 90-degree turns of
it are exact), sampled at fixed physical frequencies out to ``POWER_K_MAX_A``."""
POWER_K_MAX_A = 1.0 / 7.2
BLOB_SIGMAS_PX = (1.0, 1.6, 2.5, 4.0, 6.3, 10.0)
"""Scales (Gaussian sigma, in pixels of the ~8 Å/px crop) of the blob statistics: particles of
about 25-250 Å, contamination and aggregates above."""
N_BLOB_STATS = 6
"""Statistics per scale in :func:`blob_statistics`."""
INPUT_NAMES = ("image", "image_ranks", "spectrum", "anisotropy", "power", "blobs")
"""``image_ranks`` is the image with its grey levels replaced by their ranks (:func:`grey_level_ranks`)."""


@dataclass(frozen=True)
class Spectra:
    """Spectral inputs of one micrograph (shared by its square crops)."""

    spectrum: np.ndarray  # (N_SPECTRUM_BINS,) normalised log rotational average
    anisotropy: np.ndarray  # (N_SPECTRUM_BINS,) 2-fold harmonic amplitude of the log power
    power: np.ndarray  # (POWER_PX, POWER_PX) normalised 2D log power, physical frequencies


@dataclass(frozen=True)
class Features:
    """Preprocessed inputs of micrograph crops.

    ``image`` holds one ``(side, side)`` float32 array per crop; sides may differ between
    micrographs of different frame or pixel sizes (the network is fully convolutional), and
    batches are made of crops of one side.
    """

    image: tuple[np.ndarray, ...]
    spectrum: np.ndarray  # (n, N_SPECTRUM_BINS) float32
    anisotropy: np.ndarray  # (n, N_SPECTRUM_BINS) float32
    power: np.ndarray  # (n, POWER_PX, POWER_PX) float32
    blobs: np.ndarray  # (n, len(BLOB_SIGMAS_PX) * N_BLOB_STATS) float32

    def __len__(self) -> int:
        return len(self.image)

    @staticmethod
    def from_crops(
        crops: list[np.ndarray], spectra: list[Spectra], blobs: np.ndarray | None = None
    ) -> Features:
        """Features of crops, each with its micrograph's spectra.

        The blob statistics are computed here unless given (one row per crop).
        """
        bins = N_SPECTRUM_BINS
        return Features(
            tuple(crops),
            np.asarray([s.spectrum for s in spectra], np.float32).reshape(-1, bins),
            np.asarray([s.anisotropy for s in spectra], np.float32).reshape(-1, bins),
            np.asarray([s.power for s in spectra], np.float32).reshape(-1, POWER_PX, POWER_PX),
            blob_features(crops) if blobs is None else np.asarray(blobs, np.float32),
        )

    def same_side_groups(self) -> list[np.ndarray]:
        """Indices of the crops grouped by image side (one batchable group per side)."""
        sides = np.array([image.shape[0] for image in self.image], dtype=int)
        return [np.flatnonzero(sides == side) for side in np.unique(sides)]

    def inputs(
        self,
        indices,
        input_names,
        images: np.ndarray | None = None,
        power: np.ndarray | None = None,
    ) -> dict:
        """The named model inputs of the crops ``indices`` (all of one side).

        ``images`` and ``power`` replace the stored ones (augmented copies, in training).
        """
        indices = np.asarray(indices, dtype=int)
        if images is None:
            images = np.stack([self.image[i] for i in indices])
        if power is None:
            power = self.power[indices]
        available = {
            "image": images[..., None].astype(np.float32),
            "image_ranks": (
                grey_level_ranks(images)[..., None] if "image_ranks" in input_names else None
            ),
            "spectrum": self.spectrum[indices],
            "anisotropy": self.anisotropy[indices],
            "power": power[..., None].astype(np.float32),
            "blobs": self.blobs[indices],
        }
        return {name: available[name] for name in input_names}

    @staticmethod
    def concatenate(parts: list[Features]) -> Features:
        """The crops of several feature sets, in order."""
        return Features(
            tuple(image for part in parts for image in part.image),
            np.concatenate([part.spectrum for part in parts]).astype(np.float32),
            np.concatenate([part.anisotropy for part in parts]).astype(np.float32),
            np.concatenate([part.power for part in parts]).astype(np.float32),
            np.concatenate([part.blobs for part in parts]).astype(np.float32),
        )


# --------------------------------------------------------------------------- preprocessing


def square_crops(shape: tuple[int, int]) -> list[tuple[slice, slice]]:
    """Square crops (side = short side) that together cover a frame, evenly spaced.

    A square frame gives one crop; a K3 frame (4092 x 5760) gives two overlapping ones.
    """
    ny, nx = shape
    side = min(ny, nx)
    long_side = max(ny, nx)
    n = int(np.ceil(long_side / side - 1e-6))
    starts = np.linspace(0, long_side - side, n).round().astype(int) if n > 1 else [0]
    if ny <= nx:
        return [(slice(0, side), slice(s, s + side)) for s in starts]
    return [(slice(s, s + side), slice(0, side)) for s in starts]


def circular_mask(n_px: int) -> np.ndarray:
    """Boolean disc of diameter ``n_px`` centred in an ``n_px`` square."""
    y, x = np.indices((n_px, n_px)) - (n_px - 1) / 2
    return np.hypot(x, y) <= n_px / 2


def image_side_px(short_side_px: int, pixel_size_A: float) -> int:
    """Side of the square the CNN sees for a frame: about ``TARGET_PIXEL_A`` per pixel.

    Rounded to a multiple of ``SIZE_STEP_PX`` and kept within ``MIN_IMAGE_PX``..``MAX_IMAGE_PX``;
    never larger than the frame (no up-sampling of frames coarser than the target).
    """
    target = short_side_px * pixel_size_A / TARGET_PIXEL_A
    side = int(round(target / SIZE_STEP_PX)) * SIZE_STEP_PX
    return int(min(short_side_px, max(MIN_IMAGE_PX, min(side, MAX_IMAGE_PX))))


def normalise_masked(small: np.ndarray) -> np.ndarray:
    """Z-score a square inside its circular mask, clip at +-``CLIP_SIGMA``, zero outside."""
    mask = circular_mask(small.shape[0])
    inside = small[mask]
    std = float(inside.std())
    out = (small - float(inside.mean())) / (std if std > 0 else 1.0)
    out = np.clip(out, -CLIP_SIGMA, CLIP_SIGMA)
    out[~mask] = 0.0
    return out.astype(np.float32)


def grey_level_ranks(images: np.ndarray) -> np.ndarray:
    """Masked squares whose values inside the circle are replaced by normal quantiles of their ranks.

    The result depends only on the order of the grey levels: any monotonic remapping of them
    (8-bit contrast stretch, gamma or log display, histogram equalisation of an export, the
    grey-level distribution a denoiser leaves) gives the same input, which is standard normal
    inside the circle and 0 outside. ``images`` is ``(n, side, side)``; float32 out.
    """
    from scipy.special import ndtri

    images = np.asarray(images, dtype=np.float32)
    side = images.shape[-1]
    mask = circular_mask(side)
    n_inside = int(mask.sum())
    quantiles = ndtri((np.arange(n_inside) + 0.5) / n_inside).astype(np.float32)
    out = np.zeros_like(images)
    for index, square in enumerate(images.reshape(-1, side, side)):
        ranked = np.empty(n_inside, dtype=np.float32)
        ranked[np.argsort(square[mask])] = quantiles  # ties (rare in float crops): any order
        out.reshape(-1, side, side)[index][mask] = ranked
    return out


def downsampled_squares(
    image: np.ndarray, image_px: int, value_range: tuple[float, float] | None = None
) -> np.ndarray:
    """Fourier-crop a whole frame so its short side is ``image_px``; its normalised square crops.

    One transform of the whole frame (not one per crop): a K3 frame costs one FFT. Pixel values
    are clipped to ``value_range`` first, when given. Returns ``(n_crops, image_px, image_px)``
    float32.
    """
    ny, nx = image.shape
    scale = image_px / min(ny, nx)
    shape = (
        image_px if ny <= nx else min(ny, max(image_px, round(ny * scale))),
        image_px if nx <= ny else min(nx, max(image_px, round(nx * scale))),
    )
    if shape != (ny, nx):
        small = fourier_crop(image, shape, value_range)
    elif value_range is not None:
        small = np.clip(np.asarray(image, np.float32), *value_range)
    else:
        small = np.asarray(image, np.float32)
    return np.stack([normalise_masked(small[sy, sx]) for sy, sx in square_crops(small.shape)])


def _band_passed(transform: np.ndarray, n_px: int, sigma_px: float) -> np.ndarray:
    """Difference of Gaussians (sigma, 1.6 sigma) of a square from its ``rfft2``.

    Frequencies where both Gaussians are below 1e-5 are dropped first (a Fourier crop to a
    power-of-two fraction of the side), so large scales are computed on a coarser grid.
    """
    cut = np.sqrt(np.log(1e5) / (2.0 * np.pi**2)) / sigma_px  # cycles/px where exp(...) = 1e-5
    step = 1
    while cut * 2 * step < 0.5 and n_px // (2 * step) >= 32:
        step *= 2
    m = n_px // step
    if step > 1:
        rows = np.r_[0 : (m + 1) // 2, n_px - m // 2 : n_px]
        transform = transform[rows, : m // 2 + 1]
    k2 = np.fft.fftfreq(m)[:, None] ** 2 + np.fft.rfftfreq(m)[None, :] ** 2
    gain = np.exp(-2.0 * np.pi**2 * (sigma_px / step) ** 2 * k2)
    return np.fft.irfft2(transform * (gain - gain ** (1.6**2)), s=(m, m))


def blob_statistics(square: np.ndarray) -> np.ndarray:
    """Tail statistics of a normalised crop band-passed at each of ``BLOB_SIGMAS_PX``.

    At each scale the crop is band-passed (difference of Gaussians, sigma and 1.6 sigma; large
    scales on a coarser grid) and the values inside the circle, away from its edge, are divided
    by their robust standard deviation (1.4826 x median absolute deviation: blobs do not inflate
    it). Per scale: log10 of the share of values below -3 and -5 and above +3 and +5, the log
    of std / robust std, and the excess kurtosis (clipped to [-5, 50]). Ice noise is close to
    Gaussian (shares near 1.3e-3 and 3e-7, log ratio 0, kurtosis 0); particles, aggregates and
    contamination make tails at their scale. Rotation and flip invariant. Returns
    ``len(BLOB_SIGMAS_PX) * N_BLOB_STATS`` float32.
    """
    square = np.asarray(square, dtype=np.float32)
    n = square.shape[0]
    # Band-passes by FFT (the crop is zero outside its circle, so wrap-around is harmless).
    transform = np.fft.rfft2(square)
    radius_by_side: dict[int, np.ndarray] = {}
    out = []
    for sigma in BLOB_SIGMAS_PX:
        band = _band_passed(transform, n, sigma).astype(np.float32)
        m = band.shape[0]
        if m not in radius_by_side:
            y, x = np.indices(band.shape, dtype=np.float32) - (m - 1) / 2
            radius_by_side[m] = np.hypot(x, y)
        radius = radius_by_side[m]
        inner = radius <= m / 2 - 3.2 * sigma * m / n
        values = band[inner] if np.count_nonzero(inner) >= 64 else band[radius <= m / 2]
        values -= np.median(values[::3])
        robust = 1.4826 * float(np.median(np.abs(values[::3])))
        squared = values * values
        variance = float(squared.mean())
        if not robust > 0 or not variance > 0:
            out += [-4.0, -4.0, -4.0, -4.0, 0.0, 0.0]
            continue
        size = values.size
        shares = [
            np.count_nonzero(values < -3 * robust) / size,
            np.count_nonzero(values < -5 * robust) / size,
            np.count_nonzero(values > 3 * robust) / size,
            np.count_nonzero(values > 5 * robust) / size,
        ]
        kurtosis = float(np.mean(squared * squared, dtype=np.float64)) / variance**2 - 3.0
        out += [float(np.log10(share + 1e-4)) for share in shares]
        out += [0.5 * float(np.log(variance / robust**2)), float(np.clip(kurtosis, -5.0, 50.0))]
    return np.asarray(out, dtype=np.float32)


def blob_features(crops) -> np.ndarray:
    """:func:`blob_statistics` of each crop, ``(n, len(BLOB_SIGMAS_PX) * N_BLOB_STATS)``."""
    width = len(BLOB_SIGMAS_PX) * N_BLOB_STATS
    return np.asarray([blob_statistics(c) for c in crops], np.float32).reshape(-1, width)


def power_image(
    log_power: np.ndarray,
    pixel_size_A: float,
    n_px: int = POWER_PX,
    k_max_A: float = POWER_K_MAX_A,
) -> np.ndarray:
    """The centred 2D log power spectrum (``log_power``) resampled to fixed physical frequencies.

    ``n_px`` x ``n_px`` samples of ``kx, ky`` in [-k_max_A, k_max_A] (1/Å), bilinear from the
    (smoothed, when it is finer than the grid) log periodogram; beyond the micrograph's Nyquist
    the edge value is repeated. Normalised to mean 0 / std 1 and clipped at +-``CLIP_SIGMA``:
    Thon-ring ellipses (astigmatism), their extent (defocus, B-factor, ice) and directional
    fading (drift) as a human reads them.
    """
    from scipy.ndimage import gaussian_filter, map_coordinates

    tile = log_power.shape[0]
    radius_px = k_max_A * tile * pixel_size_A  # k_max in periodogram pixels
    step_px = 2.0 * radius_px / (n_px - 1)
    if step_px > 1.0:
        log_power = gaussian_filter(log_power, 0.5 * step_px, mode="wrap")
    grid = np.linspace(-radius_px, radius_px, n_px) + tile // 2
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    sampled = map_coordinates(log_power, [yy, xx], order=1, mode="nearest")
    centre = n_px // 2
    sampled[centre, centre] = sampled[centre, centre + 1]  # the mean (DC) carries no information
    std = float(sampled.std())
    out = (sampled - sampled.mean()) / (std if std > 0 else 1.0)
    return np.clip(out, -CLIP_SIGMA, CLIP_SIGMA).astype(np.float32)


def spectrum_features(
    image: np.ndarray,
    pixel_size_A: float,
    k_A: np.ndarray = SPECTRUM_K_A,
    *,
    value_range: tuple[float, float] | None = None,
) -> Spectra:
    """Spectral inputs of a micrograph, from the averaged periodogram of its centre.

    * ``spectrum``: log of the rotationally averaged power at the frequencies ``k_A``,
      normalised to mean 0 / std 1 over the bins (only the shape matters, not the dose):
      Thon rings, ice and damping fall-off;
    * ``anisotropy``: amplitude of the 2-fold angular harmonic of the log power in each ring
      (|mean of log P(k, theta) exp(2 i theta)|, natural-log units): directional damping from
      drift, elliptical rings of astigmatism; rotation invariant;
    * ``power``: the 2D log power at fixed physical frequencies (:func:`power_image`).

    Frequencies beyond the micrograph's Nyquist take the value at Nyquist. ``value_range``, when
    given, clips the pixel values first.
    """
    ny, nx = image.shape
    side = min(ny, nx, SPECTRUM_MAX_PX)
    y0, x0 = (ny - side) // 2, (nx - side) // 2
    centre = np.asarray(image[y0 : y0 + side, x0 : x0 + side], dtype=np.float32)
    if value_range is not None:  # the clip of `clip_outliers`, on the centre only
        centre = np.clip(centre, *value_range)
    # At least 3 x 3 half-overlapping tiles, so small frames are not one speckled periodogram;
    # large centres use touching tiles (already dozens of them).
    tile_px = min(SPECTRUM_TILE_PX, side // 2)
    overlap = 0.5 if side < 4 * tile_px else 0.0
    power = periodogram_average(centre, tile_px=tile_px, overlap=overlap)
    k_measured, values = rotational_average(power, pixel_size_A)
    floor = 1e-12 * max(float(power.max()), 1e-30)
    log_power = np.log(np.maximum(values, floor))
    spectrum = np.interp(k_A, k_measured, log_power)
    std = float(spectrum.std())
    spectrum = (spectrum - spectrum.mean()) / (std if std > 0 else 1.0)
    n = power.shape[0]
    y, x = np.indices(power.shape) - n // 2
    ring = np.floor(np.hypot(x, y) / (n / 2) * len(values)).astype(int)
    keep = (ring < len(values)) & (ring > 0)
    log_power_2d = np.log(np.maximum(power, floor))
    harmonic = np.exp(2j * np.arctan2(y, x))[keep] * log_power_2d[keep]
    counts = np.maximum(np.bincount(ring[keep], minlength=len(values)), 1)
    real = np.bincount(ring[keep], weights=harmonic.real, minlength=len(values)) / counts
    imag = np.bincount(ring[keep], weights=harmonic.imag, minlength=len(values)) / counts
    anisotropy = np.interp(k_A, k_measured, np.hypot(real, imag))
    return Spectra(
        spectrum.astype(np.float32),
        anisotropy.astype(np.float32),
        power_image(log_power_2d, pixel_size_A),
    )


def is_assessable(image: np.ndarray) -> bool:
    """True when an image is 2D, large enough, finite everywhere and not constant."""
    image = np.asarray(image)
    if image.ndim != 2 or min(image.shape) < MIN_SIDE_PX:
        return False
    low, high = float(image.min()), float(image.max())  # NaN anywhere makes both NaN
    return bool(np.isfinite(low) and np.isfinite(high) and high > low)


def preprocess(
    image: np.ndarray, pixel_size_A: float, image_px: int | None = None
) -> tuple[np.ndarray, Spectra]:
    """Inputs of one micrograph: one masked image per square crop, and its spectra.

    Parameters
    ----------
    image
        The motion-corrected micrograph (2D).
    pixel_size_A
        Its pixel size, in Å.
    image_px
        Side of the squares; ``None`` (the shipped models) chooses it from the pixel size
        (:func:`image_side_px`, about ``TARGET_PIXEL_A`` per pixel); a fixed-size network
        (e.g. the paper's 494-px ResNet34) passes its own.

    Returns
    -------
    images : ndarray
        ``(n_crops, side, side)`` float32; ``n_crops`` is 1 for a square frame.
    spectra : Spectra
        The spectral inputs (one per micrograph, shared by its crops).

    Raises
    ------
    ValueError
        When the image is not 2D, smaller than ``MIN_SIDE_PX``, not finite or constant, or the
        pixel size is not positive.
    """
    image = np.asarray(image)
    if not pixel_size_A > 0:
        raise ValueError(f"pixel size must be positive, got {pixel_size_A!r} Å")
    if not is_assessable(image):
        raise ValueError(
            f"cannot assess a micrograph of shape {image.shape}: it must be 2D, at least "
            f"{MIN_SIDE_PX} px on each side, finite and not constant"
        )
    short_side = min(image.shape)
    side = image_side_px(short_side, pixel_size_A) if image_px is None else image_px
    if side > short_side:
        raise ValueError(
            f"cannot assess a micrograph of shape {image.shape} with a {side}-px network: "
            "its short side is smaller"
        )
    # `clip_outliers` applied inside each (no clipped copy of the whole frame), and nothing
    # brighter than a detector defect can be (spread hot pixels). Measured 2026-12-07 (session
    # 32) on `bench/micassess_generators.py --per-session`: hot pixels 0.831 / 0 / 0.613 ->
    # 0.856 / 0 / 0.662 (accuracy / good called bad / reason right), the six other sets
    # unchanged to the micrograph.
    limits = outlier_limits(image, bright_outliers=True)
    return (
        downsampled_squares(image, side, value_range=limits),
        spectrum_features(image, pixel_size_A, value_range=limits),
    )


# --------------------------------------------------------------------------- model


def build_model(
    n_bins: int = N_SPECTRUM_BINS,
    n_reasons: int = len(MICROGRAPH_REASONS),
    with_blobs: bool = True,
    image_input: str = "image",
):
    """The MicAssess network (uncompiled); ``with_blobs=False`` leaves out the blob statistics.

    A small fully convolutional CNN on the image (any square side: global average and max
    pooling); a small CNN on the 2D power spectrum whose last map is flattened, not pooled, so
    that where a ring is (an ellipse of astigmatism, a direction of drift) is kept; a dense
    branch on the rotational average and its anisotropy; a dense branch on the blob statistics;
    and one softmax over ``good`` + the bad reasons (output ``classes``): P(good) is its first
    entry and the reason of a bad micrograph the likeliest of the others, so good is told apart
    from each kind of bad directly.
    """
    import keras
    from keras import layers

    if image_input not in ("image", "image_ranks"):
        raise ValueError(f"image_input must be 'image' or 'image_ranks', got {image_input!r}")
    image = keras.Input((None, None, 1), name=image_input)
    spectrum = keras.Input((n_bins,), name="spectrum")
    anisotropy = keras.Input((n_bins,), name="anisotropy")
    power = keras.Input((POWER_PX, POWER_PX, 1), name="power")
    blobs = keras.Input((len(BLOB_SIGMAS_PX) * N_BLOB_STATS,), name="blobs")

    def conv_blocks(x, filters: tuple[int, ...]):
        """Conv-BN-ReLU-pool blocks."""
        for n in filters:
            x = layers.Conv2D(n, 3, padding="same", use_bias=False)(x)
            x = layers.BatchNormalization()(x)
            x = layers.ReLU()(x)
            x = layers.MaxPooling2D(2)(x)
        return x

    x = conv_blocks(image, (16, 32, 48, 64))
    x = layers.Conv2D(96, 3, padding="same", activation="relu")(x)
    x = layers.Concatenate()([layers.GlobalAveragePooling2D()(x), layers.GlobalMaxPooling2D()(x)])
    q = conv_blocks(power, (16, 32, 32))
    q = layers.Conv2D(16, 1, activation="relu")(q)
    q = layers.Dense(64, activation="relu")(layers.Flatten()(q))
    s = layers.Concatenate()([spectrum, anisotropy])
    s = layers.Dense(128, activation="relu")(s)
    s = layers.Dense(64, activation="relu")(s)
    branches = [x, q, s]
    inputs = {image_input: image, "spectrum": spectrum, "anisotropy": anisotropy, "power": power}
    if with_blobs:
        b = layers.Dense(64, activation="relu")(blobs)
        branches.append(layers.Dense(32, activation="relu")(b))
        inputs["blobs"] = blobs
    h = layers.Concatenate()(branches)
    h = layers.Dropout(0.2)(h)
    h = layers.Dense(128, activation="relu")(h)
    classes = layers.Dense(1 + n_reasons, activation="softmax", name="classes")(h)
    return keras.Model(inputs=inputs, outputs={"classes": classes}, name="micassess_small")


def scores_from_outputs(out) -> tuple[np.ndarray, np.ndarray]:
    """``(p_good, reason)`` from a network's outputs.

    The shipped kind has one softmax ``classes`` over good + reasons (reason scores are the bad
    classes renormalised); a network with separate ``p_good`` and ``reason`` heads is read as is.
    """
    if "classes" in out:
        classes = np.asarray(out["classes"], dtype=np.float64)
        bad = classes[:, 1:]
        return classes[:, 0], bad / np.maximum(bad.sum(axis=1, keepdims=True), 1e-12)
    return (
        np.asarray(out["p_good"], dtype=np.float64).reshape(-1),
        np.asarray(out["reason"], dtype=np.float64),
    )


def model_input_names(model) -> tuple[str, ...]:
    """Names of the inputs a loaded model takes (a subset of ``INPUT_NAMES``)."""
    names = tuple(t.name.split(":")[0] for t in model.inputs)
    unknown = [name for name in names if name not in INPUT_NAMES]
    if unknown:
        raise ValueError(
            f"model input(s) {unknown} are not micrograph-assessment inputs {INPUT_NAMES}"
        )
    return names


def model_image_px(model) -> int | None:
    """The square side a model needs, or ``None`` when it takes any side."""
    for tensor in model.inputs:
        if tensor.name.split(":")[0] in ("image", "image_ranks"):
            side = tensor.shape[1]
            return None if side is None else int(side)
    return None


def load_micassess(name_or_path: str | Path):
    """Load MicAssess weights by shipped name (``"micassess_small_v2"``) or path.

    An ``.h5``/``.hdf5`` file is the paper's kind of network (the original MicAssess, or
    ResNet34 weights): see :mod:`screen.models.micassess_paper`.
    """
    from screen.errors import ScreenError
    from screen.models.registry import load_keras_model, weights_path

    path = weights_path(name_or_path)
    if path.suffix.lower() in (".h5", ".hdf5"):
        from screen.models.micassess_paper import load_paper_model

        try:
            return load_paper_model(path)
        except Exception as exc:
            raise ScreenError(f"{path}: cannot load MicAssess weights: {exc}") from exc
    return load_keras_model(path)


def predict_features(model, features: Features, batch_size: int = 32) -> dict[str, np.ndarray]:
    """``p_good`` ``(n,)`` and ``reason`` ``(n, n_reasons)`` for preprocessed inputs, in batches."""
    names = model_input_names(model)
    n = len(features)
    p_good = np.zeros(n)
    reason = np.zeros((n, len(MICROGRAPH_REASONS)))
    for group in features.same_side_groups():
        for start in range(0, len(group), batch_size):
            rows = group[start : start + batch_size]
            # compiled once per model (a graph): 25-30 % faster than eager calls, and a new
            # batch shape costs ~1.5 s instead of 3-5 s of eager kernel set-up (K3 crops, 2 cores)
            out = model.predict_on_batch(features.inputs(rows, names))
            p_good[rows], reason[rows] = scores_from_outputs(out)
    return {"p_good": p_good, "reason": reason}


def predict_micrographs(
    model, images: list[np.ndarray], pixel_sizes_A: list[float], batch_size: int = 32
) -> dict[str, np.ndarray]:
    """Preprocess and score micrographs; a non-square frame's crops are averaged.

    Every image must be assessable (see :func:`is_assessable`); returns ``p_good`` ``(n,)`` and
    ``reason`` ``(n, n_reasons)``. A paper-style network (one input, one output, see
    :mod:`screen.models.micassess_paper`) gets the paper's preprocessing and gives no reason
    (all-zero reason rows).
    """
    return predict_micrographs_with([model], images, pixel_sizes_A, batch_size)[0]


def predict_micrographs_with(
    models, images: list[np.ndarray], pixel_sizes_A: list[float], batch_size: int = 32
) -> list[dict[str, np.ndarray]]:
    """`predict_micrographs` for several networks, each frame preprocessed once for all of them.

    Networks that see a frame alike (the same square side rule; the inputs each takes are cut
    from the same crops and spectra) share the Fourier crop and spectra, the costly part; a
    paper-style network, or one with another fixed side, is preprocessed on its own.
    """
    from screen.models.micassess_paper import is_paper_model, predict_paper

    n = len(images)
    empty = {"p_good": np.zeros(0), "reason": np.zeros((0, len(MICROGRAPH_REASONS)))}
    out: list[dict[str, np.ndarray] | None] = [None] * len(models)
    shared = []
    for k, model in enumerate(models):
        if n == 0:
            out[k] = empty
        elif is_paper_model(model):
            p_good = predict_paper(model, [np.asarray(image) for image in images], batch_size)
            out[k] = {"p_good": p_good, "reason": np.zeros((n, len(MICROGRAPH_REASONS)))}
        else:
            shared.append(k)
    groups: dict[int | None, list[int]] = {}
    for k in shared:  # one preprocessing per square-side rule
        groups.setdefault(model_image_px(models[k]), []).append(k)
    for image_px, members in groups.items():
        takes_blobs = any("blobs" in model_input_names(models[k]) for k in members)
        features, owner = _prepared_features(images, pixel_sizes_A, image_px, takes_blobs)
        counts = np.bincount(owner, minlength=n)
        for k in members:
            scores = predict_features(models[k], features, batch_size)
            p_good = np.bincount(owner, weights=scores["p_good"], minlength=n) / counts
            reason = np.stack(
                [
                    np.bincount(owner, weights=scores["reason"][:, j], minlength=n) / counts
                    for j in range(scores["reason"].shape[1])
                ],
                axis=1,
            )
            out[k] = {"p_good": p_good, "reason": reason}
    return out


def _prepared_features(
    images: list[np.ndarray], pixel_sizes_A: list[float], image_px: int | None, blobs: bool
) -> tuple[Features, np.ndarray]:
    """Features of every crop of ``images`` and the index of the frame each crop came from."""
    crops, spectra, stats, owner = [], [], [], []
    pairs = list(zip(images, pixel_sizes_A, strict=True))

    def prepare(pair):
        squares, micrograph_spectra = preprocess(pair[0], pair[1], image_px)
        return (
            squares,
            micrograph_spectra,
            (blob_features(squares) if blobs else np.zeros((len(squares), 0))),
        )

    # Two micrographs at a time: the FFTs and most numpy work release the GIL.
    with ThreadPoolExecutor(max_workers=PREPROCESS_THREADS) as pool:
        for index, (squares, micrograph_spectra, blob_rows) in enumerate(pool.map(prepare, pairs)):
            crops.extend(squares)
            spectra.extend([micrograph_spectra] * len(squares))
            stats.append(blob_rows)
            owner.extend([index] * len(squares))
    return Features.from_crops(crops, spectra, np.concatenate(stats)), np.asarray(owner)


# --------------------------------------------------------------------------- simulated data


@dataclass(frozen=True)
class SimulatedSetSpec:
    """Recipe of a labelled simulated set: random structures, sessions and micrograph conditions.

    Each session draws a structure (diameter, mass ~ diameter^2.5, symmetry, shape seed from
    ``structure_seeds``), an orientation distribution, a particle coverage, a pixel size and
    ranges of defocus, dose, ice and SNR; its micrographs are ``good_fraction`` good and the rest
    split equally over the bad reasons.
    """

    n_micrographs: int
    seed: int
    micrographs_per_session: int = 32
    frame_px: tuple[int, ...] = (512,)
    pixel_size_A: tuple[float, float] = (1.5, 3.5)
    diameter_A: tuple[float, float] = (80.0, 250.0)
    structure_seeds: tuple[int, int] = (1000, 2000)
    coverage: tuple[float, float] = (0.05, 0.35)
    defocus_um: tuple[float, float] = (0.6, 3.0)
    dose_e_per_A2: tuple[float, float] = (30.0, 60.0)
    particle_snr: tuple[float, float] = (0.015, 0.1)
    ice_low_A: tuple[float, float] = (150.0, 400.0)
    good_fraction: float = 0.5
    bad_reasons: tuple[str, ...] = MICROGRAPH_REASONS
    snr_per_square_A: bool = False
    """When True, ``particle_snr`` is the SNR of a 1 Å pixel and grows with the pixel's area
    (capped at ``MAX_PARTICLE_SNR``): a binned or coarse micrograph sums more electrons per pixel.
    When False (the v2 sets) it is per pixel whatever the pixel size."""
    domain: DomainSpec | None = None
    """Variation generators applied to each rendered micrograph (:mod:`screen.simulate.domain`)."""
    clutter: tuple[float, float] = (0.0, 0.0)
    """Range of the highest background clutter of a session (``SessionSpec.background_clutter``
    is then 0 to it); ``clean_share`` of the sessions have none."""
    clean_share: float = 1.0
    session_dose: bool = False
    """When True each session draws one dose from ``dose_e_per_A2`` and its micrographs lie
    within 2 % of it, as one exposure setting gives; when False (the shipped weights' sets) each
    micrograph draws its own from the whole range."""
    contamination_shapes: str = "round"
    """``SessionSpec.contamination_shapes`` of every session (the shipped weights' sets: round)."""
    aggregate_shapes: str = "beads"
    """``SessionSpec.aggregate_shapes`` of every session (the shipped weights' sets: beads)."""
    particle_spacing: tuple[float, float] | None = None
    """Range each session draws ``SessionSpec.particle_spacing`` from (on its own stream);
    ``None`` (the shipped weights' sets): its default, 0.85."""


SESSION_DOSE_JITTER = 0.02
"""Spread of the micrographs' doses around their session's one dose (``session_dose``)."""


MAX_PARTICLE_SNR = 2.0
"""Cap of the per-pixel particle SNR of sets with ``snr_per_square_A``."""


@dataclass(frozen=True)
class LabelledSet:
    """Preprocessed simulated micrographs with their ground truth."""

    features: Features
    good: np.ndarray  # (n,) bool
    reason_index: np.ndarray  # (n,) index into MICROGRAPH_REASONS, -1 for good
    pixel_size_A: np.ndarray  # (n,)
    structure: tuple[str, ...] = field(default=())

    @staticmethod
    def concatenate(parts: list[LabelledSet]) -> LabelledSet:
        """The micrographs of several labelled sets, in order."""
        return LabelledSet(
            Features.concatenate([part.features for part in parts]),
            np.concatenate([part.good for part in parts]),
            np.concatenate([part.reason_index for part in parts]),
            np.concatenate([part.pixel_size_A for part in parts]),
            tuple(name for part in parts for name in part.structure),
        )


def session_specs(spec: SimulatedSetSpec):
    """The simulator's ``(ScreenSpec, session_index)`` pairs that make up the set."""
    from screen.simulate.spec import (
        OrientationSpec,
        ScreenSpec,
        SessionSpec,
        SpeciesSpec,
        StructureSpec,
    )

    rng = np.random.default_rng([spec.seed, 1])
    n_sessions = int(np.ceil(spec.n_micrographs / spec.micrographs_per_session))
    bad_share = (1.0 - spec.good_fraction) / len(spec.bad_reasons)
    out = []
    remaining = spec.n_micrographs
    for i in range(n_sessions):
        n = min(spec.micrographs_per_session, remaining)
        remaining -= n
        diameter = float(rng.uniform(*spec.diameter_A))
        mass = float(186.0 * (diameter / 140.0) ** 2.5 * rng.lognormal(0.0, 0.25))
        symmetry = str(rng.choice(["C1", "C1", "C2", "C3", "D2", "C4", "D3"]))
        structure = StructureSpec(
            f"s{spec.seed}_{i}",
            diameter,
            mass,
            symmetry,
            n_domains=int(rng.integers(2, 6)),
            elongation=float(rng.uniform(1.0, 2.0)),
            seed=int(rng.integers(*spec.structure_seeds)),
        )
        orientation = OrientationSpec()
        if rng.random() < 0.4:
            views = ((float(rng.uniform(0, 90)), float(rng.uniform(0, 360))),)
            orientation = OrientationSpec(float(rng.uniform(0.5, 0.9)), views, 12.0)
        coverage = float(rng.uniform(*spec.coverage))
        defocus = np.sort(rng.uniform(*spec.defocus_um, size=2))
        snr = np.sort(rng.uniform(*spec.particle_snr, size=2))
        pixel_size_A = round(float(rng.uniform(*spec.pixel_size_A)), 3)
        if spec.snr_per_square_A:
            snr = np.minimum(snr * pixel_size_A**2, MAX_PARTICLE_SNR - 0.01)
        ice_low = float(rng.uniform(*spec.ice_low_A))
        clutter = (0.0, 0.0)
        if spec.clean_share < 1.0:  # its own stream: sets without clutter draw as before
            clutter_rng = np.random.default_rng([spec.seed, i, 5])
            if clutter_rng.random() >= spec.clean_share:
                clutter = (0.0, float(clutter_rng.uniform(*spec.clutter)))
        spacing = SessionSpec.particle_spacing
        if spec.particle_spacing is not None:  # its own stream: the other draws as before
            spacing = float(
                np.random.default_rng([spec.seed, i, 6]).uniform(*spec.particle_spacing)
            )
        session = SessionSpec(
            f"set{spec.seed}_{i}",
            (SpeciesSpec(structure, 1.0, orientation),),
            n,
            bad_mix={reason: bad_share for reason in spec.bad_reasons},
            particles_per_um2=coverage * 1e8 / (np.pi / 4 * diameter**2),
            ice_thickness_A=(ice_low, ice_low + float(rng.uniform(50.0, 250.0))),
            defocus_um=(float(defocus[0]), float(max(defocus[1], defocus[0] + 0.2))),
            dose_e_per_A2=_session_dose_range(spec, i),
            particle_snr=(float(snr[0]), float(max(snr[1], snr[0] + 0.01))),
            background_clutter=clutter,
            contamination_shapes=spec.contamination_shapes,
            aggregate_shapes=spec.aggregate_shapes,
            particle_spacing=spacing,
        )
        frame_px = int(rng.choice(spec.frame_px))
        screen_spec = ScreenSpec(
            (session,),
            frame_px=(frame_px, frame_px),
            pixel_size_A=pixel_size_A,
            seed=int(rng.integers(0, 2**31 - 1)),
        )
        out.append(screen_spec)
    return out


def _session_dose_range(spec: SimulatedSetSpec, index: int) -> tuple[float, float]:
    """Session ``index``'s dose range: the set's, or (``session_dose``) one dose +- 2 %."""
    if not spec.session_dose:
        return spec.dose_e_per_A2
    dose = float(np.random.default_rng([spec.seed, index, 11]).uniform(*spec.dose_e_per_A2))
    return (dose * (1.0 - SESSION_DOSE_JITTER), dose * (1.0 + SESSION_DOSE_JITTER))


def session_micrographs(screen_spec, domain=None):
    """Yield ``(plan, image, pixel_size_A)`` for every micrograph of a one-session ``ScreenSpec``.

    With a ``DomainSpec`` each rendered micrograph goes through a random chain of variation
    generators (seeded by the session's seed and the micrograph's index, or by the session's
    seed alone with ``per_session``: one chain and its parameters for the whole session) and its
    pixel size is the one they leave (binning changes it).
    """
    from screen.simulate.domain import randomise
    from screen.simulate.render import render_micrograph
    from screen.simulate.session import session_models, session_plans

    models = session_models(screen_spec.sessions[0])
    for index, plan in enumerate(session_plans(screen_spec, 0)):
        rendered = render_micrograph(plan, models, screen_spec.frame_px, screen_spec.pixel_size_A)
        image, pixel_size_A = rendered.counts, screen_spec.pixel_size_A
        if domain is not None:
            seed = [screen_spec.seed, 7] if domain.per_session else [screen_spec.seed, index, 7]
            rng = np.random.default_rng(seed)
            image, pixel_size_A, _ = randomise(image, pixel_size_A, domain, rng)
        yield plan, image, pixel_size_A


def _simulate_session(task) -> tuple[Features, list[str], list[float]]:
    """Render and preprocess every micrograph of a one-session ``ScreenSpec`` (square frames).

    ``task`` is ``(screen_spec, domain)`` (see `session_micrographs`).
    """
    screen_spec, domain = task
    images, spectra, reasons, pixel_sizes = [], [], [], []
    for plan, image, pixel_size_A in session_micrographs(screen_spec, domain):
        squares, micrograph_spectra = preprocess(image, pixel_size_A)
        images.append(squares[0])
        spectra.append(micrograph_spectra)
        reasons.append(plan.reason)
        pixel_sizes.append(pixel_size_A)
    return Features.from_crops(images, spectra), reasons, pixel_sizes


def simulate_labelled_set(
    spec: SimulatedSetSpec,
    jobs: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> LabelledSet:
    """Simulate, render and preprocess a labelled set in memory (``jobs`` worker processes)."""
    sessions = session_specs(spec)
    tasks = [(session, spec.domain) for session in sessions]
    results = []
    if jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            for done, result in enumerate(pool.map(_simulate_session, tasks), 1):
                results.append(result)
                if progress:
                    progress(done, len(sessions))
    else:
        for done, task in enumerate(tasks, 1):
            results.append(_simulate_session(task))
            if progress:
                progress(done, len(sessions))
    reasons = [x for r in results for x in r[1]]
    pixel_sizes = [x for r in results for x in r[2]]
    structures = tuple(
        s.sessions[0].species[0].structure.name
        for s, r in zip(sessions, results, strict=True)
        for _ in r[1]
    )
    reason_index = np.array(
        [MICROGRAPH_REASONS.index(r) if r != "good" else -1 for r in reasons], dtype=int
    )
    return LabelledSet(
        Features.concatenate([r[0] for r in results]),
        reason_index < 0,
        reason_index,
        np.asarray(pixel_sizes, dtype=float),
        structures,
    )


def save_labelled_set(data: LabelledSet, path: Path) -> None:
    """Write a labelled set to one ``.npz`` (images grouped by side), to train again later."""
    arrays = {
        "spectrum": data.features.spectrum,
        "anisotropy": data.features.anisotropy,
        "power": data.features.power,
        "blobs": data.features.blobs,
        "good": data.good,
        "reason_index": data.reason_index,
        "pixel_size_A": data.pixel_size_A,
        "structure": np.asarray(data.structure, dtype=str),
    }
    for group in data.features.same_side_groups():
        side = data.features.image[group[0]].shape[0]
        arrays[f"rows_{side}"] = group
        arrays[f"images_{side}"] = np.stack([data.features.image[i] for i in group])
    np.savez(path, **arrays)


def load_labelled_set(path: Path) -> LabelledSet:
    """Read a labelled set written by :func:`save_labelled_set`."""
    with np.load(path) as stored:
        n = len(stored["good"])
        images: list = [None] * n
        for key in stored.files:
            if key.startswith("rows_"):
                side = key.removeprefix("rows_")
                for row, image in zip(stored[key], stored[f"images_{side}"], strict=True):
                    images[int(row)] = image
        # Sets written before the blob statistics existed get them from their crops.
        blobs = stored["blobs"] if "blobs" in stored.files else blob_features(images)
        return LabelledSet(
            Features(
                tuple(images), stored["spectrum"], stored["anisotropy"], stored["power"], blobs
            ),
            stored["good"].astype(bool),
            stored["reason_index"].astype(int),
            stored["pixel_size_A"].astype(float),
            tuple(str(s) for s in stored["structure"]),
        )


# --------------------------------------------------------------------------- training


@dataclass(frozen=True)
class TrainingConfig:
    """Optimiser settings of :func:`train_micassess`."""

    epochs: int = 24
    batch_size: int = 32
    learning_rate: float = 1e-3
    seed: int = 0
    crop_px: int | None = None
    """Train on a random square of at most this side of each image (inside its circle, masked
    again): large fields cost less per epoch; the network is fully convolutional, so it still
    reads whole images. ``None`` trains on whole images."""


@dataclass(frozen=True)
class TrainingResult:
    """A trained model and its per-epoch training loss."""

    model: object
    loss_per_epoch: tuple[float, ...]
    seconds: float


def _augment(
    image: np.ndarray, power: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One random 90-degree turn and flip of a crop and, alike, of its power spectrum.

    The physics is isotropic in the image plane; the spectrum of a turned image is the turned
    spectrum, so both move together.
    """
    turns = int(rng.integers(0, 4))
    flip = rng.random() < 0.5
    out = []
    for array in (image, power):
        turned = np.rot90(array, turns)
        out.append(turned[:, ::-1] if flip else turned)
    return out[0], out[1]


def random_crop(image: np.ndarray, crop_px: int | None, rng: np.random.Generator) -> np.ndarray:
    """A random ``crop_px`` square of a masked square image, inside its circle, masked again.

    Images not larger than ``crop_px`` (or ``crop_px`` None) are returned as they are.
    """
    n = image.shape[0]
    if crop_px is None or n <= crop_px:
        return image
    # The crop's centre lies where its inscribed circle fits inside the image's circle.
    reach = (n - crop_px) / 2.0
    angle, radius = rng.uniform(0.0, 2.0 * np.pi), reach * np.sqrt(rng.random())
    cy = int(round(n / 2 + radius * np.sin(angle) - crop_px / 2))
    cx = int(round(n / 2 + radius * np.cos(angle) - crop_px / 2))
    cy, cx = min(max(cy, 0), n - crop_px), min(max(cx, 0), n - crop_px)
    return image[cy : cy + crop_px, cx : cx + crop_px] * circular_mask(crop_px)


def training_batches(
    features: Features, batch_size: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """One epoch of shuffled batches, each of crops of one side, in random order."""
    batches = []
    for group in features.same_side_groups():
        group = rng.permutation(group)
        batches += [group[i : i + batch_size] for i in range(0, len(group), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def verdict_loss(y_true, y_pred):
    """Cross-entropy of the good + reasons softmax; label -1 (bad, reason unknown) scores 1 - P(good).

    ``y_true`` holds 0 for good, 1 + reason index for a bad micrograph of known reason, -1 for a
    bad one whose reason nobody gave (a user's labels): it trains P(good) only.
    """
    from keras import ops

    label = ops.cast(ops.reshape(y_true, (-1,)), "int32")
    known = ops.maximum(label, 0)
    p_label = ops.take_along_axis(y_pred, ops.expand_dims(known, 1), axis=1)[:, 0]
    p_bad = 1.0 - y_pred[:, 0]
    p = ops.where(label >= 0, p_label, p_bad)
    return -ops.log(ops.clip(p, 1e-7, 1.0))


def class_labels(data: LabelledSet) -> np.ndarray:
    """Targets of :func:`verdict_loss`: 0 good, 1 + reason index, -1 bad of unknown reason."""
    return np.where(data.good, 0, np.where(data.reason_index >= 0, data.reason_index + 1, -1))


def train_micassess(
    data: LabelledSet,
    config: TrainingConfig = TrainingConfig(),
    model=None,
    progress: Callable[[int, int, float], None] | None = None,
) -> TrainingResult:
    """Train (or fine-tune ``model``) on a labelled set with :func:`verdict_loss`.

    Seeded with ``keras.utils.set_random_seed(config.seed)``; batches hold crops of one side
    (shuffled each epoch), images are re-augmented each epoch and the learning rate follows a
    cosine decay to 5% of ``config.learning_rate``. ``progress(epoch, epochs, loss)`` is called
    after each epoch.
    """
    import keras

    keras.utils.set_random_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    if model is None:
        model = build_model(data.features.spectrum.shape[1])
    names = model_input_names(model)
    if "classes" not in list(getattr(model, "output_names", [])):
        raise ValueError(
            "cannot train this network: it has no 'classes' output (good + reasons softmax)"
        )
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=verdict_loss)
    labels = class_labels(data).astype(np.int32)
    losses = []
    start = time.perf_counter()
    for epoch in range(config.epochs):
        cosine = 0.5 * (1.0 + np.cos(np.pi * epoch / max(config.epochs, 1)))
        model.optimizer.learning_rate.assign(config.learning_rate * (0.05 + 0.95 * cosine))
        batch_losses, batch_sizes = [], []
        for rows in training_batches(data.features, config.batch_size, rng):
            pairs = [
                _augment(
                    random_crop(data.features.image[i], config.crop_px, rng),
                    data.features.power[i],
                    rng,
                )
                for i in rows
            ]
            images = np.stack([pair[0] for pair in pairs])
            power = np.stack([pair[1] for pair in pairs])
            out = model.train_on_batch(
                data.features.inputs(rows, names, images, power), labels[rows], return_dict=True
            )
            batch_losses.append(float(out["loss"]))
            batch_sizes.append(len(rows))
        losses.append(float(np.average(batch_losses, weights=batch_sizes)))
        if progress is not None:
            progress(epoch + 1, config.epochs, losses[-1])
    return TrainingResult(model, tuple(losses), time.perf_counter() - start)


# --------------------------------------------------------------------------- calibration


def good_logit_shift(
    p_good: np.ndarray,
    good: np.ndarray,
    threshold: float = 0.1,
    max_false_negative: float = 0.005,
) -> float:
    """The smallest shift of the good logit after which few good micrographs fall below ``threshold``.

    Adding ``s`` to the logit of ``good`` in the final softmax multiplies the odds of good
    against all bad reasons by ``exp(s)`` and leaves the reason scores unchanged. Returned: the
    smallest ``s >= 0`` with at most ``max_false_negative`` of the good micrographs of a
    labelled (validation) set at P(good) < ``threshold`` -- the pipeline keeps the paper's
    rule, P(good) < 0.1, and the network is told where that rule must sit.
    """
    scores = np.clip(np.asarray(p_good, float)[np.asarray(good, bool)], 1e-12, 1.0 - 1e-12)
    allowed = int(np.floor(max_false_negative * len(scores) + 1e-9))
    if allowed >= len(scores):
        return 0.0
    kept_lowest = np.sort(scores)[allowed]  # must end at or above the threshold

    def logit(p: float) -> float:
        return float(np.log(p) - np.log1p(-p))

    return max(0.0, logit(threshold) - logit(kept_lowest) + 1e-6)


def shift_good_logit(model, shift: float) -> None:
    """Add ``shift`` to the bias of ``good`` in the ``classes`` softmax layer (in place)."""
    layer = model.get_layer("classes")
    kernel, bias = layer.get_weights()
    bias = bias.copy()
    bias[0] += shift
    layer.set_weights([kernel, bias])


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class HeldOutMetrics:
    """Accuracy of a model on a labelled set at a P(good) threshold."""

    threshold: float
    n: int
    n_good: int
    accuracy: float
    false_negative_rate: float  # good micrographs called bad
    false_positive_rate: float  # bad micrographs called good
    reason_accuracy: float  # argmax reason on the truly bad micrographs
    bad_recall_by_reason: dict[str, float]  # share of each bad reason called bad


def evaluate(model, data: LabelledSet, threshold: float = 0.1, batch_size: int = 64):
    """Metrics of ``model`` on ``data`` at ``threshold`` (bad when P(good) < threshold)."""
    scores = predict_features(model, data.features, batch_size)
    return metrics_from_scores(scores["p_good"], scores["reason"], data, threshold)


def metrics_from_scores(
    p_good: np.ndarray, reason: np.ndarray, data: LabelledSet, threshold: float
) -> HeldOutMetrics:
    """:class:`HeldOutMetrics` from predicted scores."""
    called_good = p_good >= threshold
    good = data.good
    bad = ~good
    recall = {}
    for index, name in enumerate(MICROGRAPH_REASONS):
        mine = data.reason_index == index
        if mine.any():
            recall[name] = float((~called_good[mine]).mean())
    reason_ok = reason.argmax(axis=1) == data.reason_index
    return HeldOutMetrics(
        threshold=threshold,
        n=len(good),
        n_good=int(good.sum()),
        accuracy=float((called_good == good).mean()),
        false_negative_rate=float((~called_good[good]).mean()) if good.any() else float("nan"),
        false_positive_rate=float(called_good[bad].mean()) if bad.any() else float("nan"),
        reason_accuracy=float(reason_ok[bad].mean()) if bad.any() else float("nan"),
        bad_recall_by_reason=recall,
    )


TRAIN_SET = SimulatedSetSpec(
    n_micrographs=4800,
    seed=111,
    micrographs_per_session=24,
    frame_px=(512, 640, 768),
    pixel_size_A=(1.6, 4.0),
    defocus_um=(0.5, 3.2),
    dose_e_per_A2=(25.0, 70.0),
    particle_snr=(0.012, 0.1),
)
"""Main training set of the shipped ``micassess_small_v2`` weights."""

TRAIN_SET_LARGE_FRAMES = replace(TRAIN_SET, n_micrographs=1200, seed=222, frame_px=(896, 1024))
"""Second training set: larger frames (fields of view up to 4,100 Å, squares up to 512 px)."""

TRAIN_SETS = (TRAIN_SET, TRAIN_SET_LARGE_FRAMES)
"""Every training set of the shipped weights (``bench/train_micassess.py``)."""

VALIDATION_SET = replace(
    TRAIN_SET,
    n_micrographs=1024,
    seed=333,
    micrographs_per_session=16,
    frame_px=(512, 640, 768, 896, 1024),
)
"""Validation set (the training distribution, another seed): the good-logit shift of the
shipped weights is chosen on it (:func:`good_logit_shift`), never on the held-out set."""

HELD_OUT_SET = replace(
    SimulatedSetSpec(n_micrographs=1024, seed=909),
    micrographs_per_session=16,
    frame_px=(576, 704, 896),
    pixel_size_A=(1.5, 3.8),
    diameter_A=(90.0, 240.0),
    structure_seeds=(5000, 6000),
    coverage=(0.07, 0.3),
    defocus_um=(0.8, 3.0),
    dose_e_per_A2=(35.0, 65.0),
    particle_snr=(0.02, 0.09),
    ice_low_A=(180.0, 450.0),
)
"""Held-out set: other seed, structures (shape seeds), frame sizes and condition ranges."""
