"""Report rendering on a fake run folder: escaping, table columns, PDF pages, determinism."""

from __future__ import annotations

import errno
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from screen.cli import app
from screen.io.mrc import write_mrc
from screen.report.context import build_context
from screen.report.render import render_report, templates_dir
from screen.report.verdicts import TITLE_BEST, TITLE_FEW_PARTICLES, TITLE_MOSTLY_BAD
from screen.store.layout import RunLayout

EVIL = '<script>alert("x")</script> & 5 µM'
BOX = 32
PIXEL_2D_A = 4.0


def _blob(rng, radius_px, offset=(0.0, 0.0)):
    yy, xx = np.indices((BOX, BOX)) - (BOX - 1) / 2
    r2 = (yy - offset[0]) ** 2 + (xx - offset[1]) ** 2
    return np.exp(-r2 / (2 * radius_px**2)) + rng.normal(0, 0.02, (BOX, BOX))


DIAMETERS = {
    "apo_quantifoil": {"diameter_uncertainty_A": 10.6, "diameter_method": "gap"},
    "apo_lacey": {"diameter_source": "manifest", "diameter_method": "manifest"},
    "gbg_6uM": {"diameter_uncertainty_A": None, "diameter_method": "refined"},
}
"""How each fake session's diameter (120 Å) was found."""

CLASS_WARNING = "class assessment may be outside its trained domain (test)"
"""apo_lacey's `class_domain_warning`."""


def _write_session(layout: RunLayout, name, rng, *, n_mics, n_good, picked, good, metadata):
    session = layout.session(name)
    session.root.mkdir(parents=True)
    rows = []
    for i in range(n_mics):
        path = session.root / "mics" / f"{name}_{i:03d}.mrc"
        write_mrc(path, rng.normal(size=(96, 96)).astype(np.float32), 1.0)
        is_good = i < n_good
        rows.append(
            {
                "micrograph": path.stem,
                "path": str(path),
                "status": "ok",
                "error": "",
                "p_good": 0.9 if is_good else 0.02,
                "verdict": "good" if is_good else "bad",
                "reason": "" if is_good else ("aggregated" if i % 2 else "empty"),
                "defocus_u_um": 1.5 + 0.1 * i,
                "defocus_v_um": 1.4 + 0.1 * i,
                "astigmatism_angle_deg": 10.0,
                "ctf_fit_resolution_A": 4.0 + (0 if is_good else 6) + 0.2 * i,
                "ctf_score": 0.5,
                "n_picks": picked // n_mics,
            }
        )
    pd.DataFrame(rows).to_csv(session.micrographs, index=False)
    search = []
    for diameter in (100.0, 150.0):
        labels = ["good"] * 5 + ["clip", "edge", "noise", "noise", "noise"]
        averages = [_blob(rng, 3 + (k % 3)) for k in range(5)]
        averages += [_blob(rng, 3, (0, 9)), _blob(rng, 3, (9, 0))]
        averages += [rng.normal(0, 0.3, (BOX, BOX)) for _ in range(3)]
        counts = [100 * (10 - k) for k in range(10)]
        folder = session.classes_dir(diameter)
        write_mrc(folder / "averages.mrcs", np.stack(averages).astype(np.float32), PIXEL_2D_A)
        pd.DataFrame(
            {
                "class_index": range(10),
                "n_particles": counts,
                "label": labels,
                "p_good": [0.9] * 5 + [0.1] * 5,
                "p_clip": 0.0,
                "p_edge": 0.0,
                "p_noise": 0.1,
                "moved_by_saliency": False,
            }
        ).to_csv(folder / "classes.csv", index=False)
        search.append(
            {
                "mask_diameter_A": diameter,
                "n_classes": 10,
                "n_good_classes": 5,
                "good_particles": good if diameter == 150.0 else good // 2,
                "labels": {"good": 5, "clip": 1, "edge": 1, "noise": 3},
            }
        )
    summary = {
        "session": name,
        "metadata": metadata,
        "optics": {"pixel_size_A": 1.0, "voltage_kV": 300, "cs_mm": 2.7, "amplitude_contrast": 0.1},
        "status": "ok",
        "error": None,
        "n_micrographs": n_mics,
        "n_unreadable": 0,
        "n_good_micrographs": n_good,
        "good_micrograph_fraction": n_good / n_mics,
        "diameter_A": 120.0,
        "diameter_source": "estimated",
        **DIAMETERS[name],
        "picked_particles": picked,
        "particles_per_micrograph": picked / n_mics,
        "good_particles": good,
        "good_particle_fraction": good / picked,
        "good_particles_per_micrograph": good / n_mics,
        "pixel_size_2d_A": PIXEL_2D_A,
        "best_mask_diameter_A": 150.0,
        "diameter_search": search,
        "top_good_classes": [
            {"mask_diameter_A": 150.0, "class_index": k, "n_particles": 100 * (10 - k)}
            for k in range(5)
        ],
        "cpu_seconds": 1234.0,
        "wall_seconds": 700.0,
        "stage_seconds": {"ctf": 10.0, "classify": 600.0},
        "verdicts": [],
        "class_domain_warning": CLASS_WARNING if name == "apo_lacey" else None,
    }
    session.summary.write_text(json.dumps(summary))


