"""Directional power of a micrograph's spectrum (`screen.processing.anisotropy`)."""

import numpy as np
import pytest

from screen.processing.anisotropy import directional_power
from screen.processing.fourier import fourier_crop


def _field(rng: np.random.Generator, n: int, pixel_size_A: float, blur_A: float, angle_deg: float):
    """A particle-scale random field (power between ~200 and ~20 Å) plus white noise, the field
    blurred along ``angle_deg`` by a straight drift of ``blur_A``."""
    ky = np.fft.fftfreq(n, pixel_size_A)[:, None]
    kx = np.fft.rfftfreq(n, pixel_size_A)[None, :]
    k = np.hypot(ky, kx)
    shape = np.exp(-((k * 40.0) ** 2)) * (1 - np.exp(-((k * 200.0) ** 2)))
    along = kx * np.cos(np.radians(angle_deg)) + ky * np.sin(np.radians(angle_deg))
    transfer = shape * np.sinc(along * blur_A)
    signal = np.fft.irfft2(np.fft.rfft2(rng.normal(size=(n, n))) * transfer, s=(n, n))
    signal *= 3.0 / signal.std()
    return (signal + rng.normal(size=(n, n))).astype(np.float32)


def test_isotropic_noise_stays_within_its_noise_scale():
    rng = np.random.default_rng(0)
    significance = [
        directional_power(rng.normal(size=(n, n)), pixel_A).significance
        for n, pixel_A in ((384, 10.0), (512, 2.5), (768, 6.0))
        for _ in range(6)
    ]
    # Rayleigh with the stated scale: mean 1.25, exceeding 4 with probability 3e-4.
    assert 0.9 < np.mean(significance) < 1.7
    assert max(significance) < 4.0


def test_drift_blur_takes_the_power_along_its_direction():
    rng = np.random.default_rng(1)
    still = directional_power(_field(rng, 512, 3.0, 0.0, 0.0), 3.0)
    drifted = directional_power(_field(rng, 512, 3.0, 40.0, 30.0), 3.0)
    assert still.significance < 4.0
    assert drifted.significance > 20.0 and drifted.amplitude > 5 * still.amplitude
    assert drifted.weakest_direction_deg == pytest.approx(30.0, abs=8.0)


def test_the_measure_is_the_same_binned_rescaled_or_offset():
    # A ratio of powers in a band the Fourier crop keeps: binning, a grey-level gain and an
    # offset (8-bit exports, other detectors) do not move it.
    rng = np.random.default_rng(2)
    image = _field(rng, 768, 2.0, 50.0, -60.0)
    reference = directional_power(image, 2.0)
    binned = directional_power(fourier_crop(image, (384, 384)), 4.0)
    rescaled = directional_power(0.01 * image + 120.0, 2.0)
    assert rescaled.amplitude == pytest.approx(reference.amplitude, rel=1e-3)
    assert binned.amplitude == pytest.approx(reference.amplitude, rel=0.15)
    assert binned.weakest_direction_deg == pytest.approx(-60.0, abs=8.0)


def test_a_pixel_too_coarse_for_the_band_is_not_measured():
    image = np.random.default_rng(3).normal(size=(256, 256))
    assert directional_power(image, 30.0) is None
    assert directional_power(image, 14.0) is not None  # the band ends at 0.85 Nyquist there
    assert directional_power(image[:40, :40], 3.0) is None
    with pytest.raises(ValueError, match="pixel size"):
        directional_power(image, 0.0)
