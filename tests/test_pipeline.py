"""Caching, resume after kill -9, and fault isolation of the pipeline on a one-session screen."""

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from screen import pipeline
from screen.config import RunConfig
from screen.errors import RunError, ScreenError
from screen.io.mrc import read_mrc
from screen.io.star import read_star
from screen.manifest import read_manifest
from screen.pipeline import assess_cache_version, run_screen
from screen.report.context import build_context
from screen.stages import assess_micrographs
from screen.stages.assess_micrographs import MicrographAssessParams
from screen.stages.records import Optics

NUMBERS = (
    "n_good_micrographs",
    "picked_particles",
    "good_particles",
    "best_mask_diameter_A",
    "diameter_A",
    "diameter_uncertainty_A",
    "diameter_method",
)


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


def _rerun(screened, out, config: RunConfig | None = None) -> dict:
    return run_screen(read_manifest(screened.manifest), out, config, render=False)[0]


def test_a_run_killed_midway_resumes_without_losing_finished_work(screened, tmp_path):
    # The reference is the shared uninterrupted run of the same manifest (`screened`); only the
    # killed run needs its own process. The resumed run takes the same lock and cache in-process.
    killed = tmp_path / "killed"
    process = _run(screened.manifest, killed, start_new_session=True)
    cache = killed / "sessions" / screened.session / "cache"
    deadline = time.time() + 300
    while time.time() < deadline and len(list(cache.glob("ctf/*.json"))) < 2:
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    # Results are renamed into place only when complete; a write cut by the kill stays a .tmp.
    finished = {
        p.name: p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file() and p.suffix != ".tmp"
    }
    assert finished, "nothing was cached before the kill"
    after = _rerun(screened, killed)
    assert after["status"] == "ok"
    # Work finished before the kill was kept, not redone.
    for path in cache.rglob("*"):
        if path.name in finished:
            assert path.stat().st_mtime_ns == finished[path.name], path
    before = _summary(screened.results)
    for key in NUMBERS:
        assert after[key] == before[key], key


def test_movies_are_motion_corrected_then_screened(tmp_path, simulate_repeated_names):
    # Two of the movies share a file name in two folders: each keeps its own aligned sum.
    manifest = simulate_repeated_names(tmp_path, movies=True)
    out = tmp_path / "out"
    run_screen(read_manifest(manifest), out, render=False)
    session = out / "sessions" / "gbg_6uM"
    corrected = sorted((session / "motion_corrected").glob("*.mrc"))
    assert len(corrected) == 3
    sums = [read_mrc(path).data for path in corrected]
    assert not np.array_equal(sums[0], sums[1]) and not np.array_equal(sums[0], sums[2])
    summary = _summary(out)
    assert summary["status"] == "ok" and summary["n_micrographs"] == 3
    assert "motion" in summary["stage_seconds"]


def test_micrographs_sharing_a_file_name_keep_their_own_results(screened):
    session = screened.results / "sessions" / screened.session
    table = pd.read_csv(session / "micrographs.csv", keep_default_na=False)
    assert len(table) == 3 and table["micrograph"].is_unique
    assert sorted(table["micrograph"].str.startswith("gbg_6uM_0001_")) == [False, True, True]
    good = table[table["verdict"] == "good"]
    assert len(good) >= 2
    for row in good.itertuples():
        picks = read_star(session / "picks" / f"{row.micrograph}.star")[""]
        assert len(picks) == row.n_picks > 0


def test_outputs_are_rebuilt_from_the_cache_and_stale_ones_do_not_stay(screened, tmp_path):
    out = screened.copy_results(tmp_path / "out")
    session = out / "sessions" / screened.session
    shutil.rmtree(session / "picks")
    before = _summary(screened.results)
    after = _rerun(screened, out)
    assert after["stage_seconds"] == {}, "nothing should have been recomputed"
    assert after["picked_particles"] == before["picked_particles"] > 0
    assert len(list((session / "picks").glob("*.star"))) == after["n_kept_micrographs"]
    # Particles are written exactly when some are good. On these three micrographs the
    # diameter comes from the calibrated fallback, which swung between 130 Å (52 good
    # particles) and 111 Å (none) on CTF fits that differ by 0.01 % (2026-12-05, session 17).
    has_particles = (session / "particles" / "particles.star").is_file()
    assert has_particles == (after["good_particles"] > 0)
    # Every micrograph bad (P(good) under a threshold of 1): no picks, no particles left behind.
    strict = dataclasses.replace(
        RunConfig(), assess=dataclasses.replace(MicrographAssessParams(), threshold=1.0)
    )
    after = _rerun(screened, out, strict)
    assert after["n_good_micrographs"] == 0 and after["good_particles"] == 0
    assert not (session / "particles").exists()
    assert not list(session.glob("picks/*.star")) and not list(session.glob("classes/*"))


