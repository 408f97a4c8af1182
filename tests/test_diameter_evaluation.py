"""`screen evaluate diameter` on a small labelled CSV, a simulated folder and the real examples."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage
from typer.testing import CliRunner

from screen.cli import app
from screen.diameter_evaluation import (
    DiameterGroup,
    DiameterResult,
    format_diameter_evaluation,
    load_diameter_sets,
    long_axis_from_micrographs,
)
from screen.io.mrc import write_mrc
from screen.io.real_examples import REAL_EXAMPLES_DIR, real_examples
from screen.report.verdicts import LongAxis
from screen.simulate.presets import prex1_small
from screen.simulate.scenario import with_micrographs_per_session
from screen.simulate.session import simulate_screen
from screen.stages.assess_classes import ClassAssessParams, load_class_model
from screen.stages.ctf import CtfSearch, estimate_ctf
from screen.stages.records import Optics

LONG_AXIS_A, PIXEL_A = 120.0, 4.0


def _dense_ellipses(seed: int, shape=(384, 384)) -> np.ndarray:
    """Dark ellipses (long axis `LONG_AXIS_A`, axes 1 : 0.6) in random orientations, packed at
    random with their enclosing circles never overlapping; counts with noise.

    (Identical discs have no exclusion gap: nothing varies inside them, see bench/README.md.)
    """
    rng = np.random.default_rng(seed)
    radius = LONG_AXIS_A / PIXEL_A / 2
    y, x = np.indices(shape)
    image, placed = np.zeros(shape), np.zeros((0, 2))
    for _ in range(4000):
        cx, cy = rng.uniform(radius, np.array(shape[::-1]) - radius)
        if np.all((cx - placed[:, 0]) ** 2 + (cy - placed[:, 1]) ** 2 >= (2 * radius) ** 2):
            placed = np.vstack([placed, [cx, cy]])
            angle = rng.uniform(0.0, np.pi)
            u = (x - cx) * np.cos(angle) + (y - cy) * np.sin(angle)
            v = (y - cy) * np.cos(angle) - (x - cx) * np.sin(angle)
            image[(u / radius) ** 2 + (v / (0.6 * radius)) ** 2 <= 1.0] = 1.0
    image = ndimage.gaussian_filter(image, 1.0)
    return (100.0 * (1.0 - 0.25 * image) + rng.normal(0.0, 10.0, shape)).astype(np.float32)


@pytest.fixture(scope="module")
def labels_csv(tmp_path_factory):
    folder = tmp_path_factory.mktemp("diameters")
    for seed in range(2):
        write_mrc(folder / f"ellipses_{seed}.mrc", _dense_ellipses(seed), PIXEL_A)
    path = folder / "labels.csv"
    path.write_text(
        "path,pixel_size_A,diameter_A\n"
        + "".join(f"ellipses_{seed}.mrc,{PIXEL_A},{LONG_AXIS_A}\n" for seed in range(2))
    )
    return path


def test_a_labelled_csv_is_evaluated(labels_csv):
    result = CliRunner().invoke(app, ["evaluate", "diameter", str(labels_csv), "-q"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("| group | micrographs | estimate Å | method | truth Å | ratio |")
    (row,) = [line for line in lines if line.startswith("| 120 Å at 4 Å/px |")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "2" and cells[4] == "120"
    estimate_A = float(cells[2].split("±")[0])
    # Dense elongated particles: the edge of the picks' spread (the exclusion gap before it, a
    # little beyond the long axis, 137 Å).
    assert cells[3] == "spread_edge" and "±" in cells[2]
    assert estimate_A == pytest.approx(LONG_AXIS_A, rel=0.25)
    ratio = float(cells[5])
    assert ratio == pytest.approx(estimate_A / LONG_AXIS_A, abs=0.01)
    assert cells[6] == ("yes" if abs(ratio - 1.0) <= 0.15 else "no")
    assert lines[-1] == f"{int(cells[6] == 'yes')} of 1 within ±15% of the truth"


def test_the_table_says_no_beyond_15_percent_and_shows_failures():
    group = DiameterGroup("g", (), Optics(2.0), 100.0)
    results = [
        DiameterResult(group, 3, 114.0, float("nan"), "refined", 1.0),
        DiameterResult(group, 3, 116.0, 4.0, "gap", 1.0),
        DiameterResult(group, 3, float("nan"), float("nan"), "", 1.0, "ValueError: no picks"),
    ]
    text = format_diameter_evaluation(results)
    assert "| g | 3 | 114 | refined | 100 | 1.14 | yes |" in text
    assert "| g | 3 | 116 ± 4 | gap | 100 | 1.16 | no |" in text
    assert "| g | 3 | failed: ValueError: no picks | — | 100 | — | no |" in text
    assert text.endswith("1 of 3 within ±15% of the truth")


def test_the_long_axis_comes_from_the_good_2d_classes_of_elongated_particles():
    """Ellipses 120 x 72 Å picked at a round particle's 100 Å: their good class averages show
    the whole ellipse, so the long axis is theirs, not the diameter's."""
    images = [_dense_ellipses(seed) for seed in range(2)]
    optics = Optics(PIXEL_A)
    fits = [estimate_ctf(image, optics, CtfSearch()) for image in images]
    found = long_axis_from_micrographs(
        images, fits, optics, 100.0, load_class_model(ClassAssessParams())
    )
    assert found is not None and found.n_averages >= 2
    assert found.long_axis_A == found.classes_length_A  # longer than the 100 Å it picked at
    assert found.long_axis_A == pytest.approx(LONG_AXIS_A, rel=0.15)
    assert 1.3 < found.aspect_ratio < 2.0  # the ellipses' 1.67


