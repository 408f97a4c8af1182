"""Training fields cut from kept real micrographs: sizes, pixel sizes, labels, layers."""

import numpy as np
import pytest

from screen.models import micassess as ma
from screen.models.real_fields import (
    RealFieldSpec,
    real_field_images,
    real_labelled_set,
    stacked_layers,
    sub_field,
)


def _field(seed: int, side_px: int = 1200) -> np.ndarray:
    """Dark discs on a grey background: a stand-in for a kept micrograph."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:side_px, :side_px]
    image = np.full((side_px, side_px), 100.0, np.float32)
    for y, x in rng.uniform(0, side_px, (150, 2)):
        image[(yy - y) ** 2 + (xx - x) ** 2 < 15**2] -= 30.0
    return image + rng.normal(0.0, 5.0, image.shape).astype(np.float32)


def test_sub_field_has_the_requested_frame_and_pixel_size():
    rng = np.random.default_rng(0)
    field, pixel_A = sub_field(_field(0), 1.5, 256, 4.5, rng)
    assert field.shape == (256, 256)
    assert pixel_A == pytest.approx(4.5, rel=0.01)


def test_sub_field_shrinks_to_fit_and_never_samples_finer_than_its_source():
    rng = np.random.default_rng(1)
    source = _field(1, 600)
    field, pixel_A = sub_field(source, 2.0, 512, 4.0, rng)  # 2,048 Å asked of a 1,200 Å source
    assert field.shape[0] <= 300 and pixel_A == pytest.approx(4.0, rel=0.02)
    field, pixel_A = sub_field(source, 2.0, 200, 1.0, rng)  # finer than the source: its own
    assert pixel_A == pytest.approx(2.0) and field.shape == (200, 200)


def test_stacked_layers_add_independent_layers_and_refuse_mismatched_shapes():
    rng = np.random.default_rng(2)
    layers = [rng.normal(0.0, s, (64, 64)).astype(np.float32) for s in (1.0, 10.0, 100.0)]
    stack = stacked_layers(layers, rng)
    # Each layer is brought to unit robust spread first: the sum of three spreads ~ sqrt(3).
    assert np.std(stack) == pytest.approx(np.sqrt(3.0), rel=0.15)
    with pytest.raises(ValueError, match="one shape"):
        stacked_layers([layers[0], layers[1][:32, :32]], rng)


def test_real_field_images_yield_good_fields_then_crowded_stacks_deterministically():
    sources = [(_field(3), 1.77), (_field(4), 1.77)]
    spec = RealFieldSpec(3, 2, seed=5, frame_px=(256,), pixel_size_A=(3.0, 5.0))
    first = list(real_field_images(sources, spec))
    again = list(real_field_images(sources, spec))
    assert [r for _, _, r in first] == ["good"] * 3 + ["crowded"] * 2
    for (a, pa, _), (b, pb, _) in zip(first, again, strict=True):
        assert pa == pb and np.array_equal(a, b)
    assert all(3.0 <= p <= 5.01 for _, p, _ in first)
    with pytest.raises(ValueError, match="no real micrographs"):
        next(real_field_images([], spec))


def test_real_labelled_set_labels_good_and_crowded_for_the_network():
    sources = [(_field(6), 1.77)]
    data = real_labelled_set(sources, RealFieldSpec(2, 1, seed=7, frame_px=(256,)))
    assert list(data.good) == [True, True, False]
    assert data.reason_index[2] == ma.MICROGRAPH_REASONS.index("crowded")
    assert data.structure == ("real", "real", "real")
    assert len(data.features) == 3
