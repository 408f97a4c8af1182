import dataclasses

from screen.simulate.presets import prex1_small
from screen.simulate.scenario import with_micrographs_per_session
from screen.simulate.session import simulate_screen


def test_output_is_identical_whatever_the_number_of_workers(tmp_path):
    spec = dataclasses.replace(
        with_micrographs_per_session(prex1_small(), 2),
        frame_px=(128, 128),
        sessions=prex1_small().sessions[:2],
    )
    spec = with_micrographs_per_session(spec, 3)
    serial = simulate_screen(spec, tmp_path / "serial", jobs=1).parent
    parallel = simulate_screen(spec, tmp_path / "parallel", jobs=2).parent
    files = sorted(
        p.relative_to(serial)
        for p in serial.rglob("*")
        if p.is_file() and p.name != "scenario.json"
    )
    assert len(files) > 10
    for rel in files:
        assert (serial / rel).read_bytes() == (parallel / rel).read_bytes(), rel