def test_the_table_gives_the_long_axis_when_asked():
    group = DiameterGroup("g", (), Optics(2.0), 200.0)
    results = [
        DiameterResult(
            group, 3, 140.0, 5.0, "spread_edge", 1.0, long_axis=LongAxis(190, 190, 2.8, 4)
        ),
        DiameterResult(
            group, 3, 150.0, 5.0, "spread_edge", 1.0, long_axis=LongAxis(150, 120, 1.1, 2)
        ),
        DiameterResult(group, 3, 120.0, 5.0, "spread_edge", 1.0),
        DiameterResult(group, 3, 190.0, 5.0, "gap", 1.0, long_axis_error="ValueError: x"),
    ]
    text = format_diameter_evaluation(results, long_axis=True)
    assert text.splitlines()[0].endswith("| long axis Å | long axis / truth | seconds |")
    assert "| 0.70 | no | 190 (2D classes, 2.8:1) | 0.95 | 1 |" in text
    assert "| 0.75 | no | 150 (diameter) | 0.75 | 1 |" in text
    assert "| 0.60 | no | — (no good class) | — | 1 |" in text
    assert "| 0.95 | yes | failed: ValueError: x | — | 1 |" in text
    assert text.endswith(
        "1 of 4 within ±15% of the truth\n"
        "long axis: 1 of 4 within ±15% of the truth (2 without one: no good class or no estimate)"
    )
    assert "long axis" not in format_diameter_evaluation(results)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("path,diameter_A\na.mrc,100\n", "missing column(s) pixel_size_a"),
        ("path,pixel_size_A,diameter_A\na.mrc,x,100\n", "line 2: pixel_size_A 'x' is not > 0"),
        ("path,pixel_size_A,diameter_A\na.mrc,1.0,-5\n", "line 2: diameter_A '-5' is not > 0"),
        (
            "path,pixel_size_A,diameter_A,session\na.mrc,1,100,s\nb.mrc,1,150,s\n",
            "line 3: session 's' has another pixel size or diameter",
        ),
    ],
)
def test_a_bad_csv_is_a_clear_error(tmp_path, content, problem):
    path = tmp_path / "labels.csv"
    path.write_text(content)
    result = CliRunner().invoke(app, ["evaluate", "diameter", str(path)])
    assert result.exit_code == 2
    assert problem in result.output and str(path) in result.output


def test_a_missing_source_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(app, ["evaluate", "diameter", str(tmp_path / "nothing.csv")])
    assert result.exit_code == 2 and "not found" in result.output


def test_a_simulated_folder_gives_each_sessions_good_micrographs_and_true_diameter(tmp_path):
    spec = with_micrographs_per_session(prex1_small(), 3)
    spec = dataclasses.replace(spec, sessions=spec.sessions[4:6])
    simulate_screen(spec, tmp_path / "sim")
    groups = load_diameter_sets([tmp_path / "sim"])
    truth = pd.read_csv(tmp_path / "sim" / "ground_truth.csv").set_index("session")
    assert [g.name for g in groups] == ["gbg_60uM", "gbg_6uM"]
    for group in groups:
        table = pd.read_csv(
            tmp_path / "sim" / "sessions" / group.name / "ground_truth" / "micrographs.csv"
        )
        assert len(group.paths) == (table["verdict"] == "good").sum() > 0
        assert all(p.exists() for p in group.paths)
        assert group.truth_A == truth.loc[group.name, "diameter_A"]
        assert group.optics.pixel_size_A == spec.pixel_size_A


@pytest.mark.skipif(not real_examples(REAL_EXAMPLES_DIR), reason="no shared/real_examples")
def test_the_real_examples_are_grouped_with_their_known_diameters():
    groups = {g.name: g for g in load_diameter_sets(["real-examples"])}
    assert groups["empiar10017"].truth_A == 180.0 and len(groups["empiar10017"].paths) == 12
    assert groups["empiar10017"].optics.pixel_size_A == 1.77
    assert groups["magellon"].truth_A == 120.0 and groups["magellon"].optics.pixel_size_A == 6.32
    image = groups["magellon"].read(groups["magellon"].paths[0])
    assert image.shape == (512, 512) and image.dtype == np.float32
