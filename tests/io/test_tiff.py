import numpy as np
import pytest
import tifffile

from screen.errors import ImageReadError
from screen.io.tiff import read_tiff, write_tiff


def _counts(shape, dtype=np.uint8, seed=0):
    return np.random.default_rng(seed).poisson(1.5, size=shape).astype(dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_movie_round_trip_keeps_integer_dtype(tmp_path, dtype):
    frames = _counts((5, 16, 20), dtype)
    path = write_tiff(tmp_path / "movies" / "m.tif", frames)

    assert tifffile.imread(path).dtype == np.dtype(dtype)
    with tifffile.TiffFile(path) as tif:
        assert len(tif.pages) == 5
        assert tif.pages[0].compression == tifffile.COMPRESSION.ADOBE_DEFLATE
    image = read_tiff(path)
    assert image.data.dtype == np.float32
    np.testing.assert_array_equal(image.data, frames.astype(np.float32))
    assert image.pixel_size_A is None


def test_single_image_is_2d(tmp_path):
    data = np.random.default_rng(1).normal(size=(12, 9)).astype(np.float32)
    path = write_tiff(tmp_path / "a.tiff", data, compression=None)
    np.testing.assert_array_equal(read_tiff(path).data, data)


def test_pages_written_separately_are_stacked(tmp_path):
    frames = _counts((3, 8, 8))
    path = tmp_path / "pages.tif"
    with tifffile.TiffWriter(path) as writer:
        for frame in frames:
            writer.write(frame, photometric="minisblack", contiguous=False)
    np.testing.assert_array_equal(read_tiff(path).data, frames)


def test_write_is_atomic(tmp_path):
    write_tiff(tmp_path / "a.tif", _counts((2, 8, 8)))
    assert [p.name for p in tmp_path.iterdir()] == ["a.tif"]


def test_truncated_movie(tmp_path):
    path = write_tiff(tmp_path / "m.tif", _counts((4, 32, 32)), compression=None)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ImageReadError, match="truncated") as err:
        read_tiff(path)
    assert "m.tif" in str(err.value)


def test_not_a_tiff(tmp_path):
    path = tmp_path / "x.tif"
    path.write_text("hello")
    with pytest.raises(ImageReadError, match="not a readable TIFF"):
        read_tiff(path)


def test_missing(tmp_path):
    with pytest.raises(ImageReadError, match="not found"):
        read_tiff(tmp_path / "missing.tif")


def test_constant_and_nan(tmp_path):
    constant = write_tiff(tmp_path / "c.tif", np.zeros((3, 8, 8), np.uint8))
    with pytest.raises(ImageReadError, match="constant image.*every pixel is 0"):
        read_tiff(constant)
    data = np.ones((8, 8), np.float32)
    data[2, 2] = np.nan
    nan = write_tiff(tmp_path / "n.tif", data)
    with pytest.raises(ImageReadError, match="1 of 64 pixels are NaN"):
        read_tiff(nan)


def test_rgb_is_refused(tmp_path):
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, _counts((8, 8, 3)), photometric="rgb")
    with pytest.raises(ImageReadError, match="grey-scale"):
        read_tiff(path)
