"""What happens to a micrograph after the simulator, and which the simulator cannot know.

Real micrographs reach ``screen`` through detectors, gain references, binning, denoisers and
export formats that no simulator reproduces. Each *variation generator* here takes an image (in
counts, or any grey levels) and a random generator and returns the changed image and its new
pixel size. Training draws a random chain of them for every micrograph (domain randomisation),
so that no input of the network can depend on one detector's noise statistics; measurement
holds whole generators out (:data:`HELD_OUT_GENERATORS`) to tell what carries over to kinds of
variation never seen in training.

All functions are pure (arrays and a ``numpy.random.Generator`` in, arrays out).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

Variation = Callable[[np.ndarray, float, np.random.Generator], tuple[np.ndarray, float]]
"""``(image, pixel_size_A, rng) -> (image, pixel_size_A)``."""


def _spectral_filter(image: np.ndarray, gain_of_k: Callable[[np.ndarray], np.ndarray]):
    """Multiply the image's Fourier transform by ``gain_of_k(k)`` (k in cycles/px, 0..~0.7)."""
    ny, nx = image.shape
    k = np.hypot(np.fft.fftfreq(ny)[:, None], np.fft.rfftfreq(nx)[None, :])
    mean = float(image.mean())
    out = np.fft.irfft2(np.fft.rfft2(image - mean) * gain_of_k(k), s=image.shape)
    return (out + mean).astype(np.float32)


def detector_mtf(image, pixel_size_A, rng):
    """A counting detector's MTF and noise correlation: ``exp(-(k/k0)^p)`` on signal and noise.

    ``k0`` 0.25-0.7 cycles/px, ``p`` 1-2 (Falcon/K2/K3-like fall-offs to Nyquist of 0.1-0.7).
    """
    k0, power = rng.uniform(0.25, 0.7), rng.uniform(1.0, 2.0)
    return _spectral_filter(image, lambda k: np.exp(-((k / k0) ** power))), pixel_size_A


def gain_stripes(image, pixel_size_A, rng):
    """A residual gain error: every column (or row) scaled by 1 +- 0.3-3 %, some blocks more."""
    axis = int(rng.integers(0, 2))
    n = image.shape[1 - axis]
    gain = 1.0 + rng.normal(0.0, rng.uniform(0.003, 0.03), n)
    for _ in range(int(rng.integers(0, 4))):  # a few readout blocks off by more
        start = int(rng.integers(0, n))
        gain[start : start + int(rng.integers(8, 128))] *= 1.0 + rng.uniform(-0.05, 0.05)
    shape = (1, n) if axis == 0 else (n, 1)
    return (image * gain.reshape(shape)).astype(np.float32), pixel_size_A


