import dataclasses
import os

import numpy as np

from screen.store.cache import StageCache, cache_key, file_identity


@dataclasses.dataclass(frozen=True)
class Params:
    sigma_A: float = 2.0
    name: str = "x"


def test_key_depends_on_every_part_and_is_stable():
    base = cache_key({"path": "/a", "size": 1}, Params(), "stage@1")
    assert base == cache_key({"size": 1, "path": "/a"}, Params(), "stage@1")
    assert base != cache_key({"path": "/a", "size": 1}, Params(sigma_A=3.0), "stage@1")
    assert base != cache_key({"path": "/a", "size": 1}, Params(), "stage@2")
    assert cache_key(np.arange(4)) != cache_key(np.arange(5))


def test_round_trips_and_missing_entries(tmp_path):
    cache = StageCache(tmp_path)
    assert cache.get_json("ctf", "m1", "k") is None and cache.get_arrays("pick", "m1", "k") is None
    cache.put_json("ctf", "m1", "k", {"defocus_u_A": 15000.0, "p": Params()})
    assert cache.get_json("ctf", "m1", "k") == {
        "defocus_u_A": 15000.0,
        "p": {"sigma_A": 2.0, "name": "x"},
    }
    cache.put_arrays("pick", "m1", "k", {"x_px": np.arange(3.0)})
    np.testing.assert_array_equal(cache.get_arrays("pick", "m1", "k")["x_px"], [0.0, 1.0, 2.0])
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_cpu_seconds_are_kept_beside_an_entry(tmp_path):
    cache = StageCache(tmp_path)
    assert cache.get_cpu_seconds("ctf", "m1", "k") == 0.0
    cache.put_cpu_seconds("ctf", "m1", "k", 1.25)
    assert cache.get_cpu_seconds("ctf", "m1", "k") == 1.25


def test_a_truncated_entry_reads_as_missing(tmp_path):
    cache = StageCache(tmp_path)
    cache.put_arrays("pick", "m1", "k", {"x_px": np.arange(1000.0)})
    path = next(tmp_path.rglob("*.npz"))
    path.write_bytes(path.read_bytes()[:100])
    assert cache.get_arrays("pick", "m1", "k") is None
    (tmp_path / "ctf").mkdir()
    (tmp_path / "ctf" / "m1.k.json").write_text("{broken")
    assert cache.get_json("ctf", "m1", "k") is None


def test_file_identity_changes_when_the_file_changes(tmp_path):
    path = tmp_path / "a.mrc"
    path.write_bytes(b"1234")
    first = file_identity(path)
    path.write_bytes(b"12345")
    os.utime(path, ns=(first["mtime_ns"] + 10**9, first["mtime_ns"] + 10**9))
    assert file_identity(path) != first


def test_an_entry_its_parser_rejects_reads_as_missing(tmp_path):
    cache = StageCache(tmp_path)
    cache.put_json("ctf", "m1", "k", {"defocus": 1.0})
    assert cache.get_json("ctf", "m1", "k") == {"defocus": 1.0}
    assert cache.get_json("ctf", "m1", "k", lambda value: value["defocus_u_A"]) is None
    assert cache.get_json("ctf", "m1", "k", lambda value: value["defocus"]) == 1.0
    cache.put_arrays("pick", "m1", "k", {"x_px": np.arange(3.0)})
    assert cache.get_arrays("pick", "m1", "k", lambda arrays: arrays["score"]) is None


def test_a_cached_diameter_keeps_how_its_picks_were_centred():
    """`screen run` picks a condition at its outlines' centres when its diameter said so; a
    cached estimate must say it again, and entries written before the flag read as False."""
    from screen.store.entries import diameter_from

    cached = {"diameter_A": 133.0, "edge_diameter_A": 133.0, "pixel_size_A": 4.0}
    assert not diameter_from(cached).outline_centred
    estimate = diameter_from({**cached, "method": "spread_edge", "outline_centred": True})
    assert estimate.outline_centred and estimate.method == "spread_edge"