def test_a_cache_entry_of_the_wrong_shape_is_a_miss(screened, tmp_path):
    out = screened.copy_results(tmp_path / "out")
    cache = out / "sessions" / screened.session / "cache"
    for path in cache.glob("ctf/*.json"):
        path.write_text(json.dumps({"defocus_A": 1.0}))
    picks = sorted(cache.glob("picking/*.npz"))[0]
    np.savez(picks, x_px=np.arange(3.0))
    after, before = _rerun(screened, out), _summary(screened.results)
    assert after["status"] == "ok"
    assert set(after["stage_seconds"]) == {"ctf", "picking"}
    for key in NUMBERS:
        assert after[key] == before[key], key


def test_the_assessment_cache_key_holds_the_pixel_size():
    config = RunConfig()
    assert assess_cache_version(config, Optics(1.0)) != assess_cache_version(config, Optics(1.5))
    astigmatism = dataclasses.replace(config.assess, max_astigmatism_A=500.0)
    assert assess_cache_version(config, Optics(1.0)) == assess_cache_version(
        dataclasses.replace(config, assess=astigmatism), Optics(1.0)
    )


def test_a_session_with_no_readable_micrograph_fails_and_says_which(
    screened, tmp_path, write_unreadable_session
):
    # Run into a folder that holds an earlier run of another manifest: the report shows this one.
    out = screened.copy_results(tmp_path / "out")
    manifest = write_unreadable_session(tmp_path / "broken", "broken")
    summary = run_screen(read_manifest(manifest), out, render=False)[0]
    assert summary["status"] == "failed" and summary["verdicts"] == []
    assert "none of the 2 micrographs could be used (2 unreadable)" in summary["error"]
    context = build_context(out)
    assert [c["name"] for c in context["conditions"]] == ["broken"]
    unused = context["conditions"][0]["unused_micrographs"]
    assert sorted(m["micrograph"] for m in unused) == ["text", "truncated"]
    assert all(m["status"] == "unreadable" and "MRC" in m["error"] for m in unused)


def test_a_model_that_cannot_be_loaded_stops_the_run_after_one_try(screened, tmp_path, monkeypatch):
    calls = []

    def broken(params):
        calls.append(params.model)
        raise OSError("truncated weights")

    monkeypatch.setattr(assess_micrographs, "load_micrograph_model", broken)
    manifest = tmp_path / "manifest.csv"
    folder = screened.manifest.parent / "sessions" / screened.session / "micrographs"
    manifest.write_text(
        f"session,micrographs,pixel_size_A\na,{folder}/*.mrc,2.5\nb,{folder}/*.mrc,2.5\n"
    )
    with pytest.raises(RunError, match="model 'micassess_small_v2' cannot be loaded"):
        run_screen(read_manifest(manifest), tmp_path / "out", render=False)
    assert calls == ["micassess_small_v2"]


def test_options_out_of_range_stop_the_run_before_any_work(screened, tmp_path):
    config = dataclasses.replace(
        RunConfig(), assess=MicrographAssessParams(threshold=5.0, max_astigmatism_A=-1.0)
    )
    with pytest.raises(RunError, match=r"threshold \(--threshold\) is 5 but must be in 0–1"):
        run_screen(read_manifest(screened.manifest), tmp_path / "out", config, render=False)
    weights = dataclasses.replace(RunConfig().assess, model="no_such_model")
    with pytest.raises(ScreenError, match="model 'no_such_model' not found"):
        run_screen(
            read_manifest(screened.manifest),
            tmp_path / "out",
            dataclasses.replace(RunConfig(), assess=weights),
            render=False,
        )
    assert not (tmp_path / "out").exists()


