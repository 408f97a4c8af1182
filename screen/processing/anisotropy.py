"""Directional loss of power in a micrograph's spectrum: the signature of drift blur.

A micrograph blurred by stage drift of length L along one direction keeps its power across that
direction and loses it along it (the blur's transfer is sinc(k L cos(angle)), near zero from
k ~ 1/L on). In the band between 80 Å and 30 Å a blur of 25 Å or more therefore takes most of the
power along the drift (sinc² <= 0.06 at 30 Å) while an unblurred micrograph's power there (ice,
particles, the CTF's first lobe at common defocus) is the same in every direction, up to its
astigmatism and the sampling noise of the spectrum (on pixels coarser than ~12.7 Å the band ends
at 0.85 Nyquist instead, `NYQUIST_SHARE`). The measure is the 2-fold Fourier component
over the direction of the log power spectrum, each frequency ring's mean removed: a ratio of
powers, so the same on counts, 8-bit exports, denoised or binned images (a Fourier crop keeps the
band). Its noise under an isotropic spectrum follows from the periodogram's statistics (the log of
an exponential variable has variance pi²/6) and the number of spectrum pixels in the band.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from screen.processing.filters import bin_to_pixel_size, clipped_block_means

BAND_A = (80.0, 30.0)
"""The band (coarse, fine end, Å) where directional power is compared (see the module text)."""

WORKING_PIXEL_SIZE_A = 10.0
"""Frames are reduced to this pixel size first (Nyquist 20 Å, beyond the band's 30 Å): block
means to at most a third of it, then a Fourier crop. A box of b pixels has its transfer's zeros
at the multiples of the new sampling frequency, exactly the frequencies that would alias into the
band, and passes the band itself at >= 0.98 (sinc(3.3 / 30)); a K3 frame costs ~0.06 s."""

NYQUIST_SHARE = 0.85
"""The band's fine end stays below this share of Nyquist (the detector's and any binning's
roll-off there is isotropic only in theory: a separable box or pixel MTF is 4-fold). On pixels
coarser than ~12.7 Å the band ends there instead of at 30 Å (a 25-Å drift then takes less of the
power: sinc² 0.36 at 47 Å, 20 Å/px); it must still span `MIN_BAND_RATIO`."""

MIN_BAND_RATIO = 1.3
"""The band's coarse end over its fine end at least (up to ~26 Å/px): a narrower band holds too few
spectrum pixels and too little of the drift's fall-off."""

HANN_NOISE_FACTOR = 1.72
"""How much the Hann window (against the frame's edges: an unwindowed transform puts a bright
cross along the axes) widens the amplitude's noise over independent spectrum pixels, measured on
white noise frames of 384-1024 px at 2.5-10 Å/px (1.67-1.75; a window property, not the data's;
`tests/processing/test_anisotropy.py` checks the noise scale)."""


@dataclass(frozen=True)
class DirectionalPower:
    """The 2-fold anisotropy of a micrograph's log power in `BAND_A`.

    Attributes
    ----------
    amplitude
        Peak-to-mean amplitude of the 2-fold component of the log power over direction (0: the
        same power in every direction; 0.5: e^±0.5 between the strongest and weakest direction).
    weakest_direction_deg
        Direction (degrees from the image's x axis, in (-90, 90]) of the least power: a drift's.
    noise
        Scale of ``amplitude`` under an isotropic spectrum (Rayleigh: mean 1.25 x noise);
        ``amplitude / noise`` is its significance.
    """

    amplitude: float
    weakest_direction_deg: float
    noise: float

    @property
    def significance(self) -> float:
        """``amplitude / noise``: how far the anisotropy stands above sampling noise."""
        return self.amplitude / self.noise if self.noise > 0 else float("inf")


