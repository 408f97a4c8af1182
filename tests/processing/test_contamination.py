"""The opaque-contamination measure: share of the field under nearly opaque objects."""

import numpy as np
from scipy import ndimage as ndi

from screen.processing.contamination import opaque_fraction


def _field(rng: np.random.Generator, side_px: int = 768) -> np.ndarray:
    """Shot-noise counts over ice with dark particle-like blobs (10 % contrast, 30 px)."""
    density = np.zeros((side_px, side_px))
    idx = rng.integers(0, side_px, size=(400, 2))
    density[idx[:, 0], idx[:, 1]] = 1.0
    density = ndi.gaussian_filter(density, 8.0)
    density /= density.max()
    return rng.poisson(30.0 * (1.0 - 0.1 * density)).astype(np.float32)


def _with_ball(image: np.ndarray, radius_fraction: float, transmission: float) -> np.ndarray:
    side = image.shape[0]
    yy, xx = np.mgrid[:side, :side]
    inside = (yy - 0.3 * side) ** 2 + (xx - 0.7 * side) ** 2 < (radius_fraction * side) ** 2
    out = image.copy()
    out[inside] *= transmission
    return out


def test_a_large_opaque_ball_is_measured_by_its_area():
    rng = np.random.default_rng(0)
    image = _field(rng)
    assert opaque_fraction(image) < 0.005
    balled = _with_ball(image, 0.2, 0.05)
    assert abs(opaque_fraction(balled) - np.pi * 0.2**2) < 0.03
    # A small ball (the Magellon example's kind) stays far under the 3 % of the stage.
    assert opaque_fraction(_with_ball(image, 0.05, 0.05)) < 0.012


def test_grey_levels_binning_and_gradients_do_not_change_it():
    rng = np.random.default_rng(1)
    balled = _with_ball(_field(rng), 0.2, 0.05)
    reference = opaque_fraction(balled)
    stretched = np.clip((balled - balled.min()) / np.ptp(balled) * 255.0, 0, 255).astype(np.uint8)
    assert abs(opaque_fraction(stretched) - reference) < 0.01
    assert abs(opaque_fraction(3.0 * balled + 1000.0) - reference) < 0.01
    binned = balled[:766, :766].reshape(383, 2, 383, 2).mean(axis=(1, 3))
    assert abs(opaque_fraction(binned) - reference) < 0.01
    # An ice-thickness gradient darkens a whole side smoothly: nothing opaque.
    ramp = np.linspace(1.0, 0.6, balled.shape[1])[None, :]
    assert opaque_fraction(_field(rng) * ramp) < 0.005
    assert opaque_fraction(np.full((300, 300), 7.0)) == 0.0


def test_odd_sizes_are_not_padded_into_dark_borders():
    rng = np.random.default_rng(2)
    image = _field(rng, 1000)[:, :997]  # not a multiple of the block size
    assert opaque_fraction(image) < 0.005


def test_a_dark_border_of_the_frame_is_not_contamination():
    """Partial blocks of binning or a zero-filled edge leave dark rows and columns at the border
    (a good binned micrograph of 234 px lost 3.4 % of its field to one); a ball that reaches
    the border still counts."""
    rng = np.random.default_rng(3)
    image = ndi.gaussian_filter(
        _field(rng, 234), 4.0
    )  # denoised: the smoothed field's spread is small
    image[-2:, :] *= 0.3
    image[:, -2:] *= 0.3
    assert opaque_fraction(image) < 0.002  # 0.017 when the border is counted
    yy, xx = np.mgrid[:234, :234]
    edge_ball = image.copy()
    edge_ball[(yy - 117) ** 2 + xx**2 < 60**2] *= 0.05  # half a ball over the left edge
    assert opaque_fraction(edge_ball) > 0.03