def test_no_good_particles_means_no_best_mask_diameter(screened, tmp_path, monkeypatch):
    assess = pipeline._assess

    def all_noise(*args):
        verdicts = assess(*args)
        return dataclasses.replace(verdicts, labels=("noise",) * len(verdicts.labels))

    monkeypatch.setattr(pipeline, "_assess", all_noise)
    summary = _rerun(screened, screened.copy_results(tmp_path / "out"))
    assert summary["status"] == "ok" and summary["good_particles"] == 0
    assert summary["diameter_search"] and summary["best_mask_diameter_A"] is None
    assert not any("Best candidate" in v for v in summary["verdicts"])


def test_a_diameter_in_the_manifest_replaces_the_estimate(screened, tmp_path):
    """A user's ``diameter_A`` column: no estimation, picking and 2D at that diameter."""
    out = screened.copy_results(tmp_path / "out")
    table = pd.read_csv(screened.manifest)
    source = table.columns[1]
    table[source] = [str((screened.manifest.parent / cell).resolve()) for cell in table[source]]
    estimated = _summary(screened.results)["diameter_A"]
    table["particle_diameter"] = round(1.3 * estimated, 1)
    manifest = tmp_path / "manifest.csv"
    table.to_csv(manifest, index=False)
    (row,) = read_manifest(manifest).sessions
    assert row.diameter_A == round(1.3 * estimated, 1)
    after = run_screen(read_manifest(manifest), out, None, render=False)[0]
    assert after["diameter_A"] == row.diameter_A and after["diameter_source"] == "manifest"
    assert "diameter" not in after["stage_seconds"] and "picking" in after["stage_seconds"]
    assert after["diameter_method"] == "manifest" and after["diameter_uncertainty_A"] is None
    estimated = _summary(screened.results)
    assert estimated["diameter_source"] == "estimated"
    assert estimated["diameter_method"] in ("gap", "refined", "scale_space", "canny")
    assert "diameter_uncertainty_A" in estimated


def test_ctf_fits_that_follow_a_processing_pattern_are_not_reported_as_rings(
    screened, tmp_path, monkeypatch
):
    """Were the session's fits to agree as a denoiser's pattern does (here: any agreement, on a
    session of three), none is reported as fitted rings and the run says why."""
    from screen.stages import ctf

    monkeypatch.setattr(ctf, "FIXED_PATTERN_MIN_FITS", 2)
    monkeypatch.setattr(ctf, "FIXED_PATTERN_MAX_SPREAD_A", 1e9)
    monkeypatch.setattr(ctf, "FIXED_PATTERN_WINDOW", 10.0)
    out = screened.copy_results(tmp_path / "out")
    before = pd.read_csv(out / "sessions" / "gbg_6uM" / "micrographs.csv")
    assert before["ctf_rings_fitted"].sum() >= 2
    summary = _rerun(screened, out)
    assert "not Thon rings" in summary["micrograph_domain_warning"]
    table = pd.read_csv(out / "sessions" / "gbg_6uM" / "micrographs.csv")
    assert not table["ctf_rings_fitted"].any()
    assert np.allclose(table["defocus_u_um"], before["defocus_u_um"])  # as fitted


