"""`screen run` on the simulator's six-condition preset: the report's numbers against ground truth."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from screen.cli import app
from screen.io.mrc import read_mrc
from screen.io.star import read_particles_star
from screen.simulate.presets import prex1_small
from screen.simulate.scenario import with_micrographs_per_session
from screen.simulate.session import simulate_screen

runner = CliRunner()
MICROGRAPHS_PER_SESSION = 10


@pytest.fixture(scope="module")
def screen_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    manifest = simulate_screen(
        with_micrographs_per_session(prex1_small(), MICROGRAPHS_PER_SESSION), root / "sim"
    )
    result = runner.invoke(app, ["run", str(manifest), "--out", str(root / "results"), "-q"])
    assert result.exit_code == 0, result.output
    truth = pd.read_csv(root / "sim" / "ground_truth.csv").set_index("session")
    summaries = {
        s: json.loads((root / "results" / "sessions" / s / "summary.json").read_text())
        for s in truth.index
    }
    return root, truth, summaries


def test_good_micrograph_fraction_within_a_tenth_of_truth(screen_run):
    """On average within 0.1 of truth, and no session off by more than two micrographs of ten.

    Micrograph assessment catches ~87 % of the bad micrographs of this preset at the 0.1 rule
    (`screen evaluate micrographs` on 1,020 of them); with four bad ones in a ten-micrograph
    session, two near-threshold misses in one session happen (P(good) 0.15-0.16 measured).
    """
    _, truth, summaries = screen_run
    errors = []
    for session, summary in summaries.items():
        assert summary["status"] == "ok", summary.get("error")
        measured = summary["good_micrograph_fraction"]
        errors.append(abs(measured - truth.loc[session, "good_fraction"]))
        assert errors[-1] <= 0.2 + 1e-9, session
    assert np.mean(errors) <= 0.1 + 1e-9, errors


def _ranked(summaries):
    return sorted(summaries, key=lambda s: -summaries[s]["good_particles_per_micrograph"])


def test_mostly_bad_grid_ranked_last(screen_run):
    """The lacey grid (3 good micrographs of 10) has the lowest good-micrograph fraction and
    ranks in the bottom two by good particles per micrograph.

    Its neighbour there is the other apo grid (measured 5.4 vs 4.7 good particles per
    micrograph with MicAssess v1: two of lacey's bad micrographs, thick ice and empty, pass at
    P(good) 0.20 and 0.64); the order of the two poorest conditions is not a stable claim on
    ten micrographs each.
    """
    _, _, summaries = screen_run
    assert "apo_lacey" in _ranked(summaries)[-2:], _ranked(summaries)
    fractions = {s: v["good_micrograph_fraction"] for s, v in summaries.items()}
    assert min(fractions, key=fractions.get) == "apo_lacey"


def test_best_condition_ranked_first(screen_run):
    _, _, summaries = screen_run
    assert _ranked(summaries)[0] == "gbg_6uM", _ranked(summaries)


def test_estimated_diameter_within_a_factor_of_truth(screen_run):
    from screen.stages.diameter import CONFIDENT_METHODS

    _, truth, summaries = screen_run
    for session, summary in summaries.items():
        for key in ("diameter_A", "diameter_estimate_A"):  # the one used, the condition's own
            ratio = summary[key] / truth.loc[session, "diameter_A"]
            assert 0.6 <= ratio <= 1.5, (session, key, ratio)
        # Where the diameter used is the fallback's, the run says so and points at the manifest.
        cautioned = any("diameter_A column" in w for w in summary["warnings"])
        fallback = summary["diameter_method"] not in CONFIDENT_METHODS
        assert cautioned == (fallback and summary["diameter_source"] == "estimated"), session


def test_report_long_axis_against_truth(screen_run):
    """The report's long axis is never shorter than the diameter and, on P-Rex1 (140 Å, its good
    averages' objects shorter than that), stays within the diameter's bounds of the truth."""
    from screen.report.context import load_run

    root, truth, summaries = screen_run
    found = {s.name: s.long_axis() for s in load_run(root / "results")}
    assert any(found.values()), found
    for session, axis in found.items():
        if axis is None:  # no good average of an object within 1.5 diameters
            continue
        assert axis.long_axis_A >= summaries[session]["diameter_A"] - 1e-6, session
        assert 0.6 <= axis.long_axis_A / truth.loc[session, "diameter_A"] <= 1.5, session


def test_conditions_are_picked_at_the_runs_common_diameter(screen_run):
    """One sample on six grids: every condition is picked at the median of the conditions'
    factor-free estimates, and the report says so beside the condition's own estimate."""
    from screen.report.context import diameter_text

    _, _, summaries = screen_run
    common = {s["diameter_A"] for s in summaries.values() if s["diameter_source"] == "common"}
    assert len(common) == 1, {k: s["diameter_A"] for k, s in summaries.items()}
    (value,) = common
    contributors = next(
        s["diameter_common_from"] for s in summaries.values() if s["diameter_source"] == "common"
    )
    own = [summaries[c]["diameter_estimate_A"] for c in contributors]
    assert len(own) >= 3 and value == pytest.approx(float(np.median(own)))
    for summary in summaries.values():
        if summary["diameter_source"] == "common":
            assert "common to the run" in diameter_text(summary)


