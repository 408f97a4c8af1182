import warnings
from pathlib import Path

import mrcfile
import numpy as np
import pytest

from screen.errors import ImageReadError
from screen.io.mrc import read_mrc, write_mrc

REAL_EXAMPLES = Path(__file__).resolve().parents[2] / ".." / "shared" / "real_examples"
MODES = {0: np.int8, 1: np.int16, 2: np.float32, 6: np.uint16, 12: np.float16}


def _pixels(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 100, size=shape).astype(dtype)


def _write_raw(path, data, pixel_size=None, stack=False):
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(data)
        if stack:
            mrc.set_image_stack()
        if pixel_size is not None:
            mrc.voxel_size = pixel_size


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("shape", [(12, 10), (3, 12, 10)])
def test_read_all_modes_2d_and_stack(tmp_path, mode, shape):
    data = _pixels(shape, MODES[mode])
    path = tmp_path / "a.mrc"
    _write_raw(path, data, pixel_size=1.25, stack=len(shape) == 3)
    with mrcfile.open(path) as mrc:
        assert int(mrc.header.mode) == mode

    image = read_mrc(path)

    assert image.data.dtype == np.float32
    assert image.data.shape == shape
    np.testing.assert_array_equal(image.data, data.astype(np.float32))
    assert image.pixel_size_A == pytest.approx(1.25)
    assert image.path == path


@pytest.mark.parametrize("dtype", [np.float32, np.int8, np.int16, np.uint16, np.float16])
def test_write_read_round_trip(tmp_path, dtype):
    data = _pixels((4, 8, 6), dtype)
    path = write_mrc(tmp_path / "sub" / "stack.mrcs", data, 3.5, dtype=dtype)

    image = read_mrc(path)

    np.testing.assert_array_equal(image.data, data.astype(np.float32))
    assert image.pixel_size_A == pytest.approx(3.5)
    with mrcfile.open(path) as mrc:
        assert mrc.data.dtype == np.dtype(dtype)
        assert mrc.is_image_stack()
        assert float(mrc.header.dmax) == pytest.approx(float(data.max()))
        assert float(mrc.header.dmin) == pytest.approx(float(data.min()))


def test_write_3d_as_volume_when_not_stack(tmp_path):
    path = write_mrc(tmp_path / "v.mrc", _pixels((3, 4, 4), np.float32), 1.0, stack=False)
    with mrcfile.open(path) as mrc:
        assert mrc.is_volume()
    assert read_mrc(path).data.shape == (3, 4, 4)


def test_unset_pixel_size_is_none(tmp_path):
    path = write_mrc(tmp_path / "a.mrc", _pixels((8, 8), np.float32), None)
    assert read_mrc(path).pixel_size_A is None


def test_write_refuses_values_outside_integer_dtype(tmp_path):
    with pytest.raises(ValueError, match="do not fit int8"):
        write_mrc(tmp_path / "a.mrc", np.array([[0.0, 300.0]]), 1.0, dtype=np.int8)
    assert not list(tmp_path.iterdir())


def test_write_is_atomic_and_overwrites(tmp_path):
    path = tmp_path / "a.mrc"
    write_mrc(path, _pixels((8, 8), np.float32, seed=1), 1.0)
    second = _pixels((8, 8), np.float32, seed=2)
    write_mrc(path, second, 2.0)

    assert [p.name for p in tmp_path.iterdir()] == ["a.mrc"]
    np.testing.assert_array_equal(read_mrc(path).data, second)


def test_missing_file(tmp_path):
    with pytest.raises(ImageReadError, match="not found") as err:
        read_mrc(tmp_path / "nope.mrc")
    assert "nope.mrc" in str(err.value)


def test_truncated_file(tmp_path):
    path = write_mrc(tmp_path / "a.mrc", _pixels((2, 16, 16), np.float32), 1.0)
    full = path.read_bytes()
    path.write_bytes(full[:-100])

    with pytest.raises(ImageReadError, match="truncated") as err:
        read_mrc(path)
    assert str(len(full)) in str(err.value)
    assert str(len(full) - 100) in str(err.value)


def test_text_file_is_not_mrc(tmp_path):
    path = tmp_path / "notes.mrc"
    path.write_text("these are my notes about the grid\n" * 100)
    with pytest.raises(ImageReadError, match="not a usable MRC file") as err:
        read_mrc(path)
    assert "notes.mrc" in str(err.value)


def test_short_png_bytes_are_not_mrc(tmp_path):
    path = tmp_path / "image.mrc"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
    with pytest.raises(ImageReadError, match="not an MRC file"):
        read_mrc(path)


def test_bad_map_id_is_a_warning_when_permissive(tmp_path):
    data = _pixels((8, 8), np.float32)
    path = write_mrc(tmp_path / "a.mrc", data, 1.0)
    raw = bytearray(path.read_bytes())
    raw[208:212] = b"XXXX"  # the 'MAP ' ID
    path.write_bytes(bytes(raw))

    with pytest.warns(RuntimeWarning, match="Map ID"):
        image = read_mrc(path)
    np.testing.assert_array_equal(image.data, data)
    with pytest.raises(ImageReadError, match="Map ID"):
        read_mrc(path, permissive=False)


def test_nan_pixels_are_counted(tmp_path):
    data = _pixels((8, 8), np.float32)
    data[0, :3] = np.nan
    data[1, 0] = np.inf
    with pytest.warns(RuntimeWarning, match="NaN"):  # mrcfile's own warning on writing
        path = write_mrc(tmp_path / "a.mrc", data, 1.0)
    with pytest.raises(ImageReadError, match="4 of 64 pixels are NaN or Inf"):
        read_mrc(path)


def test_constant_image(tmp_path):
    path = write_mrc(tmp_path / "a.mrc", np.full((8, 8), 7.5, np.float32), 1.0)
    with pytest.raises(ImageReadError, match="constant image.*7.5"):
        read_mrc(path)


def test_clean_file_reads_without_warnings(tmp_path):
    path = write_mrc(tmp_path / "a.mrc", _pixels((8, 8), np.float32), 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_mrc(path).data.shape == (8, 8)


def test_empty_image(tmp_path):
    path = tmp_path / "empty.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.zeros((4, 4), np.float32))
        mrc.header.nx = 0
    with pytest.raises(ImageReadError, match="empty image"):
        read_mrc(path)


def test_real_micrographs():
    if not REAL_EXAMPLES.exists():
        pytest.skip("shared/real_examples is not beside the repository")
    magellon = read_mrc(REAL_EXAMPLES / "magellon_24dec03a_binned8.mrc")
    assert magellon.data.shape == (512, 512)
    assert magellon.pixel_size_A == 0.79  # the header value (wrong, see README), exactly as text
    cleaner = read_mrc(REAL_EXAMPLES / "micrograph_cleaner_contaminated.mrc")
    assert cleaner.data.shape == (927, 959)
    assert cleaner.data.std() > 0
