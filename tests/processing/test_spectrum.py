import numpy as np
import pytest

from screen.processing.filters import bin_to_pixel_size
from screen.processing.spectrum import (
    binned_mean,
    chebyshev_basis,
    first_drop,
    half_plane_polar,
    local_correlation,
    window_bounds,
    window_mean,
)


def test_binning_keeps_images_already_coarse_enough():
    image = np.random.default_rng(0).random((100, 120)).astype(np.float32)
    out, pixel_size_A = bin_to_pixel_size(image, 2.0, 1.5)
    assert out.shape == image.shape
    assert pixel_size_A == 2.0


def test_binning_by_two_halves_the_shape_and_keeps_a_low_frequency_wave():
    ny, nx = 128, 256
    x = np.arange(nx)
    image = np.tile(np.cos(2 * np.pi * 8 * x / nx), (ny, 1)).astype(np.float32) + 5.0
    out, pixel_size_A = bin_to_pixel_size(image, 0.75, 1.5)
    assert out.shape == (64, 128)
    assert pixel_size_A == pytest.approx(1.5)
    expected = np.cos(2 * np.pi * 8 * np.arange(128) / 128) + 5.0
    np.testing.assert_allclose(out[10], expected, atol=1e-4)


def test_half_plane_polar_coordinates():
    n, pixel_size_A = 64, 2.0
    k, angle, radius = half_plane_polar(n, pixel_size_A)
    assert k.shape == (n, n - n // 2)
    assert k[n // 2, 0] == 0.0  # the centre of the spectrum
    assert radius[n // 2, 10] == 10.0  # on the +kx axis
    assert k[n // 2, 10] == pytest.approx(10 / (n * pixel_size_A))
    assert angle[n // 2 + 5, 0] == pytest.approx(np.pi / 2)  # on the +ky axis
    assert angle.min() >= -np.pi / 2 and angle.max() <= np.pi / 2


def test_binned_mean_ignores_out_of_range_bins():
    means, counts = binned_mean(np.array([0, 0, 2, 5, -1]), np.array([1.0, 3.0, 4.0, 9.0, 9.0]), 3)
    np.testing.assert_allclose(means, [2.0, 0.0, 4.0])
    np.testing.assert_array_equal(counts, [2, 0, 1])


def test_chebyshev_basis_maps_the_domain_to_minus_one_one():
    basis = chebyshev_basis(np.array([0.1, 0.2, 0.3]), 2, (0.1, 0.3))
    np.testing.assert_allclose(basis[:, 0], 1.0)
    np.testing.assert_allclose(basis[:, 1], [-1.0, 0.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(basis[:, 2], [1.0, -1.0, 1.0])  # T2 = 2x^2 - 1


def test_window_mean_matches_a_direct_average():
    coordinate = np.linspace(0.0, 10.0, 101)
    values = np.random.default_rng(1).random(101)
    lo, hi = window_bounds(coordinate, 1.0)
    means = window_mean(values, lo, hi)
    for i in (0, 37, 100):
        inside = np.abs(coordinate - coordinate[i]) <= 1.0 + 1e-12
        assert means[i] == pytest.approx(values[inside].mean())


def test_local_correlation_of_matching_opposite_and_unrelated_signals():
    x = np.linspace(0.0, 20 * np.pi, 2000)
    wave = np.sin(x)
    lo, hi = window_bounds(x, 3 * np.pi)
    noise = np.random.default_rng(2).standard_normal(len(x))
    np.testing.assert_allclose(local_correlation(2 * wave + 1, wave, lo, hi), 1.0, atol=1e-9)
    np.testing.assert_allclose(local_correlation(-wave, wave, lo, hi), -1.0, atol=1e-9)
    assert np.abs(local_correlation(noise, wave, lo, hi)).mean() < 0.15
    # A flat signal has no correlation rather than a division by zero.
    np.testing.assert_array_equal(local_correlation(np.ones_like(x), wave, lo, hi), 0.0)


def test_first_drop_counts_leading_values_above_threshold():
    assert first_drop(np.array([0.9, 0.8, 0.3, 0.9]), 0.5) == 2
    assert first_drop(np.array([0.9, 0.8]), 0.5) == 2
    assert first_drop(np.array([0.1, 0.8]), 0.5) == 0
