from dataclasses import replace

import numpy as np
import pytest

from screen.io.images import is_lossy_export
from screen.stages.assess_micrographs import (
    BACKEND,
    MicrographAssessParams,
    assess_micrographs,
    check_ctf,
    kept_by_second_opinion,
    load_micrograph_model,
    needs_second_opinion,
    params_problems,
    ringless_in_sound_session,
    rings_fitted,
    second_opinion_warning,
    session_domain_check,
    sound_ctf_in_session,
)
from screen.stages.ctf import astigmatism_is_measured
from screen.stages.records import MICROGRAPH_REASONS, CtfFit, MicrographVerdict

PARAMS = MicrographAssessParams()


@pytest.fixture(scope="module")
def model():
    return load_micrograph_model(PARAMS)


@pytest.fixture(scope="module")
def simulated(empty_carbon_session):
    reasons, images, pixel_size_A = empty_carbon_session
    return images, [pixel_size_A] * len(images), reasons


def test_backend_contract():
    assert BACKEND.key == "assess_micrographs/builtin@16"
    assert BACKEND.params_type is MicrographAssessParams
    assert BACKEND.compute is assess_micrographs
    assert PARAMS.threshold == 0.1


def test_verdicts_follow_ground_truth_and_threshold(model, simulated):
    images, pixel_sizes, reasons = simulated
    verdicts = assess_micrographs(images, pixel_sizes, replace(PARAMS, batch_size=5), model)
    assert len(verdicts) == len(images)
    truth_good = np.array([r == "good" for r in reasons])
    p_good = np.array([v.p_good for v in verdicts])
    # Ranking: the good micrographs score above the empty / carbon ones on average.
    assert p_good[truth_good].mean() > p_good[~truth_good].mean() + 0.3
    for v in verdicts:
        assert v.verdict == ("bad" if v.p_good < 0.1 else "good")
        assert (v.reason is None) == (v.verdict == "good")
        assert set(v.reason_scores) == set(MICROGRAPH_REASONS)
    # The user's threshold is honoured: at 0 the network rejects nothing (only the carbon check
    # does, and only micrographs that are carbon), a high one rejects more.
    lenient = assess_micrographs(images, pixel_sizes, replace(PARAMS, threshold=0.0), model)
    for v, reason in zip(lenient, reasons, strict=True):
        assert v.verdict == "good" or v.reason == "carbon" == reason
    assert any(v.reason == "carbon" for v in lenient)
    strict = assess_micrographs(images, pixel_sizes, replace(PARAMS, threshold=0.9), model)
    assert sum(v.verdict == "bad" for v in strict) >= sum(v.verdict == "bad" for v in verdicts)
    # Batching does not change the scores.
    single = assess_micrographs(images[:3], pixel_sizes[:3], replace(PARAMS, batch_size=1), model)
    np.testing.assert_allclose([v.p_good for v in single], p_good[:3], atol=1e-5)
    # The drift check's measure is kept with every verdict, the check on or off (a cached
    # verdict serves both).
    off = assess_micrographs(
        images[:2], pixel_sizes[:2], replace(PARAMS, drift_outlier_sigma=0), model
    )
    assert [v.anisotropy for v in off] == [v.anisotropy for v in verdicts[:2]]
    assert all(v.anisotropy is not None and v.anisotropy_noise > 0 for v in verdicts)


def test_unusable_images_are_bad_without_reason(model, simulated):
    images, pixel_sizes, _ = simulated
    nan_image = images[0].copy()
    nan_image[10:20, 10:20] = np.nan
    batch = [
        np.full((512, 512), np.nan, np.float32),
        np.zeros((512, 512)),
        np.ones((20, 20)),
        nan_image,
        images[1],
    ]
    verdicts = assess_micrographs(batch, [2.0] * 4 + [pixel_sizes[1]], PARAMS, model)
    for v in verdicts[:4]:
        assert v.verdict == "bad" and v.reason is None and v.p_good == 0.0
    alone = assess_micrographs(images[1:2], pixel_sizes[1:2], PARAMS, model)[0]
    assert verdicts[4].p_good == pytest.approx(alone.p_good, abs=1e-5)
    assert assess_micrographs([], [], PARAMS, model) == []


def test_non_square_frame_and_errors(model):
    rng = np.random.default_rng(3)
    frame = rng.poisson(4.0, (400, 700)).astype(np.float32)
    (verdict,) = assess_micrographs([frame], [1.0], PARAMS, model)
    assert 0.0 <= verdict.p_good <= 1.0
    with pytest.raises(ValueError, match="pixel sizes"):
        assess_micrographs([frame], [], PARAMS, model)
    with pytest.raises(ValueError, match="positive"):
        assess_micrographs([frame], [-1.0], PARAMS, model)
    with pytest.raises(ValueError, match="threshold"):
        assess_micrographs([frame], [1.0], replace(PARAMS, threshold=2.0), model)


def test_ctf_check_calls_strong_astigmatism_bad():
    good = MicrographVerdict(p_good=0.9, verdict="good", reason=None, reason_scores={})
    round_rings = CtfFit(20300.0, 19800.0, 10.0, 6.0, 0.5)  # 500 Å of astigmatism
    elliptic = CtfFit(24000.0, 17000.0, 10.0, 6.0, 0.5)  # 7000 Å
    assert check_ctf(good, round_rings, PARAMS) == good
    assert check_ctf(good, None, PARAMS) == good  # no fit: the network's verdict stands
    flagged = check_ctf(good, elliptic, PARAMS)
    assert (flagged.verdict, flagged.reason, flagged.p_good) == ("bad", "bad_ctf", 0.9)
    assert check_ctf(good, elliptic, replace(PARAMS, max_astigmatism_A=0.0)) == good  # off
    assert check_ctf(good, elliptic, replace(PARAMS, max_astigmatism_A=8000.0)) == good
    empty = MicrographVerdict(p_good=0.01, verdict="bad", reason="empty", reason_scores={})
    assert check_ctf(empty, elliptic, PARAMS) == empty  # already bad: its reason stays


