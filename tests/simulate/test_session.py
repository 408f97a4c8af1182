import dataclasses
import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from screen.io.mrc import read_mrc
from screen.io.star import read_particles_star
from screen.io.tiff import read_tiff
from screen.manifest import read_manifest
from screen.simulate.session import simulate_screen
from screen.simulate.spec import ScreenSpec, SessionSpec, SpeciesSpec, StructureSpec

SMALL = StructureSpec("small", 80.0, 60.0, "C2", seed=1)
SESSIONS = (
    SessionSpec(
        "alpha",
        (SpeciesSpec(SMALL),),
        n_micrographs=3,
        particles_per_um2=3000,
        bad_mix={"empty": 0.34},
        metadata={"grid": "Quantifoil"},
    ),
    SessionSpec(
        "beta",
        (SpeciesSpec(SMALL, 0.7), SpeciesSpec(StructureSpec("tiny", 50.0, 30.0), 0.3)),
        n_micrographs=2,
        particles_per_um2=4000,
        metadata={"grid": "lacey", "note": "x"},
    ),
)
SPEC = ScreenSpec(SESSIONS, frame_px=(256, 256), pixel_size_A=2.5, seed=3)


def _digest(folder):
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.suffix in (".mrc", ".csv", ".star", ".tif")
    }


@pytest.fixture(scope="module")
def screen_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("screen")
    simulate_screen(SPEC, out)
    return out


def test_manifest_lists_every_session_and_its_micrographs(screen_dir):
    manifest = read_manifest(screen_dir / "manifest.csv")
    assert [row.session for row in manifest.sessions] == ["alpha", "beta"]
    assert [len(row.micrograph_paths) for row in manifest.sessions] == [3, 2]
    for row in manifest.sessions:
        assert row.kind == "micrographs"
        assert row.pixel_size_A == 2.5
        assert row.voltage_kV == 300.0
        assert all(path.suffix == ".mrc" and path.is_file() for path in row.micrograph_paths)
    assert "grid" in manifest.metadata_columns
    assert manifest.sessions[1].metadata["grid"] == "lacey"


def test_micrographs_carry_their_pixel_size_and_counts(screen_dir):
    for path in sorted((screen_dir / "sessions").glob("*/micrographs/*.mrc")):
        image = read_mrc(path)
        assert image.pixel_size_A == pytest.approx(2.5, abs=1e-4)
        assert image.data.shape == (256, 256)
        assert image.data.min() >= 0
        assert np.all(image.data == np.round(image.data))
        # Around dose x pixel area x ice transmission (40-55 e/Å², 6.25 Å² pixels).
        assert 150 < image.data.mean() < 360


@pytest.mark.parametrize("session", ["alpha", "beta"])
def test_ground_truth_tables_agree(screen_dir, session):
    truth = screen_dir / "sessions" / session / "ground_truth"
    micrographs = pd.read_csv(truth / "micrographs.csv")
    particles = pd.read_csv(truth / "particles.csv")
    optics, star = read_particles_star(truth / "particles.star")
    summary = json.loads((truth / "session.json").read_text())

    n_micrographs = [s.n_micrographs for s in SESSIONS if s.name == session][0]
    assert len(micrographs) == n_micrographs == summary["n_micrographs"]
    assert sorted(micrographs["micrograph"]) == sorted(
        p.name for p in (screen_dir / "sessions" / session / "micrographs").glob("*.mrc")
    )
    per_micrograph = particles.groupby("micrograph").size()
    for _, row in micrographs.iterrows():
        assert per_micrograph.get(row["micrograph"], 0) == row["n_particles"]
    assert len(star) == len(particles) == micrographs["n_particles"].sum() == summary["n_particles"]
    star_counts = star.groupby("rlnMicrographName").size()
    for name, count in per_micrograph.items():
        assert star_counts[f"micrographs/{name}"] == count
    np.testing.assert_allclose(star["rlnCoordinateX"].astype(float), particles["x_px"], rtol=1e-5)
    np.testing.assert_allclose(star["rlnCoordinateY"].astype(float), particles["y_px"], rtol=1e-5)
    assert float(optics["rlnMicrographPixelSize"].iloc[0]) == pytest.approx(2.5)
    assert summary["n_good_micrographs"] == int((micrographs["verdict"] == "good").sum())
    assert sum(summary["reason_counts"].values()) == n_micrographs
    assert sum(s["n_particles"] for s in summary["species"]) == len(particles)
    assert (micrographs["verdict"] == "good").tolist() == (micrographs["reason"] == "good").tolist()


