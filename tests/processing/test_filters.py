import numpy as np
import pytest

from screen.processing.filters import (
    bandpass,
    bin_to_pixel_size,
    gaussian_lowpass_transfer,
    laplacian_of_gaussian,
    lowpass,
    mean_square_transfer,
    radial_frequency_A,
    robust_standardise,
    white_noise_std,
)


def test_lowpass_halves_amplitude_at_its_resolution():
    n, pixel_size_A, resolution_A = 128, 2.0, 16.0
    x = np.arange(n)
    wave = np.tile(np.cos(2 * np.pi * x * pixel_size_A / resolution_A), (n, 1))
    out = lowpass(wave, pixel_size_A, resolution_A)
    assert np.abs(out).max() == pytest.approx(0.5, abs=0.01)


def test_bandpass_removes_mean_and_rejects_wrong_order():
    image = np.random.default_rng(0).normal(5.0, 1.0, size=(64, 64))
    assert abs(bandpass(image, 1.0, 20.0, 4.0).mean()) < 1e-4
    with pytest.raises(ValueError, match="coarse limit"):
        bandpass(image, 1.0, 4.0, 20.0)


def test_log_responds_most_at_the_matching_scale():
    n, radius = 128, 10.0
    y, x = np.indices((n, n))
    disc = (np.hypot(x - n // 2, y - n // 2) <= radius).astype(float)
    responses = {s: laplacian_of_gaussian(disc, 1.0, s)[n // 2, n // 2] for s in (3, 7, 15)}
    assert max(responses, key=responses.get) == 7  # sigma = r / sqrt(2)
    assert responses[7] > 0  # bright blob: positive


def test_bin_to_pixel_size_keeps_coordinates_and_never_upsamples():
    image = np.random.default_rng(1).normal(size=(200, 300))
    binned, px = bin_to_pixel_size(image, 1.0, 4.0)
    assert binned.shape == (50, 76) and px == pytest.approx(300 / 76)
    same, px_same = bin_to_pixel_size(image, 5.0, 4.0)
    assert same.shape == image.shape and px_same == 5.0


def test_white_noise_level_and_filtered_variance():
    rng = np.random.default_rng(2)
    noise = rng.normal(0.0, 3.0, size=(256, 256))
    assert white_noise_std(noise) == pytest.approx(3.0, rel=0.03)
    transfer = gaussian_lowpass_transfer(radial_frequency_A(noise.shape, 1.0), 8.0)
    predicted = 3.0 * np.sqrt(mean_square_transfer(transfer, noise.shape))
    assert lowpass(noise, 1.0, 8.0).std() == pytest.approx(predicted, rel=0.05)


def test_robust_standardise_ignores_outliers():
    values = np.random.default_rng(3).normal(10.0, 2.0, size=10000)
    values[:100] = 1e6
    z = robust_standardise(values)
    assert np.median(z) == pytest.approx(0.0, abs=0.05)
    assert np.median(np.abs(z[100:])) == pytest.approx(0.674, abs=0.05)


def test_relative_contrast_of_intensities_and_of_zero_centred_images():
    from screen.processing.filters import relative_contrast

    rng = np.random.default_rng(3)
    counts = rng.poisson(50.0, (256, 256)).astype(np.float32)
    counts[100:120, 100:120] *= 0.8  # a dark particle
    contrast = relative_contrast(counts)
    assert contrast == pytest.approx(counts / np.median(counts) - 1.0, abs=1e-6)
    # The same micrograph z-scored, or centred on a negative median: particles stay dark, and
    # the scale does not blow up with a near-zero median.
    for centred in (
        (counts - counts.mean()) / counts.std(),
        counts - np.median(counts) - 0.01,
        counts - counts.max(),
    ):
        other = relative_contrast(centred)
        assert np.corrcoef(other.ravel(), contrast.ravel())[0, 1] > 0.999
        assert 0.2 < other.std() / contrast.std() < 5.0


def test_bright_outliers_are_set_to_the_median_before_block_means():
    """Hot pixels summed by 4 x 4 binning: 0.4 % of the pixels, more than the 0.05 % quantile clip
    takes; 8 robust sigmas above the median they are set to it. Dark features stay."""
    from screen.processing.filters import bright_outlier_level, clipped_block_means

    rng = np.random.default_rng(3)
    image = rng.poisson(64.0, (256, 256)).astype(np.float32)  # counts: sigma 8 around 64
    image[100:140, 100:140] *= 0.5  # a dark object far below the median
    hot = rng.choice(image.size, int(0.004 * image.size), replace=False)
    image.reshape(-1)[hot] = 64.0 * 40.0
    median, level = bright_outlier_level(image)
    assert abs(median - 64.0) < 2.0 and 120.0 < level < 140.0  # 64 + 8 x ~8
    means = clipped_block_means(image, 4)
    clean = image.copy()
    clean.reshape(-1)[hot] = median
    expected = clean.reshape(64, 4, 64, 4).mean(axis=(1, 3))
    assert np.allclose(means, expected, atol=1.0)
    assert means[25:35, 25:35].mean() < 0.6 * median  # the dark object keeps its level
    assert bright_outlier_level(np.full((64, 64), 5.0, np.float32)) is None


def test_outlier_limits_stop_at_the_bright_outlier_level_only_where_defects_spread():
    """Spread hot pixels over 0.4 % of the frame survive the 0.05 % quantile clip; with
    ``bright_outliers`` the upper limit stops 8 robust sigmas above the median. A frame without
    them keeps the quantile's limits, the dark side included."""
    from screen.processing.filters import outlier_limits

    rng = np.random.default_rng(4)
    clean = rng.poisson(64.0, (256, 256)).astype(np.float32)  # sigma 8 around 64
    assert outlier_limits(clean, bright_outliers=True) == outlier_limits(clean)
    hot = clean.copy()
    hot.reshape(-1)[rng.choice(hot.size, int(0.004 * hot.size), replace=False)] = 64.0 * 40.0
    low, high = outlier_limits(hot)
    assert high == pytest.approx(64.0 * 40.0)  # the quantile lands on the hot pixels
    low_b, high_b = outlier_limits(hot, bright_outliers=True)
    assert low_b == low and 120.0 < high_b < 140.0  # 64 + 8 x ~8
    assert outlier_limits(np.full((64, 64), 5.0, np.float32), bright_outliers=True) is None