def directional_power(
    image: np.ndarray, pixel_size_A: float, reduced: tuple[np.ndarray, float] | None = None
) -> DirectionalPower | None:
    """The directional power of ``image`` in `BAND_A`.

    ``None`` where its pixels cannot resolve enough of the band (pixel size over ~26 Å) or it is
    too small or flat to measure. ``reduced``: the frame's `reduced_frame` when already made
    (micrograph assessment shares it with the dark-blob census).
    """
    if pixel_size_A <= 0:
        raise ValueError(f"pixel size must be positive, got {pixel_size_A}")
    coarse_A = BAND_A[0]
    fine_A = max(BAND_A[1], 2.0 * pixel_size_A / NYQUIST_SHARE)
    if coarse_A < MIN_BAND_RATIO * fine_A:
        return None
    small, small_pixel_A = bin_to_pixel_size(
        *(reduced if reduced is not None else reduced_frame(image, pixel_size_A)),
        WORKING_PIXEL_SIZE_A,
    )
    side = min(small.shape)
    if side < 64:
        return None
    y0, x0 = (small.shape[0] - side) // 2, (small.shape[1] - side) // 2
    square = small[y0 : y0 + side, x0 : x0 + side].astype(np.float64)
    window = np.hanning(side)
    square = (square - square.mean()) * np.outer(window, window)
    transform = np.fft.rfft2(square)
    power = transform.real**2 + transform.imag**2
    ky = np.fft.fftfreq(side)[:, None]
    kx = np.fft.rfftfreq(side)[None, :]
    radius_px = np.hypot(ky, kx) * side
    k_A = radius_px / (side * small_pixel_A)
    # The kx = 0 column holds each (0, ky) and (0, -ky) pair twice: keep one of them.
    inside = (k_A >= 1.0 / coarse_A) & (k_A < 1.0 / fine_A) & ~((kx == 0) & (ky < 0))
    values = power[inside]
    if values.size < 64 or not np.all(np.isfinite(values)) or values.max() <= 0:
        return None
    log_power = np.log(np.maximum(values, values.max() * 1e-12))
    rings = np.rint(radius_px[inside]).astype(int)
    ring_mean = np.bincount(rings, log_power) / np.maximum(np.bincount(rings), 1)
    angle = np.arctan2(
        np.broadcast_to(ky, power.shape)[inside], np.broadcast_to(kx, power.shape)[inside]
    )
    # log power = mean + a cos 2(angle - strongest) gives component = a / 2 exp(2i strongest).
    component = np.mean((log_power - ring_mean[rings]) * np.exp(2j * angle))
    strongest_deg = float(np.degrees(np.angle(component)) / 2.0)
    weakest_deg = strongest_deg + 90.0 if strongest_deg <= 0 else strongest_deg - 90.0
    # Each of the component's two parts has variance (pi² / 6) / (2 n) under isotropic noise;
    # 2 |component| is then Rayleigh with scale 2 sqrt(pi² / 12 / n), widened by the window.
    noise = HANN_NOISE_FACTOR * 2.0 * np.sqrt(np.pi**2 / 12.0 / values.size)
    return DirectionalPower(float(2.0 * abs(component)), weakest_deg, float(noise))


REDUCED_PIXEL_SIZE_A = WORKING_PIXEL_SIZE_A / 3.0
"""Block means of at most this pixel size come before the Fourier crop to the working size: the
box filter's loss stays small in the band, and the crop removes what it aliases."""


def reduced_frame(image: np.ndarray, pixel_size_A: float) -> tuple[np.ndarray, float]:
    """Means of b x b blocks of the image, hot and dead pixels clipped, and their pixel size.

    b is the largest with b x pixel size <= `REDUCED_PIXEL_SIZE_A`
    (`screen.processing.filters.clipped_block_means`): a K3 frame in ~50 ms, no full-frame copy.
    """
    factor = max(1, int(REDUCED_PIXEL_SIZE_A / pixel_size_A))
    return clipped_block_means(image, factor), pixel_size_A * factor