def test_a_sound_ctf_fit_overrules_the_networks_bad_ctf():
    """Thon rings fitted to 10 Å or better measure a sound CTF; the network only infers it."""
    scores = {"bad_ctf": 0.9, "drift": 0.08}
    called = MicrographVerdict(p_good=0.02, verdict="bad", reason="bad_ctf", reason_scores=scores)
    sound = CtfFit(20300.0, 19800.0, 10.0, 8.5, 0.5)
    kept = check_ctf(called, sound, PARAMS)
    assert (kept.verdict, kept.reason, kept.p_good) == ("good", None, 0.02)
    coarse = replace(sound, fit_resolution_A=14.0)  # rings to 14 Å: the network may be right
    assert check_ctf(called, coarse, PARAMS) == called
    assert check_ctf(called, replace(sound, fit_resolution_A=float("nan")), PARAMS) == called
    elliptic = CtfFit(24000.0, 17000.0, 10.0, 6.0, 0.5, astigmatism_spread=0.1)  # 7000 Å
    assert check_ctf(called, elliptic, PARAMS) == called  # the fit confirms a bad CTF
    empty = replace(called, reason="empty")
    assert check_ctf(empty, sound, PARAMS) == empty  # other reasons: not the fit's to judge
    assert check_ctf(called, sound, replace(PARAMS, sound_ctf_keeps=False)) == called
    # Near focus (0.12 µm) a fit "to 5.8 Å" has not reached its first zero (about 4.9 Å): no
    # ring was fitted, and the network's bad CTF stands.
    near_focus = CtfFit(1250.0, 1150.0, 10.0, 5.8, 0.5)
    assert not rings_fitted(near_focus) and rings_fitted(sound)
    assert check_ctf(called, near_focus, PARAMS) == called
    # Under a threshold near 1 a confident "good" is bad with bad_ctf only as its runner-up:
    # that is not the network's judgement of the CTF, and the verdict stands.
    runner_up = replace(called, p_good=0.95, reason_scores={"bad_ctf": 0.03, "drift": 0.02})
    assert check_ctf(runner_up, sound, PARAMS) == runner_up


def test_rings_as_far_as_the_sessions_overrule_the_networks_bad_ctf():
    """Fits just past 10 Å in a session whose fits typically reach 9.3 Å: the rings reach as far as
    the session's, and the network's bad CTF is overruled (session 22: two good JPEG-exported
    micrographs fitted to 10.25 and 10.28 Å were lost to it). Not where the session's own fits are
    coarse, nor for rings well short of the session's."""
    scores = {"bad_ctf": 0.9, "drift": 0.08}
    called = MicrographVerdict(p_good=0.02, verdict="bad", reason="bad_ctf", reason_scores=scores)
    good = MicrographVerdict(p_good=0.9, verdict="good", reason=None, reason_scores={})
    session = [CtfFit(20300.0, 19800.0, 10.0, r, 0.5) for r in (8.8, 9.1, 9.3, 9.3, 9.5, 9.9)]
    near = CtfFit(18300.0, 18000.0, 10.0, 10.28, 0.5)
    short = replace(near, fit_resolution_A=11.5)  # 0.81 of the session's typical frequency
    verdicts = [good] * 6 + [called, called, replace(called, reason="empty")]
    fits = [*session, near, short, near]
    out = sound_ctf_in_session(verdicts, fits, PARAMS)
    assert [v.verdict for v in out] == ["good"] * 7 + ["bad", "bad"]
    assert check_ctf(called, near, PARAMS) == called  # alone, 10.28 Å is not 10 Å
    assert sound_ctf_in_session(verdicts, fits, replace(PARAMS, sound_ctf_keeps=False)) == verdicts
    coarse = [replace(f, fit_resolution_A=f.fit_resolution_A + 3.0) for f in session]
    assert sound_ctf_in_session(verdicts, [*coarse, near, short, near], PARAMS) == verdicts
    assert sound_ctf_in_session(verdicts[3:], fits[3:], PARAMS) == verdicts[3:]  # too few
    elliptic = CtfFit(22000.0, 15000.0, 10.0, 10.28, 0.5, astigmatism_spread=0.1)
    assert sound_ctf_in_session([*verdicts[:6], called], [*session, elliptic], PARAMS)[-1] == called


def test_rings_that_fade_well_before_the_sessions_do_not_overrule_the_networks_bad_ctf():
    """The independent simulator's envelope of B 435 Å^2 on 2-Å pixels: fitted to 8.6 Å where
    the session's fits reach 4.7 Å. 8.6 Å passes the absolute 10 Å, but the rings stop at 0.55 of
    the session's frequency: the network's bad CTF stands. Rings at 0.85 of it are the session's."""
    scores = {"bad_ctf": 0.9, "drift": 0.08}
    called = MicrographVerdict(p_good=0.001, verdict="bad", reason="bad_ctf", reason_scores=scores)
    good = MicrographVerdict(p_good=0.9, verdict="good", reason=None, reason_scores={})
    session = [CtfFit(20300.0, 19800.0, 10.0, r, 0.5) for r in (4.4, 4.6, 4.7, 4.7, 4.8, 5.0)]
    faded, close = (
        CtfFit(21000.0, 20800.0, 10.0, 8.6, 0.3),
        CtfFit(21000.0, 20800.0, 10.0, 5.5, 0.4),
    )
    kept = [check_ctf(called, fit, PARAMS) for fit in (faded, close)]
    assert [v.verdict for v in kept] == ["good", "good"]  # each alone: rings to 10 Å or better
    verdicts = [good] * 6 + [*kept, good]
    out = sound_ctf_in_session(verdicts, [*session, faded, close, faded], PARAMS)
    assert [v.verdict for v in out] == ["good"] * 6 + ["bad", "good", "good"]
    assert out[6].reason == "bad_ctf" and out[6].p_good == called.p_good
    # The network's good verdict is not the network's bad CTF: a faded fit alone changes nothing;
    # nor in a session too small to have a typical fit, nor with the fit's overrule turned off.
    assert (
        sound_ctf_in_session(verdicts[3:], [*session[3:], faded, close, faded], PARAMS)
        == (verdicts[3:])
    )
    off = replace(PARAMS, sound_ctf_keeps=False)
    assert sound_ctf_in_session(verdicts, [*session, faded, close, faded], off) == verdicts


def test_ctf_check_trusts_only_an_astigmatism_the_fit_could_measure():
    """3,000 Å of astigmatism shifts the rings of the two principal directions by a quarter
    period only beyond 10.9 Å at 300 kV (12.3 Å at 200 kV): a fit that stops before cannot
    have measured it, and a failed fit (no rings, 30 Å) reports noise."""
    good = MicrographVerdict(p_good=0.9, verdict="good", reason=None, reason_scores={})
    failed = CtfFit(30000.0, 22000.0, 40.0, 30.0, 0.05)  # 8000 Å "measured" without rings
    assert not astigmatism_is_measured(failed, 300.0)
    assert check_ctf(good, failed, PARAMS) == good
    coarse = CtfFit(21800.0, 18000.0, 10.0, 12.5, 0.3)  # 3800 Å, rings to 12.5 Å
    assert not astigmatism_is_measured(coarse, 300.0)  # needs 12.2 Å or finer at 300 kV
    assert astigmatism_is_measured(coarse, 200.0)  # 13.8 Å at 200 kV
    assert check_ctf(good, coarse, PARAMS, 300.0) == good
    assert check_ctf(good, coarse, PARAMS, 200.0).reason == "bad_ctf"
    huge = CtfFit(35000.0, 15000.0, 10.0, 25.0, 0.2)  # 20,000 Å is visible by 28 Å
    assert check_ctf(good, huge, PARAMS).reason == "bad_ctf"
    nan_fit = CtfFit(20000.0, 15000.0, 10.0, float("nan"), 0.0)
    assert check_ctf(good, nan_fit, PARAMS) == good


