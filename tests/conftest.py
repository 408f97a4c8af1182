"""Fixtures shared by several test modules."""

import dataclasses
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from screen.manifest import read_manifest
from screen.pipeline import run_screen
from screen.simulate.presets import prex1_small
from screen.simulate.scenario import with_micrographs_per_session
from screen.simulate.session import simulate_screen


@pytest.fixture(scope="session")
def simulate_demo_screen() -> Callable[[Path, int], Path]:
    """``simulate(folder, n)``: the six-condition demo preset, ``n`` micrographs each."""

    def simulate(folder: Path, micrographs_per_session: int) -> Path:
        preset = with_micrographs_per_session(prex1_small(), micrographs_per_session)
        simulate_screen(preset, folder)
        return folder

    return simulate


@dataclass(frozen=True)
class Screened:
    """A screened one-session run: its manifest and results folder (do not change them)."""

    manifest: Path
    results: Path
    session: str = "gbg_6uM"

    def copy_results(self, folder: Path) -> Path:
        """A copy of the results to change or re-run into: its cache makes re-runs sub-second."""
        shutil.copytree(self.results, folder)
        return folder


def _simulate_repeated_names(root: Path, movies: bool = False) -> Path:
    """Three simulated micrographs (or movies) of 6 µM Gβγ in two folders; return the manifest.

    The second image lies in a sub-folder under the first one's file name, as when a facility
    writes one folder per grid square with repeating names.
    """
    spec = with_micrographs_per_session(prex1_small(), 3)
    spec = dataclasses.replace(spec, sessions=spec.sessions[5:6])
    if movies:
        spec = dataclasses.replace(spec, movies=True, n_frames=4)
    simulate_screen(spec, root / "sim")
    kind, suffix = ("movies", ".tif") if movies else ("micrographs", ".mrc")
    folder = root / "sim" / "sessions" / "gbg_6uM" / kind
    (folder / "square2").mkdir()
    (folder / f"gbg_6uM_0002{suffix}").rename(folder / "square2" / f"gbg_6uM_0001{suffix}")
    manifest = root / "sim" / "manifest.csv"
    manifest.write_text(
        f"session,{kind},pixel_size_A\n"
        f"gbg_6uM,sessions/gbg_6uM/{kind}/**/*{suffix},{spec.pixel_size_A}\n"
    )
    return manifest


@pytest.fixture(scope="session")
def simulate_repeated_names() -> Callable[..., Path]:
    """``simulate(root, movies=False)``: see `_simulate_repeated_names`."""
    return _simulate_repeated_names


@pytest.fixture(scope="session")
def screened(tmp_path_factory) -> Screened:
    """`_simulate_repeated_names` (micrographs) screened once (no report)."""
    root = tmp_path_factory.mktemp("screened")
    manifest = _simulate_repeated_names(root)
    run_screen(read_manifest(manifest), root / "results", render=False)
    return Screened(manifest, root / "results")


@pytest.fixture(scope="session")
def write_unreadable_session() -> Callable[[Path, str], Path]:
    """``write(folder, name)``: a manifest of one session whose two micrographs are not MRC."""

    def write(folder: Path, name: str) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "truncated.mrc").write_bytes(b"\x00" * 100)
        (folder / "text.mrc").write_text("not an image\n")
        manifest = folder / "manifest.csv"
        manifest.write_text(f"session,micrographs,pixel_size_A\n{name},*.mrc,2.0\n")
        return manifest

    return write