def test_bad_mix_is_honoured(screen_dir):
    micrographs = pd.read_csv(
        screen_dir / "sessions" / "alpha" / "ground_truth" / "micrographs.csv"
    )
    assert sorted(micrographs["reason"]) == ["empty", "good", "good"]
    assert micrographs.loc[micrographs["reason"] == "empty", "n_particles"].max() <= 2


def test_same_seed_gives_identical_files_and_another_seed_does_not(screen_dir, tmp_path):
    again = tmp_path / "again"
    simulate_screen(SPEC, again)
    reference = _digest(screen_dir)
    assert len(reference) >= 5 + 8
    assert _digest(again) == reference

    other = tmp_path / "other"
    simulate_screen(dataclasses.replace(SPEC, seed=4), other)
    changed = _digest(other)
    assert changed.keys() == reference.keys()
    mrc_files = [name for name in reference if name.endswith(".mrc") and "/micrographs/" in name]
    assert all(changed[name] != reference[name] for name in mrc_files)
    assert (
        changed["sessions/alpha/ground_truth/particles.csv"]
        != reference["sessions/alpha/ground_truth/particles.csv"]
    )


def test_movies_sum_to_the_micrograph(tmp_path):
    session = dataclasses.replace(SESSIONS[0], n_micrographs=2, bad_mix={})
    spec = dataclasses.replace(SPEC, sessions=(session,), movies=True, n_frames=4)
    simulate_screen(spec, tmp_path)

    manifest = read_manifest(tmp_path / "manifest.csv")
    header = (tmp_path / "manifest.csv").read_text().splitlines()[0].split(",")
    assert "movies" in header and "micrographs" not in header
    (row,) = manifest.sessions
    assert row.kind == "movies"
    assert len(row.micrograph_paths) == 2
    for movie_path in row.micrograph_paths:
        assert movie_path.suffix == ".tif"
        frames = read_tiff(movie_path).data
        assert frames.shape == (4, 256, 256)
        micrograph = read_mrc(
            movie_path.parent.parent / "micrographs" / f"{movie_path.stem}.mrc"
        ).data
        frame_sum = frames.sum(axis=0)
        assert frame_sum.mean() == pytest.approx(micrograph.mean(), rel=0.02)
        # Independent Poisson draws of the same mean, not a copy of the micrograph.
        assert not np.array_equal(frame_sum, micrograph)
        assert frames[0].mean() == pytest.approx(micrograph.mean() / 4, rel=0.03)


def test_one_dose_per_session_changes_the_doses_and_nothing_else():
    from screen.simulate.session import session_plans

    spread = dataclasses.replace(SESSIONS[0], n_micrographs=8, dose_e_per_A2=(20.0, 80.0))
    one = dataclasses.replace(spread, dose_jitter=0.02)
    per_micrograph = session_plans(ScreenSpec((spread,), frame_px=(64, 64), seed=3), 0)
    per_session = session_plans(ScreenSpec((one,), frame_px=(64, 64), seed=3), 0)
    doses = np.array([p.dose_e_per_A2 for p in per_session])
    assert doses.max() <= 1.02 * doses.min() / 0.98 + 1e-9 and 20.0 <= doses.mean() <= 80.0
    assert np.ptp([p.dose_e_per_A2 for p in per_micrograph]) > 10.0  # 8 draws from 20-80
    # Every other draw is the same: the same particles, views, CTFs and noise seeds.
    for a, b in zip(per_micrograph, per_session, strict=True):
        assert (a.noise_seed, a.ctf, a.target_snr) == (b.noise_seed, b.ctf, b.target_snr)
        assert np.array_equal(a.particle_x_A, b.particle_x_A)


def test_particle_spacing_lets_neighbours_touch():
    """The simulator's 0.85 enclosing diameters never lets two free particles touch; 0.55 does."""
    from scipy.spatial import cKDTree

    from screen.simulate.session import session_plans

    dense = dataclasses.replace(
        SESSIONS[0],
        n_micrographs=2,
        bad_mix={},
        particles_per_um2=9000,
        aggregate_fraction=0.0,
        good_contamination_prob=0.0,
        good_carbon_edge_prob=0.0,
    )
    nearest = {}
    for spacing in (0.85, 0.55):
        session = dataclasses.replace(dense, particle_spacing=spacing)
        plans = session_plans(ScreenSpec((session,), frame_px=(256, 256), pixel_size_A=2.5), 0)
        distances = []
        for plan in plans:
            xy = np.column_stack([plan.particle_x_A, plan.particle_y_A])
            distances.append(cKDTree(xy).query(xy, k=2)[0][:, 1])
        nearest[spacing] = np.concatenate(distances) / SMALL.diameter_A
    assert nearest[0.85].min() >= 0.85 - 1e-6
    assert nearest[0.55].min() >= 0.55 - 1e-6
    assert (nearest[0.55] < 0.75).mean() > 0.1
