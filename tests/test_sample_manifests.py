import shutil
from pathlib import Path

from screen.manifest import read_manifest
from screen.simulate.presets import prex1_small
from screen.simulate.scenario import with_micrographs_per_session
from screen.simulate.session import simulate_screen

REPO = Path(__file__).resolve().parents[1]


def test_sample_manifests_resolve_against_the_demo_folder(tmp_path):
    """The README's demo writes screen-demo/ beside sample_manifests/; both examples must load."""
    import dataclasses

    spec = dataclasses.replace(with_micrographs_per_session(prex1_small(), 1), frame_px=(96, 96))
    simulate_screen(spec, tmp_path / "screen-demo")
    shutil.copytree(REPO / "sample_manifests", tmp_path / "sample_manifests")
    demo = read_manifest(tmp_path / "sample_manifests" / "prex1_demo.csv")
    assert [s.session for s in demo.sessions] == [s.name for s in spec.sessions]
    assert all(len(s.micrograph_paths) == 1 for s in demo.sessions)
    hand = read_manifest(tmp_path / "sample_manifests" / "hand_written.csv")
    assert hand.sessions[0].pixel_size_A == 2.5
    assert hand.sessions[0].metadata["Notes"] == "first grid, blotted 3 s"
    assert len(hand.sessions[0].micrograph_paths) == 1
