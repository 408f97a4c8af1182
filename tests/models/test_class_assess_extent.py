"""2DAssess v2's pieces: the crop by the object's own extent and the randomised drawn averages."""

import numpy as np
import pytest

from screen.models.class_assess import (
    TrainConfig,
    build_class_model,
    crop_to_extent,
    make_training_set,
    model_crop,
    object_radius_px,
    preprocess_average,
    random_structure,
    randomised_class_average,
    train_class_model,
)
from screen.stages.records import CLASS_LABELS


def _disc_average(box: int, radius_px: float, mask_radius_px: float | None, seed: int = 0):
    """A bright disc of ``radius_px`` in noise, zeroed outside ``mask_radius_px`` (None: no mask)."""
    rng = np.random.default_rng(seed)
    y, x = np.indices((box, box)) - box // 2
    r = np.hypot(x, y)
    image = (r <= radius_px).astype(float) + 0.1 * rng.normal(size=(box, box))
    if mask_radius_px is not None:
        image = np.where(r <= mask_radius_px, image - image[r <= mask_radius_px].mean(), 0.0)
    return image


@pytest.mark.parametrize("mask_radius_px", [None, 14.0, 20.0, 30.0, 45.0])
def test_object_radius_ignores_the_mask(mask_radius_px):
    radius = object_radius_px(_disc_average(96, 10.0, mask_radius_px))
    # 90 % of a disc's area lies within 0.95 r; a tight mask (mean taken inside it) shrinks it a little.
    assert radius == pytest.approx(10.0 * 0.95, rel=0.2)


def test_crop_to_extent_is_the_same_whatever_the_mask():
    crops = [crop_to_extent(_disc_average(96, 10.0, m)) for m in (None, 20.0, 40.0)]
    sizes = [c.shape[0] for c in crops]
    assert max(sizes) - min(sizes) <= 4 and 26 <= min(sizes) <= 36  # 1.6 x the object's diameter
    inputs = [
        preprocess_average(_disc_average(96, 10.0, m), 2 * m if m else 96, 1.0, 64, "extent")
        for m in (20.0, 40.0)
    ]
    assert np.corrcoef(inputs[0].ravel(), inputs[1].ravel())[0, 1] > 0.9
    flat = object_radius_px(np.zeros((40, 40)))
    assert flat == 20.0  # nothing stands out: the whole box
    with pytest.raises(ValueError, match="crop must be"):
        preprocess_average(np.ones((8, 8)), 10.0, 1.0, 8, "nope")


def test_randomised_averages_vary_box_mask_and_pixel_size():
    rng = np.random.default_rng(3)
    model = random_structure(11)
    items = [randomised_class_average(label, model, rng) for label in CLASS_LABELS * 10]
    ratios = [a.image.shape[0] * a.pixel_size_A / model.diameter_A for a in items]
    assert min(ratios) < 1.6 and max(ratios) > 2.2  # boxes of 1.3-2.6 diameters
    masks = [a.mask_diameter_A / model.diameter_A for a in items]
    assert min(masks) < 1.0 and max(masks) > 1.8
    assert len({round(a.pixel_size_A, 2) for a in items}) > 30
    assert all(np.isfinite(a.image).all() and a.image.std() > 0 for a in items)


def test_the_model_name_says_its_crop():
    x, y = make_training_set(
        2, seed=1, structure_seeds=(1,), size_px=32, crop="extent", randomised=True
    )
    model, history = train_class_model(
        x, y, TrainConfig(size_px=32, epochs=1, batch_size=4, crop="extent")
    )
    assert model_crop(model) == "extent" and np.isfinite(history["loss"]).all()
    assert model_crop(build_class_model(32)) == "mask"


def test_shipped_v2_gives_one_verdict_whatever_the_mask():
    from screen.models.registry import load_keras_model
    from screen.stages.assess_classes import ClassAssessParams, assess_classes

    model = load_keras_model("class_assess_v2")
    assert model_crop(model) == "extent"
    rng = np.random.default_rng(21)
    structure = random_structure(300_123)  # not a training structure (0..39)
    items = [randomised_class_average(label, structure, rng) for label in CLASS_LABELS * 3]
    params = ClassAssessParams(model="class_assess_v2")
    correct = 0
    for item in items:
        whole = item.image.shape[0] * item.pixel_size_A
        verdicts = [
            assess_classes(item.image[None], mask, item.pixel_size_A, params, model).labels[0]
            for mask in (0.7 * item.mask_diameter_A, item.mask_diameter_A, whole)
        ]
        assert len(set(verdicts)) == 1
        correct += verdicts[0] == item.label
    assert correct >= 8  # of 12 (chance: 3)
