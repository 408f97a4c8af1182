import errno
import json
import os
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from screen.cli import app
from screen.io.mrc import read_mrc, write_mrc
from screen.manifest import read_manifest
from screen.store.lock import results_lock

runner = CliRunner()

TINY_SCENARIO = """
seed = 5
frame_px = [192, 192]
pixel_size_A = 3.0
[[sessions]]
name = "apo"
n_micrographs = 4
bad_mix = { empty = 0.25, carbon = 0.25 }
metadata = { grid = "Quantifoil R1.2/1.3", additive = "none" }
  [[sessions.species]]
  structure = { name = "p1", diameter_A = 120, mass_kDa = 150, symmetry = "C2" }
[[sessions]]
name = "plus_ddm"
n_micrographs = 3
metadata = { grid = "Quantifoil R1.2/1.3", additive = "DDM" }
  [[sessions.species]]
  structure = { name = "p1", diameter_A = 120, mass_kDa = 150, symmetry = "C2" }
  orientation = { preferred_fraction = 0.9, preferred_views = [[90, 0]], spread_deg = 8 }
"""


def test_help_is_fast_and_lists_commands():
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "screen", "--help"], capture_output=True, text=True, check=True
    )
    assert "simulate" in result.stdout and "gallery" in result.stdout
    assert time.perf_counter() - start < 5.0  # generous: no TensorFlow at import
    assert (
        "tensorflow"
        not in subprocess.run(
            [sys.executable, "-c", "import screen.cli, sys; print(sorted(sys.modules))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )


def test_simulate_from_scenario_writes_a_manifest_screen_accepts(tmp_path):
    scenario = tmp_path / "tiny.toml"
    scenario.write_text(TINY_SCENARIO)
    out = tmp_path / "sim"
    result = runner.invoke(app, ["simulate", "--scenario", str(scenario), "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    manifest = read_manifest(out / "manifest.csv")
    assert [s.session for s in manifest.sessions] == ["apo", "plus_ddm"]
    assert [len(s.micrograph_paths) for s in manifest.sessions] == [4, 3]
    assert manifest.sessions[1].metadata["additive"] == "DDM"
    image = read_mrc(manifest.sessions[0].micrograph_paths[0])
    assert image.data.shape == (192, 192)
    assert abs(image.pixel_size_A - 3.0) < 1e-4
    truth = pd.read_csv(out / "sessions" / "apo" / "ground_truth" / "micrographs.csv")
    assert sorted(truth["reason"]) == ["carbon", "empty", "good", "good"]
    summary = json.loads(
        (out / "sessions" / "plus_ddm" / "ground_truth" / "session.json").read_text()
    )
    assert summary["species"][0]["orientation"]["kind"] == "preferred"


def test_simulate_overrides_preset_size_and_count(tmp_path):
    out = tmp_path / "sim"
    result = runner.invoke(
        app,
        [
            "simulate",
            "--preset",
            "prex1-small",
            "--micrographs",
            "1",
            "--frame",
            "160x128",
            "--pixel-size",
            "4",
            "--out",
            str(out),
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    truth = pd.read_csv(out / "ground_truth.csv")
    assert len(truth) == 6 and (truth["n_micrographs"] == 1).all()
    image = read_mrc(next((out / "sessions" / "ddm" / "micrographs").glob("*.mrc")))
    assert image.data.shape == (128, 160)


def test_simulate_refuses_to_mix_with_an_earlier_screening(tmp_path):
    out = tmp_path / "sim"
    args = ["simulate", "--preset", "prex1-small", "--frame", "192x192", "--out", str(out), "-q"]
    assert runner.invoke(app, [*args, "--micrographs", "2"]).exit_code == 0
    result = runner.invoke(app, [*args, "--micrographs", "1"])
    assert result.exit_code == 2 and "--overwrite" in result.output
    result = runner.invoke(app, [*args, "--micrographs", "1", "--overwrite"])
    assert result.exit_code == 0, result.output
    assert len(list((out / "sessions" / "ddm" / "micrographs").glob("*.mrc"))) == 1
    assert len(read_manifest(out / "manifest.csv").sessions[0].micrograph_paths) == 1


def test_movies_with_one_frame_and_refused_zero_frames(tmp_path):
    args = ["simulate", "--preset", "prex1-small", "--frame", "192x192", "--micrographs", "1", "-q"]
    result = runner.invoke(app, [*args, "--movies", "--frames", "1", "--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "a").glob("sessions/*/movies/*.tif"))) == 6
    result = runner.invoke(app, [*args, "--movies", "--frames", "0", "--out", str(tmp_path / "b")])
    assert result.exit_code == 2 and "n_frames 0 must be at least 1" in result.output


def test_simulate_refuses_bad_input_with_a_clear_message(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('preset = "prex1-small"\npixel_size_A = 50.0\n')
    result = runner.invoke(app, ["simulate", "--scenario", str(bad), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "pixel_size_A 50.0 is not in 0.3–20 Å" in result.output
    result = runner.invoke(app, ["simulate", "--preset", "nope", "--out", str(tmp_path / "o")])
    assert result.exit_code != 0 and "unknown preset 'nope'" in result.output
    result = runner.invoke(app, ["simulate", "--frame", "big", "--out", str(tmp_path / "o")])
    assert result.exit_code != 0 and "WIDTHxHEIGHT" in result.output
    assert not (tmp_path / "o" / "manifest.csv").exists()


def test_gallery_draws_every_reason(tmp_path):
    out = tmp_path / "sim"
    result = runner.invoke(
        app,
        [
            "simulate",
            "--preset",
            "gallery",
            "--micrographs",
            "9",
            "--frame",
            "320x320",
            "--out",
            str(out),
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    png = tmp_path / "gallery.png"
    result = runner.invoke(app, ["gallery", str(out), "--out", str(png)])
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 50_000
    result = runner.invoke(app, ["gallery", str(tmp_path), "--out", str(png)])
    assert result.exit_code == 2 and "screen simulate" in result.output


def _refusal(result, *phrases: str) -> None:
    """A one-line error naming what is wrong, a non-zero exit and no traceback."""
    assert result.exit_code != 0 and isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    for phrase in phrases:
        assert phrase in result.output, result.output


OUT_OF_RANGE = [
    ("--threshold", "5", "threshold (--threshold) is 5 but must be in 0–1"),
    ("--max-astigmatism", "-1", "--max-astigmatism"),
    ("--max-opaque", "1.5", "--max-opaque"),
    ("--max-carbon", "-0.5", "max_carbon_fraction (--max-carbon) is -0.5 but must be in 0–1"),
    (
        "--max-crystalline",
        "2",
        "max_crystalline_fraction (--max-crystalline) is 2 but must be in 0–1",
    ),
    (
        "--thick-ice-transmission",
        "1",
        "thick_ice_transmission (--thick-ice-transmission) is 1 but must be at least 0 and under 1",
    ),
    (
        "--session-reason-share",
        "2",
        "session_reason_share (--session-reason-share) is 2 but must be in 0–1",
    ),
    (
        "--drift-outlier-sigma",
        "-1",
        "drift_outlier_sigma (--drift-outlier-sigma) is -1 but must be 0 (off)",
    ),
]


def test_run_refuses_options_out_of_range_before_any_work(screened, tmp_path):
    out = tmp_path / "out"
    for option, value, message in OUT_OF_RANGE:
        result = runner.invoke(
            app, ["run", str(screened.manifest), "--out", str(out), option, value]
        )
        _refusal(result, message)
    assert not out.exists()


def test_run_says_why_it_cannot_write_the_output_folder(screened, tmp_path):
    a_file = tmp_path / "results.txt"
    a_file.write_text("")
    result = runner.invoke(app, ["run", str(screened.manifest), "--out", str(a_file), "-q"])
    _refusal(result, f"{a_file} is a file, not a folder")
    result = runner.invoke(app, ["run", str(screened.manifest), "--out", "/proc/screen-out", "-q"])
    _refusal(result, "cannot make the results folder", "/proc")


def test_run_says_when_the_disk_is_full(screened, tmp_path, monkeypatch):
    out = screened.copy_results(tmp_path / "out")

    def disk_full(source, target):
        raise OSError(errno.ENOSPC, "No space left on device", str(source))

    monkeypatch.setattr("screen.io.atomic.os.replace", disk_full)
    result = runner.invoke(app, ["run", str(screened.manifest), "--out", str(out), "-q"])
    _refusal(result, "No space left on device", "the disk is full", str(out))


def test_run_refuses_a_folder_another_run_is_using(screened, tmp_path):
    out = screened.copy_results(tmp_path / "out")
    with results_lock(out):
        result = runner.invoke(app, ["run", str(screened.manifest), "--out", str(out), "-q"])
    _refusal(result, f"another screen run is using {out} (pid {os.getpid()})")


def test_run_exits_non_zero_when_every_session_failed(tmp_path, write_unreadable_session):
    manifest = write_unreadable_session(tmp_path / "broken", "broken")
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(manifest), "--out", str(out), "-q", "--no-report"])
    assert result.exit_code == 1, result.output
    assert "every session failed" in result.output and "none of the 2 micrographs" in result.output


def test_run_warns_about_likely_mistakes(screened, tmp_path):
    """A misspelled column, a header pixel size unlike the manifest's, a stack as micrograph."""
    source = next((screened.manifest.parent / "sessions").glob("*/micrographs/*.mrc"))
    frame = read_mrc(source).data
    rng = np.random.default_rng(0)
    stack = np.stack([frame + rng.normal(0, 1, frame.shape) for _ in range(2)]).astype(np.float32)
    write_mrc(tmp_path / "stack.mrc", stack, 1.0)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("session,micrographs,pixel_size_A,voltge_kV\nstacked,stack.mrc,2.5,200\n")
    out = tmp_path / "out"
    # Every micrograph bad (P(good) < 1): no picking or 2D, so the run is quick.
    args = ["run", str(manifest), "--out", str(out), "-q", "--no-report", "--threshold", "1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "column 'voltge_kV': did you mean 'voltage_kV'?" in output
    stack_path = tmp_path / "stack.mrc"
    assert f"{stack_path}: the header gives 1 Å/px but the manifest (line 2) 2.5 Å/px" in output
    assert f"{stack_path}: a stack of 2 frames in the micrographs column is summed" in output
    summary = json.loads((out / "sessions" / "stacked" / "summary.json").read_text())
    assert len(summary["warnings"]) == 2


def test_run_records_its_sessions_and_old_runs_can_be_imported(screened, tmp_path):
    from screen.store.database import open_store, recorded_sessions

    out, db = screened.copy_results(tmp_path / "out"), tmp_path / "db.sqlite"
    args = ["run", str(screened.manifest), "--out", str(out), "-q", "--no-report"]
    result = runner.invoke(app, [*args, "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert f"database: 1 session(s) recorded in {db}" in result.output
    with open_store(db) as conn:
        (row,) = recorded_sessions(conn)
    run = json.loads((out / "run.json").read_text())
    assert row["session"] == screened.session and row["run_date"] == run["created"]
    assert row["good_particles"] == row["summary"]["good_particles"]
    result = runner.invoke(
        app, ["store", "import", str(out), str(screened.results), "--db", str(db)]
    )
    assert result.exit_code == 0, result.output
    assert f"{out}: 0 session(s) recorded (already recorded)" in result.output
    assert f"{screened.results}: 1 session(s) recorded" in result.output
    result = runner.invoke(app, ["store", "info", "--db", str(db)])
    assert f"{db}: schema version 2, 2 run(s), 2 session(s)" in result.output
    # a database that cannot be written: the run still succeeds and says how to record it later
    result = runner.invoke(app, [*args, "--db", "/proc/screen.sqlite"])
    assert result.exit_code == 0, result.output
    assert "not recorded in the results database" in result.output
    assert f"screen store import {out}" in " ".join(result.output.split())


@pytest.mark.parametrize(
    ("option", "setting", "default"),
    [
        # turns on `Classify2DParams.noise_corrected` (off by default)
        ("--noise-corrected-2d", lambda config: config.classify.noise_corrected, False),
        # by default conditions are picked at the run's common diameter; the option turns it off
        ("--per-condition-diameter", lambda config: config.common_diameter, True),
        # a contaminated call is seen again on the flattened field unless turned off
        ("--no-gradient-second-look", lambda config: config.assess.gradient_second_look, True),
    ],
    ids=["noise_corrected_2d", "per_condition_diameter", "no_gradient_second_look"],
)
def test_run_option_reaches_the_config(screened, tmp_path, monkeypatch, option, setting, default):
    seen = []

    def fake_run_screen(rows, out, config, **kwargs):
        seen.append(setting(config))
        return []

    monkeypatch.setattr("screen.pipeline.run_screen", fake_run_screen)
    for extra in ([], [option]):
        result = runner.invoke(
            app, ["run", str(screened.manifest), "--out", str(tmp_path / "o"), "-q", *extra]
        )
        assert result.exit_code == 0, result.output
    assert seen == [default, not default]


def test_tensorflow_log_lines_are_kept_out_of_the_terminal_unless_asked_for(monkeypatch):
    import logging

    from screen import cli

    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    cli._quiet_tensorflow()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")  # the user's choice wins
    cli._quiet_tensorflow()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("tensorflow", logging.WARNING, __file__, 1, message, None, None)

    tf_logger = logging.getLogger("tensorflow")
    assert tf_logger.filters.count(cli._retracing_note) == 1  # added once
    assert not tf_logger.filter(
        record("5 out of the last 5 calls ... triggered tf.function retracing")
    )
    assert tf_logger.filter(record("something else"))


def test_empty_blob_ratio_help_names_the_session_floor_in_use():
    """The help quotes `EMPTY_MIN_SESSION_BLOBS` as a literal (the CLI avoids importing stages)."""
    from typing import get_args

    from screen.cli import EmptyBlobRatio
    from screen.stages.assess_micrographs import EMPTY_MIN_SESSION_BLOBS

    help_text = get_args(EmptyBlobRatio)[1].help
    assert f"median one has {EMPTY_MIN_SESSION_BLOBS:g} such blobs" in help_text
