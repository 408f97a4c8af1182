from dataclasses import replace

import numpy as np
import pytest
from scipy.ndimage import uniform_filter1d

from screen.models import micassess as ma
from screen.processing.fourier import fourier_crop
from screen.simulate.render import render_micrograph
from screen.simulate.session import session_models, session_plans
from screen.stages.records import MICROGRAPH_REASONS

# A set the shipped weights never saw: new seed, new structure shapes, only the reasons that a
# user most needs caught (no particles, dark contamination, carbon film).
NEW_SET = replace(
    ma.HELD_OUT_SET,
    n_micrographs=30,
    seed=4242,
    micrographs_per_session=10,
    structure_seeds=(7000, 8000),
    bad_reasons=("empty", "contaminated", "carbon"),
    frame_px=(576, 704),
)
# The same seed with the held-out set's largest frames (896 px): a known failure (see below).
LARGE_FIELD_SET = replace(NEW_SET, n_micrographs=10, frame_px=(896,))


def render_set(spec):
    images, pixel_sizes, reasons = [], [], []
    for screen_spec in ma.session_specs(spec):
        models = session_models(screen_spec.sessions[0])
        for plan in session_plans(screen_spec, 0):
            rendered = render_micrograph(
                plan, models, screen_spec.frame_px, screen_spec.pixel_size_A
            )
            images.append(rendered.counts)
            pixel_sizes.append(screen_spec.pixel_size_A)
            reasons.append(plan.reason)
    return images, pixel_sizes, reasons


@pytest.fixture(scope="module")
def shipped():
    return ma.load_micassess("micassess_small_v2")


def test_square_crops_cover_the_frame():
    assert ma.square_crops((512, 512)) == [(slice(0, 512), slice(0, 512))]
    crops = ma.square_crops((4092, 5760))
    assert len(crops) == 2
    assert crops[0][1].start == 0 and crops[-1][1].stop == 5760
    assert all(c[0] == slice(0, 4092) for c in crops)
    tall = ma.square_crops((900, 300))
    assert len(tall) == 3 and tall[-1][0].stop == 900


def test_image_side_follows_the_pixel_size():
    assert ma.image_side_px(512, 2.0) == 128  # 8 Å/px
    assert ma.image_side_px(4092, 0.83) == 432  # K3 short side: 424.6 rounded to 16 px
    assert ma.image_side_px(300, 2.0) == 80
    assert ma.image_side_px(200, 1.0) == ma.MIN_IMAGE_PX  # never below the minimum
    assert ma.image_side_px(100, 12.0) == 100  # coarser than 8 Å/px: never up-sampled
    assert ma.image_side_px(8192, 2.0) == ma.MAX_IMAGE_PX


def test_squares_are_normalised_and_masked():
    rng = np.random.default_rng(0)
    image = rng.poisson(30.0, (512, 512)).astype(np.float32) + np.linspace(0, 50, 512)
    (out,) = ma.downsampled_squares(image, 128)
    mask = ma.circular_mask(128)
    assert out.shape == (128, 128) and out.dtype == np.float32
    assert abs(out[mask].mean()) < 0.05
    assert abs(out[mask].std() - 1.0) < 0.05
    assert np.all(out[~mask] == 0.0)
    assert np.abs(out).max() <= ma.CLIP_SIGMA


@pytest.fixture(scope="module")
def fine_and_coarse():
    """One simulated micrograph at 1.5 Å/px and the same Fourier-cropped to 3 Å/px."""
    images, _, _ = render_set(
        replace(NEW_SET, n_micrographs=1, pixel_size_A=(1.5, 1.5), bad_reasons=("empty",))
    )
    fine = images[0]
    half = fine.shape[0] // 2
    return fine, fourier_crop(fine, (half, half))


