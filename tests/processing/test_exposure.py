"""Grey level and shot noise of a micrograph (`screen.processing.exposure`)."""

import numpy as np
import pytest

from screen.processing.exposure import Exposure, exposure


def test_poisson_counts_have_their_mean_as_level_and_noise_variance():
    rng = np.random.default_rng(0)
    for mean in (20.0, 300.0):
        measured = exposure(rng.poisson(mean, (512, 512)).astype(np.float32))
        assert measured.level == pytest.approx(mean, rel=0.02)
        assert measured.noise_variance == pytest.approx(mean, rel=0.08)
        assert measured.noise_per_level == pytest.approx(1.0, rel=0.08)


def test_a_rescaled_export_keeps_no_count_statistics():
    # Fewer electrons: level and noise fall together. A grey-level rescale: the noise falls
    # with the square of the gain, so the noise per grey level no longer matches.
    rng = np.random.default_rng(1)
    counts = rng.poisson(400.0, (256, 256)).astype(np.float32)
    fewer = exposure(rng.poisson(240.0, (256, 256)).astype(np.float32))
    rescaled = exposure(0.6 * counts)
    assert fewer.noise_per_level == pytest.approx(1.0, rel=0.1)
    assert rescaled.level == pytest.approx(240.0, rel=0.02)
    assert rescaled.noise_per_level == pytest.approx(0.6, rel=0.1)


def test_hot_pixels_and_a_dark_object_do_not_move_the_measures():
    rng = np.random.default_rng(2)
    image = rng.poisson(100.0, (512, 512)).astype(np.float32)
    plain = exposure(image)
    image.reshape(-1)[rng.integers(0, image.size, 60)] = 20000.0
    image[240:260, 240:260] = 3.0  # a small contamination ball
    spoiled = exposure(image)
    assert spoiled.level == pytest.approx(plain.level, rel=0.01)
    assert spoiled.noise_variance == pytest.approx(plain.noise_variance, rel=0.05)
    # The extremes are the image's own, hot pixels included (an export's range shows there).
    assert (spoiled.low, spoiled.high) == (3.0, 20000.0)


def test_degenerate_inputs():
    assert np.isnan(Exposure(0.0, 1.0).noise_per_level)
    with pytest.raises(ValueError, match="2D image"):
        exposure(np.zeros((3, 100)))
