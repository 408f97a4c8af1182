import numpy as np
import pytest

from screen.processing.fourier import fourier_crop, periodogram_average, rotational_average


def test_rotational_average_of_a_radial_gaussian():
    n, pixel_size_A, sigma_px = 256, 1.5, 30.0
    y, x = np.indices((n, n))
    radius = np.hypot(x - n // 2, y - n // 2)
    power = np.exp(-0.5 * (radius / sigma_px) ** 2)

    k_A, values = rotational_average(power, pixel_size_A)

    assert len(k_A) == n // 2
    assert k_A[1] - k_A[0] == pytest.approx(1.0 / (n * pixel_size_A))
    assert k_A[-1] < 0.5 / pixel_size_A
    assert k_A[-1] == pytest.approx(0.5 / pixel_size_A, rel=0.01)
    expected = np.exp(-0.5 * (k_A * n * pixel_size_A / sigma_px) ** 2)
    np.testing.assert_allclose(values, expected, atol=0.01)


def test_rotational_average_with_fewer_bins_is_a_coarser_average():
    n = 128
    y, x = np.indices((n, n))
    power = np.hypot(x - n // 2, y - n // 2)  # radius in pixels
    k_A, values = rotational_average(power, 1.0, n_bins=16)
    assert len(values) == 16
    # Ring i covers radii [4i, 4i+4): past the central disc its mean radius is the bin centre.
    np.testing.assert_allclose(values[1:], k_A[1:] * n, atol=0.3)


def test_periodogram_of_white_noise_is_flat_at_the_noise_power():
    rng = np.random.default_rng(3)
    variance = 4.0
    image = rng.normal(10.0, np.sqrt(variance), size=(512, 512))
    tile = 128
    power = periodogram_average(image, tile_px=tile)
    _, values = rotational_average(power, 1.0)

    window_energy = np.sum(np.outer(np.hanning(tile), np.hanning(tile)) ** 2)
    ring = values[5:-2] / (variance * window_energy)
    assert ring.mean() == pytest.approx(1.0, rel=0.03)
    assert ring.std() < 0.1


@pytest.mark.parametrize("shape", [(128, 128), (100, 120), (64, 96)])
def test_fourier_crop_keeps_mean_shape_and_low_frequencies(shape):
    rng = np.random.default_rng(0)
    ny, nx = 256, 256
    y, x = np.indices((ny, nx))
    wave = 5.0 * np.cos(2 * np.pi * (3 * x / nx + 2 * y / ny) + 0.4)
    image = 100.0 + wave + 0.01 * rng.standard_normal((ny, nx))

    out = fourier_crop(image, shape)

    assert out.shape == shape
    assert out.dtype == np.float32
    assert out.mean() == pytest.approx(image.mean(), rel=1e-5)
    my, mx = shape
    j, i = np.indices(shape)
    expected = 100.0 + 5.0 * np.cos(2 * np.pi * (3 * i / mx + 2 * j / my) + 0.4)
    np.testing.assert_allclose(out, expected, atol=0.05)


def test_fourier_crop_in_row_blocks_with_a_clip_equals_clip_then_one_transform():
    from scipy import fft as sfft

    rng = np.random.default_rng(3)
    image = rng.normal(size=(203, 150)).astype(np.float32)
    image[7, 9], image[150, 30] = 80.0, -60.0  # a hot and a dead pixel
    clipped = np.clip(image, -2.5, 2.5)
    spectrum = sfft.rfft2(clipped)[:, : 60 // 2 + 1]
    cropped = np.concatenate([spectrum[:50], spectrum[203 - 49 :]])
    expected = sfft.irfft2(cropped, s=(99, 60)) * (99 * 60) / (203 * 150)

    for rows in (1, 16, 512):  # blocks smaller than, dividing and larger than the frame
        out = fourier_crop(image, (99, 60), value_range=(-2.5, 2.5), block_rows=rows)
        np.testing.assert_allclose(out, expected, atol=2e-6)
    unclipped = fourier_crop(image, (99, 60))
    assert np.abs(unclipped - expected).max() > 0.1  # the clip did something


def test_fourier_crop_refuses_to_enlarge():
    with pytest.raises(ValueError, match="cannot Fourier-crop"):
        fourier_crop(np.zeros((32, 32)), (64, 32))


def _odd_crop_error(axis):
    n, m, cycles = 256, 101, 50  # 50 cycles < 50.5, the Nyquist of 101 samples
    y, x = np.indices((n, n))
    image = 100.0 + 5.0 * np.cos(2 * np.pi * cycles * (y if axis == "y" else x) / n)
    out = fourier_crop(image, (m, m))
    j, i = np.indices((m, m))
    expected = 100.0 + 5.0 * np.cos(2 * np.pi * cycles * (j if axis == "y" else i) / m)
    return np.abs(out - expected).max()


def test_fourier_crop_to_odd_width_keeps_frequencies_below_the_new_nyquist():
    assert _odd_crop_error("x") < 0.05


def test_fourier_crop_to_odd_height_keeps_frequencies_below_the_new_nyquist():
    assert _odd_crop_error("y") < 0.05
