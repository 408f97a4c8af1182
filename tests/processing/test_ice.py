import numpy as np
import pytest

from screen.processing.ice import ICE_BAND_A, ice_reflections, measurable


def fringes(
    shape: tuple[int, int],
    pixel_size_A: float,
    spacing_A: float,
    directions_deg: tuple[float, ...],
    share: float,
) -> np.ndarray:
    """Lattice fringes (sum of cosines, peak 1 per direction) over the left ``share`` of the field."""
    yy, xx = np.indices(shape) * pixel_size_A
    lattice = sum(
        np.cos(2 * np.pi * (xx * np.cos(np.radians(d)) + yy * np.sin(np.radians(d))) / spacing_A)
        for d in directions_deg
    )
    return lattice * (xx < share * shape[1] * pixel_size_A)


def counted(shape: tuple[int, int], dose_per_px: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).poisson(dose_per_px, size=shape).astype(np.float32)


def test_shot_noise_has_no_reflections():
    found = ice_reflections(counted((1536, 2048), 30.0, 0), 0.83)
    assert found is not None and found.tiles == 24
    assert found.tile_share == 0.0
    assert found.strongest_ratio < 5.0  # 3 x 3 means of exponential samples: the limit is 8


@pytest.mark.parametrize(("pixel_size_A", "spacing_A"), [(0.83, 3.90), (1.06, 3.67), (1.6, 3.44)])
def test_crystalline_ice_over_part_of_the_field_is_found_with_its_spacing(pixel_size_A, spacing_A):
    shape = (1024, 1024)
    rng = np.random.default_rng(1)
    hexagonal = fringes(shape, pixel_size_A, spacing_A, (17.0, 77.0, 137.0), share=0.6)
    expected = 40.0 * (1.0 + 0.03 * hexagonal + 0.05 * rng.standard_normal(shape))
    found = ice_reflections(
        rng.poisson(np.clip(expected, 0, None)).astype(np.float32), pixel_size_A
    )
    assert found is not None
    assert 0.45 <= found.tile_share <= 0.75  # the tiles of the left 60 %
    assert found.strongest_spacing_A == pytest.approx(spacing_A, abs=0.08)
    assert found.strongest_ratio > 20.0


def test_stripes_along_the_pixel_axes_and_jpeg_blocks_are_not_ice():
    shape = (1024, 1024)
    pixel_size_A = 1.0
    rows = fringes(shape, pixel_size_A, 3.9, (1.5, 88.5), share=1.0)  # row / column artefacts
    # One 8 x 8 pattern repeated over the frame, as a JPEG export's block artefacts: spots at
    # multiples of 1/8 cycle per pixel in both directions, some of them inside the band.
    blocks = np.tile(np.random.default_rng(5).standard_normal((8, 8)), (128, 128))
    for artefact in (0.05 * rows, 0.1 * blocks):
        found = ice_reflections(counted(shape, 40.0, 2) * (1.0 + artefact), pixel_size_A)
        assert found is not None and found.tile_share == 0.0


def test_the_artefact_test_would_fail_without_the_exclusions(monkeypatch):
    import screen.processing.ice as ice

    monkeypatch.setattr(ice, "AXIS_EXCLUSION_DEG", 0.5)
    monkeypatch.setattr(ice, "BLOCK_PERIOD_PX", 7)
    rows = fringes((1024, 1024), 1.0, 3.9, (1.5, 88.5), share=1.0)
    blocks = np.tile(np.random.default_rng(5).standard_normal((8, 8)), (128, 128))
    for artefact in (0.05 * rows, 0.1 * blocks):
        found = ice_reflections(counted((1024, 1024), 40.0, 2) * (1.0 + artefact), 1.0)
        assert found.tile_share > 0.5


def test_pixel_sizes_that_cannot_resolve_the_band_give_none():
    assert measurable(1.0) and measurable(1.85)
    assert not measurable(1.95) and not measurable(3.0)
    image = counted((512, 512), 40.0, 3)
    assert ice_reflections(image, 2.0) is None
    assert ICE_BAND_A[0] < 3.44 and ICE_BAND_A[1] > 3.90  # every ice reflection is searched


def test_small_frames_use_smaller_tiles():
    image = counted((300, 400), 40.0, 4)
    image *= 1.0 + 0.05 * fringes(image.shape, 1.0, 3.9, (30.0,), share=1.0)
    found = ice_reflections(image, 1.0)
    assert found is not None and found.tiles >= 2 and found.tile_share == 1.0


def _smoothed_field(sigma_px: float) -> np.ndarray:
    """Counts over a slowly varying ice field with faint column stripes, then smoothed."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(4)
    image = rng.poisson(40.0, (1024, 1024)).astype(float)
    image += 1200.0 * ndi.gaussian_filter(rng.standard_normal((1024, 1024)), 40)
    image += 3.0 * (np.arange(1024) % 64 < 2)[None, :]
    return ndi.gaussian_filter(image, sigma_px)


def test_a_micrograph_smoothed_past_the_band_is_not_measured():
    # A 3-px Gaussian leaves the band a millionth of its power at twice the spacing.
    assert ice_reflections(_smoothed_field(3.0), 1.0) is None
    found = ice_reflections(_smoothed_field(1.0), 1.0)  # still transmits the band
    assert found is not None and found.tile_share == 0.0


def test_the_smoothed_test_would_fail_without_the_band_check(monkeypatch):
    import screen.processing.ice as ice

    monkeypatch.setattr(ice, "MIN_BAND_SHARE", 0.0)
    assert ice.ice_reflections(_smoothed_field(3.0), 1.0).tile_share > 0.5


def test_gain_stripes_along_the_columns_are_not_ice():
    # A smoothed export (weak band) with a gain reference's column stripes: one column in ten
    # off, the same down the whole frame, all their power on one axis of the spectrum. Without
    # the rows' and columns' means taken out, 11 of 16 tiles read as ice (ratio 17).
    from scipy import ndimage as ndi

    noise = counted((1024, 1024), 40.0, 7).astype(float)
    texture = ndi.gaussian_filter(np.random.default_rng(8).standard_normal(noise.shape), 8)
    base = ndi.gaussian_filter(noise, 0.8) + 240.0 * texture
    rng = np.random.default_rng(6)
    stripes = 2.0 * base.std() * np.sin(0.37 * np.arange(1024)) * (rng.random(1024) < 0.1)
    found = ice_reflections(base + stripes[None, :], 1.77)
    assert found is not None and found.tile_share == 0.0, found