def hot_pixels(image, pixel_size_A, rng):
    """Hot and dead pixels: 1e-5 to 3e-4 of the pixels at 5-200 x the mean, or at 0."""
    out = np.array(image, dtype=np.float32)
    n = max(1, int(out.size * 10 ** rng.uniform(-5.0, -3.5)))
    flat = out.reshape(-1)
    index = rng.integers(0, out.size, n)
    scale = max(float(np.abs(flat[:: max(1, out.size // 4096)]).mean()), 1e-3)
    flat[index] = scale * rng.uniform(5.0, 200.0, n)
    dead = rng.integers(0, out.size, max(1, n // 2))
    flat[dead] = 0.0
    return out, pixel_size_A


def bin_sum(image, pixel_size_A, rng, max_pixel_size_A: float | None = None):
    """Binning by summing ``b`` x ``b`` blocks, ``b`` 2-4 (aliasing kept, as on a camera).

    ``max_pixel_size_A``: ``b`` is lowered so that the binned pixel stays at most this (no
    binning when even 2 x would pass it); the draw is the same, so a capped set's other
    variations match the uncapped one's.
    """
    b = int(rng.integers(2, 5))
    if max_pixel_size_A is not None:
        b = min(b, int(max_pixel_size_A / pixel_size_A))
        if b < 2:
            return image, pixel_size_A
    ny, nx = (image.shape[0] // b) * b, (image.shape[1] // b) * b
    if min(ny, nx) // b < 128:
        return image, pixel_size_A
    blocks = image[:ny, :nx].reshape(ny // b, b, nx // b, b)
    return blocks.sum(axis=(1, 3), dtype=np.float32), pixel_size_A * b


def bin_fourier(image, pixel_size_A, rng, max_pixel_size_A: float | None = None):
    """Fourier cropping by 1.5-6 x (RELION/cryoSPARC-style 'binning' of a motion-corrected sum).

    ``max_pixel_size_A``: the factor is lowered so that the new pixel stays at most this (no
    cropping when that leaves under 1.1 x); the draw is the same as without the cap.
    """
    from screen.processing.fourier import fourier_crop

    factor = rng.uniform(1.5, 6.0)
    capped = max_pixel_size_A is not None and factor > max_pixel_size_A / pixel_size_A
    if capped:
        factor = max_pixel_size_A / pixel_size_A
        if factor < 1.1:
            return image, pixel_size_A
    # Even sides; rounded up under the cap, so that the new pixel does not pass it.
    if capped:
        shape = tuple(int(np.ceil(n / factor / 2)) * 2 for n in image.shape[:2])
    else:
        shape = tuple(int(n / factor) // 2 * 2 for n in image.shape[:2])
    if min(shape) < 128:
        return image, pixel_size_A
    out = fourier_crop(np.asarray(image, np.float32), shape)
    return out, pixel_size_A * image.shape[1] / shape[1]


def gaussian_denoise(image, pixel_size_A, rng):
    """A Gaussian low-pass 'denoise', sigma 4-25 Å (log-uniform), any pixel size.

    The upper end matches the EMPIAR-10017 denoised exports of ``shared/real_examples``, whose
    power falls 3 decades from 1/100 to 1/40 1/Å (``bench/realism.py``).
    """
    sigma_px = float(np.exp(rng.uniform(np.log(4.0), np.log(25.0)))) / pixel_size_A
    return ndimage.gaussian_filter(np.asarray(image, np.float32), sigma_px), pixel_size_A


def wiener_denoise(image, pixel_size_A, rng):
    """A Wiener-like filter from the image's own spectrum: signal^2 / (signal^2 + noise^2).

    The noise power is the mean power in the outer band of the spectrum (white shot noise), the
    signal what rises above it; an extra strength factor 0.5-4 makes it gentle or harsh.
    """
    ny, nx = image.shape
    mean = float(image.mean())
    transform = np.fft.rfft2(image - mean)
    power = np.abs(transform) ** 2
    k = np.hypot(np.fft.fftfreq(ny)[:, None], np.fft.rfftfreq(nx)[None, :])
    noise = float(power[(k > 0.35) & (k < 0.5)].mean())
    smooth = ndimage.uniform_filter(power, 9, mode="wrap")
    signal = np.maximum(smooth - noise, 0.0)
    strength = rng.uniform(0.5, 4.0)
    gain = signal / (signal + strength * noise + 1e-30)
    out = np.fft.irfft2(transform * gain, s=image.shape) + mean
    return out.astype(np.float32), pixel_size_A


def nl_means_denoise(image, pixel_size_A, rng):
    """Non-local means (scikit-image, fast mode) on the image at ~2x coarser sampling, upsampled."""
    from skimage.restoration import denoise_nl_means
    from skimage.transform import resize

    small = ndimage.zoom(np.asarray(image, np.float32), 0.5, order=1)
    low, high = np.percentile(small, [0.5, 99.5])
    scaled = np.clip((small - low) / max(high - low, 1e-12), 0.0, 1.0)
    # Noise level from neighbouring-pixel differences (robust: 1.4826 MAD / sqrt 2).
    sigma = float(1.4826 * np.median(np.abs(np.diff(scaled, axis=1))) / np.sqrt(2.0))
    denoised = denoise_nl_means(
        scaled,
        h=rng.uniform(0.6, 1.2) * sigma,
        sigma=sigma,
        patch_size=5,
        patch_distance=6,
        fast_mode=True,
    )
    out = resize(denoised, image.shape, order=1) * (high - low) + low
    return out.astype(np.float32), pixel_size_A


def tv_denoise(image, pixel_size_A, rng):
    """Total-variation denoising (Chambolle, 25 iterations), weight 0.05-0.3 of the grey range."""
    from skimage.restoration import denoise_tv_chambolle

    low, high = np.percentile(image[::4, ::4], [0.5, 99.5])
    scaled = np.clip((image - low) / max(high - low, 1e-12), 0.0, 1.0)
    out = denoise_tv_chambolle(scaled, weight=rng.uniform(0.05, 0.3), max_num_iter=25)
    return (out * (high - low) + low).astype(np.float32), pixel_size_A


def _stretch_to_8bit(image: np.ndarray, rng) -> np.ndarray:
    """Contrast stretch between random percentiles (0.01-2 %) to 0-255, rounded (an 8-bit export)."""
    cut = 10 ** rng.uniform(-2.0, np.log10(2.0))
    low, high = np.percentile(image[::2, ::2], [cut, 100.0 - cut])
    scaled = (image - low) / max(float(high - low), 1e-12) * 255.0
    return np.clip(np.round(scaled), 0.0, 255.0).astype(np.float32)


def quantise_8bit(image, pixel_size_A, rng):
    """An 8-bit PNG/TIFF export: contrast-stretched, clipped and rounded to 256 grey levels."""
    return _stretch_to_8bit(image, rng), pixel_size_A


def jpeg_round_trip(image, pixel_size_A, rng):
    """An 8-bit JPEG export at quality 50-95, read back."""
    from PIL import Image

    grey = _stretch_to_8bit(image, rng).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(grey).save(buffer, format="JPEG", quality=int(rng.integers(50, 96)))
    buffer.seek(0)
    return np.asarray(Image.open(buffer), dtype=np.float32), pixel_size_A


def edge_streaks(image, pixel_size_A, rng):
    """Streaked borders of an aligned sum: 1-4 % of the frame at 1-4 edges repeat their edge pixels.

    Motion correction shifts frames; the uncovered border is filled by repeating (or smearing)
    the last row/column, which shows as a 'barcode' band (seen on the EMPIAR-10017 exports).
    """
    out = np.array(image, dtype=np.float32)
    ny, nx = out.shape
    for edge in rng.choice(4, size=int(rng.integers(1, 5)), replace=False):
        width = max(2, int(rng.uniform(0.01, 0.04) * min(ny, nx)))
        if edge == 0:
            out[:width] = out[width]
        elif edge == 1:
            out[-width:] = out[-width - 1]
        elif edge == 2:
            out[:, :width] = out[:, width : width + 1]
        else:
            out[:, -width:] = out[:, -width - 1 : -width]
    return out, pixel_size_A


def grey_levels(image, pixel_size_A, rng):
    """An arbitrary linear rescaling of grey levels (offset and gain), as exports do."""
    gain = 10 ** rng.uniform(-2.0, 2.0)
    offset = rng.uniform(-1.0, 1.0) * 1e3
    return (np.asarray(image, np.float32) * gain + offset).astype(np.float32), pixel_size_A


GENERATORS: dict[str, Variation] = {
    "detector_mtf": detector_mtf,
    "gain_stripes": gain_stripes,
    "hot_pixels": hot_pixels,
    "bin_sum": bin_sum,
    "bin_fourier": bin_fourier,
    "gaussian_denoise": gaussian_denoise,
    "wiener_denoise": wiener_denoise,
    "nl_means_denoise": nl_means_denoise,
    "tv_denoise": tv_denoise,
    "quantise_8bit": quantise_8bit,
    "jpeg_round_trip": jpeg_round_trip,
    "edge_streaks": edge_streaks,
    "grey_levels": grey_levels,
}
"""Every variation generator, by name."""

STAGES: tuple[tuple[str, ...], ...] = (
    ("detector_mtf",),
    ("gain_stripes", "hot_pixels"),
    ("bin_sum", "bin_fourier"),
    ("gaussian_denoise", "wiener_denoise", "nl_means_denoise", "tv_denoise"),
    ("edge_streaks",),
    ("quantise_8bit", "jpeg_round_trip", "grey_levels"),
)
"""The order a micrograph meets them in: detector, gain, binning, denoising, alignment borders,
export. At most one generator of each stage is applied."""

HELD_OUT_GENERATORS: tuple[str, ...] = (
    "hot_pixels",
    "bin_fourier",
    "nl_means_denoise",
    "jpeg_round_trip",
)
"""Generators never used in training the shipped weights: the held-out measurement applies
each of them (alone with the trained ones) to tell how the model carries over to a kind of
variation it never saw (``bench/micassess_heldout.py``)."""


@dataclass(frozen=True)
class DomainSpec:
    """Which generators a labelled set may draw, and how often each stage applies.

    ``probability`` is the chance that a stage applies one of its allowed generators (chosen
    uniformly); ``forced`` generators are applied to every micrograph (one held-out generator
    per measurement set). ``per_session``: one chain, with the same parameters (binning factor,
    denoiser strength, hot-pixel positions, export quality), for every micrograph of a session,
    as a real session goes through one detector and one processing pipeline; otherwise each
    micrograph draws its own (training: the most variety per micrograph). ``max_pixel_size_A``:
    the binning generators bin no further than this pixel size (the shipped weights were trained
    without a limit; the held-out measurement sets use `EXPORT_MAX_PIXEL_A`).
    """

    allowed: tuple[str, ...]
    probability: float = 0.5
    forced: tuple[str, ...] = ()
    per_session: bool = False
    max_pixel_size_A: float | None = None  # binning stops here (`EXPORT_MAX_PIXEL_A`); None: none


EXPORT_MAX_PIXEL_A = 14.0
"""Largest pixel size (Å) of a micrograph as a user exports it: one recorded at 0.4-1.8 Å/px and
binned 1-8 x (issue 10's range; the EMPIAR-10017 exports of `shared/real_examples` are 1.77 Å/px,
the Magellon one 6.3 Å/px after 8 x). The simulator renders at 2.5-7 Å/px (already binned, for
speed), so binning 1.5-6 x more on top reached 42 Å/px: no screening micrograph looks like that,
and there the simulator's bad CTFs hardly show (from 20 Å/px on, a B-factor of 900 Å² dims
Nyquist by 11 % or less, and 4,000-12,000 Å of astigmatism moves no ring below it). A physical
bound on what users export, not a statistic of any simulated set."""

BINNING_GENERATORS = frozenset({"bin_sum", "bin_fourier"})
"""The generators that take ``max_pixel_size_A``."""

TRAINING_DOMAIN = DomainSpec(
    tuple(name for name in GENERATORS if name not in HELD_OUT_GENERATORS), probability=0.45
)
"""Domain randomisation of the shipped weights' training sets."""


def randomise(
    image: np.ndarray, pixel_size_A: float, spec: DomainSpec, rng: np.random.Generator
) -> tuple[np.ndarray, float, tuple[str, ...]]:
    """Apply a random chain of variations (one per stage at most); returns the names applied."""
    out, pixel = np.asarray(image, np.float32), float(pixel_size_A)
    applied: list[str] = []
    for stage in STAGES:
        forced = [name for name in stage if name in spec.forced]
        allowed = [name for name in stage if name in spec.allowed]
        if forced:
            name = forced[0]
        elif allowed and rng.random() < spec.probability:
            name = str(rng.choice(allowed))
        else:
            continue
        if name in BINNING_GENERATORS and spec.max_pixel_size_A is not None:
            out, pixel = GENERATORS[name](out, pixel, rng, max_pixel_size_A=spec.max_pixel_size_A)
        else:
            out, pixel = GENERATORS[name](out, pixel, rng)
        applied.append(name)
    return out, pixel, tuple(applied)
