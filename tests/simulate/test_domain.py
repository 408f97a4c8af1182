import numpy as np
import pytest

from screen.simulate import domain


@pytest.fixture(scope="module")
def counts():
    rng = np.random.default_rng(5)
    image = rng.poisson(20.0, (512, 512)).astype(np.float32)
    image[200:260, 200:260] *= 0.7  # something to keep
    return image


@pytest.mark.parametrize("name", sorted(domain.GENERATORS))
def test_every_generator_gives_a_finite_image_and_a_consistent_pixel_size(name, counts):
    out, pixel_A = domain.GENERATORS[name](counts, 2.0, np.random.default_rng(1))
    assert out.ndim == 2 and np.isfinite(out).all()
    assert out.std() > 0
    # The field of view is kept: pixel size grows as the side shrinks.
    assert out.shape[1] * pixel_A == pytest.approx(counts.shape[1] * 2.0, rel=0.02)


def test_denoisers_remove_shot_noise_and_exports_quantise(counts):
    rng = np.random.default_rng(2)
    for name in ("gaussian_denoise", "wiener_denoise", "nl_means_denoise", "tv_denoise"):
        out, _ = domain.GENERATORS[name](counts, 2.0, rng)
        # Pixel-to-pixel differences (shot noise) shrink a lot.
        assert np.diff(out, axis=1).std() < 0.6 * np.diff(counts, axis=1).std(), name
    for name in ("quantise_8bit", "jpeg_round_trip"):
        out, _ = domain.GENERATORS[name](counts, 2.0, rng)
        assert out.min() >= 0 and out.max() <= 255
        assert np.allclose(out, np.round(out))


def test_hot_pixels_and_streaked_edges():
    image = np.full((256, 256), 10.0, np.float32)
    hot, _ = domain.hot_pixels(image, 1.0, np.random.default_rng(3))
    assert hot.max() >= 50.0 and (hot == 0).any()
    rng = np.random.default_rng(4)
    streaked, _ = domain.edge_streaks(rng.normal(size=(256, 256)).astype(np.float32), 1.0, rng)
    rows_equal = np.all(streaked[:2] == streaked[1:3], axis=1).any()
    cols_equal = np.all(streaked[:, :2] == streaked[:, 1:3], axis=0).any()
    last_rows = np.all(streaked[-3:-1] == streaked[-2:], axis=1).any()
    last_cols = np.all(streaked[:, -3:-1] == streaked[:, -2:], axis=0).any()
    assert rows_equal or cols_equal or last_rows or last_cols


def test_training_holds_out_whole_generators_and_randomise_is_seeded(counts):
    assert set(domain.HELD_OUT_GENERATORS) <= set(domain.GENERATORS)
    assert not set(domain.HELD_OUT_GENERATORS) & set(domain.TRAINING_DOMAIN.allowed)
    assert set(domain.GENERATORS) == {name for stage in domain.STAGES for name in stage}
    first = domain.randomise(counts, 2.0, domain.TRAINING_DOMAIN, np.random.default_rng(9))
    again = domain.randomise(counts, 2.0, domain.TRAINING_DOMAIN, np.random.default_rng(9))
    assert first[2] == again[2] and np.array_equal(first[0], again[0])
    seen = set()
    for seed in range(40):
        seen |= set(
            domain.randomise(
                counts[:256, :256], 2.0, domain.TRAINING_DOMAIN, np.random.default_rng(seed)
            )[2]
        )
    assert seen and not seen & set(domain.HELD_OUT_GENERATORS)
    forced = domain.DomainSpec(domain.TRAINING_DOMAIN.allowed, 0.0, forced=("jpeg_round_trip",))
    _, _, applied = domain.randomise(counts, 2.0, forced, np.random.default_rng(0))
    assert applied == ("jpeg_round_trip",)


def test_binning_stops_at_the_largest_exported_pixel_size(counts):
    for name in sorted(domain.BINNING_GENERATORS):
        capped = domain.DomainSpec((), 0.0, forced=(name,), max_pixel_size_A=5.0)
        for seed in range(12):
            out, pixel_A, applied = domain.randomise(
                counts, 2.0, capped, np.random.default_rng(seed)
            )
            assert pixel_A <= 5.0 + 1e-6 and out.shape[1] * pixel_A == pytest.approx(1024, rel=0.02)
        # Nothing left to bin under the cap: the image is kept as it is.
        at_cap = domain.DomainSpec((), 0.0, forced=(name,), max_pixel_size_A=2.1)
        out, pixel_A, _ = domain.randomise(counts, 2.0, at_cap, np.random.default_rng(0))
        assert pixel_A == 2.0 and np.array_equal(out, counts)
    # Without a cap the drawn factor stands (up to 4 x summed, 6 x cropped).
    uncapped = domain.DomainSpec((), 0.0, forced=("bin_fourier",))
    largest = max(
        domain.randomise(counts, 2.0, uncapped, np.random.default_rng(s))[1] for s in range(12)
    )
    assert largest > 5.0