def test_diameter_search_and_2d_pixel_size(screen_run):
    _, _, summaries = screen_run
    for summary in summaries.values():
        assert 3.0 <= summary["pixel_size_2d_A"] <= 4.5
        search = summary["diameter_search"]
        assert len(search) == 5
        # a mask under the particle (0.5 of the diameter picked at) has no good class: cut
        diameter_A = summary["diameter_A"]
        for entry in search:
            if entry["mask_diameter_A"] < 0.6 * diameter_A:
                assert entry["good_particles"] == 0 and entry["labels"]["good"] == 0
            else:
                assert entry["cut_by_mask"] == 0
        most = max(e["good_particles"] for e in search)
        if most == 0:  # no good class at any mask diameter: no best one (issue 11)
            assert summary["best_mask_diameter_A"] is None and summary["good_particles"] == 0
            continue
        best = [e for e in search if e["mask_diameter_A"] == summary["best_mask_diameter_A"]]
        assert len(best) == 1 and best[0]["good_particles"] == most


def test_outputs_are_written_and_readable(screen_run):
    root, _, summaries = screen_run
    results = root / "results"
    assert (results / "report.html").exists() and (results / "report.pdf").read_bytes()[
        :4
    ] == b"%PDF"
    provenance = json.loads((results / "run.json").read_text())
    assert provenance["models"]["micrograph"]["sha256"]
    session = results / "sessions" / "gbg_6uM"
    table = pd.read_csv(session / "micrographs.csv")
    assert len(table) == MICROGRAPHS_PER_SESSION and set(table["status"]) == {"ok"}
    assert {
        "ctf_fit_resolution_A",
        "astigmatism_spread",
        "opaque_fraction",
        "carbon_fraction",
    } <= set(table.columns)
    assert table["carbon_fraction"].between(0.0, 1.0).all()
    # A fit's defocus is a measurement only where it followed Thon rings past the band's 30 Å.
    assert table["ctf_rings_fitted"].equals(table["ctf_fit_resolution_A"] < 30.0)
    assert table["ctf_rings_fitted"].mean() > 0.5, table["ctf_fit_resolution_A"]
    optics, particles = read_particles_star(session / "particles" / "particles.star")
    stack = read_mrc(session / "particles" / "particles.mrcs")
    assert len(particles) == stack.data.shape[0] > 0
    assert {"rlnImageName", "rlnMicrographName", "rlnDefocusU", "rlnCoordinateX"} <= set(particles)
    assert optics is not None and float(optics["rlnImagePixelSize"].iloc[0]) == pytest.approx(
        summaries["gbg_6uM"]["pixel_size_2d_A"], rel=1e-3
    )
    best = summaries["gbg_6uM"]["best_mask_diameter_A"]
    classes = pd.read_csv(session / "classes" / f"d{int(round(best))}A" / "classes.csv")
    assert set(classes["label"]) <= {"good", "clip", "edge", "noise"}
    assert summaries["gbg_6uM"]["verdicts"]


def test_rerun_reuses_the_cache_and_gives_the_same_numbers(screen_run):
    root, _, summaries = screen_run
    manifest = root / "sim" / "manifest.csv"
    result = runner.invoke(
        app, ["run", str(manifest), "--out", str(root / "results"), "-q", "--no-report"]
    )
    assert result.exit_code == 0, result.output
    for session, before in summaries.items():
        after = json.loads((root / "results" / "sessions" / session / "summary.json").read_text())
        for key in (
            "good_micrograph_fraction",
            "picked_particles",
            "good_particles",
            "best_mask_diameter_A",
        ):
            assert after[key] == before[key], (session, key)
        assert not {"ctf", "picking", "classify2d", "assess_micrographs"} & set(
            after["stage_seconds"]
        )
        # The CPU time of the cached work still counts in the condition's CPU time.
        assert after["cpu_seconds"] == pytest.approx(before["cpu_seconds"], rel=1e-3, abs=0.01)
        assert before["cpu_seconds"] > 0


