"""Caching, resume after kill -9, and fault isolation of the pipeline on a one-session screen."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from screen.simulate.presets import prex1_small
from screen.simulate.scenario import with_micrographs_per_session
from screen.simulate.session import simulate_screen

NUMBERS = (
    "n_good_micrographs",
    "picked_particles",
    "good_particles",
    "best_mask_diameter_A",
    "diameter_A",
)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    spec = with_micrographs_per_session(prex1_small(), 6)
    spec = dataclasses.replace(spec, sessions=spec.sessions[5:6])
    return simulate_screen(spec, tmp_path_factory.mktemp("sim") / "sim")


def _run(manifest, out, **kwargs):
    command = [
        sys.executable,
        "-m",
        "screen",
        "run",
        str(manifest),
        "--out",
        str(out),
        "-q",
        "--no-report",
    ]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kwargs)


def _summary(out):
    return json.loads((out / "sessions" / "gbg_6uM" / "summary.json").read_text())


def test_a_run_killed_midway_resumes_without_losing_finished_work(manifest, tmp_path):
    reference = tmp_path / "reference"
    assert _run(manifest, reference).wait(timeout=600) == 0
    killed = tmp_path / "killed"
    process = _run(manifest, killed, start_new_session=True)
    cache = killed / "sessions" / "gbg_6uM" / "cache"
    deadline = time.time() + 300
    while time.time() < deadline and len(list(cache.glob("ctf/*.json"))) < 3:
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    # Results are renamed into place only when complete; a write cut by the kill stays a .tmp.
    finished = {
        p.name: p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file() and p.suffix != ".tmp"
    }
    assert finished, "nothing was cached before the kill"
    assert _run(manifest, killed).wait(timeout=600) == 0
    # Work finished before the kill was kept, not redone.
    for path in cache.rglob("*"):
        if path.name in finished:
            assert path.stat().st_mtime_ns == finished[path.name], path
    after, before = _summary(killed), _summary(reference)
    for key in NUMBERS:
        assert after[key] == before[key], key


def test_movies_are_motion_corrected_then_screened(tmp_path):
    spec = with_micrographs_per_session(prex1_small(), 3)
    spec = dataclasses.replace(spec, sessions=spec.sessions[5:6], movies=True, n_frames=4)
    manifest = simulate_screen(spec, tmp_path / "sim")
    out = tmp_path / "out"
    assert _run(manifest, out).wait(timeout=600) == 0
    session = out / "sessions" / "gbg_6uM"
    corrected = sorted((session / "motion_corrected").glob("*.mrc"))
    assert len(corrected) == 3
    summary = _summary(out)
    assert summary["status"] == "ok" and summary["n_micrographs"] == 3
    assert "motion" in summary["stage_seconds"]