def test_image_input_is_in_physical_scale(fine_and_coarse):
    """The same micrograph at 1.5 Å/px and binned to 3 Å/px gives the same squares."""
    fine, coarse = fine_and_coarse
    (a,), _ = ma.preprocess(fine, 1.5)
    (b,), _ = ma.preprocess(coarse, 3.0)
    assert a.shape == b.shape == (ma.image_side_px(fine.shape[0], 1.5),) * 2
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.99


def test_spectrum_is_in_physical_frequency(fine_and_coarse):
    """The same micrograph at 1.5 and 3 Å/px gives nearly the same spectrum features."""
    fine, coarse = fine_and_coarse
    fine_spectra = ma.spectrum_features(fine, 1.5)
    coarse_spectra = ma.spectrum_features(coarse, 3.0)
    wrong = ma.spectrum_features(coarse, 1.5)  # the pixel size mistaken: frequencies misplaced
    a, b = fine_spectra.spectrum, coarse_spectra.spectrum
    assert a.shape == fine_spectra.anisotropy.shape == (ma.N_SPECTRUM_BINS,)
    assert abs(a.mean()) < 1e-5 and abs(a.std() - 1.0) < 1e-4
    # Measured on this 704-px frame: 0.95 (0.91 on an 896-px one: tiles of 256 vs 176 px
    # resolve rings a little differently); 0.51 with the wrong pixel size.
    assert np.corrcoef(a, b)[0, 1] > 0.85
    assert np.corrcoef(a, wrong.spectrum)[0, 1] < 0.7
    assert np.abs(fine_spectra.anisotropy - coarse_spectra.anisotropy).mean() < 0.1
    power_a, power_b = fine_spectra.power, coarse_spectra.power
    assert power_a.shape == (ma.POWER_PX, ma.POWER_PX)
    assert np.corrcoef(power_a.ravel(), power_b.ravel())[0, 1] > 0.85  # measured 0.95
    assert np.corrcoef(power_a.ravel(), wrong.power.ravel())[0, 1] < 0.6  # measured 0.30


def test_anisotropy_sees_directional_blur():
    """Drift blurs along one direction: the 2-fold harmonic of the log spectrum jumps."""
    rng = np.random.default_rng(3)
    sharp = rng.poisson(20.0, (512, 512)).astype(np.float32)
    drifted = uniform_filter1d(sharp, 9, axis=1)
    iso = ma.spectrum_features(sharp, 2.0).anisotropy
    aniso = ma.spectrum_features(drifted, 2.0).anisotropy
    high = ma.SPECTRUM_K_A > 1.0 / 30.0
    assert iso[high].mean() < 0.1
    assert aniso[high].mean() > 0.5  # measured 0.97 (isotropic: < 0.1)


def test_blob_statistics_tell_particles_from_empty_ice():
    """Gaussian ice noise has Gaussian tails at every scale; particle-sized blobs do not."""
    rng = np.random.default_rng(4)
    noise = rng.normal(size=(256, 256)).astype(np.float32)
    empty = ma.blob_statistics(ma.normalise_masked(noise)).reshape(len(ma.BLOB_SIGMAS_PX), -1)
    y, x = np.indices(noise.shape)
    blobs = np.zeros_like(noise)
    for cy, cx in rng.uniform(30, 226, size=(25, 2)):  # 25 dark blobs of sigma 3 px (~50 Å)
        blobs -= 1.5 * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * 3.0**2))
    full = ma.blob_statistics(ma.normalise_masked(noise + blobs))
    full = full.reshape(len(ma.BLOB_SIGMAS_PX), -1)
    assert full.shape == (len(ma.BLOB_SIGMAS_PX), ma.N_BLOB_STATS)
    # Gaussian: 0.13 % beyond -3 sigma (log10(0.00135 + 1e-4) = -2.84; measured -2.54 to -2.77),
    # std / robust std 1 (log 0), kurtosis 0.
    assert np.all(np.abs(empty[:4, 0] - np.log10(1.45e-3)) < 0.4)
    assert np.all(np.abs(empty[:, 4]) < 0.1) and np.all(np.abs(empty[:4, 5]) < 0.5)
    at_blob_scale = int(np.argmin(np.abs(np.asarray(ma.BLOB_SIGMAS_PX) - 3.0)))
    # Measured: share below -3 sigma 10**-1.70 vs 10**-2.60, kurtosis 3.5 vs 0.1.
    assert full[at_blob_scale, 0] > empty[at_blob_scale, 0] + 0.5  # dark tail: 3x more at least
    assert full[at_blob_scale, 5] > 1.0
    turned = ma.blob_statistics(np.rot90(ma.normalise_masked(noise + blobs)))
    # Rotation invariant up to the median taken on every third pixel (measured: 0.03 at most,
    # 0.2 at the largest scale, on a 64-px grid).
    np.testing.assert_allclose(turned, full.ravel(), rtol=0.1, atol=0.1)