def test_ctf_check_needs_the_half_fields_to_repeat_the_astigmatism():
    """An astigmatism that the two halves of the micrograph do not repeat (spread over the
    limit) is the fit following the image's texture, not the lens: the verdict stands."""
    good = MicrographVerdict(p_good=0.9, verdict="good", reason=None, reason_scores={})
    repeated = CtfFit(24000.0, 17000.0, 10.0, 6.0, 0.5, astigmatism_spread=0.15)
    assert check_ctf(good, repeated, PARAMS).reason == "bad_ctf"
    opposite = replace(repeated, astigmatism_spread=1.9)  # the halves' axes swapped
    assert check_ctf(good, opposite, PARAMS) == good
    unchecked = replace(repeated, astigmatism_spread=float("nan"))  # e.g. an external fit
    assert check_ctf(good, unchecked, PARAMS).reason == "bad_ctf"


def _verdict(p_good: float) -> MicrographVerdict:
    scores = {name: 1.0 / len(MICROGRAPH_REASONS) for name in MICROGRAPH_REASONS}
    bad = p_good < PARAMS.threshold
    return MicrographVerdict(p_good, "bad" if bad else "good", "empty" if bad else None, scores)


def _fit(resolution_A: float) -> CtfFit:
    return CtfFit(15000.0, 14000.0, 30.0, resolution_A, 0.5)


def test_domain_check_warns_when_a_session_is_almost_all_rejected_with_sound_ctf():
    verdicts = [_verdict(0.01)] * 9 + [_verdict(0.9)]
    check = session_domain_check(verdicts, [_fit(5.0)] * 10, PARAMS)
    assert (check.n_assessed, check.n_bad_by_network, check.n_bad_with_sound_ctf) == (10, 9, 9)
    assert check.median_fit_resolution_A == pytest.approx(5.0)
    assert "outside its trained domain" in check.warning
    assert "9 of 10" in check.warning and "CTF fits are sound" in check.warning
    assert "--keep-all-micrographs" in check.warning
    # It names the domain-randomised model, unless that is the one in use.
    assert "--micassess-weights micassess_small_v5" in check.warning
    v3 = replace(PARAMS, model="micassess_small_v5")
    assert "--micassess-weights" not in session_domain_check(verdicts, [_fit(5.0)] * 10, v3).warning


def test_domain_check_says_when_ctf_fits_are_poor_too_and_stays_quiet_otherwise():
    poor = session_domain_check([_verdict(0.01)] * 4, [_fit(30.0)] * 4, PARAMS)
    assert "outside its trained domain" in poor.warning
    assert "sound" not in poor.warning and "0 of 4" in poor.warning
    mixed = [_verdict(0.01)] * 7 + [_verdict(0.5)] * 3  # 70 % bad: a bad grid can do this
    assert session_domain_check(mixed, [_fit(5.0)] * 10, PARAMS).warning is None
    # A session too small for a share: warned (and so re-assessed) only when all of it is bad.
    small = session_domain_check([_verdict(0.01)] * 2, [None] * 2, PARAMS).warning
    assert "every micrograph of this small session (2)" in small and "too few" in small
    assert session_domain_check([_verdict(0.01), _verdict(0.5)], [None] * 2, PARAMS).warning is None
    assert session_domain_check([_verdict(0.01)], [None], PARAMS).warning is not None
    # Unassessable images (no scores) are not counted as the model's verdicts.
    blank = MicrographVerdict(0.0, "bad", None, {})
    check = session_domain_check([blank] * 5 + [_verdict(0.6)] * 2, [None] * 7, PARAMS)
    assert check.n_assessed == 2 and check.warning is None
    with pytest.raises(ValueError, match="verdicts but"):
        session_domain_check([blank], [], PARAMS)


def test_second_opinion_is_asked_from_a_third_rejected_and_used_when_models_disagree():
    blank = MicrographVerdict(0.0, "bad", None, {})
    # 3 of 10 rejected: ask; 2 of 10: do not. Unassessable images do not count.
    assert needs_second_opinion([_verdict(0.01)] * 3 + [_verdict(0.9)] * 7, PARAMS)
    assert not needs_second_opinion(
        [_verdict(0.01)] * 2 + [_verdict(0.9)] * 8 + [blank] * 5, PARAMS
    )
    assert not needs_second_opinion([_verdict(0.01)] * 2, PARAMS)  # too few to judge a share
    v5 = replace(PARAMS, model="micassess_small_v5")
    assert not needs_second_opinion([_verdict(0.01)] * 10, v5)  # already the randomised model
    first = [_verdict(0.01)] * 7 + [_verdict(0.9)] * 3  # 70 %: under the domain check's 80 %
    assert session_domain_check(first, [None] * 10, PARAMS).warning is None
    agrees = [_verdict(0.01)] * 5 + [_verdict(0.9)] * 5
    assert second_opinion_warning(first, agrees, PARAMS) is None  # 2 of 10 apart
    keeps = [_verdict(0.01)] * 4 + [_verdict(0.9)] * 6
    warning = second_opinion_warning(first, keeps, PARAMS)
    assert "7 of 10 micrographs called bad" in warning and "only 4 by micassess_small_v5" in warning
    assert "outside its trained domain" in warning and "--no-domain-fallback" in warning
    # In a small session one disagreement is a third of it, but not yet a domain: two are.
    assert not needs_second_opinion([_verdict(0.01)] + [_verdict(0.9)] * 2, PARAMS)
    small = [_verdict(0.01)] * 2 + [_verdict(0.9)]
    assert needs_second_opinion(small, PARAMS)
    assert "2 of 3 micrographs" in second_opinion_warning(small, [_verdict(0.9)] * 3, PARAMS)
    one_apart = [_verdict(0.01)] + [_verdict(0.9)] * 2
    assert second_opinion_warning(small, one_apart, PARAMS) is None
    # Pairs where either model could not assess are left out of the shares.
    assert second_opinion_warning(first + [blank] * 3, keeps + [_verdict(0.9)] * 3, PARAMS)
    with pytest.raises(ValueError, match="first verdicts but"):
        second_opinion_warning(first, keeps[:3], PARAMS)


