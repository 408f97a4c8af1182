import pytest

from screen.simulate.presets import PRESETS
from screen.simulate.scenario import ScenarioError, load_scenario, scenario_from_dict


def test_every_preset_is_valid():
    for name in PRESETS:
        spec = scenario_from_dict({"preset": name})
        assert spec.sessions


def test_prex1_preset_mirrors_the_paper_screen():
    spec = scenario_from_dict({"preset": "prex1"})
    assert spec.frame_px == (4092, 5760) and spec.pixel_size_A == pytest.approx(0.83)
    good = {s.name: 1 - sum(s.bad_mix.values()) for s in spec.sessions}
    assert len(good) == 6
    assert min(good, key=good.get) == "apo_lacey" and good["apo_lacey"] == pytest.approx(0.30)
    heterogeneous = [s for s in spec.sessions if len(s.species) > 1]
    assert {s.name for s in heterogeneous} == {"gbg_60uM", "gbg_6uM"}


def test_overrides_and_per_session_count(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(
        'preset = "prex1-small"\nseed = 9\nmicrographs_per_session = 3\nframe_px = [192, 256]\n'
    )
    spec = load_scenario(path)
    assert spec.seed == 9 and spec.frame_px == (192, 256)
    assert all(s.n_micrographs == 3 for s in spec.sessions)


def test_all_problems_reported_at_once():
    data = {
        "colour": "blue",
        "sessions": [
            {
                "name": "a",
                "bad_mix": {"foo": 0.2},
                "particle_spacing": 0.1,
                "species": [
                    {"structure": {"name": "x", "diameter_A": 10, "mass_kDa": 1, "symmetry": "Q3"}}
                ],
            },
            {
                "name": "a",
                "species": [
                    {
                        "structure": {
                            "name": "y",
                            "diameter_A": 100,
                            "mass_kDa": 100,
                            "layout": "sponge",
                        }
                    }
                ],
            },
        ],
    }
    with pytest.raises(ScenarioError) as info:
        scenario_from_dict(data)
    message = str(info.value)
    for expected in (
        "colour: unknown setting",
        "unknown reasons ['foo']",
        "'Q3'",
        "diameter_A 10.0 not in",
        "'a' is used twice",
        "layout 'sponge' is not one of domains, globular",
        "particle_spacing 0.1 must be 0.3-2 particle diameters",
    ):
        assert expected in message


def test_type_errors_and_missing_file(tmp_path):
    with pytest.raises(ScenarioError, match="expected a list"):
        scenario_from_dict({"preset": "gallery", "frame_px": 512})
    with pytest.raises(ScenarioError, match="not found"):
        load_scenario(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("seed = [")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load_scenario(bad)


def test_a_session_can_have_one_dose():
    spec = scenario_from_dict(
        {
            "preset": "prex1-small",
            "sessions": [
                {
                    "name": "one_dose",
                    "dose_jitter": 0.02,
                    "species": [{"structure": {"name": "p", "diameter_A": 140, "mass_kDa": 186}}],
                }
            ],
        }
    )
    assert spec.sessions[0].dose_jitter == 0.02
    assert scenario_from_dict({"preset": "prex1-small"}).sessions[0].dose_jitter is None
