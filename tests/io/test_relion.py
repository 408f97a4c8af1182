"""RELION particle stacks and 2D classification: files round-trip; a tiny real relion_refine run."""

import numpy as np
import pandas as pd
import pytest

from screen.io.relion import last_iteration, read_relion_classes, write_particle_stack
from screen.io.star import OpticsGroup, read_particles_star
from screen.models.class_examples import member_label
from screen.stages.relion2d import (
    Relion2DParams,
    relion_2d_command,
    relion_available,
    run_relion_2d,
)


def _particles(n: int, box: int, seed: int) -> np.ndarray:
    """Noisy centred blobs (half of them) and pure noise (the other half), protein white."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:box, :box] - box // 2
    blob = np.exp(-(x**2 + (y / 0.6) ** 2) / (2 * (box / 8) ** 2))
    images = rng.normal(size=(n, box, box)).astype(np.float32)
    images[: n // 2] += 6 * blob
    return images


def _table(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "rlnCoordinateX": np.arange(n) * 10.0,
            "rlnCoordinateY": np.arange(n) * 5.0,
            "rlnMicrographName": [f"mic{i % 3}.mrc" for i in range(n)],
            "rlnDefocusU": 15000.0,
            "rlnDefocusV": 14000.0,
            "rlnDefocusAngle": 30.0,
        }
    )


def test_particle_stack_round_trips(tmp_path):
    images = _particles(6, 32, 0)
    star = write_particle_stack(tmp_path, images, OpticsGroup(pixel_size_A=4.0), _table(6))
    optics, particles = read_particles_star(star)
    assert list(particles["rlnImageName"])[:2] == ["000001@particles.mrcs", "000002@particles.mrcs"]
    assert float(optics["rlnImagePixelSize"].iloc[0]) == 4.0
    assert int(optics["rlnImageSize"].iloc[0]) == 32
    assert np.allclose(particles["rlnDefocusU"].astype(float), 15000.0)
    with pytest.raises(ValueError, match="one per particle row"):
        write_particle_stack(tmp_path, images[:3], OpticsGroup(pixel_size_A=4.0), _table(6))


def test_command_has_the_2d_options(tmp_path):
    command = relion_2d_command(tmp_path / "p.star", tmp_path / "run", 150.0, Relion2DParams())
    text = " ".join(command)
    for option in ("--K 12", "--iter 12", "--particle_diameter 150.0", "--ctf", "--zero_mask"):
        assert option in text


def test_member_label_thresholds():
    assert member_label(np.array([0.1] * 8 + [1.0] * 2))[0] == "good"
    assert member_label(np.array([0.5] * 6 + [0.1] * 4))[0] == "clip"
    assert member_label(np.array([2.0] * 7 + [0.1] * 3))[0] == "noise"
    label, shares = member_label(np.array([0.1, 0.1, 0.5, 0.5, 2.0, 2.0]))
    assert label is None and np.allclose(shares, (1 / 3, 1 / 3, 1 / 3))


@pytest.mark.skipif(
    not relion_available(), reason="relion_refine not installed (apt-get install relion)"
)
def test_tiny_relion_2d_run_separates_blobs_from_noise(tmp_path):
    images = _particles(60, 32, 1)
    star = write_particle_stack(tmp_path / "in", images, OpticsGroup(pixel_size_A=4.0), _table(60))
    params = Relion2DParams(n_classes=2, iterations=3, ctf=False, psi_step_deg=30.0, seed=1)
    classes = run_relion_2d(star, tmp_path / "out", 100.0, params, timeout_s=120)
    assert last_iteration(tmp_path / "out" / "run") == 3
    assert classes.averages.shape == (2, 32, 32)
    assert classes.pixel_size_A == pytest.approx(4.0)
    assert classes.mask_diameter_A == pytest.approx(100.0)
    assert classes.assignments.shape == (60,) and set(classes.assignments) <= {0, 1}
    # Blobs and noise end up in different classes (RELION can also put all in one: allow 80 %).
    blob_class = np.bincount(classes.assignments[:30], minlength=2).argmax()
    purity = np.mean(classes.assignments[:30] == blob_class)
    others = np.mean(classes.assignments[30:] != blob_class)
    assert purity >= 0.8 and others >= 0.6
    again = read_relion_classes(tmp_path / "out" / "run", iteration=3)
    assert np.array_equal(again.assignments, classes.assignments)