@pytest.fixture(scope="module")
def run_root(tmp_path_factory) -> Path:
    rng = np.random.default_rng(7)
    layout = RunLayout(tmp_path_factory.mktemp("run"))
    _write_session(
        layout,
        "apo_quantifoil",
        rng,
        n_mics=10,
        n_good=6,
        picked=1000,
        good=530,
        metadata={"grid": "Quantifoil", "additive": "none"},
    )
    _write_session(
        layout,
        "apo_lacey",
        rng,
        n_mics=10,
        n_good=3,
        picked=200,
        good=50,
        metadata={"grid": "lacey carbon", "additive": "none"},
    )
    _write_session(
        layout,
        "gbg_6uM",
        rng,
        n_mics=10,
        n_good=9,
        picked=1800,
        good=980,
        metadata={"grid": "Quantifoil", "additive": EVIL},
    )
    failed = layout.session("broken")
    failed.root.mkdir(parents=True)
    failed.summary.write_text(
        json.dumps(
            {
                "session": "broken",
                "metadata": {"grid": "C-flat"},
                "status": "failed",
                "error": "none of the 2 micrographs could be used (2 unreadable)",
                "verdicts": [],
            }
        )
    )
    pd.DataFrame(
        {
            "micrograph": ["cut", "blank"],
            "path": ["/data/broken/cut.mrc", "/data/broken/blank.mrc"],
            "status": ["unreadable", "unreadable"],
            "error": ["ImageReadError: cut.mrc: truncated", "ImageReadError: blank.mrc: constant"],
            "verdict": ["", ""],
            "reason": ["", ""],
        }
    ).to_csv(failed.micrographs, index=False)
    return layout.root


@pytest.fixture(scope="module")
def rendered(run_root):
    html_path, pdf_path = render_report(run_root)
    return html_path, pdf_path, html_path.read_text()


def test_context_table_has_one_column_per_condition_ranked(run_root):
    context = build_context(run_root)
    (table,) = context["tables"]
    assert table["conditions"] == ["gbg_6uM", "apo_quantifoil", "apo_lacey", "broken"]
    rows = {row["label"]: row["values"] for row in table["rows"]}
    assert all(len(values) == 4 for values in rows.values())
    assert rows["Micrographs"] == ["10", "10", "10", "—"]
    assert rows["Good micrographs"] == ["9", "6", "3", "—"]
    assert rows["Picked particles"] == ["1,800", "1,000", "200", "—"]
    assert rows["Good particles"] == ["980", "530", "50", "—"]
    assert rows["Good-particle fraction"] == ["54%", "53%", "25%", "—"]
    assert rows["Best mask diameter (Å)"] == ["150", "150", "150", "—"]
    assert rows["grid"] == ["Quantifoil", "Quantifoil", "lacey carbon", "C-flat"]
    assert rows["Particle diameter (Å)"] == [
        "120 (refined on 2D averages)",
        "120 ± 11 (exclusion gap)",
        "120 (from the manifest)",
        "—",
    ]
    assert rows["additive"][0] == EVIL  # escaping is the template's job
    assert context["failed"][0]["error"] == "none of the 2 micrographs could be used (2 unreadable)"


def test_context_verdicts(run_root):
    verdicts = {c["name"]: c["verdicts"] for c in build_context(run_root)["conditions"]}
    assert any(v.startswith(TITLE_BEST) for v in verdicts["gbg_6uM"])
    assert not any(v.startswith(TITLE_BEST) for v in verdicts["apo_quantifoil"])
    assert any(v.startswith(TITLE_MOSTLY_BAD) for v in verdicts["apo_lacey"])
    assert any(v.startswith(TITLE_FEW_PARTICLES) for v in verdicts["apo_lacey"])
    assert not any(v.startswith(TITLE_MOSTLY_BAD) for v in verdicts["gbg_6uM"])
    assert verdicts["broken"] == []


