"""A session of micrographs unlike anything the assessment was trained on must not be lost silently."""

import json

import numpy as np
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