def test_preprocess_shapes_and_errors():
    rng = np.random.default_rng(1)
    squares, spectra = ma.preprocess(rng.poisson(5.0, (300, 700)).astype(np.float32), 2.0)
    assert squares.shape == (3, 80, 80)
    assert spectra.spectrum.shape == spectra.anisotropy.shape == (ma.N_SPECTRUM_BINS,)
    fixed, _ = ma.preprocess(rng.poisson(5.0, (300, 300)).astype(np.float32), 2.0, 128)
    assert fixed.shape == (1, 128, 128)
    nan_image = np.full((256, 256), np.nan, np.float32)
    with pytest.raises(ValueError, match="finite"):
        ma.preprocess(nan_image, 2.0)
    with pytest.raises(ValueError, match="at least"):
        ma.preprocess(np.ones((32, 32)), 2.0)
    with pytest.raises(ValueError, match="pixel size"):
        ma.preprocess(rng.random((256, 256)), 0.0)
    with pytest.raises(ValueError, match="short side"):
        ma.preprocess(rng.random((256, 256)), 2.0, 494)
    assert not ma.is_assessable(np.zeros((256, 256)))


def test_shipped_weights_separate_good_from_empty_contaminated_carbon(shipped):
    assert ma.model_image_px(shipped) is None  # any side: frames are seen at ~8 Å/px
    assert set(ma.model_input_names(shipped)) == set(ma.INPUT_NAMES) - {"image_ranks"}
    images, pixel_sizes, reasons = render_set(NEW_SET)
    scores = ma.predict_micrographs(shipped, images, pixel_sizes)
    p_good = scores["p_good"]
    good = np.array([r == "good" for r in reasons])
    assert good.sum() == 15 and (~good).sum() == 15
    assert scores["reason"].shape == (30, len(MICROGRAPH_REASONS))
    assert np.allclose(scores["reason"].sum(axis=1), 1.0, atol=1e-4)
    # Measured on this set (micassess_small_v2): good kept at the pipeline's 0.1 rule 14/15, good
    # > 0.5 14/15, bad < 0.5 13/15 (two empty ones missed), medians 0.998 (good) vs 2e-5 (bad).
    assert (p_good[good] >= 0.1).mean() >= 0.85
    assert (p_good[good] > 0.5).mean() >= 0.75
    assert (p_good[~good] < 0.5).mean() >= 0.7
    assert np.median(p_good[good]) > np.median(p_good[~good]) + 0.4


@pytest.mark.xfail(
    strict=True,
    reason="known weakness of micassess_small_v2 (and v1): on these 896-px frames it calls 2 of "
    "5 good micrographs bad (P(good) 0.011, 0.016); both have 600-620 Å of ice, the thick end "
    "of good ice, where the training set has few examples (before calibration, the held-out "
    "good micrographs called bad had 500-530 Å)",
)
def test_good_micrographs_on_a_large_field_are_kept(shipped):
    images, pixel_sizes, reasons = render_set(LARGE_FIELD_SET)
    assert images[0].shape == (896, 896)
    p_good = ma.predict_micrographs(shipped, images, pixel_sizes)["p_good"]
    good = np.array([r == "good" for r in reasons])
    assert (p_good[good] >= 0.1).mean() >= 0.8