def test_a_micrograph_half_under_an_opaque_ball_is_bad_whatever_the_network_says(model, simulated):
    images, pixel_sizes, reasons = simulated
    good = [i for i, r in enumerate(reasons) if r == "good"][:2]
    side = images[good[0]].shape[0]
    yy, xx = np.mgrid[: images[good[0]].shape[0], : images[good[0]].shape[1]]
    ball = (yy - 0.25 * side) ** 2 + (xx - 0.75 * side) ** 2 < (0.22 * side) ** 2
    covered = [np.where(ball, 0.03, 1.0) * images[i] for i in good]
    before = assess_micrographs([images[i] for i in good], pixel_sizes[:2], PARAMS, model)
    after = assess_micrographs(covered, pixel_sizes[:2], PARAMS, model)
    off = assess_micrographs(
        covered, pixel_sizes[:2], replace(PARAMS, max_opaque_fraction=0), model
    )
    for clean, balled, unchecked in zip(before, after, off, strict=True):
        assert clean.opaque_fraction < 0.01
        assert 0.1 < balled.opaque_fraction < 0.2
        assert balled.verdict == "bad"
        assert balled.reason == "contaminated" or unchecked.verdict == "bad"
        assert unchecked.opaque_fraction is None
        assert unchecked.p_good == balled.p_good  # the network's P(good) is kept either way
    assert params_problems(replace(PARAMS, max_opaque_fraction=2.0))


def test_a_micrograph_half_behind_a_carbon_film_edge_is_bad_whatever_the_network_says(
    model, simulated
):
    images, pixel_sizes, reasons = simulated
    good = [i for i, r in enumerate(reasons) if r == "good"][:2]
    side = images[good[0]].shape[1]
    xx = np.arange(images[good[0]].shape[1])[None, :]
    filmed = [np.where(xx < 0.55 * side, 0.8, 1.0) * images[i] for i in good]
    before = assess_micrographs([images[i] for i in good], pixel_sizes[:2], PARAMS, model)
    after = assess_micrographs(filmed, pixel_sizes[:2], PARAMS, model)
    off = assess_micrographs(filmed, pixel_sizes[:2], replace(PARAMS, max_carbon_fraction=0), model)
    for clean, covered, unchecked in zip(before, after, off, strict=True):
        assert clean.carbon_fraction == 0.0
        assert covered.carbon_fraction == pytest.approx(0.55, abs=0.05)
        assert covered.verdict == "bad"
        assert covered.reason == "carbon" or unchecked.verdict == "bad"
        assert unchecked.carbon_fraction is None
        assert unchecked.p_good == covered.p_good  # the network's P(good) is kept either way
    assert params_problems(replace(PARAMS, max_carbon_fraction=-0.1))


def test_crystalline_ice_over_half_the_field_is_bad_whatever_the_network_says(model, simulated):
    """Hexagonal-ice fringes (3.90 Å, three directions) over the left 60 % of two good
    micrographs, read as 1.0 Å/px so that the band is resolved (the check's own statistics are
    in tests/processing/test_ice.py)."""
    images, _, reasons = simulated
    good = [images[i] for i, r in enumerate(reasons) if r == "good"][:2]
    pixel_sizes = [1.0, 1.0]
    yy, xx = np.indices(good[0].shape).astype(float)
    lattice = sum(
        np.cos(2 * np.pi * (xx * np.cos(np.radians(d)) + yy * np.sin(np.radians(d))) / 3.9)
        for d in (23.0, 83.0, 143.0)
    ) * (xx < 0.6 * good[0].shape[1])
    iced = [image * (1.0 + 0.05 * lattice) for image in good]
    before = assess_micrographs(good, pixel_sizes, PARAMS, model)
    after = assess_micrographs(iced, pixel_sizes, PARAMS, model)
    off = assess_micrographs(iced, pixel_sizes, replace(PARAMS, max_crystalline_fraction=0), model)
    coarse = assess_micrographs(iced, [2.5, 2.5], PARAMS, model)
    # JPEG exports: their finest frequencies are compression artefacts, not looked at.
    jpeg = assess_micrographs(iced, pixel_sizes, PARAMS, model, lossy=[True, False])
    assert jpeg[0].crystalline_fraction is None and jpeg[1].crystalline_fraction >= 0.4
    assert is_lossy_export("a/b.JPG") and is_lossy_export("c.jpeg")
    assert not is_lossy_export("c.png") and not is_lossy_export("c.mrc")
    for clean, crystalline, unchecked, unresolved in zip(before, after, off, coarse, strict=True):
        assert clean.crystalline_fraction == 0.0
        assert crystalline.crystalline_fraction >= 0.4
        assert crystalline.verdict == "bad"
        assert crystalline.reason == "contaminated" or unchecked.verdict == "bad"
        assert unchecked.crystalline_fraction is None
        assert unresolved.crystalline_fraction is None  # 2.5 Å/px cannot show 3.9 Å
    assert params_problems(replace(PARAMS, max_crystalline_fraction=1.5))


def _exposed(level: float, noise: float, verdict: str = "good") -> MicrographVerdict:
    reason = None if verdict == "good" else "drift"
    return MicrographVerdict(0.9, verdict, reason, {"drift": 0.1}, None, None, None, level, noise)


def test_a_micrograph_that_received_far_fewer_electrons_is_thick_ice():
    from screen.stages.assess_micrographs import thick_ice_by_transmission

    params = MicrographAssessParams()
    # Twice as many of one dose as darker ones: a session half of whose micrographs are dark
    # has no one level to read them against (`TRANSMISSION_MAX_LEVEL_SPREAD`).
    session = [_exposed(1000.0 * f, 2000.0 * f) for f in (0.97, 1.0, 1.02, 0.99, 1.01, 1.03) * 2]
    darker = [
        _exposed(620.0, 1240.0),  # fewer electrons: the noise fell with the counts
        _exposed(620.0, 770.0),  # an export's rescale: noise fell with the square
        _exposed(800.0, 1600.0),  # 20 % fewer: within the limit
        _exposed(600.0, 1200.0, "bad"),  # already bad: left as the network called it
        _exposed(620.0, 1240.0 * 1.3),  # more ice texture on top of the counts: thick ice
        _exposed(620.0, 1240.0 * 1.7),  # far noisier than counts: not judged
    ]
    checked = thick_ice_by_transmission(session + darker, params)
    assert [v.verdict for v in checked[:12]] == ["good"] * 12
    assert (checked[12].verdict, checked[12].reason) == ("bad", "thick_ice")
    assert checked[12].p_good == 0.9  # the network's numbers stay
    assert [v.verdict for v in checked[13:15]] == ["good", "good"]
    assert checked[15] == darker[3]
    assert (checked[16].reason, checked[17].verdict) == ("thick_ice", "good")
    half_dark = thick_ice_by_transmission(session[:6] + darker, params)
    assert [v.verdict for v in half_dark] == [v.verdict for v in session[:6] + darker]
    # Off, too few measured micrographs, or a session that keeps no count statistics: unchanged.
    off = replace(params, thick_ice_transmission=0.0)
    assert thick_ice_by_transmission(session + darker, off) == session + darker
    assert thick_ice_by_transmission(session[:2] + darker[:1], params)[2].verdict == "good"
    stretched = [_exposed(1000.0, 2000.0 * g) for g in (0.5, 1.0, 1.6, 0.8, 1.3, 0.6)]
    assert thick_ice_by_transmission(stretched + darker[:1], params)[6].verdict == "good"
    unmeasured = [replace(v, grey_level=None) for v in session]
    assert thick_ice_by_transmission(unmeasured + darker[:1], params)[6].verdict == "good"
    assert any(
        "thick_ice_transmission" in p
        for p in params_problems(replace(params, thick_ice_transmission=1.5))
    )


