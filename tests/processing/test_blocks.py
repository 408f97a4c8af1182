import io

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage as ndi

from screen.processing.blocks import BLOCK_GRID_MIN, block_grid_contrast, shows_block_grid


def field(seed: int = 0, shape: tuple[int, int] = (512, 640)) -> np.ndarray:
    """8-bit-ranged counts over blobs, as an export of a micrograph."""
    rng = np.random.default_rng(seed)
    image = rng.poisson(30.0, shape) + 40.0 * ndi.gaussian_filter(rng.standard_normal(shape), 6)
    return np.clip((image - image.min()) / np.ptp(image) * 255.0, 0, 255)


def jpeg_round_trip(image: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image.astype(np.uint8)).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer), dtype=np.float32)


@pytest.mark.parametrize("quality", [10, 30])
def test_a_jpeg_keeps_its_block_grid_after_conversion(quality):
    coded = jpeg_round_trip(field(), quality)
    assert shows_block_grid(coded), block_grid_contrast(coded)
    # ... also cropped off the grid's phase, and rescaled as a float MRC would be
    assert shows_block_grid(3.7 * coded[3:, 5:] - 100.0)


def test_images_never_jpeg_coded_show_no_grid():
    image = field(1)
    for other in (
        image,
        ndi.gaussian_filter(image, 1.5),
        image[::2, ::2] + image[1::2, 1::2],
        image + 50.0 * (np.arange(image.shape[1]) % 2)[None, :],  # a period-2 column pattern
    ):
        assert block_grid_contrast(other) < BLOCK_GRID_MIN


def test_tiny_or_constant_frames_are_not_judged():
    assert block_grid_contrast(np.ones((8, 8))) == 1.0
    assert block_grid_contrast(np.zeros((64, 64))) == 1.0
