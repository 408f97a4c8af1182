"""Verdict rules on synthetic sessions whose truth is known."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from screen.report import verdicts as V
from screen.simulate.orientations import _fibonacci_sphere, rotation_matrices
from screen.simulate.spec import StructureSpec
from screen.simulate.structures import build_structure

PIXEL_A = 3.0
BOX = 64


def project(model, euler_deg, pixel_size_A=PIXEL_A, box=BOX):
    """Projection of a pseudo-atom model along z after RELION rotation ``euler_deg``."""
    matrix = rotation_matrices(np.asarray(euler_deg, dtype=float))[0]
    xyz = model.positions_A @ matrix.T
    edges = (np.arange(box + 1) - box / 2) * pixel_size_A
    image, _, _ = np.histogram2d(xyz[:, 1], xyz[:, 0], bins=(edges, edges), weights=model.masses_Da)
    image = gaussian_filter(image, max(model.sigma_A / pixel_size_A, 2.5))
    return image / image.max()


def hemisphere(n):
    """n well-spread viewing directions on the upper hemisphere (opposite views are mirrors)."""
    points = _fibonacci_sphere(2 * n)
    return points[points[:, 2] > 0][:n]


def class_averages(model, n_views, n_averages, rng, noise=0.03, jitter_deg=4.0):
    """Noisy averages of ``n_views`` distinct views, each at a random in-plane rotation."""
    directions = hemisphere(n_views)
    out = []
    for i in range(n_averages):
        d = directions[i % n_views]
        tilt = np.degrees(np.arccos(d[2])) + rng.normal(0, jitter_deg)
        rot = np.degrees(np.arctan2(d[1], d[0])) + rng.normal(0, jitter_deg)
        image = project(model, [rot, tilt, rng.uniform(-180, 180)])
        out.append(image + rng.normal(0, noise, image.shape))
    return out


def summary(name="s", n_mics=100, n_good=80, per_mic=150.0, good_fraction=0.6, **extra):
    base = {
        "session": name,
        "status": "ok",
        "n_micrographs": n_mics,
        "n_good_micrographs": n_good,
        "good_micrograph_fraction": n_good / n_mics,
        "picked_particles": int(per_mic * n_mics),
        "particles_per_micrograph": per_mic,
        "good_particle_fraction": good_fraction,
        "good_particles_per_micrograph": per_mic * good_fraction,
        "best_mask_diameter_A": 150.0,
        "diameter_search": [
            {
                "mask_diameter_A": 150.0,
                "n_classes": 50,
                "n_good_classes": 20,
                "good_particles": 1,
                "labels": {"good": 20, "clip": 10, "edge": 5, "noise": 15},
            }
        ],
        "verdicts": [],
    }
    return base | extra


@pytest.fixture(scope="module")
def models():
    return {
        "big": build_structure(StructureSpec("big", 120.0, 150.0, seed=1)),
        "small": build_structure(StructureSpec("small", 70.0, 35.0, seed=11)),
    }


def test_number_rules_fire_only_on_their_session():
    good = summary("good")
    lacey = summary("lacey", n_good=30, per_mic=20.0, good_fraction=0.25)
    assert V.mostly_bad_micrographs(lacey).startswith(V.TITLE_MOSTLY_BAD)
    assert V.mostly_bad_micrographs(good) is None
    assert V.few_particles(lacey, [good, lacey]).startswith(V.TITLE_FEW_PARTICLES)
    assert V.few_particles(good, [good, lacey]) is None
    assert V.low_good_particle_fraction(lacey).startswith(V.TITLE_LOW_GOOD_PARTICLES)
    assert V.low_good_particle_fraction(good) is None


def test_few_particles_relative_to_other_conditions():
    crowded = summary("crowded", per_mic=300.0)
    sparse = summary("sparse", per_mic=100.0)  # above the absolute floor, a third of the others
    assert V.few_particles(sparse, [crowded, sparse, summary("c", per_mic=310.0)]) is not None
    assert V.few_particles(sparse, [sparse, summary("c", per_mic=120.0)]) is None


def test_aggregation_from_the_micrographs_reasons():
    s = summary(n_mics=100, n_good=60)
    assert V.aggregation(s, {"aggregated": 20, "empty": 20}).startswith(V.TITLE_AGGREGATION)
    assert V.aggregation(s, {"aggregated": 5, "empty": 35}) is None


def test_noise_classes_alone_are_not_called_aggregation():
    """Junk picks on a clean grid average to blobs as aggregates do: most particles in noise
    classes is a low good-particle fraction, not evidence of aggregation (a no-go either way,
    but the sentence must not name a cause the data do not show)."""
    s = summary()
    row = s["diameter_search"][0]
    row["labels"] = {"good": 1, "clip": 0, "edge": 0, "noise": 4}
    row["label_particles"] = {"good": 30, "clip": 0, "edge": 0, "noise": 170}
    s["good_particle_fraction"], s["picked_particles"] = 0.15, 200
    assert V.aggregation(s, {"empty": 3}) is None
    assert V.low_good_particle_fraction(s).startswith(V.TITLE_LOW_GOOD_PARTICLES)
    s["good_particle_fraction"] = 0.6  # a clean session with many noise classes: no flag
    assert V.low_good_particle_fraction(s) is None


def test_best_candidate_is_first_by_good_particles_among_mostly_good():
    a = summary("a", per_mic=100.0, good_fraction=0.5)  # 50 good per micrograph
    b = summary("b", per_mic=200.0, good_fraction=0.5)  # 100, the best
    c = summary("c", n_good=40, per_mic=400.0, good_fraction=0.5)  # 200 but only 40% good mics
    failed = {"session": "f", "status": "failed", "error": "boom"}
    runs = [a, b, c, failed]
    assert V.best_candidate(b, runs).startswith(V.TITLE_BEST)
    assert V.best_candidate(a, runs) is None and V.best_candidate(c, runs) is None
    # A flagged (preferred orientation) condition yields to an unflagged one.
    flags = {"b": [V.TITLE_FEW_VIEWS + ": preferred orientation likely"]}
    assert V.best_candidate(a, runs, flags) is not None
    assert V.best_candidate(b, runs, flags) is None
    assert V.session_verdicts(failed, [], 0.0, runs) == []
    # Candidates within the measure's own spread are named as about as good; others are not.
    assert "About as good" not in V.best_candidate(b, runs)
    close = summary("close", per_mic=190.0, good_fraction=0.5)  # 95 good per micrograph
    verdict = V.best_candidate(b, [*runs, close])
    assert verdict.startswith(V.TITLE_BEST) and "About as good" in verdict
    assert "close (95)" in verdict and "a (" not in verdict


def test_few_views_fires_for_two_views_not_for_eight(models):
    rng = np.random.default_rng(0)
    two = class_averages(models["big"], 2, 10, rng)
    eight = class_averages(models["big"], 8, 10, rng)
    effective_two, largest_two = V.view_diversity(two)
    effective_eight, largest_eight = V.view_diversity(eight)
    assert effective_two < V.FEW_VIEWS_EFFECTIVE
    assert effective_eight > 5 and largest_eight <= 0.3
    assert V.few_views(two).startswith(V.TITLE_FEW_VIEWS)
    assert V.few_views(eight) is None
    # Particle weights: 8 views, but most particles in view 0 (averages 0 and 8).
    weights = [90 if i in (0, 8) else 1 for i in range(10)]
    assert V.few_views(eight, weights) is not None


def test_two_sizes_fires_for_two_species_only(models):
    rng = np.random.default_rng(1)
    one = class_averages(models["big"], 8, 10, rng)
    mixed = class_averages(models["big"], 8, 6, rng) + class_averages(models["small"], 8, 4, rng)
    diameters = [V.object_diameter_A(a, PIXEL_A) for a in mixed]
    assert np.mean(diameters[:6]) / np.mean(diameters[6:]) > V.HETEROGENEITY_SIZE_RATIO
    assert V.two_sizes(mixed, PIXEL_A).startswith(V.TITLE_TWO_SIZES)
    assert V.two_sizes(one, PIXEL_A) is None


def test_two_sizes_in_a_run_must_show_at_a_second_mask(models):
    """Given the other masks' good averages, one classification's split is not enough."""
    rng = np.random.default_rng(1)
    one = class_averages(models["big"], 8, 6, rng)
    mixed = class_averages(models["big"], 8, 6, rng) + class_averages(models["small"], 8, 4, rng)
    weights = [1.0] * len(mixed)
    assert V.two_sizes(mixed, PIXEL_A, other_masks=[(300.0, one, [1.0] * 6)]) is None
    assert V.two_sizes(mixed, PIXEL_A, other_masks=[]) is None  # nothing to confirm it with
    again = V.two_sizes(
        mixed, PIXEL_A, weights, other_masks=[(300.0, one, [1.0] * 6), (400.0, mixed, weights)]
    )
    assert again.startswith(V.TITLE_TWO_SIZES) and "again at the 400 Å mask" in again
    # and one mask that shows a single size still gets no flag, whatever the others show
    assert V.two_sizes(one, PIXEL_A, other_masks=[(400.0, mixed, weights)]) is None


def test_two_sizes_keeps_end_and_side_views_of_one_rod_together(models):
    """A P-Rex1-like particle (elongation 1.8): its views differ in length, not one species."""
    rod = build_structure(
        StructureSpec("rod", 140.0, 186.0, "C1", n_domains=5, elongation=1.8, seed=11)
    )
    rng = np.random.default_rng(3)
    views = class_averages(rod, 8, 12, rng)
    lengths = [V.object_axes_A(a, PIXEL_A)[1] for a in views]
    assert max(lengths) / min(lengths) > 1.15  # its views do show different lengths
    assert V.two_sizes(views, PIXEL_A) is None
    mixed = class_averages(rod, 8, 6, rng) + class_averages(models["small"], 8, 4, rng)
    assert V.two_sizes(mixed, PIXEL_A).startswith(V.TITLE_TWO_SIZES)


def test_object_axes_of_a_disc_are_its_diameter():
    y, x = np.indices((64, 64))
    disc = (np.hypot(x - 32, y - 32) <= 15).astype(float)
    width, length = V.object_axes_A(disc, 2.0)
    assert width == pytest.approx(length, rel=0.05)
    assert 60.0 <= length <= 80.0  # a 60 Å disc, widened by the 20 Å low-pass


def test_object_axes_of_a_ring_with_a_speck_in_its_hole_are_the_rings():
    """A hollow shell's average is a ring; a speck of noise in its hole lies nearer the centre
    than the ring, but it is not the object (the independent simulator's shell was read as a
    21-Å object and flagged "two particle sizes")."""
    y, x = np.indices((72, 72))
    r = np.hypot(x - 36, y - 36)
    ring = ((r >= 10) & (r <= 15)).astype(float)  # 120 Å across at 4 Å/px
    ring[37:39, 36:38] = 1.0  # a 2 x 2 speck just off the centre
    width, length = V.object_axes_A(ring, 4.0)
    assert 110.0 <= width <= length <= 150.0


def test_session_verdicts_combines_rules(models):
    rng = np.random.default_rng(2)
    preferred = summary("preferred", per_mic=200.0, good_fraction=0.6)
    diverse = summary("diverse", per_mic=180.0, good_fraction=0.6)
    runs = [preferred, diverse]
    flagged = V.session_verdicts(preferred, class_averages(models["big"], 2, 8, rng), PIXEL_A, runs)
    assert [v.split(":")[0] for v in flagged] == [V.TITLE_FEW_VIEWS]
    clean = V.session_verdicts(
        diverse,
        class_averages(models["big"], 8, 8, rng),
        PIXEL_A,
        runs,
        flags={"preferred": flagged},
    )
    # The preferred-orientation condition has more good particles, but the diverse one wins.
    assert [v.split(":")[0] for v in clean] == [V.TITLE_BEST]


def test_few_views_with_three_good_averages_states_its_evidence(models):
    """Issue 12: 3 good averages of one view (below the diversity minimum) still flag it."""
    rng = np.random.default_rng(4)
    one_view = class_averages(models["big"], 1, 3, rng)
    three_views = class_averages(models["big"], 3, 3, rng, jitter_deg=0.0)
    assert len(one_view) < V.MIN_AVERAGES_FOR_VIEWS
    flag = V.few_views(one_view)
    assert flag is not None and flag.startswith(V.TITLE_FEW_VIEWS)
    assert "3 good classes at the best mask diameter, all one view" in flag
    assert V.few_views(three_views) is None
    assert V.few_views(one_view[:1]) is None  # one average says nothing about diversity


def test_few_views_pools_the_other_mask_diameters(models):
    rng = np.random.default_rng(5)
    best = class_averages(models["big"], 1, 1, rng)
    others = class_averages(models["big"], 1, 4, rng)
    flag = V.few_views(best, [500], other_averages=others, other_weights=[300, 200, 100, 50])
    assert flag is not None and "5 good classes over all mask diameters" in flag
    diverse = class_averages(models["big"], 8, 8, rng)
    assert V.few_views(best, [100], other_averages=diverse, other_weights=[100] * 8) is None


def test_preferred_condition_with_few_good_classes_ranks_below_a_clean_one(models):
    """A strongly preferred condition (3 good averages, one view) with more good particles per
    micrograph yields the best-candidate verdict to a clean one of similar counts."""
    rng = np.random.default_rng(6)
    preferred = summary("preferred", per_mic=210.0, good_fraction=0.6)
    clean = summary("clean", per_mic=190.0, good_fraction=0.6)
    runs = [preferred, clean]
    flagged = V.session_verdicts(preferred, class_averages(models["big"], 1, 3, rng), PIXEL_A, runs)
    assert [v.split(":")[0] for v in flagged] == [V.TITLE_FEW_VIEWS]
    assert "all one view" in flagged[0]
    verdicts = V.session_verdicts(
        clean,
        class_averages(models["big"], 8, 8, rng),
        PIXEL_A,
        runs,
        flags={"preferred": flagged},
    )
    assert [v.split(":")[0] for v in verdicts] == [V.TITLE_BEST]


def test_decision_is_go_only_without_flags_and_with_good_particles():
    summary = {
        "session": "a",
        "status": "ok",
        "good_particles": 900,
        "good_micrograph_fraction": 0.8,
        "good_particles_per_micrograph": 90.0,
        "good_particle_fraction": 0.6,
        "verdicts": [f"{V.TITLE_BEST}: most good particles per micrograph (90)."],
    }
    go, why = V.decision(summary)
    assert go == "go"
    assert why.startswith("no flag (best candidate): 80% good micrographs, 90 good particles")
    dense = {**summary, "particles_per_micrograph": 150.0, "micrograph_area_um2": 0.5}
    assert V.decision(dense)[1].endswith("60% of picks good, 300 picks per µm²")
    flagged = {**summary, "verdicts": [f"{V.TITLE_AGGREGATION}: 40% of ..."]}
    assert V.decision(flagged) == ("no-go", V.TITLE_AGGREGATION)
    assert V.decision({**summary, "good_particles": 0}) == ("no-go", "no good particles")
    failed = {"status": "failed", "error": "disk full"}
    assert V.decision(failed) == ("no-go", "the session failed: disk full")


def test_noise_share_of_masked_averages_is_measured_inside_the_mask():
    """Our own 2D masks its averages to a disc (corners exactly 0): the noise is then measured
    inside the mask, so a noisy masked average is as noisy as the same unmasked one (the corners
    alone gave 0, and noisy masked averages were judged as clean)."""
    rng = np.random.default_rng(1)
    n = 64
    yy, xx = np.indices((n, n)) - (n - 1) / 2
    disc = np.hypot(yy, xx) < 0.45 * n
    blob = np.exp(-(yy**2 + xx**2) / (2 * 8.0**2))
    for amplitude in (0.0, 30.0):  # pure noise; a clear object
        image = amplitude * blob + rng.normal(size=(n, n))
        unmasked, masked = V.noise_shares([image, image * disc])
        assert masked == pytest.approx(unmasked, abs=0.05)
    image = 3.0 * blob + rng.normal(size=(n, n))  # a faint object: mostly noise either way
    assert min(V.noise_shares([image, image * disc])) > 0.5
    assert V.noise_shares([np.zeros((n, n))])[0] == 0.0


def test_a_flagged_condition_ranks_below_a_clean_one_with_fewer_particles():
    """Issue 12: more particles of few views are worth less than fewer of all views."""
    from screen.report.context import rank_key, ranked_summaries

    preferred = summary("preferred", per_mic=200.0, good_particles=12_000)
    clean = summary("clean", per_mic=150.0, good_particles=9_000)
    failed = {"session": "failed", "status": "failed", "good_particles_per_micrograph": 500.0}
    few_views = f"{V.TITLE_FEW_VIEWS}: preferred orientation likely (3 good classes, one view)."
    ranked = ranked_summaries(
        [failed, preferred, clean], {"preferred": [few_views], "clean": [], "failed": []}
    )
    assert [s["session"] for s in ranked] == ["clean", "preferred", "failed"]
    # Without the flag, particles decide; stored verdicts count when none are given.
    assert [s["session"] for s in ranked_summaries([clean, preferred], {})] == [
        "preferred",
        "clean",
    ]
    stored = {**preferred, "verdicts": [few_views]}
    assert rank_key(stored) > rank_key(clean)


def test_no_good_particles_with_a_class_domain_warning_says_look_before_discarding():
    summary = {"status": "ok", "good_particles": 0, "verdicts": [], "class_domain_warning": "x"}
    go, why = V.decision(summary)
    assert go == "no-go" and why.startswith("no good particles, but class assessment may be")


def test_round_averages_are_not_called_preferred_orientation(models):
    """A shell or ring (apoferritin) projects the same from every side: four alike ring averages
    are one "view" but not preferred orientation (the real Magellon rings raised the flag)."""
    rng = np.random.default_rng(6)
    y, x = np.indices((64, 64)) - 31.5
    radius = np.hypot(x, y)
    ring = np.exp(-(((radius - 11.0) / 3.0) ** 2))
    rings = [ring + 0.03 * rng.standard_normal(ring.shape) for _ in range(4)]
    lobed = class_averages(models["big"], 1, 4, rng)
    assert min(V.rotational_share(a) for a in rings) > V.ROUND_VIEWS_SHARE
    assert max(V.rotational_share(a) for a in lobed) < V.ROUND_VIEWS_SHARE
    assert V.few_views(rings, [60, 50, 40, 30]) is None
    assert V.few_views(lobed, [60, 50, 40, 30]).startswith(V.TITLE_FEW_VIEWS)


def _ellipse_average(
    length_A: float, width_A: float, angle_deg: float, px: float = 4.0, box: int = 96
) -> np.ndarray:
    """A class average of a uniform ellipse (protein bright) on a little noise."""
    y, x = (np.indices((box, box)) - box / 2) * px
    t = np.radians(angle_deg)
    u, v = x * np.cos(t) + y * np.sin(t), -x * np.sin(t) + y * np.cos(t)
    inside = (u / (length_A / 2)) ** 2 + (v / (width_A / 2)) ** 2 <= 1.0
    rng = np.random.default_rng(int(length_A + 7 * width_A + angle_deg))
    return gaussian_filter(inside.astype(float), 1.0) + 0.02 * rng.standard_normal((box, box))


def test_long_axis_of_a_rod_comes_from_its_side_views_not_its_diameter():
    """A 180 x 60 Å rod whose diameter estimate (an average over orientations) read 130 Å: its
    side views give the long axis; a few particles in one long junk average do not."""
    side = [_ellipse_average(180, 60, a) for a in (10, 70, 135)]
    tilted = [_ellipse_average(120, 60, 40)]
    end = [_ellipse_average(62, 60, 0)]
    junk = [_ellipse_average(330, 70, 20)]
    counts = [60, 50, 45, 30, 40, 8]
    found = V.particle_long_axis_A(side + tilted + end + junk, counts, [195] * 6, 4.0, 130.0)
    assert found is not None and found.n_averages == 6
    # The object is seen 20-Å low-passed, above 12 % of its peak: a clean edge reads ~10 % long.
    assert 170 <= found.long_axis_A <= 215 and found.long_axis_A == found.classes_length_A
    assert 2.0 <= found.aspect_ratio <= 3.3
    # A round particle: its averages' objects read short of the diameter, which stands.
    disc = [_ellipse_average(140, 136, a) for a in (0, 60)]
    round_ = V.particle_long_axis_A(disc, [70, 50], [200, 270], 4.0, 180.0)
    assert round_.long_axis_A == 180.0 and round_.classes_length_A < 180.0
    assert 0.9 <= round_.aspect_ratio <= 1.15
    # Averages of masks over 2 diameters hold neighbours: not measured.
    wide = V.particle_long_axis_A(side[:1] + junk, [60, 200], [195, 300], 4.0, 130.0)
    assert wide.n_averages == 1 and wide.long_axis_A < 215
    assert V.particle_long_axis_A(disc, [70, 50], [400, 500], 4.0, 180.0) is None
    assert V.particle_long_axis_A([], [], [], 4.0, 160.0) is None
    assert V.particle_long_axis_A(disc, [70, 50], [200, 200], 0.0, 160.0) is None
    with pytest.raises(ValueError, match="2 averages but 1"):
        V.particle_long_axis_A(disc, [70], [200, 200], 4.0, 160.0)


def test_long_axis_in_words():
    from screen.report.context import long_axis_text

    rod = {"long_axis_A": 179.2, "classes_length_A": 179.2, "aspect_ratio": 2.68}
    assert long_axis_text(rod) == "179 Å (good 2D classes, about 2.7:1)"
    assert long_axis_text(rod, unit="", short=True) == "179 (2D classes, 2.7:1)"
    globular = {"long_axis_A": 212.0, "classes_length_A": 151.0, "aspect_ratio": 1.2}
    assert long_axis_text(globular) == "212 Å (the diameter; good 2D classes are shorter)"
    assert long_axis_text(globular, unit="", short=True) == "212 (diameter)"
    assert long_axis_text({}) == "—"
