import numpy as np
import pytest

from screen.processing.saliency import (
    SaliencyParams,
    find_salient_objects,
    spectral_residual_saliency,
)

SIZE = 64


def _blob(cx, cy, sigma=4.0, size=SIZE):
    y, x = np.mgrid[:size, :size]
    return np.exp(-0.5 * ((x - cx) ** 2 + (y - cy) ** 2) / sigma**2)


def _noisy(image, seed=0, level=0.05):
    return image + level * np.random.default_rng(seed).normal(size=image.shape)


def test_saliency_peaks_on_the_object():
    image = _noisy(_blob(20, 40))
    saliency = spectral_residual_saliency(image)
    assert saliency.shape == image.shape
    assert saliency.max() == pytest.approx(1.0)
    peak_y, peak_x = np.unravel_index(np.argmax(saliency), saliency.shape)
    assert np.hypot(peak_x - 20, peak_y - 40) < 5


def test_constant_image_has_no_saliency():
    assert not spectral_residual_saliency(np.full((SIZE, SIZE), 3.0)).any()
    objects = find_salient_objects(np.zeros((SIZE, SIZE)))
    assert objects.n_objects == 0
    assert objects.passes


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_centred_object_passes(seed):
    objects = find_salient_objects(_noisy(_blob(32.5, 31.0, sigma=5.0), seed))
    assert objects.n_objects == 1
    assert objects.offset_fraction < 0.1
    assert objects.passes


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_two_objects_fail(seed):
    image = _noisy(_blob(20, 32) + _blob(44, 32), seed)
    objects = find_salient_objects(image)
    assert objects.n_objects == 2
    assert not objects.passes


def test_off_centre_object_fails_and_tolerance_applies():
    image = _noisy(_blob(32 + 14, 32))  # 14 px = 0.44 of the 32 px radius
    objects = find_salient_objects(image)
    assert objects.n_objects == 1
    assert objects.offset_fraction == pytest.approx(14.5 / 32, abs=0.05)
    assert not objects.passes
    assert find_salient_objects(image, SaliencyParams(max_offset_fraction=0.6)).passes


def test_crescent_at_the_mask_edge_fails():
    y, x = np.mgrid[:SIZE, :SIZE]
    r = np.hypot(x - 31.5, y - 31.5)
    crescent = np.exp(-0.5 * ((r - 25) / 2.5) ** 2) * (np.cos(np.arctan2(y - 31.5, x - 31.5)) > 0.6)
    image = _noisy(_blob(31.5, 31.5) + crescent)
    objects = find_salient_objects(image)
    # Either a second object or an off-centre main object: both mean "clip".
    assert objects.n_objects >= 2 or objects.offset_fraction > 0.4
    assert not objects.passes