def test_every_condition_gets_go_or_no_go_with_why(run_root, rendered):
    conditions = {c["name"]: c for c in build_context(run_root)["conditions"]}
    # The drawn averages of this fixture are round blobs: alike, but a round look carries no
    # view information (verdicts.ROUND_VIEWS_SHARE), so no view flag; the best candidate is a go.
    decisions = {name: c["decision"] for name, c in conditions.items()}
    assert decisions == {
        "gbg_6uM": "go",
        "apo_quantifoil": "no-go",
        "apo_lacey": "no-go",
        "broken": "no-go",
    }
    assert TITLE_MOSTLY_BAD in conditions["apo_lacey"]["decision_reason"]
    assert conditions["broken"]["decision_reason"].startswith("the session failed: none of")
    assert "<strong>NO-GO</strong>: Mostly bad micrographs; Few particles" in rendered[2]


def test_html_escapes_manifest_text(rendered):
    _, _, html = rendered
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; 5 µM" in html
    assert "none of the 2 micrographs could be used (2 unreadable)" in html


def test_unreadable_micrographs_are_listed_with_why(rendered):
    _, _, html = rendered
    assert "cut (unreadable): ImageReadError: cut.mrc: truncated" in html
    assert "blank (unreadable): ImageReadError: blank.mrc: constant" in html


def test_the_report_shows_the_sessions_of_the_last_run_only(run_root, tmp_path):
    root = shutil.copytree(run_root, tmp_path / "run")
    (root / "run.json").write_text(json.dumps({"sessions": ["apo_lacey", "broken"]}))
    names = [c["name"] for c in build_context(root)["conditions"]]
    assert names == ["apo_lacey", "broken"]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"\xff\xfe\x00\x01binary", "not a readable CSV table"),
        (b'a,b\n1,2\n3,4,5,6\n"', "not a readable CSV table"),
        (b"micrograph,status\nm1,ok\n", "missing column(s) path, error, verdict, reason"),
    ],
)
def test_a_corrupt_micrograph_table_is_a_clear_error(run_root, tmp_path, content, problem):
    root = shutil.copytree(run_root, tmp_path / "run")
    table = RunLayout(root).session("apo_lacey").micrographs
    table.write_bytes(content)
    result = CliRunner().invoke(app, ["report", str(root)])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert f"{table}: {problem}" in result.output and "screen run" in result.output


def test_html_links_existing_assets(rendered, run_root):
    html_path, _, html = rendered
    links = re.findall(r'src="([^"]+)"', html)
    assert len(links) >= 3 + 3 * 2  # run figures + ctf/examples per finished session
    for link in links:
        assert not Path(link).is_absolute()
        assert (html_path.parent / link).is_file()


def test_pdf_has_several_pages(rendered):
    _, pdf_path, _ = rendered
    data = pdf_path.read_bytes()
    assert data.startswith(b"%PDF")
    if shutil.which("pdfinfo"):
        info = subprocess.run(["pdfinfo", str(pdf_path)], capture_output=True, text=True).stdout
        pages = int(re.search(r"Pages:\s+(\d+)", info).group(1))
    else:
        pages = len(re.findall(rb"/Type\s*/Page\b", data))
    assert pages > 4  # summary, table, bars, classes, one page per condition


def test_rendering_twice_gives_the_same_html(rendered, run_root):
    html_path, _, html = rendered
    render_report(run_root)
    assert html_path.read_text() == html


def test_missing_run_folder_is_a_clear_error(tmp_path):
    from screen.errors import ScreenError

    with pytest.raises(ScreenError, match="summary.json"):
        build_context(tmp_path)


def test_templates_dir_found():
    assert (templates_dir() / "report.html.j2").is_file()


def test_a_full_disk_while_writing_the_report_is_a_clear_error(run_root, tmp_path, monkeypatch):
    root = shutil.copytree(run_root, tmp_path / "run")

    def disk_full(source, target):
        raise OSError(errno.ENOSPC, "No space left on device", str(source))

    monkeypatch.setattr("screen.io.atomic.os.replace", disk_full)
    result = CliRunner().invoke(app, ["report", str(root)])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert "cannot write the report" in result.output and "the disk is full" in result.output


def test_condition_pages_show_the_diameter_with_its_uncertainty_and_method(rendered):
    html = rendered[2]
    assert "Particle diameter: 120 ± 11 Å (exclusion gap)." in html
    assert "Particle diameter: 120 Å (from the manifest)." in html
    assert "Particle diameter: 120 Å (refined on 2D averages)." in html


def test_the_class_domain_warning_is_shown_in_the_ranking_and_on_the_condition(rendered):
    html = rendered[2]
    assert html.count(f"Warning: {CLASS_WARNING}") == 2