def test_training_smoke_on_two_frame_sizes(tmp_path):
    data = ma.simulate_labelled_set(
        replace(
            ma.TRAIN_SET,
            n_micrographs=16,
            micrographs_per_session=8,
            seed=5,
            frame_px=(384, 512),
            pixel_size_A=(2.0, 3.0),
        )
    )
    sides = {image.shape[0] for image in data.features.image}
    assert len(sides) == 2  # two sessions of different frames/pixels: two batch shapes
    assert data.good.sum() == 8
    stored = tmp_path / "set.npz"
    ma.save_labelled_set(data, stored)
    again = ma.load_labelled_set(stored)
    assert all(
        np.array_equal(a, b) for a, b in zip(again.features.image, data.features.image, strict=True)
    )
    np.testing.assert_array_equal(again.reason_index, data.reason_index)
    epochs = []
    result = ma.train_micassess(
        data,
        ma.TrainingConfig(epochs=2, batch_size=4),
        progress=lambda e, n, loss: epochs.append((e, n)),
    )
    assert epochs == [(1, 2), (2, 2)]
    assert len(result.loss_per_epoch) == 2 and np.isfinite(result.loss_per_epoch).all()
    path = tmp_path / "tiny.keras"
    result.model.save(path)
    reloaded = ma.load_micassess(path)
    assert ma.model_image_px(reloaded) is None
    scores = ma.predict_features(reloaded, data.features, batch_size=8)
    before = ma.predict_features(result.model, data.features, batch_size=8)
    assert scores["p_good"].shape == (16,)
    assert np.all((scores["p_good"] >= 0) & (scores["p_good"] <= 1))
    np.testing.assert_allclose(scores["p_good"], before["p_good"], atol=1e-5)
    metrics = ma.metrics_from_scores(scores["p_good"], scores["reason"], data, 0.1)
    assert metrics.n == 16 and 0.0 <= metrics.accuracy <= 1.0


def test_domain_randomised_set_and_a_network_without_blob_statistics():
    """v3's recipe: each micrograph through the variation generators (binning changes its pixel
    size), the SNR of a 1 Å pixel scaled by the pixel's area, and no blob input."""
    from screen.simulate.domain import DomainSpec

    spec = replace(
        ma.TRAIN_SET,
        n_micrographs=8,
        micrographs_per_session=8,
        seed=6,
        frame_px=(512,),
        pixel_size_A=(2.0, 2.5),
        snr_per_square_A=True,
        particle_snr=(0.01, 0.02),
        domain=DomainSpec(("bin_sum", "quantise_8bit"), forced=("bin_sum", "quantise_8bit")),
    )
    data = ma.simulate_labelled_set(spec)
    assert len(data.good) == 8
    session = ma.session_specs(spec)[0]
    assert np.all(data.pixel_size_A >= 2 * session.pixel_size_A - 1e-9)  # binned 2-4x
    snr = session.sessions[0].particle_snr
    assert snr[0] >= 0.01 * session.pixel_size_A**2 - 1e-9  # per 1 Å pixel, times its area
    again = ma.simulate_labelled_set(spec)
    np.testing.assert_array_equal(again.features.image[0], data.features.image[0])
    model = ma.build_model(with_blobs=False)
    assert "blobs" not in ma.model_input_names(model)
    scores = ma.predict_features(model, data.features, batch_size=8)
    assert scores["p_good"].shape == (8,) and np.isfinite(scores["reason"]).all()


