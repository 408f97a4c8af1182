import dataclasses

from screen.stages.records import MicrographVerdict
from screen.store.cache import StageCache
from screen.store.entries import verdict_from


def test_a_cached_verdict_comes_back_with_every_measure(tmp_path):
    """Every field of a verdict survives the stage cache, and a verdict cached before a measure
    existed comes back with that measure None (not a cache miss)."""
    verdict = MicrographVerdict(
        0.42,
        "bad",
        "empty",
        {"empty": 0.5},
        opaque_fraction=0.01,
        carbon_fraction=0.0,
        crystalline_fraction=0.1,
        grey_level=100.0,
        noise_variance=90.0,
        anisotropy=0.1,
        anisotropy_noise=0.02,
        grey_min=1.0,
        grey_max=250.0,
        strong_blobs=7,
        strong_blobs_per_um2=175.0,
        blob_tail_asymmetry=1.05,
    )
    cache = StageCache(tmp_path)
    cache.put_json("assess", "m1", "k", verdict)
    assert cache.get_json("assess", "m1", "k", verdict_from) == verdict
    older = dataclasses.asdict(verdict)
    for name in ("strong_blobs", "strong_blobs_per_um2", "blob_tail_asymmetry"):
        del older[name]
    cache.put_json("assess", "m2", "k", older)
    again = cache.get_json("assess", "m2", "k", verdict_from)
    assert again == dataclasses.replace(
        verdict, strong_blobs=None, strong_blobs_per_um2=None, blob_tail_asymmetry=None
    )