def test_report_is_re_rendered_from_stored_results(screen_run):
    root, _, _ = screen_run
    (root / "results" / "report.html").unlink()
    result = runner.invoke(app, ["report", str(root / "results")])
    assert result.exit_code == 0, result.output
    assert "apo_lacey" in (root / "results" / "report.html").read_text()


def test_one_bad_micrograph_never_kills_the_session(screen_run, tmp_path):
    root, _, summaries = screen_run
    source = root / "sim" / "sessions" / "ddm" / "micrographs"
    folder = tmp_path / "mics"
    folder.mkdir()
    # Links to the screened session's micrographs: a cached result is keyed by the resolved
    # path, size and mtime, so the fixture's cache serves them and only the two bad files
    # are new work.
    for path in source.glob("*.mrc"):
        (folder / path.name).symlink_to(path)
    from screen.io.mrc import write_mrc

    write_mrc(folder / "zz_nan.mrc", np.full((64, 64), np.nan, dtype=np.float32), 2.5)
    (folder / "zz_truncated.mrc").write_bytes((source / "ddm_0002.mrc").read_bytes()[:2000])
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f"session,micrographs,pixel_size_A\nddm,{folder}/*.mrc,2.5\n")
    cache = root / "results" / "sessions" / "ddm" / "cache"
    shutil.copytree(cache, tmp_path / "out" / "sessions" / "ddm" / "cache")
    result = runner.invoke(
        app, ["run", str(manifest), "--out", str(tmp_path / "out"), "-q", "--no-report"]
    )
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "out" / "sessions" / "ddm" / "micrographs.csv").set_index(
        "micrograph"
    )
    assert table.loc["zz_nan", "status"] == "unreadable" and "NaN" in table.loc["zz_nan", "error"]
    assert table.loc["zz_truncated", "status"] == "unreadable"
    summary = json.loads((tmp_path / "out" / "sessions" / "ddm" / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["n_unreadable"] == 2
    assert summary["n_micrographs"] == MICROGRAPHS_PER_SESSION + 2
    for key in ("n_good_micrographs", "picked_particles", "good_particles"):
        assert summary[key] == summaries["ddm"][key], key


def test_a_bad_manifest_is_refused_before_any_work(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("session,micrographs,pixel_size_A\na,nothing/*.mrc,-1\na,nothing/*.mrc,2\n")
    result = runner.invoke(app, ["run", str(manifest), "--out", str(tmp_path / "out"), "-q"])
    assert result.exit_code == 2
    assert "line 2" in result.output and "line 3" in result.output
    assert not (tmp_path / "out").exists()


def _titled(summaries, title):
    from screen.report.verdicts import has_title

    return {s for s, v in summaries.items() if any(has_title(x, title) for x in v["verdicts"])}


def test_best_candidate_verdict_goes_to_the_best_condition(screen_run):
    """The report's verdicts, not only its numbers: the condition that is best by construction
    (gbg_6uM: near-uniform views, most particles) is the one named best candidate, and it is not
    flagged with few views."""
    from screen.report.context import build_context
    from screen.report.verdicts import TITLE_BEST, TITLE_FEW_VIEWS

    root, _, summaries = screen_run
    assert _titled(summaries, TITLE_BEST) == {"gbg_6uM"}, {
        s: v["verdicts"] for s, v in summaries.items()
    }
    assert "gbg_6uM" not in _titled(summaries, TITLE_FEW_VIEWS)
    # The report ranks it first, and ranks every no-go condition below every go one.
    ranking = build_context(root / "results")["ranking"]
    assert ranking[0]["name"] == "gbg_6uM" and ranking[0]["decision"] == "go"
    decisions = [c["decision"] for c in ranking]
    assert decisions == sorted(decisions, key=lambda d: d != "go"), decisions


@pytest.mark.xfail(
    strict=True,
    reason="known defect (issue 12): at this scale (10 micrographs of 512 px, 100-250 picks, 5 "
    "classes) a condition has at most 2 good classes; with ~2,000 picks the good classes are "
    "views (bench/view_flags.py --frame-px 1024), but view_distance puts same-view averages "
    "0.4-1.0 apart, far beyond VIEW_DISTANCE (0.1), and no fixed threshold that groups them "
    "keeps the real EMPIAR-10017 classes apart (bench/README.md), so the flag never fires",
)
def test_strongly_preferred_conditions_with_good_classes_are_flagged(screen_run):
    """apo_quantifoil, ddm and lubrol put 75-85 % of their particles in two views."""
    from screen.report.verdicts import TITLE_FEW_VIEWS

    _, _, summaries = screen_run
    preferred = {"apo_quantifoil", "ddm", "lubrol"}
    with_classes = {s for s in preferred if summaries[s]["good_particles"] > 0}
    assert with_classes and with_classes <= _titled(summaries, TITLE_FEW_VIEWS)
