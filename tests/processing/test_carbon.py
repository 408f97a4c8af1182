"""The carbon film edge: a sharp straight step across the field, not a ramp."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from screen.processing.carbon import (
    CARBON_MAX_TRANSITION,
    CARBON_MIN_STEP_CONTRAST,
    carbon_edge,
)


def _field(rng: np.random.Generator, side_px: int = 512) -> np.ndarray:
    """Shot-noise counts over ice with dark particle-like blobs (10 % contrast, 20 px)."""
    density = np.zeros((side_px, side_px))
    idx = rng.integers(0, side_px, size=(300, 2))
    density[idx[:, 0], idx[:, 1]] = 1.0
    density = ndi.gaussian_filter(density, 5.0)
    density /= density.max()
    return rng.poisson(30.0 * (1.0 - 0.1 * density)).astype(np.float32)


def _film(image: np.ndarray, covered: float, angle_deg: float, transmission: float = 0.8):
    """The image with a straight film edge: ``covered`` of the field at ``transmission``."""
    side = image.shape[0]
    yy, xx = np.mgrid[:side, :side] - (side - 1) / 2
    along = xx * np.cos(np.radians(angle_deg)) + yy * np.sin(np.radians(angle_deg))
    cut = np.quantile(along, covered)
    return np.where(along < cut, transmission, 1.0) * image


@pytest.mark.parametrize(("covered", "angle_deg"), [(0.5, 0.0), (0.7, 35.0), (0.35, 120.0)])
def test_a_film_edge_is_a_sharp_step_over_the_covered_share(covered, angle_deg):
    edge = carbon_edge(_film(_field(np.random.default_rng(0)), covered, angle_deg))
    assert edge.step_contrast >= CARBON_MIN_STEP_CONTRAST
    assert edge.transition_fraction <= CARBON_MAX_TRANSITION
    assert edge.carbon_fraction() == pytest.approx(covered, abs=0.05)
    # The line's normal is the edge's, give or take one step of the angles tried.
    difference = abs((edge.angle_deg - angle_deg + 90.0) % 180.0 - 90.0)
    assert difference <= 5.0 + 1e-9


def test_an_ice_gradient_and_a_plain_field_are_not_film_edges():
    rng = np.random.default_rng(1)
    image = _field(rng)
    assert carbon_edge(image).carbon_fraction() == 0.0
    side = image.shape[0]
    ramp = np.linspace(0.6, 1.0, side)[None, :]  # thickness rising across the field
    assert carbon_edge(image * ramp).carbon_fraction() == 0.0
    steep = 0.6 + 0.4 / (1.0 + np.exp(-(np.arange(side) - side / 2) / (0.12 * side)))
    graded = carbon_edge(image * steep[None, :])  # a steep but smooth gradient
    assert graded.transition_fraction > CARBON_MAX_TRANSITION
    assert graded.carbon_fraction() == 0.0
    assert carbon_edge(np.full((300, 300), 7.0, np.float32)).step_contrast == 0.0


def test_export_grey_levels_binning_and_hot_pixels_do_not_change_it():
    rng = np.random.default_rng(2)
    filmed = _film(_field(rng), 0.5, 60.0)
    reference = carbon_edge(filmed).carbon_fraction()
    stretched = np.clip((filmed - filmed.min()) / np.ptp(filmed) * 255.0, 0, 255).astype(np.uint8)
    binned = filmed.reshape(256, 2, 256, 2).mean(axis=(1, 3))
    hot = filmed.copy()
    hot[rng.integers(0, 512, 200), rng.integers(0, 512, 200)] = 1e5
    for variant in (stretched, binned, hot):
        assert carbon_edge(variant).carbon_fraction() == pytest.approx(reference, abs=0.06)
    assert carbon_edge(filmed[:, :400]).carbon_fraction() > 0.3  # a non-square frame


def test_a_thin_strip_of_carbon_is_measured_as_thin():
    edge = carbon_edge(_film(_field(np.random.default_rng(3)), 0.1, 90.0))
    assert edge.carbon_fraction() == pytest.approx(0.1, abs=0.04)


@pytest.mark.parametrize("radius_sides", [0.8, 1.6])
def test_the_curved_rim_of_a_hole_is_a_film_edge(radius_sides):
    """A hole's rim crossing the frame (carbon outside the circle, 40 % of the field)."""
    image = _field(np.random.default_rng(4))
    side = image.shape[0]
    yy, xx = np.mgrid[:side, :side]
    radius = radius_sides * side
    centres = np.linspace(-radius, side, 200)
    covered = [np.mean((xx - cx) ** 2 + (yy - side / 2) ** 2 >= radius**2) for cx in centres]
    cx = centres[int(np.argmin(np.abs(np.array(covered) - 0.4)))]
    hole = (xx - cx) ** 2 + (yy - side / 2) ** 2 < radius**2
    edge = carbon_edge(np.where(hole, 1.0, 0.8) * image)
    assert edge.carbon_fraction() == pytest.approx(0.4, abs=0.05)
    assert edge.curvature != 0.0 or radius_sides > 1.0