def test_a_level_far_out_of_a_tight_session_is_thick_ice_without_a_filter():
    """The independent simulator's thick ice without an energy filter: 1,200-2,500 Å of ice at
    0.81-0.91 of its session's level, above the absolute 0.75. Out of a session whose levels
    agree within about 1 %, a micrograph 14 % darker is thick ice; one 7 % darker, under the
    10 % floor, is not; in a session whose levels spread by 4 %, 14 % is within them."""
    from screen.stages.assess_micrographs import thick_ice_by_transmission

    params = MicrographAssessParams()
    tight = (0.985, 0.99, 0.995, 1.0, 1.0, 1.005, 1.01, 1.015, 1.02)
    wide = (0.92, 0.95, 0.97, 1.0, 1.0, 1.03, 1.05, 1.08, 1.1)
    darker = [_exposed(860.0, 1720.0), _exposed(930.0, 1860.0)]
    for levels, expected in ((tight, ["bad", "good"]), (wide, ["good", "good"])):
        session = [_exposed(1000.0 * f, 2000.0 * f) for f in levels]
        checked = thick_ice_by_transmission(session + darker, params)
        assert [v.verdict for v in checked] == ["good"] * len(session) + expected
        if expected[0] == "bad":
            assert checked[-2].reason == "thick_ice" and checked[-2].p_good == 0.9


def test_a_session_whose_dose_varied_has_no_thick_ice_by_its_levels():
    """Doses 7x apart in one session (counts: the noise follows each level): the darkest are
    fewer electrons in, not fewer through; in a session of one dose the same level is thick ice."""
    from screen.stages.assess_micrographs import thick_ice_by_transmission

    params = MicrographAssessParams()
    varied = [_exposed(1000.0 * f, 2000.0 * f) for f in (0.27, 0.42, 0.55, 1.0, 1.1, 1.4, 1.6, 1.9)]
    checked = thick_ice_by_transmission(varied, params)
    assert [v.verdict for v in checked] == ["good"] * len(varied)
    one_dose = [_exposed(1000.0 * f, 2000.0 * f) for f in (0.97, 1.0, 1.02, 0.99, 1.01, 1.03)]
    darker = _exposed(420.0, 840.0)
    assert thick_ice_by_transmission(one_dose + [darker], params)[-1].reason == "thick_ice"


def test_a_reason_the_network_gave_much_of_a_session_counts_where_a_fit_overruled_it():
    """Four of five "bad CTF" calls kept by sound fits still say what the network made of the
    session: the fifth, ring-less, is judged again without the session's reason."""
    from screen.stages.assess_micrographs import session_wide_reasons

    params = MicrographAssessParams(session_reason_share=0.4)
    good = [_network(0.8, "drift")] * 5
    overruled = [replace(_network(0.05, "bad_ctf"), verdict="good", reason=None)] * 4
    standing = _network(0.05, "bad_ctf")
    result = session_wide_reasons(good + overruled + [standing], params)
    assert result.reasons == {"bad_ctf": 5} and result.n_kept == 1
    assert result.verdicts[-1].verdict == "good" and result.verdicts[:9] == good + overruled
    assert "bad CTF to 5 of 10 micrographs" in result.warning


def _summed(level: float, gain: float, verdict: str = "good") -> MicrographVerdict:
    """A camera's (binned) sum: its extremes lie wherever its noise puts them."""
    return replace(
        _exposed(level, level * gain, verdict), grey_min=0.55 * level, grey_max=1.9 * level
    )


def test_thick_ice_by_the_level_alone_where_the_noise_cannot_tell():
    # Binned or denoised frames: the neighbouring-pixel differences carry the particles too, and
    # their ratio to the level spreads over the session; one dose still gives one level.
    from screen.stages.assess_micrographs import stretched_export, thick_ice_by_transmission

    params = MicrographAssessParams()
    gains = (0.5, 1.0, 1.6, 0.8, 1.3, 0.6)
    session = [
        _summed(1000.0 * f, g)
        for f, g in zip((0.97, 1, 1.02, 0.99, 1.01, 1.03), gains, strict=True)
    ]
    darker = [_summed(700.0, 1.1), _summed(800.0, 0.7)]  # 30 % fewer electrons; 20 %: kept
    checked = thick_ice_by_transmission(session + darker, params)
    assert [v.verdict for v in checked] == ["good"] * 6 + ["bad", "good"]
    assert checked[6].reason == "thick_ice" and checked[6].p_good == 0.9
    assert not stretched_export(session + darker)
    # An export that stretched each micrograph into 0-255: its levels are the export's.
    exported = [replace(v, grey_min=0.0, grey_max=255.0 - i % 2) for i, v in enumerate(session)]
    assert stretched_export(exported + darker)
    assert thick_ice_by_transmission(exported + darker, params) == exported + darker
    # Levels that do not agree (stretched per micrograph, or several doses): nothing judged.
    spread = [
        replace(v, grey_level=1000.0 * f)
        for v, f in zip(session, (0.8, 1, 1.2, 0.9, 1.15, 0.85), strict=True)
    ]
    assert thick_ice_by_transmission(spread + darker, params) == spread + darker
    # Extremes not measured (an older cache): no level is believed alone.
    unmeasured = [replace(v, grey_min=None, grey_max=None) for v in session + darker]
    assert stretched_export(unmeasured)
    assert thick_ice_by_transmission(unmeasured, params) == unmeasured


