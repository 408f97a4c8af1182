import numpy as np
import pytest

from screen.processing.background import smooth_background


def _gradient(shape: tuple[int, int]) -> np.ndarray:
    y, x = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    return 100.0 - 20.0 * x + 8.0 * y - 15.0 * (x**2 + y**2)


def test_the_smooth_background_follows_an_ice_gradient_not_a_contamination_ball():
    rng = np.random.default_rng(0)
    shape = (300, 360)
    truth = _gradient(shape)
    image = truth + rng.normal(0.0, 3.0, shape)
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    ball = (yy - 90) ** 2 + (xx - 250) ** 2 < 45**2  # a dark ball over ~7 % of the field
    image[ball] -= 60.0
    surface = smooth_background(image)
    assert surface.shape == shape
    # The gradient's 35-unit fall across the field is followed to within a unit ...
    assert np.abs(surface - truth).max() < 1.5
    # ... and the ball stays after the subtraction: the flattened field keeps it 60 deep.
    flat = image - surface
    assert np.median(flat[ball]) == pytest.approx(-60.0, abs=3.0)
    assert abs(np.median(flat[~ball])) < 0.5


def test_the_smooth_background_of_a_flat_field_is_flat_and_errors_are_clear():
    rng = np.random.default_rng(1)
    image = rng.normal(50.0, 2.0, (128, 128))
    surface = smooth_background(image)
    assert np.ptp(surface) < 1.0 and abs(surface.mean() - 50.0) < 0.3
    with pytest.raises(ValueError, match="2D"):
        smooth_background(np.zeros((4, 4, 4)))
