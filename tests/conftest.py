"""Fixtures shared by several test modules."""

import dataclasses
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from screen.manifest import read_manifest
from screen.pipeline import run_screen
from screen.simulate.presets import prex1_small
from screen.simulate.scenario import with_micrographs_per_session
from screen.simulate.session import simulate_screen


@pytest.fixture(autouse=True)
def _results_database(tmp_path_factory, monkeypatch) -> None:
    """Every test records runs in its own results database, never the user's."""
    folder = tmp_path_factory.mktemp("db")
    monkeypatch.setenv("SCREEN_DB", str(folder / "results.sqlite"))


@pytest.fixture(scope="session")
def simulate_demo_screen() -> Callable[[Path, int], Path]:
    """``simulate(folder, n)``: the six-condition demo preset, ``n`` micrographs each."""

    def simulate(folder: Path, micrographs_per_session: int) -> Path:
        preset = with_micrographs_per_session(prex1_small(), micrographs_per_session)
        simulate_screen(preset, folder)
        return folder

    return simulate


@pytest.fixture(scope="session")
def empty_carbon_session():
    """A held-out-kind session of 12 simulated micrographs (good, empty, carbon), rendered.

    Returns ``(reasons, images, pixel_size_A)`` (576² frames; structures no model trained on).
    """
    from screen.models import micassess as ma
    from screen.simulate.render import render_micrograph
    from screen.simulate.session import session_models, session_plans

    spec = dataclasses.replace(
        ma.HELD_OUT_SET,
        n_micrographs=12,
        seed=31337,
        micrographs_per_session=12,
        structure_seeds=(9000, 9100),
        bad_reasons=("empty", "carbon"),
    )
    (screen_spec,) = ma.session_specs(spec)
    models = session_models(screen_spec.sessions[0])
    plans = session_plans(screen_spec, 0)
    images = [
        render_micrograph(p, models, screen_spec.frame_px, screen_spec.pixel_size_A).counts
        for p in plans
    ]
    return [p.reason for p in plans], images, screen_spec.pixel_size_A


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


def _write_run(root: Path, created: str, sessions: dict[str, dict]) -> Path:
    """A results folder with run.json and one summary.json per session (no images)."""
    root.mkdir(parents=True)
    for name, values in sessions.items():
        folder = root / "sessions" / name
        folder.mkdir(parents=True)
        good, n_mics = values.get("good_particles", 500), values.get("n_micrographs", 10)
        summary = {
            "session": name,
            "status": "ok",
            "error": None,
            "n_micrographs": n_mics,
            "n_good_micrographs": 8,
            "good_micrograph_fraction": 0.8,
            "picked_particles": 1000,
            "particles_per_micrograph": 1000 / n_mics,
            "good_particles": good,
            "good_particle_fraction": good / 1000,
            "good_particles_per_micrograph": good / n_mics,
            "diameter_A": 120.0,
            "best_mask_diameter_A": 150.0 if good else None,
            "verdicts": [],
            **values,
        }
        (folder / "summary.json").write_text(json.dumps(summary))
    (root / "run.json").write_text(
        json.dumps(
            {
                "screen_version": "0.1.0",
                "manifest": str(root / "manifest.csv"),
                "sessions": list(sessions),
                "created": created,
            }
        )
    )
    return root


def _hard_low_pass(image: np.ndarray, pixel_size_A: float, cutoff_A: float) -> np.ndarray:
    """An export's hard low-pass: every Fourier component finer than ``cutoff_A`` set to zero."""
    spectrum = np.fft.rfft2(np.asarray(image, np.float64))
    fy = np.fft.fftfreq(image.shape[0])[:, None]
    fx = np.fft.rfftfreq(image.shape[1])[None, :]
    spectrum[np.hypot(fx, fy) / pixel_size_A > 1.0 / cutoff_A] = 0
    return np.fft.irfft2(spectrum, image.shape).astype(np.float32)


@pytest.fixture(scope="session")
def hard_low_pass() -> Callable[[np.ndarray, float, float], np.ndarray]:
    """``hard_low_pass(image, pixel_size_A, cutoff_A)``: float32, nothing finer than the cut."""
    return _hard_low_pass


@pytest.fixture(scope="session")
def write_run() -> Callable[[Path, str, dict[str, dict]], Path]:
    """``write_run(root, created, {name: summary values})``: a small finished results folder."""
    return _write_run


def _write_labelled_averages(folder: Path, n_per_class: int, seed: int, structure_seeds) -> list:
    """``n_per_class`` drawn averages per label as one 64-px stack (4 Å/px) + labels.csv."""
    import numpy as np

    from screen.io.mrc import write_mrc
    from screen.models.class_assess import synthetic_class_averages

    items = synthetic_class_averages(n_per_class, seed=seed, structure_seeds=structure_seeds)
    box = 64
    images = []
    for item in items:  # pad / crop to one box so they fit one stack
        image = np.zeros((box, box), np.float32)
        b = min(box, item.image.shape[0])
        o, p = (box - b) // 2, (item.image.shape[0] - b) // 2
        image[o : o + b, o : o + b] = item.image[p : p + b, p : p + b]
        images.append(image)
    write_mrc(folder / "averages.mrcs", np.stack(images), 4.0, stack=True)
    rows = ["index,label,mask_diameter_A"]
    rows += [f"{i},{a.label},{min(a.mask_diameter_A, box * 4.0):.1f}" for i, a in enumerate(items)]
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return items


@pytest.fixture(scope="session")
def write_labelled_averages() -> Callable[..., list]:
    """Write a labelled stack of drawn class averages (``screen evaluate/train classes``)."""
    return _write_labelled_averages


def _shell_field(
    n_px: int,
    spacing_px: int,
    radius_px: float,
    inner_fraction: float,
    seed: int,
    jitter: float = 0.1,
    texture: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Projected thickness (over the radius) of spherical shells on a jittered grid, and centres.

    ``inner_fraction`` is the hollow's radius over the outer one (0: solid spheres). Centres lie
    ``spacing_px`` apart from 1.2 radii in, each moved by up to ``jitter`` of the spacing.
    ``texture`` modulates each particle's thickness around its centre by ``1 + texture
    cos(m theta + phase)`` (m 2-6 and the phase at random): particles that differ, as views and
    subunits make them differ.
    """
    rng = np.random.default_rng(seed)
    start = int(1.2 * radius_px + jitter * spacing_px)
    grid = np.arange(start, n_px - start + 1, spacing_px)
    centres = np.array([(x, y) for x in grid for y in grid], float)
    centres += rng.uniform(-jitter, jitter, centres.shape) * spacing_px
    yy, xx = np.indices((n_px, n_px))
    thickness = np.zeros((n_px, n_px))
    for cx, cy in centres:
        r2 = (xx - cx) ** 2 + (yy - cy) ** 2
        outer = np.sqrt(np.clip(radius_px**2 - r2, 0, None))
        inner = np.sqrt(np.clip((inner_fraction * radius_px) ** 2 - r2, 0, None))
        theta = np.arctan2(yy - cy, xx - cx)
        pattern = 1 + texture * np.cos(rng.integers(2, 7) * theta + rng.uniform(0, 2 * np.pi))
        thickness += (outer - inner) * pattern / radius_px
    return thickness, centres


@pytest.fixture
def shell_field() -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    """Fields of hollow (or solid) spherical particles with known centres (`_shell_field`)."""
    return _shell_field