def test_thick_ice_of_simulated_counts_is_found_by_its_transmission():
    # The simulator's energy-filtered image formation: transmission exp(-t / 3,200 Å); its good
    # micrographs' doses still vary 40-55 e/Å² within a session (a real session's barely do).
    from screen.processing.exposure import exposure
    from screen.simulate.presets import prex1_small
    from screen.simulate.render import render_micrograph
    from screen.simulate.session import session_models, session_plans
    from screen.stages.assess_micrographs import thick_ice_by_transmission

    spec = prex1_small(40)
    plans = [p for p in session_plans(spec, 1) if p.reason in ("good", "thick_ice")]
    plans = [p for p in plans if p.reason == "good"][:8] + [
        p for p in plans if p.reason == "thick_ice" and p.ice_thickness_A > 1450.0
    ]
    assert len(plans) == 11  # 1,495-1,856 Å of ice
    models = session_models(spec.sessions[1])
    verdicts = []
    for plan in plans:
        counts = render_micrograph(plan, models, spec.frame_px, spec.pixel_size_A).counts
        measured = exposure(counts)
        verdicts.append(_exposed(measured.level, measured.noise_variance))
    checked = thick_ice_by_transmission(verdicts, MicrographAssessParams())
    assert [v.verdict for v in checked[:8]] == ["good"] * 8
    # 1,667 Å at 51 e/Å² received as many electrons as a good micrograph at 43: kept. Measured
    # 2026-12-05 on sessions of one dose (`bench/micassess_generators.py --per-session`), 6-9
    # of 10 thick-ice micrographs (1,000-2,200 Å) are caught where the counts are kept.
    assert sum(v.reason == "thick_ice" for v in checked[8:]) == 2


def _network(p_good: float, reason: str, second: str = "crowded", share: float = 0.8):
    """A verdict as the network gives it: ``reason`` likeliest, ``second`` the rest."""
    scores = {name: 0.0 for name in MICROGRAPH_REASONS}
    scores[reason], scores[second] = share, 1.0 - share
    bad = p_good < PARAMS.threshold
    return MicrographVerdict(p_good, "bad" if bad else "good", reason if bad else None, scores)


def test_a_spectral_reason_given_to_much_of_a_session_is_the_sessions():
    from screen.stages.assess_micrographs import session_wide_reasons

    params = MicrographAssessParams(session_reason_share=0.4)
    good = [_network(0.8, "drift")] * 5
    # Five "bad CTF": P(good) 0.05 of which bad CTF is 80 % -> without it 0.05 / 0.24 = 0.21.
    ctf = [_network(0.05, "bad_ctf")] * 5
    # One where the rest is mostly "crowded": 0.01 / (0.01 + 0.99 * 0.5) = 0.02, still bad.
    crowded = _network(0.01, "bad_ctf", "crowded", share=0.5)
    contaminated = replace(_network(0.5, "drift"), verdict="bad", reason="contaminated")
    session = good + ctf + [crowded, contaminated]
    result = session_wide_reasons(session, params)
    assert result.reasons == {"bad_ctf": 6} and result.n_kept == 5
    assert [v.verdict for v in result.verdicts[5:10]] == ["good"] * 5
    assert all(v.p_good == 0.05 for v in result.verdicts[5:10])  # the network's numbers stay
    assert result.verdicts[10] == crowded  # the rest of the evidence is against it too
    assert result.verdicts[11] == contaminated  # a measured verdict is not the network's
    assert result.verdicts[:5] == good
    assert "bad CTF to 6 of 12 micrographs" in result.warning
    assert "5 of 6 are good on the rest of the evidence and were kept" in result.warning
    lost = session_wide_reasons(good + [crowded] * 4, params)
    assert lost.verdicts == good + [crowded] * 4 and lost.n_kept == 0
    assert "the whole grid may be bad for this reason" in lost.warning
    # Under the share, under the minimum count, a reason read from the image, or off: unchanged.
    for verdicts, p in (
        (good * 3 + ctf[:5], params),
        (good[:1] + ctf[:2], params),
        (good + [_network(0.01, "crowded", "bad_ctf")] * 6, params),
        (session, replace(params, session_reason_share=0.0)),
    ):
        unchanged = session_wide_reasons(verdicts, p)
        assert unchanged.verdicts == verdicts and unchanged.warning is None
    assert any(
        "session_reason_share" in p
        for p in params_problems(replace(params, session_reason_share=1.5))
    )


def test_the_networks_thick_ice_needs_a_micrograph_darker_than_its_session():
    from screen.stages.assess_micrographs import thick_ice_needs_darkening

    params = MicrographAssessParams()

    def at(level: float, verdict: MicrographVerdict) -> MicrographVerdict:
        return replace(verdict, grey_level=level, noise_variance=level)

    good = [at(1000.0 * f, _network(0.8, "drift")) for f in (0.97, 1.0, 1.02, 0.99, 1.01)]
    # Thick ice 80 % of it, the rest "crowded": without it 0.05 / (0.05 + 0.95 * 0.2) = 0.21.
    level_as_the_others = at(1005.0, _network(0.05, "thick_ice"))
    darker = at(800.0, _network(0.05, "thick_ice"))  # fewer electrons: believed
    # Made thick ice by a measurement, not by the network (P(good) 0.8): not the network's call.
    measured = replace(good[0], verdict="bad", reason="thick_ice")
    session = good + [level_as_the_others, darker, measured]
    checked = thick_ice_needs_darkening(session, params)
    assert checked[:5] == good and checked[6] == darker and checked[7] == measured
    assert (checked[5].verdict, checked[5].reason) == ("good", None)
    assert checked[5].p_good == 0.05  # the network's numbers stay
    # A micrograph whose rest of the evidence is against it too stays bad, named by the rest:
    # its level contradicts thick ice.
    against = at(1005.0, _network(0.01, "thick_ice", share=0.5))
    assert thick_ice_needs_darkening(good + [against], params)[5] == replace(
        against, reason="crowded"
    )
    # Levels that say nothing (one level for all, or scattered), too few, or off: unchanged.
    flat = [replace(v, grey_level=1000.0) for v in session]
    scattered = [
        replace(v, grey_level=1000.0 * f)
        for v, f in zip(session, (0.6, 1.4, 1, 2, 0.8, 1, 1, 1.2), strict=True)
    ]
    for verdicts, p in (
        (flat, params),
        (scattered, params),
        (session[-3:], params),
        (session, replace(params, thick_ice_transmission=0.0)),
    ):
        assert thick_ice_needs_darkening(verdicts, p) == verdicts


def _directional(
    anisotropy: float, verdict: str = "good", noise: float = 0.02
) -> MicrographVerdict:
    reason = None if verdict == "good" else "empty"
    return MicrographVerdict(
        0.9, verdict, reason, {"drift": 0.1}, anisotropy=anisotropy, anisotropy_noise=noise
    )


