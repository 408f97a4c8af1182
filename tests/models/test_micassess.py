from dataclasses import replace

import numpy as np
import pytest

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
)


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
    return ma.load_micassess("micassess_small_v0")


def test_square_crops_cover_the_frame():
    assert ma.square_crops((512, 512)) == [(slice(0, 512), slice(0, 512))]
    crops = ma.square_crops((4092, 5760))
    assert len(crops) == 2
    assert crops[0][1].start == 0 and crops[-1][1].stop == 5760
    assert all(c[0] == slice(0, 4092) for c in crops)
    tall = ma.square_crops((900, 300))
    assert len(tall) == 3 and tall[-1][0].stop == 900


def test_preprocess_image_is_normalised_and_masked():
    rng = np.random.default_rng(0)
    image = rng.poisson(30.0, (512, 512)).astype(np.float32) + np.linspace(0, 50, 512)
    out = ma.preprocess_image(image)
    mask = ma.circular_mask(ma.IMAGE_PX)
    assert out.shape == (ma.IMAGE_PX, ma.IMAGE_PX) and out.dtype == np.float32
    assert abs(out[mask].mean()) < 0.05
    assert abs(out[mask].std() - 1.0) < 0.05
    assert np.all(out[~mask] == 0.0)
    assert np.abs(out).max() <= ma.CLIP_SIGMA


def test_spectrum_is_in_physical_frequency():
    """The same micrograph at 1.5 and 3 Å/px gives nearly the same spectrum feature."""
    images, pixel_sizes, _ = render_set(
        replace(NEW_SET, n_micrographs=1, pixel_size_A=(1.5, 1.5), bad_reasons=("empty",))
    )
    fine = images[0]
    coarse = fourier_crop(fine, (256, 256))
    a = ma.spectrum_feature(fine, 1.5)
    b = ma.spectrum_feature(coarse, 3.0)
    assert a.shape == (ma.N_SPECTRUM_BINS,)
    assert abs(a.mean()) < 1e-5 and abs(a.std() - 1.0) < 1e-4
    assert np.corrcoef(a, b)[0, 1] > 0.95


def test_preprocess_shapes_and_errors():
    rng = np.random.default_rng(1)
    squares, spectrum = ma.preprocess(rng.poisson(5.0, (300, 700)).astype(np.float32), 2.0)
    assert squares.shape == (3, ma.IMAGE_PX, ma.IMAGE_PX)
    assert spectrum.shape == (ma.N_SPECTRUM_BINS,)
    nan_image = np.full((256, 256), np.nan, np.float32)
    with pytest.raises(ValueError, match="finite"):
        ma.preprocess(nan_image, 2.0)
    with pytest.raises(ValueError, match="at least"):
        ma.preprocess(np.ones((32, 32)), 2.0)
    with pytest.raises(ValueError, match="pixel size"):
        ma.preprocess(rng.random((256, 256)), 0.0)
    assert not ma.is_assessable(np.zeros((256, 256)))


def test_shipped_weights_separate_good_from_empty_contaminated_carbon(shipped):
    assert ma.model_input_sizes(shipped) == (ma.IMAGE_PX, ma.N_SPECTRUM_BINS)
    images, pixel_sizes, reasons = render_set(NEW_SET)
    scores = ma.predict_micrographs(shipped, images, pixel_sizes)
    p_good = scores["p_good"]
    good = np.array([r == "good" for r in reasons])
    assert good.sum() == 15 and (~good).sum() == 15
    assert scores["reason"].shape == (30, len(MICROGRAPH_REASONS))
    assert np.allclose(scores["reason"].sum(axis=1), 1.0, atol=1e-4)
    # Measured on this set: good kept at the pipeline's 0.1 rule 15/15, good > 0.5 9/15 (the model
    # is cautious: held-out 80%), bad < 0.5 12/15, medians 0.80 (good) vs 0.002 (bad).
    assert (p_good[good] >= 0.1).mean() >= 0.85
    assert (p_good[good] > 0.5).mean() >= 0.5
    assert (p_good[~good] < 0.5).mean() >= 0.7
    assert np.median(p_good[good]) > np.median(p_good[~good]) + 0.4


def test_training_smoke(tmp_path):
    data = ma.simulate_labelled_set(
        replace(ma.TRAIN_SET, n_micrographs=16, micrographs_per_session=16, seed=5)
    )
    assert data.features.image.shape == (16, ma.IMAGE_PX, ma.IMAGE_PX, 1)
    assert data.good.sum() == 8
    assert set(data.reason_index[~data.good]) == set(range(len(MICROGRAPH_REASONS)))
    result = ma.train_micassess(data, ma.TrainingConfig(epochs=2, batch_size=8))
    assert len(result.loss_per_epoch) == 2 and np.isfinite(result.loss_per_epoch).all()
    path = tmp_path / "tiny.keras"
    result.model.save(path)
    reloaded = ma.load_micassess(path)
    scores = ma.predict_features(reloaded, data.features, batch_size=8)
    before = ma.predict_features(result.model, data.features, batch_size=8)
    assert scores["p_good"].shape == (16,)
    assert np.all((scores["p_good"] >= 0) & (scores["p_good"] <= 1))
    np.testing.assert_allclose(scores["p_good"], before["p_good"], atol=1e-5)
    metrics = ma.metrics_from_scores(scores["p_good"], scores["reason"], data, 0.1)
    assert metrics.n == 16 and 0.0 <= metrics.accuracy <= 1.0
