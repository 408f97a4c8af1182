"""Centres of radial symmetry move picks from a hollow particle's wall to its centre."""

import numpy as np
import pytest
from scipy import ndimage

from screen.processing.symmetry import nearest_symmetry_centres, radial_symmetry_map

PIXEL_A = 4.0
DIAMETER_A = 120.0


def _field(shell_field, hollow: bool, seed: int = 0):
    """Dark round particles (shells or solid) of 120 Å on a 4-Å grid, blurred, with noise."""
    thickness, centres = shell_field(
        256, 80, DIAMETER_A / PIXEL_A / 2, 0.65 if hollow else 0.0, seed
    )
    noise = np.random.default_rng(seed + 1).normal(0, 1.5, thickness.shape)
    return ndimage.gaussian_filter(-thickness * DIAMETER_A / PIXEL_A / 2, 1.0) + noise, centres


@pytest.mark.parametrize("hollow", [True, False], ids=["shell", "disc"])
def test_picks_off_centre_move_to_the_centre(shell_field, hollow):
    image, centres = _field(shell_field, hollow)
    rng = np.random.default_rng(1)
    angle = rng.uniform(0, 2 * np.pi, len(centres))
    off = 0.3 * DIAMETER_A / PIXEL_A  # where a blob picker puts a shell's pick: on its wall
    x0 = centres[:, 0] + off * np.cos(angle)
    y0 = centres[:, 1] + off * np.sin(angle)
    votes = radial_symmetry_map(image, PIXEL_A, DIAMETER_A)
    x, y = nearest_symmetry_centres(votes, x0, y0, 0.4 * DIAMETER_A / PIXEL_A)
    error_d = np.hypot(x - centres[:, 0], y - centres[:, 1]) * PIXEL_A / DIAMETER_A
    assert np.all(error_d < 0.08), error_d


def test_a_pick_at_the_centre_stays_there_and_the_map_keeps_its_shape(shell_field):
    image, centres = _field(shell_field, hollow=True)
    votes = radial_symmetry_map(image, PIXEL_A, DIAMETER_A)
    assert votes.shape == image.shape
    x, y = nearest_symmetry_centres(votes, centres[:, 0], centres[:, 1], 10.0)
    assert np.all(np.hypot(x - centres[:, 0], y - centres[:, 1]) <= 2.5)


def test_featureless_noise_gives_no_preferred_direction():
    """On noise the moves are random: no systematic drift of the picks."""
    rng = np.random.default_rng(2)
    image = rng.normal(size=(256, 256))
    votes = radial_symmetry_map(image, PIXEL_A, DIAMETER_A)
    x0 = rng.uniform(40, 216, 200)
    y0 = rng.uniform(40, 216, 200)
    x, y = nearest_symmetry_centres(votes, x0, y0, 12.0)
    assert abs(np.mean(x - x0)) < 2.0 and abs(np.mean(y - y0)) < 2.0
    assert np.all(np.hypot(x - x0, y - y0) <= 12.0 + np.sqrt(0.5))  # from the rounded position


def test_points_outside_the_map_are_left_alone():
    votes = np.zeros((32, 32))
    x, y = nearest_symmetry_centres(votes, np.array([-50.0]), np.array([100.0]), 5.0)
    assert (x[0], y[0]) == (-50.0, 100.0)