def test_a_micrograph_whose_spectrum_lost_one_direction_is_drift():
    from screen.stages.assess_micrographs import drift_by_anisotropy

    params = MicrographAssessParams()
    # A session's spread of anisotropy (astigmatism, texture): median 0.10, robust sigma ~0.03.
    session = [_directional(a) for a in (0.06, 0.08, 0.09, 0.10, 0.10, 0.11, 0.12, 0.14)]
    odd = [
        _directional(0.45),  # 11 robust sigmas above the session, 22 x its noise: drift
        _directional(0.22),  # 4 robust sigmas: within what the session's good ones show
        _directional(0.45, noise=0.1),  # an outlier, but only 4.5 x its own noise
        _directional(0.60, "bad"),  # already bad: left as the network called it
    ]
    checked = drift_by_anisotropy(session + odd, params)
    assert [v.verdict for v in checked[:8]] == ["good"] * 8
    assert (checked[8].verdict, checked[8].reason, checked[8].p_good) == ("bad", "drift", 0.9)
    assert [v.verdict for v in checked[9:11]] == ["good", "good"]
    assert checked[11] == odd[3]
    # Off, too few measured micrographs, or a session whose own spread is that wide: unchanged.
    off = replace(params, drift_outlier_sigma=0.0)
    assert drift_by_anisotropy(session + odd, off) == session + odd
    assert drift_by_anisotropy(session[:6] + odd[:1], params)[6].verdict == "good"
    unmeasured = [replace(v, anisotropy=None) for v in session]
    assert drift_by_anisotropy(unmeasured + odd[:1], params)[8].verdict == "good"
    wide = [_directional(a) for a in (0.05, 0.1, 0.2, 0.3, 0.15, 0.25, 0.08, 0.35)]
    assert drift_by_anisotropy(wide + odd[:1], params)[8].verdict == "good"
    assert any(
        "drift_outlier_sigma" in p
        for p in params_problems(replace(params, drift_outlier_sigma=-1.0))
    )


def test_a_micrograph_only_the_first_model_rejects_is_kept_where_the_second_is_confident():
    first = [_verdict(0.01), _verdict(0.01), _verdict(0.01), _verdict(0.9), _verdict(0.01)]
    carbon = replace(first[2], reason="carbon", carbon_fraction=0.5)  # a measured film edge
    first[2] = carbon
    blank = MicrographVerdict(0.0, "bad", None, {})  # the second could not assess it
    second = [_verdict(0.9), _verdict(0.6), _verdict(0.95), _verdict(0.01), blank]
    kept, n_kept = kept_by_second_opinion(first, second, PARAMS)
    assert [v.verdict for v in kept] == ["good", "bad", "bad", "good", "bad"]
    assert n_kept == 1
    assert kept[0].p_good == first[0].p_good and kept[0].reason is None  # the first's P(good)
    assert kept[1] == first[1] and kept[2] == carbon and kept[3] == first[3]
    # A measurement whose check is off (limit 0) does not hold the verdict.
    off = replace(PARAMS, max_carbon_fraction=0.0)
    assert kept_by_second_opinion([carbon], [second[2]], off)[0][0].verdict == "good"
    with pytest.raises(ValueError, match="first verdicts but"):
        kept_by_second_opinion(first, second[:2], PARAMS)


def test_a_micrograph_without_rings_in_a_sound_session_is_bad_ctf():
    sound = [_fit(8.0)] * 8  # 1.45 µm, rings to 8 Å
    ringless = _fit(30.0)  # the band's low end: no ring followed
    assert rings_fitted(sound[0]) and not rings_fitted(ringless)
    verdicts = [_verdict(0.9)] * 8 + [_verdict(0.3), _verdict(1.0), _verdict(0.3)]
    fits = [*sound, ringless, ringless, _fit(8.0)]
    out = ringless_in_sound_session(verdicts, fits, PARAMS)  # whatever the network says
    assert [v.verdict for v in out] == ["good"] * 8 + ["bad", "bad", "good"]
    assert out[8].reason == "bad_ctf" and out[8].p_good == 0.3 and out[9].p_good == 1.0
    # With the network's lean required (session 23's 0.5), the confident one stays good.
    leaning = ringless_in_sound_session(verdicts, fits, replace(PARAMS, ringless_max_p_good=0.5))
    assert [v.verdict for v in leaning[8:]] == ["bad", "good", "good"]
    # Not where the session's fits are not sound, nor in a session too small to tell, nor off.
    poor = [_fit(30.0)] * 8 + [ringless, ringless, _fit(8.0)]
    assert ringless_in_sound_session(verdicts, poor, PARAMS) == verdicts
    assert ringless_in_sound_session(verdicts[6:], fits[6:], PARAMS) == verdicts[6:]
    off = replace(PARAMS, ringless_max_p_good=0.0)
    assert ringless_in_sound_session(verdicts, fits, off) == verdicts
    assert params_problems(replace(PARAMS, ringless_max_p_good=1.5))


def _census(strong: int, asymmetry: float = 1.0, verdict: str = "good") -> MicrographVerdict:
    reason = None if verdict == "good" else "crowded"
    return MicrographVerdict(
        0.9,
        verdict,
        reason,
        {"empty": 0.05},
        strong_blobs=strong,
        strong_blobs_per_um2=strong / 0.04,  # a 2,000-Å field
        blob_tail_asymmetry=asymmetry,
    )


def test_a_micrograph_without_the_dark_blobs_of_its_session_is_empty():
    from screen.stages.assess_micrographs import empty_in_session

    params = MicrographAssessParams()
    session = [_census(n, 1.5) for n in (22, 28, 30, 31, 33, 35, 40, 45)]  # median 32
    odd = [
        _census(2),  # a sixteenth of the session's, a symmetric score map: empty
        _census(2, asymmetry=1.3),  # as few strong blobs, but dark ones stand out: kept
        _census(8),  # a quarter of the session's: kept
        _census(1, verdict="bad"),  # already bad: left as it was
    ]
    checked = empty_in_session(session + odd, params)
    assert checked[:8] == session
    assert (checked[8].verdict, checked[8].reason, checked[8].p_good) == ("bad", "empty", 0.9)
    assert checked[9:] == odd[1:]
    # A sparse session (median 12): a micrograph without any strong blob is empty ...
    sparse = [_census(n, 1.5) for n in (8, 10, 11, 12, 12, 13, 14, 15)]
    none = _census(0)
    assert empty_in_session(sparse + [none], params)[8].reason == "empty"
    # ... but off, too few measured micrographs, or too few strong blobs in the session's median
    # one (a Poisson count of mean 5 is 0 one time in 150): unchanged.
    assert empty_in_session(session + odd, replace(params, empty_blob_ratio=0.0)) == session + odd
    assert empty_in_session(session[:6] + odd[:1], params)[6].verdict == "good"
    sparser = [_census(n, 1.5) for n in (3, 4, 4, 5, 5, 6, 7, 7)]
    assert empty_in_session(sparser + [none], params)[8].verdict == "good"
    unmeasured = [replace(v, strong_blobs=None) for v in session]
    assert empty_in_session(unmeasured + odd[:1], params)[8].verdict == "good"
    assert any(
        "empty_blob_ratio" in p for p in params_problems(replace(params, empty_blob_ratio=1.0))
    )