def test_micrographs_without_a_measurable_ctf_go_on_and_the_run_says_so(
    screened, tmp_path, monkeypatch
):
    """A session binned too far for Thon rings (here every fit says so) keeps its micrographs:
    judged on the image, picked without a phase flip, the reason in micrographs.csv and a
    warning; before, each was a failed micrograph and the session died. The reason is cached."""
    from screen.stages import ctf

    def not_measurable(image, optics, params):
        raise ctf.CtfNotMeasurable("fitting band 30-32.2 Å is empty at a pixel size of 12.9 Å")

    monkeypatch.setattr(ctf, "estimate_ctf", not_measurable)
    out = tmp_path / "out"
    summary = run_screen(read_manifest(screened.manifest), out, render=False)[0]
    table = pd.read_csv(out / "sessions" / "gbg_6uM" / "micrographs.csv")
    assert (table["status"] == "ok").all() and table["defocus_u_um"].isna().all()
    assert table["ctf_note"].str.contains("empty at a pixel size of 12.9").all()
    assert summary["n_good_micrographs"] >= 1 and summary["picked_particles"] > 0
    assert (
        f"CTF: not measurable on {len(table)} of {len(table)}"
        in summary["micrograph_domain_warning"]
    )

    # Cached: a rerun does not try again (a second try would fail the micrographs here).
    def tried_again(image, optics, params):
        raise RuntimeError("the CTF of a not-measurable micrograph was estimated again")

    monkeypatch.setattr(ctf, "estimate_ctf", tried_again)
    again = _rerun(screened, out)
    table = pd.read_csv(out / "sessions" / "gbg_6uM" / "micrographs.csv")
    assert (table["status"] == "ok").all() and table["ctf_note"].str.contains("12.9").all()
    assert again["good_particles"] == summary["good_particles"]


def test_a_failing_mask_loses_none_of_the_other_classifications(screened, tmp_path, monkeypatch):
    """Masks are classified two at a time; one that fails leaves the others cached, and the
    session's error names it. A second run computes only the failed one."""
    from screen.stages import classify2d

    real = classify2d.classify_2d
    failing = min(
        float(r["mask_diameter_A"]) for r in _summary(screened.results)["diameter_search"]
    )

    def flaky(stack, mask_diameter_A, params):
        if mask_diameter_A == failing:
            raise ScreenError(f"classification at {mask_diameter_A:g} Å failed (test)")
        return real(stack, mask_diameter_A, params)

    monkeypatch.setattr(classify2d, "classify_2d", flaky)
    out = tmp_path / "out"
    first = _rerun(screened, out)
    assert first["status"] != "ok" and "failed (test)" in str(first["error"])
    cache = out / "sessions" / screened.session / "cache" / "classify2d"
    n_masks = len(_summary(screened.results)["diameter_search"])
    assert len(list(cache.glob("*.npz"))) == n_masks - 1
    assert not list(cache.glob(f"d{int(failing)}.*.npz"))
    calls = []
    monkeypatch.setattr(
        classify2d, "classify_2d", lambda *args: calls.append(args[1]) or real(*args)
    )
    again = _rerun(screened, out)
    assert again["status"] == "ok" and calls == [failing]
    before = _summary(screened.results)
    for key in NUMBERS:
        assert again[key] == before[key], key


def test_a_micrograph_whose_extraction_fails_keeps_its_picks(screened, tmp_path, monkeypatch):
    """Micrographs are picked and extracted in worker threads; one whose extraction fails is a
    failed micrograph with its picks cached and written, the others go on, and a second run
    extracts only it (its picks reused)."""
    import threading

    from screen.stages import extraction, picking

    real_extract, real_pick = extraction.extract_particles, picking.pick_particles
    lock, calls = threading.Lock(), []

    def first_fails(*args):
        with lock:
            calls.append(1)
            first = len(calls) == 1
        if first:
            raise ScreenError("extraction failed (test)")
        return real_extract(*args)

    monkeypatch.setattr(extraction, "extract_particles", first_fails)
    out = tmp_path / "out"
    first = _rerun(screened, out)
    table = pd.read_csv(out / "sessions" / screened.session / "micrographs.csv")
    failed = table[table["status"] == "failed"]
    assert len(failed) == 1 and "extraction failed (test)" in failed["error"].iloc[0]
    assert first["picked_particles"] > 0 and first["n_good_micrographs"] >= 2
    name = failed["micrograph"].iloc[0]
    picks_dir = out / "sessions" / screened.session / "picks"
    assert (picks_dir / f"{name}.star").exists()

    picked, extracted = [], []
    monkeypatch.setattr(
        picking, "pick_particles", lambda *args: picked.append(1) or real_pick(*args)
    )
    monkeypatch.setattr(
        extraction, "extract_particles", lambda *args: extracted.append(1) or real_extract(*args)
    )
    again = _rerun(screened, out)
    assert picked == [] and extracted == [1]
    before = _summary(screened.results)
    for key in NUMBERS:
        assert again[key] == before[key], key
