import numpy as np
import pytest
from scipy import ndimage

from screen.processing.boxes import (
    circular_mask,
    disc_footprint,
    disc_maximum_filter,
    extract_boxes,
    inside_frame,
    local_maxima,
    match_picks,
    radial_profile,
    suppress_close_points,
)


def test_match_picks_counts_one_to_one_within_distance():
    pred = [[0, 0], [10, 0], [10.5, 0], [40, 40]]
    true = [[0, 0], [11, 0], [100, 100]]
    assert match_picks(pred, true, 3.0) == (2, 2, 1)
    assert match_picks(np.zeros((0, 2)), true, 3.0) == (0, 0, 3)
    assert match_picks(pred, np.zeros((0, 2)), 3.0) == (0, 4, 0)


def test_match_picks_finds_the_optimal_assignment():
    # Greedy would pair pred 0 with true 1 and leave true 0 unmatched.
    pred = [[0.0, 0.0], [2.0, 0.0]]
    true = [[-1.5, 0.0], [1.0, 0.0]]
    assert match_picks(pred, true, 1.6) == (2, 0, 0)


def test_local_maxima_are_separated_and_sorted():
    rng = np.random.default_rng(0)
    score = rng.normal(size=(100, 100))
    y, x, values = local_maxima(score, 5.0, 1.0)
    assert np.all(values > 1.0) and np.all(np.diff(values) <= 0)
    d = np.hypot(x[:, None] - x[None], y[:, None] - y[None])
    np.fill_diagonal(d, np.inf)
    assert d.min() > 5.0


def test_suppress_close_points_keeps_the_best():
    xy = np.array([[0, 0], [1, 0], [10, 0]], dtype=float)
    kept = suppress_close_points(xy, np.array([1.0, 2.0, 0.5]), 3.0)
    assert list(kept) == [1, 2]


def test_extract_boxes_centres_and_fills_outside():
    image = np.zeros((50, 60), dtype=np.float32)
    image[20, 30] = 1.0
    boxes = extract_boxes(image, np.array([30.2, 2.0]), np.array([19.8, 2.0]), 10, fill=-1.0)
    assert boxes.shape == (2, 10, 10)
    assert boxes[0, 5, 5] == 1.0 and boxes[0].sum() == 1.0
    assert boxes[1, 0, 0] == -1.0 and boxes[1, 5, 5] == 0.0


def test_masks_profiles_and_frame_margin():
    mask = circular_mask(16, 4.0)
    assert mask[8, 8] and mask[8, 12] and not mask[8, 13]
    profile = radial_profile(mask.astype(float))
    assert profile[0] == 1.0 and profile[-1] == 0.0
    inside = inside_frame(np.array([5, 50, 95]), np.array([50, 50, 50]), (100, 100), 10)
    assert list(inside) == [False, True, False]


def test_match_picks_accepts_exact_coincidence():
    assert match_picks([[3.0, 4.0]], [[3.0, 4.0]], 1.0) == (1, 0, 0)


@pytest.mark.parametrize("radius_px", [0.0, 1.0, 3.7, 12.0, 25.5])
@pytest.mark.parametrize("shape", [(96, 130), (7, 4)])
def test_disc_maximum_filter_equals_the_footprint_filter(radius_px, shape):
    rng = np.random.default_rng(int(radius_px * 10) + shape[0])
    image = rng.normal(size=shape).astype(np.float32)
    image[: shape[0] // 2, : shape[1] // 3] = 0.0  # plateaus: ties must match too
    expected = ndimage.maximum_filter(image, footprint=disc_footprint(radius_px), mode="nearest")
    result = disc_maximum_filter(image, radius_px)
    assert result.dtype == expected.dtype and np.array_equal(result, expected)