def test_a_per_session_chain_processes_every_micrograph_of_a_session_alike():
    """A real session goes through one detector and one pipeline: same binning, same hot pixels."""
    from screen.simulate.domain import DomainSpec

    spec = replace(
        ma.TRAIN_SET, n_micrographs=3, micrographs_per_session=3, seed=8, frame_px=(384,)
    )
    (screen_spec,) = ma.session_specs(spec)

    def chain(name: str, per_session: bool):
        domain = DomainSpec((name,), 1.0, (name,), per_session)
        return list(ma.session_micrographs(screen_spec, domain))

    binned = chain("bin_sum", True)
    assert len({pixel_size_A for _, _, pixel_size_A in binned}) == 1  # one binning factor
    assert binned[0][2] > screen_spec.pixel_size_A
    dead = [np.flatnonzero(image == 0.0) for _, image, _ in chain("hot_pixels", True)]
    assert len(dead[0]) > 0 and all(np.array_equal(dead[0], d) for d in dead[1:])
    dead_each = [np.flatnonzero(image == 0.0) for _, image, _ in chain("hot_pixels", False)]
    assert not np.array_equal(dead_each[0], dead_each[1])  # per micrograph: new positions


def test_verdict_loss_scores_unknown_reasons_on_p_good_only():
    import keras

    classes = np.full((3, 1 + len(MICROGRAPH_REASONS)), 0.3 / len(MICROGRAPH_REASONS))
    classes[:, 0] = 0.7
    classes[2, 3] += 0.1
    classes[2, 0] -= 0.1
    labels = np.array([0, -1, 3])
    loss = np.asarray(ma.verdict_loss(keras.ops.convert_to_tensor(labels), classes))
    expected = -np.log([0.7, 0.3, classes[2, 3]])
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    data = ma.LabelledSet(
        ma.Features((), np.zeros((3, 1)), np.zeros((3, 1)), np.zeros((3, 1, 1)), np.zeros((3, 1))),
        good=np.array([True, False, False]),
        reason_index=np.array([-1, -1, 2]),
        pixel_size_A=np.ones(3),
    )
    assert ma.class_labels(data).tolist() == [0, -1, 3]


def test_scores_from_outputs_reads_both_kinds_of_network():
    classes = np.array([[0.5, 0.25, 0.25] + [0.0] * (len(MICROGRAPH_REASONS) - 2)])
    p_good, reason = ma.scores_from_outputs({"classes": classes})
    assert p_good.tolist() == [0.5] and reason[0, :2].tolist() == [0.5, 0.5]
    p_good, reason = ma.scores_from_outputs({"p_good": [[0.2]], "reason": [[1.0, 0.0]]})
    assert p_good.tolist() == [0.2] and reason.tolist() == [[1.0, 0.0]]


def test_good_logit_shift_puts_the_rule_where_good_data_is_kept():
    p_good = np.array([0.02, 0.05, 0.3, 0.9] + [0.99] * 196)  # 200 good micrographs
    good = np.ones(200, bool)
    shift = ma.good_logit_shift(p_good, good, threshold=0.1, max_false_negative=0.005)
    shifted = 1.0 / (1.0 + (1.0 - p_good) / p_good * np.exp(-shift))
    assert (shifted < 0.1).sum() == 1  # 0.5 % of 200: one may stay below the rule
    assert shifted[1] == pytest.approx(0.1, abs=1e-5)
    assert ma.good_logit_shift(np.full(10, 0.5), np.ones(10, bool)) == 0.0  # nothing to move
    bad_only = np.array([False] * 4 + [True] * 196)  # bad micrographs do not count
    assert ma.good_logit_shift(p_good, bad_only) == 0.0


def test_shift_good_logit_multiplies_the_odds_of_good():
    model = ma.build_model()
    rng = np.random.default_rng(0)
    features = ma.Features.from_crops(
        [ma.normalise_masked(rng.normal(size=(64, 64))) for _ in range(3)],
        [ma.spectrum_features(rng.poisson(5.0, (128, 128)).astype(np.float32), 2.0)] * 3,
    )
    before = ma.predict_features(model, features)
    ma.shift_good_logit(model, 0.7)
    after = ma.predict_features(model, features)
    odds = after["p_good"] / (1 - after["p_good"]) / (before["p_good"] / (1 - before["p_good"]))
    np.testing.assert_allclose(odds, np.exp(0.7), rtol=1e-3)
    np.testing.assert_allclose(after["reason"], before["reason"], atol=1e-5)  # reasons unchanged


