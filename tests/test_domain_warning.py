"""A session of micrographs unlike anything the assessment was trained on must not be lost silently."""

import json

import numpy as np
import pandas as pd
import pytest
from skimage import data
from skimage.transform import resize
from typer.testing import CliRunner

from screen.cli import app
from screen.io.mrc import write_mrc

runner = CliRunner()


@pytest.fixture(scope="module")
def texture_manifest(tmp_path_factory):
    """Four photographs of textures (brick, grass, gravel, a camera man) as 'micrographs'."""
    folder = tmp_path_factory.mktemp("textures")
    for name in ("brick", "grass", "gravel", "camera"):
        image = resize(getattr(data, name)().astype(np.float32), (384, 384), anti_aliasing=True)
        write_mrc(folder / f"{name}.mrc", (image + 10.0).astype(np.float32), pixel_size_A=2.0)
    manifest = folder / "manifest.csv"
    manifest.write_text("session,micrographs,pixel_size_A\ntextures,*.mrc,2.0\n")
    return manifest


def test_a_session_of_textures_gets_the_domain_warning(texture_manifest, tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(texture_manifest), "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "sessions" / "textures" / "summary.json").read_text())
    warning = summary["micrograph_domain_warning"]
    assert warning and "outside its trained domain" in warning
    assert "of 4 micrographs called bad" in warning
    # The session was assessed again with the domain-randomised model, whose verdicts are used.
    assert summary["micrograph_model"] == "micassess_small_v5"
    assert "Assessed again with micassess_small_v5" in warning
    table = (out / "sessions" / "textures" / "micrographs.csv").read_text()
    assert table.count("\n") == 5  # header + 4 micrographs, each once
    assert "WARNING textures" in result.output  # loud in the terminal...
    html = (out / "report.html").read_text()
    assert "outside its trained domain" in html and "domain-warning" in html  # ...and the report
    # The escape: every readable micrograph goes on to picking, verdicts unchanged.
    kept = tmp_path / "kept"
    result = runner.invoke(
        app,
        [
            "run",
            str(texture_manifest),
            "--out",
            str(kept),
            "-q",
            "--keep-all-micrographs",
            "--no-report",
        ],
    )
    assert result.exit_code == 0, result.output
    again = json.loads((kept / "sessions" / "textures" / "summary.json").read_text())
    assert again["kept_all_micrographs"] is True
    assert again["n_kept_micrographs"] == 4  # all went on; the verdicts are the first run's
    assert again["n_good_micrographs"] == summary["n_good_micrographs"]
    assert again["micrograph_domain_warning"] == warning


def test_no_domain_fallback_keeps_the_first_models_verdicts(texture_manifest, tmp_path):
    out = tmp_path / "first"
    args = ["run", str(texture_manifest), "--out", str(out), "-q", "--no-report"]
    result = runner.invoke(app, [*args, "--no-domain-fallback"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "sessions" / "textures" / "summary.json").read_text())
    assert summary["micrograph_model"] == "micassess_small_v2"
    assert "outside its trained domain" in summary["micrograph_domain_warning"]
    assert "Assessed again" not in summary["micrograph_domain_warning"]
    assert summary["n_good_micrographs"] <= 0.2 * 4  # what triggered the warning stands
    # Weights the user names are the user's verdicts: no fallback either.
    chosen = tmp_path / "chosen"
    result = runner.invoke(
        app,
        [*args[:3], str(chosen), "-q", "--no-report", "--micassess-weights", "micassess_small_v2"],
    )
    assert result.exit_code == 0, result.output
    again = json.loads((chosen / "sessions" / "textures" / "summary.json").read_text())
    assert again["micrograph_model"] == "micassess_small_v2"
    assert again["n_good_micrographs"] == summary["n_good_micrographs"]


def test_evaluate_micrographs_scores_the_verdicts_screen_run_would_use(texture_manifest, tmp_path):
    """`screen evaluate micrographs` applies run's session check and fallback, on exports too."""
    from PIL import Image

    rows = ["path,label,pixel_size_A,session"]
    for name in ("brick", "grass", "gravel", "camera"):
        image = resize(getattr(data, name)().astype(np.float32), (384, 384), anti_aliasing=True)
        grey = np.clip(255 * (image - image.min()) / np.ptp(image), 0, 255).astype(np.uint8)
        Image.fromarray(grey).save(tmp_path / f"{name}.png")  # an 8-bit export
        rows.append(f"{name}.png,good,2.0,textures")
    labels = tmp_path / "labels.csv"
    labels.write_text("\n".join(rows) + "\n")
    figure = str(tmp_path / "f.png")
    result = runner.invoke(app, ["evaluate", "micrographs", str(labels), "--figure", figure, "-q"])
    assert result.exit_code == 0, result.output
    assert "domain check: session textures:" in result.output
    assert "outside its trained domain" in result.output
    assert "Assessed again with micassess_small_v5" in result.output
    first = runner.invoke(
        app,
        ["evaluate", "micrographs", str(labels), "--figure", figure, "-q", "--no-domain-fallback"],
    )
    assert first.exit_code == 0, first.output
    assert "domain check: session textures:" in first.output
    assert "Assessed again" not in first.output
    # Without the fallback v2's verdicts stand: most of the set called bad (what warned).
    recall = [line for line in first.output.splitlines() if line.startswith("| good recall")]
    assert recall and float(recall[0].split("|")[2]) <= 0.2


@pytest.fixture(scope="module")
def half_rejected_manifest(tmp_path_factory, empty_carbon_session):
    """A session of eight simulated micrographs, six good and two carbon, all Fourier-cropped 2.4x.

    Cropping is a generator held out of every model's training. v2 rejects 6 of 8 (four good ones
    and both carbon ones: under the domain check's 80 %), v5 3 (the carbon ones, one good one).
    """
    from screen.processing.fourier import fourier_crop

    reasons, images, frame_pixel_A = empty_carbon_session
    folder = tmp_path_factory.mktemp("binned")
    side_px = 240
    pixel_size_A = frame_pixel_A * images[0].shape[1] / side_px
    carbon = [i for i, r in enumerate(reasons) if r == "carbon"][:2]
    for index, reason in enumerate(reasons):
        if reason == "good" or index in carbon:
            image = fourier_crop(np.asarray(images[index], np.float32), (side_px, side_px))
            write_mrc(folder / f"{reason}_{index:02d}.mrc", image, pixel_size_A=pixel_size_A)
    manifest = folder / "manifest.csv"
    manifest.write_text(f"session,micrographs,pixel_size_A\nbinned,*.mrc,{pixel_size_A:.4f}\n")
    return manifest


def test_a_session_the_two_models_disagree_on_uses_the_randomised_models_verdicts(
    half_rejected_manifest, tmp_path, monkeypatch
):
    from screen.stages import assess_micrographs

    calls = []
    assess_with = assess_micrographs.assess_micrographs_with

    def counted(images, pixel_sizes_A, assessments, lossy=None):
        calls.append((len(images), [params.model for params, _ in assessments]))
        return assess_with(images, pixel_sizes_A, assessments, lossy)

    monkeypatch.setattr(assess_micrographs, "assess_micrographs_with", counted)
    out = tmp_path / "run"
    args = ["run", str(half_rejected_manifest), "-q", "--no-report", "--out"]
    result = runner.invoke(app, [*args, str(out)])
    assert result.exit_code == 0, result.output
    # Both models assessed the micrographs in one pass: the second opinion read nothing again.
    assert calls == [(8, ["micassess_small_v2", "micassess_small_v5"])]
    summary = json.loads((out / "sessions" / "binned" / "summary.json").read_text())
    warning = summary["micrograph_domain_warning"]
    assert "6 of 8 micrographs called bad" in warning and "only 3 by micassess_small_v5" in warning
    assert summary["micrograph_model"] == "micassess_small_v5"
    assert "WARNING binned" in result.output
    table = pd.read_csv(out / "sessions" / "binned" / "micrographs.csv")
    verdicts = dict(zip(table["micrograph"], table["verdict"], strict=True))
    assert sum(v == "good" for k, v in verdicts.items() if k.startswith("good")) == 5
    assert all(v == "bad" for k, v in verdicts.items() if k.startswith("carbon"))
    # --no-domain-fallback keeps the first model's verdicts: v2 rejects four good micrographs,
    # and two of them, called empty, hold as many strong dark blobs as their session and are
    # judged again without it (`empty_in_session`): two good ones lost, both carbon ones rejected.
    first = tmp_path / "first"
    result = runner.invoke(app, [*args, str(first), "--no-domain-fallback"])
    assert result.exit_code == 0, result.output
    again = json.loads((first / "sessions" / "binned" / "summary.json").read_text())
    assert again["micrograph_model"] == "micassess_small_v2"
    assert again["micrograph_domain_warning"] is None
    assert again["n_good_micrographs"] == 4
    table = pd.read_csv(first / "sessions" / "binned" / "micrographs.csv")
    rejected = set(table.loc[table["verdict"] == "bad", "micrograph"])
    assert len(rejected) == 4 and {m for m in rejected if m.startswith("carbon")} == {
        "carbon_02",
        "carbon_03",
    }


def test_evaluate_micrographs_scores_the_second_opinion_as_run_uses_it(
    half_rejected_manifest, tmp_path
):
    folder = half_rejected_manifest.parent
    pixel_size_A = half_rejected_manifest.read_text().splitlines()[1].split(",")[2]
    rows = ["path,label,pixel_size_A,session"]
    for path in sorted(folder.glob("*.mrc")):
        label = "good" if path.name.startswith("good") else "bad"
        rows.append(f"{path},{label},{pixel_size_A},binned")
    labels = tmp_path / "labels.csv"
    labels.write_text("\n".join(rows) + "\n")
    args = ["evaluate", "micrographs", str(labels), "--figure", str(tmp_path / "f.png"), "-q"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "domain check: session binned:" in result.output
    assert "only 3 by micassess_small_v5" in result.output
    recall = [line for line in result.output.splitlines() if line.startswith("| good recall")]
    assert float(recall[0].split("|")[2]) == pytest.approx(5 / 6, abs=1e-3)
    first = runner.invoke(app, [*args, "--no-domain-fallback"])
    assert first.exit_code == 0, first.output
    assert "domain check" not in first.output or "session binned" not in first.output
    recall = [line for line in first.output.splitlines() if line.startswith("| good recall")]
    # v2 with the session's checks, as `screen run --no-domain-fallback` (two of its four
    # rejected good ones are "empty" fields as full of strong blobs as their session).
    assert float(recall[0].split("|")[2]) == pytest.approx(4 / 6, abs=1e-3)


DRIFTING_SCENARIO = """
preset = "prex1-small"
seed = 11
frame_px = [384, 384]
pixel_size_A = 2.5
[[sessions]]
name = "drifting"
n_micrographs = 6
bad_mix = { drift = 0.7 }
  [[sessions.species]]
  fraction = 1.0
  structure = { name = "p", diameter_A = 140, mass_kDa = 186, symmetry = "C1" }
"""


def test_a_session_mostly_given_one_spectral_reason_is_told_so(tmp_path):
    """Four of six simulated micrographs drift: the network calls them "drift", the session-wide
    check judges them again without it, and they stay bad (nothing else speaks for them)."""
    scenario = tmp_path / "drifting.toml"
    scenario.write_text(DRIFTING_SCENARIO)
    result = runner.invoke(app, ["simulate", "--scenario", str(scenario), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    truth = pd.read_csv(tmp_path / "ground_truth.csv")
    assert truth["n_good_micrographs"].tolist() == [2]
    out = tmp_path / "run"
    result = runner.invoke(
        app, ["run", str(tmp_path / "manifest.csv"), "--out", str(out), "-q", "--no-report"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "sessions" / "drifting" / "summary.json").read_text())
    warning = summary["micrograph_domain_warning"]
    assert "Micrograph assessment gave drift to 4 of 6 micrographs" in warning
    assert "the whole grid may be bad for this reason" in warning
    assert "WARNING drifting: Micrograph assessment gave drift" in result.output
    table = pd.read_csv(out / "sessions" / "drifting" / "micrographs.csv")
    assert (table["reason"] == "drift").sum() == 4 and (table["verdict"] == "good").sum() == 2


ONE_DRIFTING_SCENARIO = DRIFTING_SCENARIO.replace(
    'name = "drifting"', 'name = "one_drifting"'
).replace("drift = 0.7", "drift = 0.17")


def test_run_keeps_what_the_first_model_alone_rejects_where_the_second_is_confident(
    tmp_path, monkeypatch
):
    """One of six micrographs drifts: too few rejected for the session's second opinion, so the
    first model's verdicts stand, and each it alone rejects is asked of the randomised model.
    With the keep level at 0 (any P(good) of the second keeps), the drifting one is kept."""
    from screen.stages import assess_micrographs

    scenario = tmp_path / "one.toml"
    scenario.write_text(ONE_DRIFTING_SCENARIO)
    result = runner.invoke(app, ["simulate", "--scenario", str(scenario), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert pd.read_csv(tmp_path / "ground_truth.csv")["n_good_micrographs"].tolist() == [5]
    monkeypatch.setattr(assess_micrographs, "SECOND_OPINION_KEEP_P", 0.0)
    out = tmp_path / "run"
    args = ["run", str(tmp_path / "manifest.csv"), "--out", str(out), "-q", "--no-report"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "sessions" / "one_drifting" / "summary.json").read_text())
    assert summary["micrograph_model"] == "micassess_small_v2"
    assert summary["n_good_micrographs"] == 6
    assert (
        "1 micrograph that micassess_small_v2 called bad was kept"
        in (summary["micrograph_domain_warning"])
    )


def test_run_applies_the_ringless_check_to_each_session(tmp_path, monkeypatch):
    """The session checks see every assessed micrograph with its CTF fit: a stand-in for
    `ringless_in_sound_session` that makes the session's first good micrograph bad shows it."""
    from dataclasses import replace

    from screen.stages import assess_micrographs

    seen = []

    def first_good_made_bad(verdicts, fits, params, voltage_kV=300.0):
        seen.append((len(verdicts), len(fits), voltage_kV))
        first = next(i for i, v in enumerate(verdicts) if v.verdict == "good")
        return [
            replace(v, verdict="bad", reason="bad_ctf") if i == first else v
            for i, v in enumerate(verdicts)
        ]

    monkeypatch.setattr(assess_micrographs, "ringless_in_sound_session", first_good_made_bad)
    scenario = tmp_path / "one.toml"
    scenario.write_text(ONE_DRIFTING_SCENARIO)
    result = runner.invoke(app, ["simulate", "--scenario", str(scenario), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    out = tmp_path / "run"
    args = ["run", str(tmp_path / "manifest.csv"), "--out", str(out), "-q", "--no-report"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert seen == [(6, 6, 300.0)]
    summary = json.loads((out / "sessions" / "one_drifting" / "summary.json").read_text())
    assert summary["n_good_micrographs"] == 4
    table = pd.read_csv(out / "sessions" / "one_drifting" / "micrographs.csv")
    assert (table["reason"] == "bad_ctf").sum() == 1


def test_evaluate_says_which_micrographs_the_second_opinion_kept(tmp_path, monkeypatch):
    """As `screen run`: with the keep level at 0 the drifting micrograph is kept, and a
    `second opinion:` line says so."""
    from screen.stages import assess_micrographs

    scenario = tmp_path / "one.toml"
    scenario.write_text(ONE_DRIFTING_SCENARIO)
    result = runner.invoke(app, ["simulate", "--scenario", str(scenario), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    monkeypatch.setattr(assess_micrographs, "SECOND_OPINION_KEEP_P", 0.0)
    args = ["evaluate", "micrographs", str(tmp_path), "--figure", str(tmp_path / "f.png"), "-q"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "second opinion: session one_drifting: 1 micrograph that micassess_small_v2" in (
        result.output
    )
    assert "domain check" not in result.output
    recall = [line for line in result.output.splitlines() if line.startswith("| good recall")]
    assert float(recall[0].split("|")[2]) == pytest.approx(1.0)
