import numpy as np
import pytest

from screen.errors import ImageReadError
from screen.io.images import IMAGE_EXTENSIONS, check_image, doubtful_pixel_size, read_image
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
    path = tmp_path / "a.bmp"
    path.write_bytes(b"BM")
    with pytest.raises(ImageReadError) as err:
        read_image(path)
    message = str(err.value)
    assert "a.bmp" in message and "'.bmp'" in message
    assert all(ext in message for ext in IMAGE_EXTENSIONS)


def test_check_image_accepts_noise_and_refuses_empty():
    check_image(_image(), "ok.mrc")
    with pytest.raises(ImageReadError, match="empty.mrc: empty image"):
        check_image(np.zeros((0, 5), np.float32), "empty.mrc")


def test_8bit_and_16bit_exports_are_read_as_grey_levels(tmp_path):
    from PIL import Image

    grey = (np.arange(48 * 40) % 251).reshape(48, 40).astype(np.uint8)
    Image.fromarray(grey).save(tmp_path / "a.png")
    image = read_image(tmp_path / "a.png")
    np.testing.assert_array_equal(image.data, grey.astype(np.float32))
    assert image.data.dtype == np.float32 and image.pixel_size_A is None
    # A grey export saved as RGB: three equal channels give the same grey levels.
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(tmp_path / "rgb.PNG")
    np.testing.assert_array_equal(read_image(tmp_path / "rgb.PNG").data, grey)
    # 16-bit grey keeps its values (not squeezed to 8 bits).
    deep = (np.arange(48 * 40) * 17).reshape(48, 40).astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    np.testing.assert_array_equal(read_image(tmp_path / "deep.png").data, deep)
    # JPEG is lossy: the same picture within a few grey levels.
    Image.fromarray(grey).save(tmp_path / "a.jpg", quality=95)
    assert np.abs(read_image(tmp_path / "a.jpg").data - grey).mean() < 4


def test_a_broken_export_is_a_clear_error(tmp_path):
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(ImageReadError, match="broken.jpg: not a readable JPEG/PNG image"):
        read_image(path)
    with pytest.raises(ImageReadError, match="missing.png: file not found"):
        read_image(tmp_path / "missing.png")


def test_read_ahead_reads_the_next_chunk_while_the_caller_works_on_this_one():
    import threading

    from screen.io.images import read_ahead

    started = {k: threading.Event() for k in range(3)}

    def read(chunk):
        started[chunk].set()
        return chunk * 10

    seen = []
    for chunk, value in read_ahead([0, 1, 2], read):
        if chunk < 2:  # the next chunk is being read while this one is in hand
            assert started[chunk + 1].wait(timeout=10)
        seen.append((chunk, value))
    assert seen == [(0, 0), (1, 10), (2, 20)]
    order = []
    for chunk, _ in read_ahead([0, 1, 2], lambda c: order.append(c), background=False):
        order.append(f"use {chunk}")
    assert order == [0, "use 0", 1, "use 1", 2, "use 2"]  # read when reached
    assert list(read_ahead([], read)) == []


def test_a_field_smaller_than_any_cameras_has_a_doubtful_pixel_size():
    # The Magellon example: 8 x binned, its header keeping the unbinned 0.79 Å/px.
    doubt = doubtful_pixel_size((512, 512), 0.79)
    assert doubt is not None and "spans 404 Å" in doubt and "binned" in doubt
    assert doubtful_pixel_size((512, 512), 6.32) is None  # its true pixel size: 3,236 Å
    assert doubtful_pixel_size((4, 3710, 3838), 0.3) is None  # a K2 stack, super-resolution
    assert "927 x 959 px" in doubtful_pixel_size((959, 927), 1.0)  # columns x rows