def test_hot_and_dead_pixels_are_clipped_before_the_fourier_crop():
    """A few hundred hot pixels at 200x the mean would ring through the crop; the clip removes
    them while a dark contamination disc (far more than 0.05 % of the frame) keeps its values."""
    from screen.processing.filters import clip_outliers

    rng = np.random.default_rng(3)
    image = rng.poisson(20.0, (512, 512)).astype(np.float32)
    yy, xx = np.indices(image.shape)
    image[np.hypot(yy - 100, xx - 100) < 40] = 2.0  # contamination: 1.9 % of the frame
    before = image.copy()
    hot = rng.integers(0, image.size, 60)
    image.reshape(-1)[hot] = 4000.0
    image.reshape(-1)[rng.integers(0, image.size, 30)] = 0.0
    clipped = clip_outliers(image)
    assert clipped.max() < 50.0 and clipped.min() >= 2.0
    assert np.count_nonzero(clipped == 2.0) >= np.pi * 39**2
    side = ma.image_side_px(512, 2.0)
    reference = ma.downsampled_squares(before, side)[0]
    unclipped = float(np.abs(ma.downsampled_squares(image, side)[0] - reference).mean())
    squares, _ = ma.preprocess(image, 2.0)
    assert float(np.abs(squares[0] - reference).mean()) < 0.5 * unclipped
    np.testing.assert_array_equal(clip_outliers(np.ones((64, 64))), np.ones((64, 64)))


def test_training_crops_lie_inside_the_image_circle():
    rng = np.random.default_rng(0)
    image = ma.normalise_masked(rng.normal(size=(320, 320)).astype(np.float32) + 3.0)
    for _ in range(50):
        crop = ma.random_crop(image, 128, rng)
        assert crop.shape == (128, 128)
        assert np.count_nonzero(crop) == np.count_nonzero(ma.circular_mask(128))
    assert ma.random_crop(image, 400, rng) is image and ma.random_crop(image, None, rng) is image


def test_grey_level_ranks_do_not_see_a_monotonic_remapping_of_the_grey_levels():
    """An 8-bit-like stretch, a gamma and a histogram equalisation of a micrograph give the same
    ranked input; the input is standard normal inside the circle, 0 outside."""
    from skimage import exposure

    rng = np.random.default_rng(2)
    square = ma.normalise_masked(rng.gamma(2.0, 1.0, (96, 96)).astype(np.float32))
    inside = ma.circular_mask(96)
    shifted = square - square.min() + 0.1
    remapped = [
        3.0 * square + 7.0,
        shifted**0.4,
        exposure.equalize_hist(shifted, nbins=4096, mask=inside) * inside,
    ]
    reference = ma.grey_level_ranks(square[None])[0]
    assert abs(float(reference[inside].mean())) < 1e-3
    assert abs(float(reference[inside].std()) - 1.0) < 0.02
    assert not reference[~inside].any()
    for other in remapped:
        ranked = ma.grey_level_ranks(other[None].astype(np.float32))[0]
        # histogram equalisation merges a few neighbouring levels: ties, nearly the same ranks
        assert np.corrcoef(ranked[inside], reference[inside])[0, 1] > 0.999


def test_a_network_on_grey_level_ranks_is_built_fed_and_sized():
    model = ma.build_model(with_blobs=False, image_input="image_ranks")
    assert set(ma.model_input_names(model)) == {"image_ranks", "spectrum", "anisotropy", "power"}
    assert ma.model_image_px(model) is None
    rng = np.random.default_rng(0)
    images = [rng.poisson(5.0, (256, 256)).astype(np.float32) for _ in range(2)]
    scores = ma.predict_micrographs(model, images, [4.0, 4.0])
    assert scores["p_good"].shape == (2,) and np.all(
        (scores["p_good"] >= 0) & (scores["p_good"] <= 1)
    )
    with pytest.raises(ValueError, match="image_input"):
        ma.build_model(image_input="pixels")
