from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import starfile

from screen.errors import StarError
from screen.io.star import (
    OpticsGroup,
    read_particles_star,
    read_star,
    write_micrographs_star,
    write_particles_star,
    write_star,
)

REAL_EXAMPLES = Path(__file__).resolve().parents[2] / ".." / "shared" / "real_examples"
RELION30_PICKS = REAL_EXAMPLES / "micrograph_cleaner_contaminated_autopick.star"


def _particles(n=5, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "rlnCoordinateX": rng.uniform(0, 4000, n).round(2),
            "rlnCoordinateY": rng.uniform(0, 4000, n).round(2),
            "rlnMicrographName": [f"mics/mic_{i % 2}.mrc" for i in range(n)],
            "rlnAutopickFigureOfMerit": rng.uniform(0, 1, n).round(4),
        }
    )


def test_particles_round_trip_keeps_optics_and_values(tmp_path):
    optics = OpticsGroup(pixel_size_A=3.59, voltage_kV=200.0, cs_mm=2.0, image_size_px=64)
    particles = _particles()
    path = write_particles_star(tmp_path / "out" / "particles.star", optics, particles)

    read_optics, read_particles = read_particles_star(path)

    assert read_optics is not None
    row = read_optics.iloc[0]
    assert row["rlnImagePixelSize"] == pytest.approx(3.59)
    assert row["rlnImageSize"] == 64
    assert row["rlnImageDimensionality"] == 2
    assert row["rlnVoltage"] == pytest.approx(200.0)
    assert row["rlnSphericalAberration"] == pytest.approx(2.0)
    assert row["rlnAmplitudeContrast"] == pytest.approx(0.1)
    assert row["rlnOpticsGroupName"] == "opticsGroup1"
    pd.testing.assert_frame_equal(
        read_particles.drop(columns="rlnOpticsGroup"), particles, check_dtype=False
    )
    assert (read_particles["rlnOpticsGroup"] == 1).all()
    assert "rlnOpticsGroup" not in particles.columns  # the caller's frame is untouched


def test_starfile_reads_what_we_write_with_relion31_blocks(tmp_path):
    path = write_particles_star(tmp_path / "p.star", OpticsGroup(pixel_size_A=1.1), _particles())
    blocks = starfile.read(path, always_dict=True)
    assert list(blocks) == ["optics", "particles"]
    assert blocks["optics"]["rlnMicrographPixelSize"].iloc[0] == pytest.approx(1.1)
    text = path.read_text()
    assert "data_optics" in text and "data_particles" in text


def test_micrographs_star(tmp_path):
    micrographs = pd.DataFrame(
        {"rlnMicrographName": ["a.mrc", "b.mrc"], "rlnCtfMaxResolution": [3.5, 6.0]}
    )
    optics = OpticsGroup(name="grid1", number=2, pixel_size_A=0.83)
    path = write_micrographs_star(tmp_path / "micrographs.star", optics, micrographs)

    blocks = read_star(path)

    assert list(blocks) == ["optics", "micrographs"]
    assert blocks["optics"]["rlnOpticsGroupName"].iloc[0] == "grid1"
    assert blocks["optics"]["rlnMicrographPixelSize"].iloc[0] == pytest.approx(0.83)
    assert list(blocks["micrographs"]["rlnOpticsGroup"]) == [2, 2]
    assert list(blocks["micrographs"]["rlnMicrographName"]) == ["a.mrc", "b.mrc"]


def test_missing_required_columns_are_all_named(tmp_path):
    particles = _particles().drop(columns=["rlnCoordinateY", "rlnMicrographName"])
    with pytest.raises(StarError, match="rlnCoordinateY, rlnMicrographName"):
        write_particles_star(tmp_path / "p.star", OpticsGroup(pixel_size_A=1.0), particles)
    with pytest.raises(StarError, match="rlnMicrographName"):
        write_micrographs_star(
            tmp_path / "m.star", OpticsGroup(pixel_size_A=1.0), pd.DataFrame({"x": [1]})
        )
    assert not list(tmp_path.iterdir())


def test_read_particles_without_coordinates(tmp_path):
    path = write_star(tmp_path / "p.star", {"particles": pd.DataFrame({"rlnAnglePsi": [1.0, 2.0]})})
    with pytest.raises(StarError, match="p.star.*rlnCoordinateX, rlnCoordinateY"):
        read_particles_star(path)


def test_real_relion30_autopick_file():
    if not RELION30_PICKS.exists():
        pytest.skip("shared/real_examples is not beside the repository")
    optics, particles = read_particles_star(RELION30_PICKS)
    assert optics is None
    assert len(particles) == 45
    assert particles["rlnCoordinateX"].iloc[0] == pytest.approx(839.125024)
    assert particles["rlnCoordinateY"].between(0, 959).all()
    assert "rlnAutopickFigureOfMerit" in particles.columns


def test_relion30_round_trip_through_unnamed_block(tmp_path):
    particles = _particles()
    path = write_star(tmp_path / "r30.star", {"": particles})
    assert path.read_text().count("data_\n") == 1
    optics, read_back = read_particles_star(path)
    assert optics is None
    pd.testing.assert_frame_equal(read_back, particles, check_dtype=False)


def test_read_star_errors_name_the_file(tmp_path):
    with pytest.raises(StarError, match="missing.star: STAR file not found"):
        read_star(tmp_path / "missing.star")
    text = tmp_path / "notes.star"
    text.write_text("this is not a star file\n")
    with pytest.raises(StarError, match="notes.star: no data blocks"):
        read_star(text)


def test_key_value_block_becomes_one_row(tmp_path):
    path = tmp_path / "general.star"
    path.write_text("data_general\n\n_rlnImageSize 64\n_rlnVoltage 300\n")
    blocks = read_star(path)
    assert blocks["general"].shape == (1, 2)
    assert blocks["general"]["rlnImageSize"].iloc[0] == 64


def test_write_star_is_atomic(tmp_path):
    write_star(tmp_path / "a.star", {"particles": _particles()})
    assert [p.name for p in tmp_path.iterdir()] == ["a.star"]


def test_optics_group_rows_and_validation():
    row = OpticsGroup(pixel_size_A=1.0).to_row()
    assert row == {
        "rlnOpticsGroupName": "opticsGroup1",
        "rlnOpticsGroup": 1,
        "rlnMicrographPixelSize": 1.0,
        "rlnVoltage": 300.0,
        "rlnSphericalAberration": 2.7,
        "rlnAmplitudeContrast": 0.1,
    }
    with pytest.raises(ValueError, match="pixel_size_A"):
        OpticsGroup(pixel_size_A=0.0)
