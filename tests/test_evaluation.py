"""`screen evaluate micrographs` on a small simulated set and on a labels CSV."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from screen.cli import app
from screen.errors import ScreenError
from screen.evaluation import LabelledMicrograph, acquisition_sessions, load_labelled_set
from screen.io.images import read_image
from screen.stages.records import MICROGRAPH_REASONS, Optics

runner = CliRunner()


@pytest.fixture(scope="module")
def simulated(tmp_path_factory, simulate_demo_screen):
    return simulate_demo_screen(tmp_path_factory.mktemp("evaluate") / "sim", 3)


def test_simulated_folder_is_labelled_from_ground_truth(simulated):
    items = load_labelled_set(simulated)
    truth = pd.read_csv(simulated / "ground_truth.csv")
    assert len(items) == truth["n_micrographs"].sum() == 18
    assert sum(i.label == "good" for i in items) == truth["n_good_micrographs"].sum()
    assert all(i.path.exists() and i.optics.pixel_size_A == 2.5 for i in items)
    assert {i.reason for i in items if i.label == "bad"} <= set(MICROGRAPH_REASONS)


def test_evaluate_prints_model_and_baseline_metrics(simulated, tmp_path):
    figure = tmp_path / "fig.png"
    result = runner.invoke(
        app, ["evaluate", "micrographs", str(simulated), "--figure", str(figure), "-q"]
    )
    assert result.exit_code == 0, result.output
    assert "| accuracy |" in result.output and "CTF cutoff" in result.output
    assert "| good called bad |" in result.output and "true reason" in result.output
    assert "or fitted astigmatism > 3000 Å" in result.output
    assert figure.read_bytes()[:4] == b"\x89PNG"


def test_astigmatism_check_is_reported_and_can_be_turned_off(simulated, tmp_path, monkeypatch):
    from screen.stages import assess_micrographs

    figure = str(tmp_path / "fig.png")
    command = ["evaluate", "micrographs", str(simulated), "--figure", figure, "-q"]
    strict = runner.invoke(app, [*command, "--max-astigmatism", "1"])
    assert strict.exit_code == 0, strict.output
    assert "fitted astigmatism > 1 Å" in strict.output
    # No fit of this small set reaches far enough to have measured its astigmatism
    # (screen.stages.ctf.astigmatism_is_confirmed), so nothing is flagged on them ...
    assert "astigmatism check:" not in strict.output
    # ... and were every astigmatism measured, every micrograph P(good) kept would be flagged.
    monkeypatch.setattr(assess_micrographs, "astigmatism_is_confirmed", lambda fit, kV: True)
    strict = runner.invoke(app, [*command, "--max-astigmatism", "1"])
    assert "astigmatism check:" in strict.output and "P(good) alone: accuracy" in strict.output
    assert "| good | 0 |" in strict.output  # no micrograph is called good any more
    off = runner.invoke(app, [*command, "--max-astigmatism", "0"])
    assert off.exit_code == 0, off.output
    assert "fitted astigmatism" not in off.output and "astigmatism check" not in off.output


def test_labels_csv_with_errors_is_refused_with_line_numbers(simulated, tmp_path):
    mic = next((simulated / "sessions" / "ddm" / "micrographs").glob("*.mrc"))
    labels = tmp_path / "labels.csv"
    labels.write_text(f"path,label,pixel_size_A\n{mic},good,2.5\n{mic},maybe,2.5\n{mic},bad,x\n")
    result = runner.invoke(app, ["evaluate", "micrographs", str(labels), "-q"])
    assert result.exit_code == 2
    assert "line 3" in result.output and "line 4" in result.output


def _evaluate_labels_csv(text: str, folder: Path):
    """`screen evaluate micrographs` on a labels CSV of ``text``: its result and its table."""
    labels, table = folder / "labels.csv", folder / "verdicts.csv"
    labels.write_text(text)
    command = ["evaluate", "micrographs", str(labels), "--figure", str(folder / "f.png")]
    result = runner.invoke(app, [*command, "--table", str(table), "-q"])
    assert result.exit_code == 0, result.output
    return result, pd.read_csv(table, keep_default_na=False)


def test_labels_csv_is_evaluated(simulated, tmp_path):
    truth = pd.read_csv(simulated / "sessions" / "ddm" / "ground_truth" / "micrographs.csv")
    rows = [
        f"{simulated / 'sessions' / 'ddm' / p},{v},{r}"
        for p, v, r in zip(truth["path"], truth["verdict"], truth["reason"], strict=True)
    ]
    text = "path,label,reason\n" + "\n".join(rows) + "\nmissing.mrc,bad,empty\n"
    result, verdicts = _evaluate_labels_csv(text, tmp_path)
    assert f"{len(rows)} micrographs" in result.output
    assert "1 unreadable" in result.output and "missing.mrc" in result.output
    # The per-micrograph table holds the verdicts the printed accuracy was computed from.
    assert len(verdicts) == len(rows) and "missing.mrc" not in set(verdicts["path"])
    assert set(verdicts["label"]) <= {"good", "bad"} and set(verdicts["verdict"]) <= {"good", "bad"}
    accuracy = float(np.mean(verdicts["label"] == verdicts["verdict"]))
    assert f"| accuracy | {accuracy:.3f} |" in result.output
    assert (verdicts.loc[verdicts["verdict"] == "good", "reason"] == "").all()
    assert (verdicts.loc[verdicts["verdict"] == "bad", "reason"] != "").all()


def test_a_set_that_names_no_session_is_one_session_per_pixel_size_and_frame(simulated, tmp_path):
    # The same six micrographs said to be recorded at two pixel sizes: two datasets, whose
    # session checks must not compare one's CTF fits, spectra and blobs with the other's.
    truth = pd.read_csv(simulated / "sessions" / "ddm" / "ground_truth" / "micrographs.csv")
    rows = [
        f"{simulated / 'sessions' / 'ddm' / p},{v},{pixel}"
        for pixel in (2.5, 5.0)
        for p, v in zip(truth["path"], truth["verdict"], strict=True)
    ]
    result, verdicts = _evaluate_labels_csv(
        "path,label,pixel_size_A\n" + "\n".join(rows) + "\n", tmp_path
    )
    rows_px, columns_px = read_image(verdicts["path"][0]).data.shape[-2:]
    names = [f"{pixel} Å/px, {columns_px} x {rows_px} px" for pixel in ("2.5", "5")]
    assert list(verdicts["session"]) == [names[0]] * len(truth) + [names[1]] * len(truth)
    assert f"sessions: none named, so one per pixel size and frame shape (2: {names[0]}; " in (
        result.output
    )
    # A named session, or one pixel size and frame shape for all, leaves the set as it is.
    items = [
        LabelledMicrograph(Path("a.mrc"), "good", "good", Optics(1.0), "", (64, 96)),
        LabelledMicrograph(Path("b.mrc"), "good", "good", Optics(1.0), "", (64, 96)),
    ]
    assert acquisition_sessions(items) == items
    other = replace(items[1], frame_px=(96, 64))
    assert [i.session for i in acquisition_sessions([items[0], other])] == [
        "1 Å/px, 96 x 64 px",
        "1 Å/px, 64 x 96 px",
    ]
    named = [replace(items[0], session="grid 1"), other]
    assert acquisition_sessions(named) == named


def test_a_pixel_size_too_small_for_the_field_is_doubted(simulated, tmp_path):
    truth = pd.read_csv(simulated / "sessions" / "ddm" / "ground_truth" / "micrographs.csv")
    paths = [simulated / "sessions" / "ddm" / p for p in truth["path"][:2]]
    # 512 px at 1.5 Å/px: 768 Å, as a 2 x binned copy whose header kept the unbinned size.
    rows = [f"{path},good,{pixel}" for path, pixel in zip(paths, (1.5, 2.5), strict=True)]
    result, _ = _evaluate_labels_csv("path,label,pixel_size_A\n" + "\n".join(rows), tmp_path)
    line = next(x for x in result.output.splitlines() if x.startswith("pixel size:"))
    assert line.startswith("pixel size: 1 micrograph(s) smaller than their pixel size allows")
    assert f"{paths[0].name}: 512 x 512 px at 1.5 Å/px spans 768 Å" in line
    assert paths[1].name not in line


def test_folders_per_label(simulated, tmp_path):
    truth = pd.read_csv(simulated / "sessions" / "ddm" / "ground_truth" / "micrographs.csv")
    for path, verdict, reason in zip(truth["path"], truth["verdict"], truth["reason"], strict=True):
        folder = tmp_path / "labels" / ("good" if verdict == "good" else f"bad/{reason}")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / Path(path).name).symlink_to(simulated / "sessions" / "ddm" / path)
    items = load_labelled_set(tmp_path / "labels")
    assert len(items) == len(truth)
    assert sorted(i.reason for i in items) == sorted(truth["reason"])
    (tmp_path / "labels" / "bad" / "blurry").mkdir()
    (tmp_path / "labels" / "bad" / "blurry" / "x.mrc").write_bytes(b"")
    with pytest.raises(ScreenError, match="'blurry' is not a bad reason"):
        load_labelled_set(tmp_path / "labels")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("", "the file is empty"),
        ("path,label\n", "no micrographs listed"),
        (
            "path,label,pixel_size_A\na.mrc,good,-1.0\n",
            "line 2: pixel_size_A '-1.0' must be a positive",
        ),
        ("path,label\na.mrc,good\n", None),
    ],
)
def test_a_bad_labels_csv_is_a_clear_error(tmp_path, content, problem):
    labels = tmp_path / "labels.csv"
    labels.write_text(content)
    result = runner.invoke(
        app, ["evaluate", "micrographs", str(labels), "--threshold", "2", "--figure", "x.png"]
    )
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    expected = problem or "threshold (--threshold) is 2 but must be in 0–1"
    assert expected in result.output and (problem is None or str(labels) in result.output)


def test_the_network_verdicts_a_sound_ctf_fit_overrules_are_reported(
    simulated, tmp_path, monkeypatch
):
    from dataclasses import replace

    from screen.stages import assess_micrographs

    figure = str(tmp_path / "fig.png")
    command = ["evaluate", "micrographs", str(simulated), "--figure", figure, "-q"]
    # As if every bad verdict were a bad_ctf whose CTF fit reached 10 Å: all kept, and said so.
    monkeypatch.setattr(
        assess_micrographs,
        "check_ctf",
        lambda verdict, fit, params, kV: replace(verdict, verdict="good", reason=None),
    )
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    assert "sound CTF:" in result.output and "network called bad_ctf kept" in result.output
    assert "astigmatism check:" not in result.output  # nothing was called bad by a check


def test_the_ringless_check_is_counted_apart_from_the_astigmatism_check(
    simulated, tmp_path, monkeypatch
):
    from screen.stages import assess_micrographs

    # As if every fit kept by P(good) followed no ring in a sound session: all of them bad CTF,
    # counted by the ring-less check (not by the astigmatism check, which has the same reason).
    def ringless(verdicts, fits, params, kV):
        return [
            replace(v, verdict="bad", reason="bad_ctf") if v.verdict == "good" else v
            for v in verdicts
        ]

    monkeypatch.setattr(assess_micrographs, "ringless_in_sound_session", ringless)
    table = tmp_path / "t.csv"
    command = ["evaluate", "micrographs", str(simulated), "--figure", str(tmp_path / "f.png")]
    result = runner.invoke(app, [*command, "--table", str(table), "-q"])
    assert result.exit_code == 0, result.output
    verdicts = pd.read_csv(table, keep_default_na=False)
    flagged = verdicts["bad_by_ringless_check"]
    assert flagged.any() and (verdicts.loc[flagged, "reason"] == "bad_ctf").all()
    assert not verdicts["bad_by_astigmatism"].any() and "astigmatism check:" not in result.output
    assert f"ring-less check: {int(flagged.sum())} micrographs kept by P(good) called bad CTF" in (
        result.output
    )


# A session check of `screen evaluate micrographs`: its reason, its option with a value loose
# enough to fire on the simulated set, and the module constants that make sessions of three judged.
SESSION_CHECKS = {
    "drift": (
        "--drift-outlier-sigma",
        "1e-6",
        {"DRIFT_MIN_MICROGRAPHS": 2, "DRIFT_MIN_SIGNIFICANCE": 0.0},
    ),
    "empty": (
        "--empty-blob-ratio",
        "0.999",
        {
            "EMPTY_MIN_MICROGRAPHS": 2,
            "EMPTY_MIN_SESSION_BLOBS": 0.0,
            "EMPTY_MAX_TAIL_ASYMMETRY": 100.0,
        },
    ),
}


@pytest.mark.parametrize("reason", sorted(SESSION_CHECKS))
def test_a_session_check_is_reported_and_can_be_turned_off(
    reason, simulated, tmp_path, monkeypatch
):
    from screen.stages import assess_micrographs

    option, loose_value, constants = SESSION_CHECKS[reason]
    figure = str(tmp_path / "fig.png")
    command = ["evaluate", "micrographs", str(simulated), "--figure", figure, "-q"]
    # Sessions of three are too few for a session's median and spread: nothing is judged ...
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    assert f"{reason} check:" not in result.output
    # ... and were they enough, with the check at its loosest, the kept micrographs beyond their
    # session's median would be called bad for the check's reason, and counted.
    for name, value in constants.items():
        monkeypatch.setattr(assess_micrographs, name, value)
    loose = runner.invoke(app, [*command, option, loose_value, "--table", str(tmp_path / "t.csv")])
    assert loose.exit_code == 0, loose.output
    assert f"{reason} check:" in loose.output and f"called {reason}" in loose.output
    table = pd.read_csv(tmp_path / "t.csv")
    column = f"bad_by_{reason}_check"
    assert table[column].any()
    assert (table.loc[table[column], "reason"] == reason).all()
    off = runner.invoke(app, [*command, option, "0"])
    assert off.exit_code == 0, off.output
    assert f"{reason} check:" not in off.output
    refused = runner.invoke(app, [*command, option, "-1"])
    assert refused.exit_code == 2 and option in refused.output, refused.output


def test_a_session_whose_ctf_fits_follow_a_pattern_is_reported(simulated, tmp_path, monkeypatch):
    from screen.stages import ctf

    figure = str(tmp_path / "fig.png")
    command = ["evaluate", "micrographs", str(simulated), "--figure", figure, "-q"]
    result = runner.invoke(app, command)  # the simulated fits scatter as real ones do
    assert result.exit_code == 0, result.output
    assert "CTF pattern:" not in result.output
    monkeypatch.setattr(ctf, "FIXED_PATTERN_MIN_FITS", 2)
    monkeypatch.setattr(ctf, "FIXED_PATTERN_MAX_SPREAD_A", 1e9)
    monkeypatch.setattr(ctf, "FIXED_PATTERN_WINDOW", 10.0)
    table = tmp_path / "t.csv"
    loose = runner.invoke(app, [*command, "--table", str(table)])
    assert loose.exit_code == 0, loose.output
    assert "CTF pattern:" in loose.output and "not Thon rings" in loose.output
    assert (pd.read_csv(table)["ctf_fit_resolution_A"] == ctf.CtfSearch().low_res_A).all()
