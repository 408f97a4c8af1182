import numpy as np
import pytest

from screen.errors import ImageReadError
from screen.io.images import IMAGE_EXTENSIONS, check_image, read_image
from screen.io.mrc import write_mrc
from screen.io.tiff import write_tiff


def _image(seed=0):
    return np.random.default_rng(seed).normal(size=(8, 10)).astype(np.float32)


@pytest.mark.parametrize("name", ["a.mrc", "a.MRCS", "a.st", "a.map"])
def test_mrc_extensions_use_mrc_reader(tmp_path, name):
    data = _image()
    write_mrc(tmp_path / name, data, 2.0)
    image = read_image(tmp_path / name)
    np.testing.assert_array_equal(image.data, data)
    assert image.pixel_size_A == pytest.approx(2.0)


@pytest.mark.parametrize("name", ["a.tif", "a.TIFF"])
def test_tiff_extensions_use_tiff_reader(tmp_path, name):
    data = _image()
    write_tiff(tmp_path / name, data)
    image = read_image(tmp_path / name)
    np.testing.assert_array_equal(image.data, data)
    assert image.pixel_size_A is None


def test_unsupported_extension_names_supported_ones(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(b"\x89PNG")
    with pytest.raises(ImageReadError) as err:
        read_image(path)
    message = str(err.value)
    assert "a.png" in message and "'.png'" in message
    assert all(ext in message for ext in IMAGE_EXTENSIONS)


def test_check_image_accepts_noise_and_refuses_empty():
    check_image(_image(), "ok.mrc")
    with pytest.raises(ImageReadError, match="empty.mrc: empty image"):
        check_image(np.zeros((0, 5), np.float32), "empty.mrc")