def test_the_networks_empty_is_not_believed_on_a_micrograph_as_full_as_its_session():
    from screen.stages.assess_micrographs import EMPTY_CONTRADICTED_RATIO, empty_in_session

    params = MicrographAssessParams()
    session = [_census(n, 1.5) for n in (22, 28, 30, 31, 33, 35, 40, 45)]  # median 32

    def called_empty(strong: int, scores: dict[str, float]) -> MicrographVerdict:
        return replace(
            _census(strong, 1.2), p_good=0.05, verdict="bad", reason="empty", reason_scores=scores
        )

    full = called_empty(30, {"empty": 0.9, "crowded": 0.1})  # as full as its session
    rest_bad = called_empty(30, {"empty": 0.5, "aggregated": 0.5})  # the rest still under 0.1
    sparse = called_empty(3, {"empty": 0.9, "crowded": 0.1})  # a tenth of its session: empty
    assert 30 >= EMPTY_CONTRADICTED_RATIO * 32 > 3
    checked = empty_in_session(session + [full, rest_bad, sparse], params)
    assert (checked[8].verdict, checked[8].reason, checked[8].p_good) == ("good", None, 0.05)
    assert (checked[9].verdict, checked[9].reason) == ("bad", "aggregated")
    assert checked[10] == sparse
    # Off, or in a session too small to tell: the network's call stands.
    off = replace(params, empty_blob_ratio=0.0)
    assert empty_in_session(session + [full], off)[8] == full
    assert empty_in_session(session[:6] + [full], params)[6] == full


def test_empty_simulated_micrographs_have_fewer_dark_blobs_than_their_session(model, simulated):
    """The held-out-kind session of the fixture (12 micrographs: good, empty, carbon) through the
    assessment's own census: the three empty ones (0-1 particle) hold 1-2 strong blobs where the
    good ones hold 17-39 (measured 2026-12-06), and nothing else is called empty."""
    from screen.stages.assess_micrographs import empty_in_session

    images, pixel_sizes, reasons = simulated
    verdicts = assess_micrographs(images, pixel_sizes, PARAMS, model)
    assert all(v.strong_blobs is not None for v in verdicts)
    as_good = [replace(v, verdict="good", reason=None) for v in verdicts]
    checked = empty_in_session(as_good, PARAMS)
    called_empty = [r for r, v in zip(reasons, checked, strict=True) if v.reason == "empty"]
    assert called_empty == ["empty"] * reasons.count("empty") and len(called_empty) == 3
    good = [v for r, v in zip(reasons, verdicts, strict=True) if r == "good"]
    assert all(v.blob_tail_asymmetry > 1.15 for v in good)


def test_contamination_is_not_believed_where_it_was_the_ices_smooth_gradient():
    from screen.stages.assess_micrographs import (
        gradient_not_contamination,
        measured_session_checks,
    )

    params = MicrographAssessParams()
    gradient = replace(_network(0.01, "contaminated"), p_good_flattened=0.4)
    still = replace(_network(0.01, "contaminated"), p_good_flattened=0.05)
    unmeasured = _network(0.01, "contaminated")
    ball = replace(gradient, opaque_fraction=0.1)  # the opaque measure sees contamination
    crystals = replace(gradient, crystalline_fraction=0.5)
    other = replace(_network(0.01, "aggregated"), p_good_flattened=0.9)
    good = _network(0.8, "crowded")
    session = [gradient, still, unmeasured, ball, crystals, other, good]
    checked = gradient_not_contamination(session, params)
    assert (checked[0].verdict, checked[0].reason) == ("good", None)
    assert checked[0].p_good == 0.01  # the network's numbers stay
    assert checked[1:] == session[1:]
    assert gradient_not_contamination(session, replace(params, gradient_second_look=False)) == (
        session
    )
    # A thick ice the session's grey level contradicts is renamed to contamination first, then
    # judged by the flattened field (the session's checks, in order).
    levelled = [
        replace(_network(0.8, "drift"), grey_level=1000.0 * f, noise_variance=1000.0)
        for f in (0.97, 1.0, 1.02, 0.99, 1.01)
    ]
    renamed = replace(
        _network(0.01, "thick_ice", second="contaminated", share=0.7),
        grey_level=1000.0,
        noise_variance=1000.0,
        p_good_flattened=0.3,
    )
    assert measured_session_checks([*levelled, renamed], params)[5].verdict == "good"
    assert (
        measured_session_checks([*levelled, renamed], replace(params, gradient_second_look=False))[
            5
        ].reason
        == "contaminated"
    )


def test_a_smooth_ice_gradient_does_not_make_the_network_call_contamination(model):
    """The flattened P(good) is measured for the network's contaminated calls only, and not
    where a film edge's step splits the field (a surface would take part of it away)."""
    from screen.processing.carbon import carbon_edge
    from screen.stages.assess_micrographs import _flattened_p_good

    rng = np.random.default_rng(3)
    images = [rng.normal(100.0, 5.0, (256, 256)).astype(np.float32) for _ in range(4)]
    images[3][:, :110] -= 40.0  # a carbon film over 43 % of the field
    scores = {
        "p_good": np.array([0.01, 0.01, 0.9, 0.01]),
        "reason": np.zeros((4, len(MICROGRAPH_REASONS))),
    }
    contaminated = MICROGRAPH_REASONS.index("contaminated")
    scores["reason"][[0, 2, 3], contaminated] = 1.0
    scores["reason"][1, MICROGRAPH_REASONS.index("aggregated")] = 0.9
    scores["reason"][1, MICROGRAPH_REASONS.index("crowded")] = 0.1

    def edge_of(i):
        return carbon_edge(images[i])

    usable = [0, 1, 2, 3]
    found = _flattened_p_good(images, [4.0] * 4, [(PARAMS, model)], usable, [scores], edge_of)
    assert set(found) == {(0, 0)} and 0.0 <= found[0, 0] <= 1.0
    off = replace(PARAMS, gradient_second_look=False)
    assert _flattened_p_good(images, [4.0] * 4, [(off, model)], usable, [scores], edge_of) == {}
    # A network without a reason head (all-zero reasons, the paper's) names no contamination.
    silent = {"p_good": scores["p_good"], "reason": np.zeros_like(scores["reason"])}
    assert _flattened_p_good(images, [4.0] * 4, [(PARAMS, model)], usable, [silent], edge_of) == {}
