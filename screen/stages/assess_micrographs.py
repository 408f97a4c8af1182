"""Stage: micrograph assessment (MicAssess) -- P(good) per micrograph, the verdict and a reason.

Li et al. (2020) call a micrograph bad only when P(good) < 0.1: throwing away good data costs
more than keeping some bad. The threshold is a parameter; the model is chosen by shipped name or
path and loaded once by the pipeline with :func:`load_micrograph_model`. Once the micrograph's
CTF is fitted, :func:`check_ctf` calls a micrograph with too much astigmatism bad (``bad_ctf``).
Once the whole session is assessed, :func:`thick_ice_by_transmission` calls a micrograph bad
(``thick_ice``) that received far fewer electrons than the session's others, and
:func:`drift_by_anisotropy` one whose spectrum lost one direction far more than its session's
others did (``drift``), and :func:`empty_in_session` one with hardly any of the strong dark blobs
its session's others have (``empty``).

Images that cannot be assessed (not finite, constant, or under ``MIN_SIDE_PX`` on a side) get
``verdict="bad"``, ``reason=None``, ``p_good=0.0`` and empty ``reason_scores``: they never reach
TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from screen.models import micassess
from screen.processing.anisotropy import DirectionalPower, directional_power, reduced_frame
from screen.processing.background import smooth_background
from screen.processing.blocks import shows_block_grid
from screen.processing.carbon import CARBON_MIN_STEP_CONTRAST, CarbonEdge, carbon_edge
from screen.processing.contamination import opaque_fraction
from screen.processing.ctf import CtfParams, ctf_zero_frequencies_A
from screen.processing.exposure import Exposure, exposure
from screen.processing.ice import ice_reflections, measurable
from screen.stages.base import Backend, threaded_map
from screen.stages.ctf import astigmatism_is_confirmed
from screen.stages.picking import DarkBlobCensus, dark_blob_census
from screen.stages.records import MICROGRAPH_REASONS, CtfFit, MicrographVerdict

THICK_ICE_TRANSMISSION = 0.75
"""Default of `MicrographAssessParams.thick_ice_transmission`: a micrograph that received under
this fraction of its session's median grey level, with its shot noise confirming the loss, lies
in ice about ``3,200 Å x ln(1 / 0.75)`` = 920 Å thicker than the session's typical micrograph
(energy filtered, 300 kV; without a filter less of the loss shows, so fewer are caught): its
particles lose contrast and its Thon rings fade. Physics, not a statistic of images: the limit
leaves room for an exposure changed within a session and for beam drift (a session's dose is
one setting; `screen simulate` still draws each micrograph's from 40-55 e/Å², at most 27 %
under the highest). Measured 2026-12-05 (`bench/micassess_generators.py --per-session`, one dose
per session): where counts are kept (hot pixels alone) good micrographs lie at 0.98-1.06 of their
session's median and the thick-ice ones (1,000-2,200 Å) at 0.58-0.85; through the trained
generators 0.95-1.06 and 0.58-0.95."""

SESSION_WIDE_REASONS = ("bad_ctf", "thick_ice", "drift")
"""Reasons the network reads from the spectrum, which a session's detector, dose and processing
shape as much as a micrograph does (`session_wide_reasons`)."""
_REASON_WORDS = {"bad_ctf": "bad CTF", "thick_ice": "thick ice", "drift": "drift"}

SESSION_REASON_SHARE = 0.4
"""Default of `MicrographAssessParams.session_reason_share`. In a real session one grid, detector
and processing chain make every micrograph; a spectral reason the network gives to a large share
of them is then the session's look or the whole grid's state, which a per-micrograph rejection
answers wrongly (it keeps nothing, or keeps whatever the network happens to score a little
higher); so those micrographs are judged without the reason, and the condition is told. A share
of a session, not an image statistic: `bench/micassess_generators.py --per-session` (2026-12-05,
session 18; sessions of 16, eight good and one of each bad reason, so no true reason reaches 0.1
of a session) found v5 giving one reason to half a session twice in 60 held-out sessions (hot
pixels: bad CTF to 9 of 16, five of them good, fits to 17 Å; NL-means: thick ice to 8, six good)
and never on clean or trained-kind sessions; 0.3, 0.4 and 0.5 gave the same verdicts there. The
price is a grid that is truly bad throughout for a spectral reason: its micrographs go on, and
the warning, the CTF fits and the 2D classes tell the user instead."""

DRIFT_OUTLIER_SIGMA = 6.0
"""Default of `MicrographAssessParams.drift_outlier_sigma`: a micrograph's directional power loss
(`screen.processing.anisotropy`) must lie this many robust standard deviations (1.4826 x MAD,
never less than the measure's own noise) above its session's median. Within one session the
detector, processing and typical astigmatism are shared, so the session's spread says how much
anisotropy its good micrographs have; 6 is an outlier test (a Gaussian's tail at 6 sigma is
1e-9) with room for heavier tails: on `bench/micassess_generators.py --per-session`'s ten sets
(2026-12-05, session 19) the largest good micrograph stood 5.8 robust sigmas above its
session's median (5.1 among those also significant), the drifting ones that the product had
kept up to 19."""

DRIFT_MIN_SIGNIFICANCE = 6.0
"""... and its anisotropy must be this many times the measure's noise scale (amplitude /
`DirectionalPower.noise`; an isotropic spectrum exceeds 6 with probability e^-18): no session
statistic can make a measurement that is noise an outlier."""

DRIFT_MIN_MICROGRAPHS = 8
"""A session needs this many measured micrographs for its median and spread to judge one."""


RINGLESS_MAX_P_GOOD = 1.0
"""Default of `MicrographAssessParams.ringless_max_p_good`: a micrograph whose CTF fit followed
no Thon ring (`rings_fitted`) in a session whose fits are sound (at least `DRIFT_MIN_MICROGRAPHS`
fits, median `SOUND_CTF_FIT_A` / `SESSION_FIT_SHARE` or better) has a bad CTF when the network's
P(good) is at most this: 1.0, whatever the network says, since 2026-12-06 (session 24). From
session 23 to then it was 0.5 (the network had to lean bad too), because three good micrographs
with failed fits lay in sessions whose fits looked sound (JPEG s002 at 0.46 µm, NL-means s006 at
1.48 µm, `bench/README.md`); those fits were a processing pattern, 20-85 % off the truth, which
`screen.stages.ctf.without_fixed_pattern` now marks as following no ring, so such sessions are not
sound. Measured with 1.0 on `bench/micassess_generators.py --per-session`'s ten sets: 8 bad-CTF
micrographs more caught (P(good) 0.82-0.98; 12 in all with the 4 caught at 0.5), no good one lost
(none of the ten sets' good micrographs is ring-less in a sound session once patterns are
removed); the independent simulator (`bench/micassess_independent.py`, seeds 1 and 2, MRC and
JPEG) unchanged. The real examples never meet it: their sessions' fits are not sound."""


EMPTY_BLOB_RATIO = 0.1
"""Default of `MicrographAssessParams.empty_blob_ratio`: a good micrograph with under a tenth of
its session's median of strong dark blobs per µm² (`screen.stages.picking.dark_blob_census`),
whose score map shows no dark-blob excess (`EMPTY_MAX_TAIL_ASYMMETRY`), is empty. A ratio of
counts within one session, so that the detector, dose, export and processing cancel. Measured
2026-12-06 (session 24, `bench/empty_fields.py`) on `bench/micassess_generators.py
--per-session`'s ten sets: empty micrographs at a median 0.01-0.07 of their session on eight of
them (0.14 and 0.46 on NL-means and hot pixels with the trained kinds, where processing spreads
texture or hot pixels into blobs), 77 of 100 called; good ones at 0.22 or more on the sets with
the trained kinds, 0.42 on the clean one, except one "good" micrograph that holds a single
particle (0.10-0.11 where its session is judged; the empty reason draws 0-2). The independent
simulator (`bench/micassess_independent.py`, seeds 1 and 2, MRC and JPEG): a sparse good field
of hollow shells at 0.13-0.14 (kept by its asymmetry, 1.45), every other good one 0.41 or more.
The 12 real EMPIAR-10017 exports as one session: 0.21-2.84 (the lowest a dense field whose
particles merge into texture)."""

EMPTY_MAX_TAIL_ASYMMETRY = 1.15
"""A micrograph is called empty only when its score map is about symmetric
(`screen.stages.picking.DarkBlobCensus.tail_asymmetry` at most this): filtered noise and ice
texture give about 1 whatever the processing (the simulated empty micrographs of the sets
above: 0.91-1.09 but for a few with contamination or spread hot pixels), dark particles more
(good micrographs' 5 % quantile 1.33-1.72 on the sets without hot pixels; the dense real
EMPIAR-10017 exports, whose strong blobs are fewest, 1.20-1.48; the Magellon rings 1.22). It
guards a dense good field, whose particles widen its own score map and so hide among themselves,
and a sparse one (the independent simulator's shell field above) from being called empty."""

EMPTY_CONTRADICTED_RATIO = 0.8
"""`empty_in_session`: the network's ``empty`` on a micrograph with at least this fraction of its
session's median of strong dark blobs per µm² is contradicted (as many particles as a typical
micrograph of its session) and judged again without it. Measured 2026-12-07 (session 30, session
script `/tmp/s30/census.py`) on `bench/micassess_generators.py --per-session`'s five processed
sets: the 37 truly empty micrographs the product called empty lie at 0.00-0.37 of their session
(all but three at 0.11 or less); the one good micrograph called empty, at 1.05 (hot pixels, a
Wiener-denoised session at 12.9 Å/px, P(good) 0.098). Like the limit of the empty check itself,
a ratio of counts within a session, so detector, dose, export and processing cancel."""

EMPTY_MIN_MICROGRAPHS = 8
"""A session needs this many measured micrographs for its median to judge one (as the drift
check, `DRIFT_MIN_MICROGRAPHS`)."""

EMPTY_MIN_SESSION_BLOBS = 8.0
"""And its median micrograph this many strong blobs: under it a micrograph without any strong blob
is within counting noise of the session's (a Poisson count of mean 8 is 0 with probability 3e-4;
at a median under 10 only a micrograph with none is under a tenth of it). Lowered from 20 on
2026-12-06 (session 25): sparse sessions of the independent simulator (medians 9 and 17) kept
empty fields of none; in the sessions of the fourteen held-out sets with medians of 8-20 (five),
every empty field has 0-1 strong blobs and every good micrograph at least 3
(`/tmp/s25/census_all.py`)."""


@dataclass(frozen=True)
class MicrographAssessParams:
    """Parameters of micrograph assessment.

    Parameters
    ----------
    threshold
        A micrograph is bad when P(good) < ``threshold`` (0.1, as in Li et al. 2020).
    model
        Shipped model name (``"micassess_small_v2"``), path to ``.keras`` weights, or the
        paper's MicAssess ``.h5`` (ResNet34; see :mod:`screen.models.micassess_paper`).
    batch_size
        Crops per forward pass.
    max_astigmatism_A
        A micrograph whose fitted astigmatism (``defocus_u - defocus_v`` of its CTF fit) is
        larger is bad, reason ``bad_ctf``, whatever P(good) says (:func:`check_ctf`); 0 turns
        the check off. Rings of a few thousand Å of astigmatism at 2-3 µm defocus are still
        nearly round at the 7 Å the network sees, while the CTF fit measures it directly, when
        its rings reach far enough and its two half fields repeat it
        (`screen.stages.ctf.astigmatism_is_confirmed`).
    max_opaque_fraction
        A micrograph with at least this share of its field under nearly opaque objects
        (contamination balls, ice crystals, grid bars; :func:`screen.processing.contamination.
        opaque_fraction`) is bad, reason ``contaminated``, whatever P(good) says; 0 turns the
        check off. 3 %: a person discards a micrograph with a large ball over part of the field
        (the real example has 13 %), keeps one with a small ball (the Magellon example: 0.2 %);
        no good micrograph, real or simulated, measured above 2.6 % (bench/opaque_contamination.py).
    max_carbon_fraction
        A micrograph with at least this share of its field behind a carbon film edge (the darker
        side of a sharp step across the field, straight or along a hole's rim;
        :func:`screen.processing.carbon.carbon_edge`) is bad, reason ``carbon``, whatever P(good)
        and the network's reason say; 0 turns the check off. 0.3: the simulator's bad carbon
        micrographs have 40-85 % of the field under carbon, its good ones with an edge 3-12 %; a
        person keeps a micrograph with a strip of carbon along one side and discards one with a
        third of it on carbon (bench/carbon_edges.py).
    max_crystalline_fraction
        A micrograph with crystalline-ice reflections (sharp spots at 3.4-3.9 Å,
        :func:`screen.processing.ice.ice_reflections`) in at least this share of its tiles is
        bad, reason ``contaminated``, whatever P(good) says; 0 turns the check off. Measured only
        where the pixel size resolves 3.9 Å (finer than about 1.9 Å/px). 0.25: a person discards
        a micrograph with a quarter of its field crystalline and may keep one with a small ice
        crystal; the reflections themselves are found by their statistics, not by any calibration
        (no tile of the real EMPIAR-10017 exports nor of noise comes near the limit).
    sound_ctf_keeps
        A micrograph the network calls bad for its CTF (``bad_ctf``) is good after all when its
        CTF fit reached `SOUND_CTF_FIT_A` (10 Å) or better without a confirmed astigmatism over
        ``max_astigmatism_A`` (:func:`check_ctf`): the fit measures the CTF. Measured on
        `bench/micassess_generators.py`'s sets (2026-12-05): v5 called every good micrograph of
        one JPEG-exported session ``bad_ctf`` (P(good) 0.004-0.08) while their fits reached
        8-11 Å; over 1,760 micrographs the rule keeps 8 good ones and 1 true bad-CTF one.
    thick_ice_transmission
        A good micrograph whose grey level is under this fraction of its session's median, with
        its shot noise confirming that fewer electrons reached the camera (or, where the noise
        cannot tell, in a session of agreeing grey levels that no export stretched), is bad,
        reason ``thick_ice`` (:func:`thick_ice_by_transmission`, applied to the whole session
        after the network; `THICK_ICE_TRANSMISSION`). The same measure checks the network: its
        ``thick_ice`` on a micrograph not darker than its session is judged again without it
        (:func:`thick_ice_needs_darkening`). 0 turns both checks off.
    session_reason_share
        When the network gives one spectral reason (`SESSION_WIDE_REASONS`: bad CTF, thick
        ice, drift) to at least this share of a session's micrographs, that reason describes the
        session (its detector, processing or the whole grid), not single micrographs: those
        micrographs are judged again without it and the condition says so
        (:func:`session_wide_reasons`; `SESSION_REASON_SHARE`); 0 turns the check off.
    drift_outlier_sigma
        A good micrograph whose spectrum lost power along one direction between 80 and 30 Å
        (`screen.processing.anisotropy`) by more than its session's others, this many robust
        standard deviations above the session's median, and significantly so against the
        measure's own noise, is bad, reason ``drift`` (:func:`drift_by_anisotropy`); 0 turns
        the check off.
    ringless_max_p_good
        A good micrograph whose CTF fit followed no Thon ring, in a session whose fits are sound,
        is bad, reason ``bad_ctf``, when the network gave it P(good) at most this (1.0: whatever
        it gave; :func:`ringless_in_sound_session`; `RINGLESS_MAX_P_GOOD`); 0 turns the check
        off.
    empty_blob_ratio
        A good micrograph with under this fraction of its session's median of strong dark blobs
        per µm², its blob score map showing no dark-particle excess, is bad, reason ``empty``
        (:func:`empty_in_session`; `EMPTY_BLOB_RATIO`); 0 turns the check off.
    gradient_second_look
        A micrograph the network calls bad for ``contaminated`` is seen again by the same
        network with its smooth background (an ice gradient, a robust degree-2 surface:
        `screen.processing.background`) subtracted, and is good when it then reaches the
        threshold and no opaque or crystalline measure calls it contaminated
        (:func:`gradient_not_contamination`; not where a film edge's step splits the field);
        False turns it off.
    """

    threshold: float = 0.1
    model: str = "micassess_small_v2"
    batch_size: int = 32
    max_astigmatism_A: float = 3000.0
    max_opaque_fraction: float = 0.03
    max_carbon_fraction: float = 0.3
    max_crystalline_fraction: float = 0.25
    sound_ctf_keeps: bool = True
    thick_ice_transmission: float = THICK_ICE_TRANSMISSION
    session_reason_share: float = SESSION_REASON_SHARE
    drift_outlier_sigma: float = DRIFT_OUTLIER_SIGMA
    ringless_max_p_good: float = RINGLESS_MAX_P_GOOD
    empty_blob_ratio: float = EMPTY_BLOB_RATIO
    gradient_second_look: bool = True


def params_problems(params: MicrographAssessParams) -> list[str]:
    """What is wrong with ``params`` (empty when nothing), each naming the option to change.

    Examples
    --------
    >>> params_problems(MicrographAssessParams(threshold=5.0))
    ['threshold (--threshold) is 5 but must be in 0–1 (a probability)']
    """
    problems = []
    if not 0.0 <= params.threshold <= 1.0:  # also refuses NaN
        problems.append(
            f"threshold (--threshold) is {params.threshold:g} but must be in 0–1 (a probability)"
        )
    if not 0.0 <= params.max_astigmatism_A < math.inf:
        problems.append(
            f"max_astigmatism_A (--max-astigmatism) is {params.max_astigmatism_A:g} but must be "
            "0 (off) or a positive number of Å"
        )
    if not 0.0 <= params.max_opaque_fraction <= 1.0:
        problems.append(
            f"max_opaque_fraction (--max-opaque) is {params.max_opaque_fraction:g} but must be in 0–1 "
            "(0 turns the contamination check off)"
        )
    if not 0.0 <= params.max_carbon_fraction <= 1.0:
        problems.append(
            f"max_carbon_fraction (--max-carbon) is {params.max_carbon_fraction:g} but must be in "
            "0–1 (0 turns the carbon check off)"
        )
    if not 0.0 <= params.max_crystalline_fraction <= 1.0:
        problems.append(
            f"max_crystalline_fraction (--max-crystalline) is {params.max_crystalline_fraction:g} "
            "but must be in 0–1 (0 turns the crystalline-ice check off)"
        )
    if not 0.0 <= params.session_reason_share <= 1.0:
        problems.append(
            f"session_reason_share (--session-reason-share) is {params.session_reason_share:g} "
            "but must be in 0–1 (0 turns the session-wide reason check off)"
        )
    if not 0.0 <= params.drift_outlier_sigma < math.inf:
        problems.append(
            f"drift_outlier_sigma (--drift-outlier-sigma) is {params.drift_outlier_sigma:g} but "
            "must be 0 (off) or a positive number of robust standard deviations"
        )
    if not 0.0 <= params.thick_ice_transmission < 1.0:
        problems.append(
            f"thick_ice_transmission (--thick-ice-transmission) is "
            f"{params.thick_ice_transmission:g} but must be at least 0 and under 1 "
            "(0 turns the thick-ice check off)"
        )
    if not 0.0 <= params.ringless_max_p_good <= 1.0:
        problems.append(
            f"ringless_max_p_good is {params.ringless_max_p_good:g} but must be in 0–1 "
            "(0 turns the ring-less check off)"
        )
    if not 0.0 <= params.empty_blob_ratio < 1.0:
        problems.append(
            f"empty_blob_ratio (--empty-blob-ratio) is {params.empty_blob_ratio:g} but must be at "
            "least 0 and under 1 (0 turns the empty-field check off)"
        )
    if params.batch_size < 1:
        problems.append(f"batch_size is {params.batch_size} but must be at least 1")
    return problems


def check_ctf(
    verdict: MicrographVerdict,
    fit: CtfFit | None,
    params: MicrographAssessParams,
    voltage_kV: float = 300.0,
) -> MicrographVerdict:
    """The verdict once the CTF fit is known: the fit measures the CTF, the network guesses it.

    A good micrograph whose fitted astigmatism is over ``params.max_astigmatism_A`` (the check
    on: > 0), where the fit resolved rings far enough to have measured it and its two half fields
    repeat it (`screen.stages.ctf.astigmatism_is_confirmed`), becomes bad, reason ``"bad_ctf"``.
    With ``params.sound_ctf_keeps``, a micrograph the network called bad for its CTF (reason
    ``"bad_ctf"``, likelier than good) whose fit reached `SOUND_CTF_FIT_A` or better and beyond
    its own first zero (`rings_fitted`), without such an astigmatism, becomes good: Thon rings
    fitted to 10 Å are a sound CTF, whatever the network inferred from the image. P(good) and the
    reason scores stay as the network gave them; anything else returns ``verdict`` unchanged.
    """
    if fit is None:
        return verdict
    if verdict.verdict == "bad":
        if params.sound_ctf_keeps and _sound_overrules(
            verdict, fit, SOUND_CTF_FIT_A, params, voltage_kV
        ):
            return replace(verdict, verdict="good", reason=None)
        return verdict
    if _astigmatic(fit, params, voltage_kV):
        return replace(verdict, verdict="bad", reason="bad_ctf")
    return verdict


def _astigmatic(fit: CtfFit, params: MicrographAssessParams, voltage_kV: float) -> bool:
    """Whether the fit measured (and both halves repeat) more astigmatism than allowed."""
    return (
        params.max_astigmatism_A > 0
        and abs(fit.defocus_u_A - fit.defocus_v_A) > params.max_astigmatism_A
        and astigmatism_is_confirmed(fit, voltage_kV)
    )


def _sound_overrules(
    verdict: MicrographVerdict,
    fit: CtfFit,
    sound_fit_A: float,
    params: MicrographAssessParams,
    voltage_kV: float,
) -> bool:
    """Whether the fit overrules the network's bad CTF.

    It does when the fit reached ``sound_fit_A`` or better, beyond its own first zero, without a
    confirmed astigmatism over ``params.max_astigmatism_A``.
    """
    # The network's judgement: bad CTF likelier than good (always so under the 0.1 rule; not
    # when a threshold near 1 makes a confident "good" bad and bad_ctf merely its runner-up).
    network_bad_ctf = (
        verdict.reason == "bad_ctf" and verdict.reason_scores.get("bad_ctf", 0.0) > verdict.p_good
    )
    return (
        network_bad_ctf
        and math.isfinite(fit.fit_resolution_A)
        and fit.fit_resolution_A <= sound_fit_A
        and rings_fitted(fit, voltage_kV)
        and not _astigmatic(fit, params, voltage_kV)
    )


SESSION_FIT_SHARE = 0.9
"""`sound_ctf_in_session`: a micrograph whose fit reaches this share of its session's typical fit
frequency (the median fit resolution, itself within this share of `SOUND_CTF_FIT_A`'s frequency:
the session's fits are sound) has Thon rings like its session's. `SOUND_CTF_FIT_A` is a physical resolution, but where the fitting band ends near
it (at 4 Å/px it ends at 10 Å) or the session's fits stop at 9-10 Å, good micrographs fitted to
10.3 Å fell just outside it: measured on `bench/micassess_generators.py --per-session`'s ten sets
(2026-12-06, session 22) v5 called two good JPEG-exported micrographs ``bad_ctf`` whose fits
reached 10.25 and 10.28 Å in sessions whose median fits reached 10.001 and 9.3 Å; no true
bad-CTF micrograph the network caught has a fit within 0.85 of a session median under 11.1 Å
(those of 14.5 and 16.9 Å lie in sessions whose fits mostly failed, median 30 Å). 0.9: about a
tenth of k, the spread of good micrographs' fits within one session there."""


SESSION_BEHIND_SHARE = 0.8
"""`sound_ctf_in_session`: a fit whose frequency stops under this share of its session's typical
fit frequency (a fit to 8.6 Å where the session's median reaches 4.7 Å: 0.55) has Thon rings that
fade well before its session's, and does not overrule the network's bad CTF, however far it
reaches in Å (`SOUND_CTF_FIT_A` is a physical resolution; on fine pixels a whole session reaches
4-5 Å). Measured 2026-12-06 (session 25) on the ten per-session held-out sets and the
independent simulator's two seeds, MRC and JPEG (``/tmp/s24/rl4``): of the micrographs the
network called bad CTF and a sound fit kept, the two truly bad ones in sound sessions lie at 0.55
and 0.70 of their session's frequency (the independent simulator's envelope of B 435 Å^2 and
near focus at 0.12 µm), every good one at 0.89 or more. 0.8: twice the spread of good fits
within a session (`SESSION_FIT_SHARE`), a ratio of frequencies of one session's micrographs, so
the same on any detector, pixel size or export."""


def sound_ctf_in_session(
    verdicts: list[MicrographVerdict],
    fits: list[CtfFit | None],
    params: MicrographAssessParams,
    voltage_kV: float = 300.0,
) -> list[MicrographVerdict]:
    """The session's verdicts, the network's bad CTF judged by how far the session's rings reach.

    With ``params.sound_ctf_keeps``, in a session of at least `DRIFT_MIN_MICROGRAPHS` fitted
    micrographs whose median fit resolution is `SOUND_CTF_FIT_A` / `SESSION_FIT_SHARE` or
    better, a micrograph the network called bad for its CTF is good when its fit reaches that
    median divided by `SESSION_FIT_SHARE`, under the conditions of :func:`check_ctf` (beyond its
    first zero, no confirmed astigmatism); and one that :func:`check_ctf` kept for a fit to
    `SOUND_CTF_FIT_A` is bad CTF again, as the network said, when its fit frequency is under
    `SESSION_BEHIND_SHARE` of the session median's. Apply it after :func:`check_ctf`, before the
    other session checks.
    """
    typical_A = _sound_session_fit_A(fits)
    if not params.sound_ctf_keeps or typical_A is None:
        return list(verdicts)
    limit_A = typical_A / SESSION_FIT_SHARE
    behind_A = typical_A / SESSION_BEHIND_SHARE
    out = []
    for verdict, fit in zip(verdicts, fits, strict=True):
        if (
            verdict.verdict == "bad"
            and fit is not None
            and _sound_overrules(verdict, fit, limit_A, params, voltage_kV)
        ):
            verdict = replace(verdict, verdict="good", reason=None)
        elif (
            verdict.verdict == "good"
            and _network_said_bad_ctf(verdict, params.threshold)
            and fit is not None
            and fit.fit_resolution_A > behind_A
        ):
            verdict = replace(verdict, verdict="bad", reason="bad_ctf")
        out.append(verdict)
    return out


def _network_said_bad_ctf(verdict: MicrographVerdict, threshold: float) -> bool:
    """Whether the network itself called the micrograph bad for its CTF (whatever it is now)."""
    scores = verdict.reason_scores
    return (
        bool(scores)
        and verdict.p_good < threshold
        and max(scores, key=scores.__getitem__) == "bad_ctf"
    )


def _sound_session_fit_A(fits: list[CtfFit | None]) -> float | None:
    """The session's median fit resolution when its fits are sound, else None.

    Sound: at least `DRIFT_MIN_MICROGRAPHS` fits, median `SOUND_CTF_FIT_A` / `SESSION_FIT_SHARE`
    or better.
    """
    resolutions = [
        f.fit_resolution_A for f in fits if f is not None and math.isfinite(f.fit_resolution_A)
    ]
    if len(resolutions) < DRIFT_MIN_MICROGRAPHS:
        return None
    typical_A = float(np.median(resolutions))
    return typical_A if typical_A <= SOUND_CTF_FIT_A / SESSION_FIT_SHARE else None


def rings_fitted(fit: CtfFit, voltage_kV: float = 300.0) -> bool:
    """Whether a CTF fit reaches beyond its own first zero: it matched at least one Thon ring.

    Near focus (a few hundred nm) the first zero lies at 4-6 Å, and a fit "to 6 Å" has matched a
    spectrum without a ring: the defocus that gives particles their contrast is missing, which is
    a bad CTF, not a sound one. (It does not catch every near-focus micrograph: one of the
    independent simulator's, at 0.12 µm, was fitted at 0.27 µm, first zero 7.3 Å, to 5.8 Å with a
    correlation of 0.08, and is still kept; `bench/micassess_independent.py`.)
    """
    if not (math.isfinite(fit.fit_resolution_A) and fit.fit_resolution_A > 0):
        return False
    model = CtfParams(
        defocus_u_A=fit.defocus_u_A,
        defocus_v_A=fit.defocus_v_A,
        astigmatism_angle_deg=fit.astigmatism_angle_deg,
        voltage_kV=voltage_kV,
    )
    return len(ctf_zero_frequencies_A(model, 1.0 / fit.fit_resolution_A)) > 0


def ringless_in_sound_session(
    verdicts: list[MicrographVerdict],
    fits: list[CtfFit | None],
    params: MicrographAssessParams,
    voltage_kV: float = 300.0,
) -> list[MicrographVerdict]:
    """The session's verdicts with doubtful good micrographs that show no Thon ring made bad.

    In a session whose fits are sound (as in :func:`sound_ctf_in_session`), a good micrograph
    whose fit followed no ring (`rings_fitted`) and whose P(good) is at most
    ``params.ringless_max_p_good`` (1.0 by default: any) becomes bad, reason ``bad_ctf``. P(good)
    and the reason scores stay as the network gave them. Apply it after
    :func:`sound_ctf_in_session`, on fits from which processing patterns were removed
    (`screen.stages.ctf.without_fixed_pattern`).
    """
    if params.ringless_max_p_good <= 0 or _sound_session_fit_A(fits) is None:
        return list(verdicts)
    return [
        replace(verdict, verdict="bad", reason="bad_ctf")
        if verdict.verdict == "good"
        and verdict.reason_scores
        and verdict.p_good <= params.ringless_max_p_good
        and fit is not None
        and math.isfinite(fit.fit_resolution_A)
        and not rings_fitted(fit, voltage_kV)
        else verdict
        for verdict, fit in zip(verdicts, fits, strict=True)
    ]


DOMAIN_MIN_MICROGRAPHS = 3
"""From this many assessed micrographs the check fires at `DOMAIN_BAD_FRACTION`; a smaller
session gets it only when every one of its micrographs is rejected, worded as weaker evidence
(measured 2026-12-03: the single binned Magellon micrograph as its own session lost everything to
v2, P(good) 0.0001, with no warning, where the fallback keeps it, P(good) 0.997)."""

DOMAIN_BAD_FRACTION = 0.8
"""A session whose network verdicts are bad for at least this share of its assessed micrographs
gets the domain warning. Real screening sessions can be mostly bad (the paper's lacey-carbon grid:
70 % bad), but a model that rejects almost a whole session is as likely to be outside the data it
was trained on as the grid is to be that bad, and losing a good session costs more than a look."""

DOMAIN_RANDOMISED_MODEL = "micassess_small_v5"
"""The shipped model the domain fallback uses: trained on grey-level ranks of micrographs through
random detectors, binning, denoisers and exports, on clean simulated micrographs, and on fields cut
from six real EMPIAR-10017 exports (``models/micassess_small_v5.md``; before 2026-12-03 evening,
``micassess_small_v3``, which called 4 of those 12 exports "crowded")."""

SOUND_CTF_FIT_A = 10.0
"""A CTF fit to this resolution or better counts as sound Thon rings (the micrograph has signal
to high resolution), whatever the detector: a physical resolution, not a statistic of the data."""


@dataclass(frozen=True)
class DomainCheck:
    """The session-level view of micrograph assessment.

    ``warning`` is a sentence for the terminal and the report when the network calls at least
    ``DOMAIN_BAD_FRACTION`` of the session bad (all of it, in a session of fewer than
    ``DOMAIN_MIN_MICROGRAPHS``), else ``None``; the counts are its evidence.
    """

    n_assessed: int
    n_bad_by_network: int
    n_bad_with_sound_ctf: int
    median_fit_resolution_A: float | None
    warning: str | None


def session_domain_check(
    verdicts: list[MicrographVerdict],
    fits: list[CtfFit | None],
    params: MicrographAssessParams,
) -> DomainCheck:
    """Judge a session's micrograph verdicts against the session as a whole.

    Only the network's verdict counts here (P(good) < threshold), not the CTF astigmatism check,
    and micrographs that could not be assessed at all (``reason`` None, P(good) 0, empty scores)
    are left out. The warning quotes how many of the rejected micrographs have a sound CTF fit
    (``SOUND_CTF_FIT_A``): rejected micrographs with sound Thon rings are the strongest sign that
    the model, not the grid, is wrong.
    """
    if len(verdicts) != len(fits):
        raise ValueError(f"{len(verdicts)} verdicts but {len(fits)} CTF fits")
    assessed = [(v, f) for v, f in zip(verdicts, fits, strict=True) if v.reason_scores]
    bad = [(v, f) for v, f in assessed if v.p_good < params.threshold]
    resolutions = [f.fit_resolution_A for _, f in bad if f is not None]
    sound = sum(r <= SOUND_CTF_FIT_A for r in resolutions)
    median = float(np.median(resolutions)) if resolutions else None
    warning = None
    few = 0 < len(assessed) < DOMAIN_MIN_MICROGRAPHS and len(bad) == len(assessed)
    if few or (
        len(assessed) >= DOMAIN_MIN_MICROGRAPHS and len(bad) >= DOMAIN_BAD_FRACTION * len(assessed)
    ):
        evidence = f"{len(bad)} of {len(assessed)} micrographs called bad by micrograph assessment"
        if few:
            evidence = (
                f"every micrograph of this small session ({len(assessed)}) called bad by "
                "micrograph assessment (too few to tell the model's domain from the grid)"
            )
        if resolutions and sound >= 0.5 * len(resolutions):
            evidence += (
                f" while their CTF fits are sound ({sound} fitted to {SOUND_CTF_FIT_A:g} Å or "
                f"better, median {median:.1f} Å)"
            )
        elif resolutions:
            evidence += (
                f" (CTF fits: {sound} of {len(resolutions)} to {SOUND_CTF_FIT_A:g} Å or better)"
            )
        alternative = ""
        if params.model != DOMAIN_RANDOMISED_MODEL:
            alternative = (
                f", or with --micassess-weights {DOMAIN_RANDOMISED_MODEL} (trained on "
                "randomised detectors, binning, denoising and exports; see its model card)"
            )
        warning = (
            f"{evidence}: micrograph assessment may be outside its trained domain (e.g. "
            "denoised, binned or unusual data) or the grid is bad. Look at a few micrographs; "
            f"to go on, rerun with --keep-all-micrographs or a lower --threshold{alternative}."
        )
    return DomainCheck(len(assessed), len(bad), sound, median, warning)


SECOND_OPINION_SHARE = 0.3
"""A session whose first model rejects at least this share of its assessed micrographs is also
assessed with `DOMAIN_RANDOMISED_MODEL`; when the first rejects at least this share of the session
more than that one does, the randomised model's verdicts are used, with the domain warning.
Calibrated on `bench/micassess_generators.py`'s sets (10 sessions of 16 each, half bad): on clean
simulated sessions (v2's own kind) v2 rejects -0.12 to +0.19 of a session more than v5 (v5 keeps
some crowded and empty ones); on every session through held-out or trained variation generators
(hot pixels, Fourier binning, NL-means, JPEG, detectors and exports), +0.38 to +0.88, and one such
session at 75 % rejected by v2 (under `DOMAIN_BAD_FRACTION`) lost good micrographs that v5 keeps.
It measures two models' disagreement on the same micrographs, not an image statistic, so it
carries to data neither model was trained on: where they disagree on a third of a session, keeping
the micrographs is the paper's side of the error (losing good data costs more)."""


SECOND_OPINION_MIN_DIFFERENCE = 2
"""... and by at least this many micrographs: in a session of 3-6, one micrograph the two models
disagree on is already a third of it, and one disagreement is the models' noise, not a domain."""


SECOND_OPINION_KEEP_P = 0.75
"""A micrograph the first model alone calls bad is kept when `DOMAIN_RANDOMISED_MODEL` gives it at
least this P(good) (`kept_by_second_opinion`): the two models disagree, and the randomised one
is confident (odds of 3 to 1 for good). Measured 2026-12-06 (session 23) on the independent
simulator (`bench/micassess_independent.py`, MRC, 4 sessions of 16, half bad), where v2 lost good
micrographs with confidence (a sparse ribosome field "crowded" at P 0.002, a shell field "carbon"
at 0.0001, one "thick ice" at 0.031; v5: 0.98, 0.78, 0.92): seed 1 good called bad 3 -> 0 of 32,
accuracy 0.797 -> 0.812; seed 2 (held out of the choice) 1 -> 0 of 32, accuracy unchanged; on
`screen simulate`'s clean per-session set (v2's own kind) two bad micrographs more kept (0.944 ->
0.931, none good lost before or after); 0.5 would keep four more there, 0.9 would lose the shell
field. On the randomised per-session sets one good micrograph more is kept in two sets (v2 had
called it crowded at P 0.000), no bad one; the real examples get v5's verdicts already. It weighs
two models' disagreement, not an image statistic."""


def kept_by_second_opinion(
    first: list[MicrographVerdict],
    second: list[MicrographVerdict],
    params: MicrographAssessParams,
) -> tuple[list[MicrographVerdict], int]:
    """The first model's verdicts, with those it alone rejects kept where the second is confident.

    ``second`` are `DOMAIN_RANDOMISED_MODEL`'s verdicts on the same micrographs, in order. A
    micrograph the first network called bad (P(good) < threshold) becomes good when the second
    gives it P(good) >= `SECOND_OPINION_KEEP_P`, unless a measurement made it bad (an opaque
    ball, a carbon edge or crystalline ice over its limit). P(good) and the reason scores stay
    the first model's. Returns the verdicts and how many were kept.
    """
    if len(first) != len(second):
        raise ValueError(f"{len(first)} first verdicts but {len(second)} second ones")
    out = [
        replace(a, verdict="good", reason=None)
        if _network_reason(a, params.threshold) is not None
        and not _measured_bad(a, params)
        and b.reason_scores
        and b.p_good >= SECOND_OPINION_KEEP_P
        else a
        for a, b in zip(first, second, strict=True)
    ]
    return out, sum(a.verdict != b.verdict for a, b in zip(first, out, strict=True))


def second_opinion_note(n_kept: int, params: MicrographAssessParams) -> str:
    """The line that says how many micrographs `kept_by_second_opinion` kept, and why."""
    return (
        f"{n_kept} micrograph{'s' if n_kept != 1 else ''} that {params.model} called bad "
        f"{'were' if n_kept != 1 else 'was'} kept: {DOMAIN_RANDOMISED_MODEL} gives "
        f"{'them' if n_kept != 1 else 'it'} P(good) >= {SECOND_OPINION_KEEP_P:g} (the models "
        "disagree, and losing good data costs more; --no-domain-fallback keeps the first's)."
    )


def _measured_bad(verdict: MicrographVerdict, params: MicrographAssessParams) -> bool:
    """Whether one of the stage's measurements is over its limit (opaque, carbon, crystalline)."""
    return any(
        limit > 0 and value is not None and value >= limit  # a limit of 0: the check is off
        for value, limit in (
            (verdict.opaque_fraction, params.max_opaque_fraction),
            (verdict.carbon_fraction, params.max_carbon_fraction),
            (verdict.crystalline_fraction, params.max_crystalline_fraction),
        )
    )


def needs_second_opinion(verdicts: list[MicrographVerdict], params: MicrographAssessParams) -> bool:
    """Whether the session's first verdicts reject enough of it to ask the randomised model.

    True when at least `DOMAIN_MIN_MICROGRAPHS` micrographs were assessed, at least
    `SECOND_OPINION_SHARE` of them (and `SECOND_OPINION_MIN_DIFFERENCE`) are bad by the network
    (P(good) < threshold), and the first model is not already `DOMAIN_RANDOMISED_MODEL`.
    """
    assessed = [v for v in verdicts if v.reason_scores]
    if len(assessed) < DOMAIN_MIN_MICROGRAPHS or params.model == DOMAIN_RANDOMISED_MODEL:
        return False
    n_bad = sum(v.p_good < params.threshold for v in assessed)
    return n_bad >= max(SECOND_OPINION_SHARE * len(assessed), SECOND_OPINION_MIN_DIFFERENCE)


def second_opinion_warning(
    first: list[MicrographVerdict],
    second: list[MicrographVerdict],
    params: MicrographAssessParams,
) -> str | None:
    """The domain warning when the randomised model keeps much more of the session than the first.

    ``first`` are the verdicts of ``params.model``, ``second`` those of
    `DOMAIN_RANDOMISED_MODEL` on the same micrographs, in order. Micrographs either could not
    assess (no reason scores) are left out. Returns None unless the first rejects (P(good) <
    threshold) at least `SECOND_OPINION_SHARE` of the compared micrographs, and at least
    `SECOND_OPINION_MIN_DIFFERENCE` micrographs, more than the second.
    """
    if len(first) != len(second):
        raise ValueError(f"{len(first)} first verdicts but {len(second)} second ones")
    pairs = [
        (a, b) for a, b in zip(first, second, strict=True) if a.reason_scores and b.reason_scores
    ]
    if len(pairs) < DOMAIN_MIN_MICROGRAPHS:
        return None
    n_first = sum(a.p_good < params.threshold for a, _ in pairs)
    n_second = sum(b.p_good < params.threshold for _, b in pairs)
    if n_first - n_second < max(SECOND_OPINION_SHARE * len(pairs), SECOND_OPINION_MIN_DIFFERENCE):
        return None
    return (
        f"{n_first} of {len(pairs)} micrographs called bad by micrograph assessment "
        f"({params.model}) but only {n_second} by {DOMAIN_RANDOMISED_MODEL} (trained on "
        "randomised detectors, binning, denoising and exports): micrograph assessment may be "
        "outside its trained domain (e.g. denoised, binned or unusual data). The randomised "
        "model's verdicts are used (--no-domain-fallback keeps the first's); look at a few "
        "micrographs."
    )


SESSION_REASON_MIN_COUNT = 3
"""... and to at least this many micrographs: two drifted micrographs of a session of five are
two micrographs, not the session."""


@dataclass(frozen=True)
class SessionReasons:
    """A session's verdicts after `session_wide_reasons`, and what it found."""

    verdicts: list[MicrographVerdict]
    reasons: dict[str, int]  # session-wide reason -> micrographs the network gave it
    n_kept: int  # of those micrographs, good once judged without the session-wide reasons
    warning: str | None


def session_wide_reasons(
    verdicts: list[MicrographVerdict], params: MicrographAssessParams
) -> SessionReasons:
    """The session's verdicts with spectral reasons given to much of it taken as the session's.

    A reason of `SESSION_WIDE_REASONS` that the network (P(good) < threshold) gives to at least
    ``params.session_reason_share`` of the session's assessed micrographs, and to at least
    `SESSION_REASON_MIN_COUNT`, is session-wide (the network's calls are counted, also those a
    check has overruled since: a sound CTF fit keeps a micrograph the network called bad CTF).
    Each micrograph the network called bad for a session-wide reason is judged again without
    those reasons: P(good) over P(good) plus the remaining reasons' probabilities; it is good
    when that reaches the threshold, and otherwise keeps its verdict and reason (the rest of the evidence is against it too: the whole grid may
    be bad for that reason). P(good) and the reason scores stay as the network gave them, and
    micrographs made bad by a measurement (an astigmatism, opaque contamination, a carbon edge,
    crystalline ice) keep their verdicts. The warning names the reason and the counts, for the
    terminal and the condition's report.
    """
    verdicts = list(verdicts)
    assessed = [v for v in verdicts if v.reason_scores]
    share = params.session_reason_share
    # Counted on the network's own calls, also those a measurement has since overruled (a sound
    # CTF fit keeps a micrograph the network called bad CTF): how much of the session the
    # network gives a reason to is the question, not how many of those calls still stand.
    counts = {
        reason: sum(_network_call(v, params.threshold) == reason for v in assessed)
        for reason in SESSION_WIDE_REASONS
    }
    wide = {
        reason: n
        for reason, n in counts.items()
        if share > 0 and n >= max(share * len(assessed), SESSION_REASON_MIN_COUNT)
    }
    if not wide:
        return SessionReasons(verdicts, {}, 0, None)
    out, n_kept = [], 0
    for v in verdicts:
        if _network_reason(v, params.threshold) not in wide:
            out.append(v)
            continue
        again = _judged_without(v, set(wide), params.threshold)
        n_kept += again.verdict == "good"
        out.append(again)
    named = " and ".join(f"{_REASON_WORDS.get(r, r)} to {n}" for r, n in wide.items())
    n_called = sum(wide.values())
    warning = (
        f"Micrograph assessment gave {named} of {len(assessed)} micrographs: a spectral reason "
        "shared by so much of one session may describe how it was recorded or processed rather "
        "than single micrographs, so each was judged again without it. "
        + (
            f"{n_kept} of {n_called} are good on the rest of the evidence and were kept "
            "(--session-reason-share 0 rejects them); if the whole grid is bad for this reason, "
            "its CTF fits and 2D classes show it."
            if n_kept
            else "The rest of the evidence is against them too: the whole grid may be bad for "
            "this reason."
        )
    )
    return SessionReasons(out, wide, n_kept, warning)


def _network_reason(verdict: MicrographVerdict, threshold: float) -> str | None:
    """The reason of a micrograph the network itself called bad (P(good) < threshold), else None.

    A micrograph a measurement made bad (an astigmatism over a good P(good)) or that the
    measurement checks re-labelled (opaque contamination, a carbon edge) has no network reason
    of its own here unless its label is still the network's.
    """
    bad = verdict.verdict == "bad" and verdict.reason_scores and verdict.p_good < threshold
    return verdict.reason if bad else None


def _network_call(verdict: MicrographVerdict, threshold: float) -> str | None:
    """The reason the network gave (P(good) < threshold), whatever a check made of it since."""
    if not any(verdict.reason_scores.values()) or verdict.p_good >= threshold:
        return None  # not called bad, or a network without a reason head (all-zero scores)
    if verdict.verdict == "bad" and verdict.reason is not None:
        return verdict.reason  # still the network's (or a measurement's) label
    return max(verdict.reason_scores, key=verdict.reason_scores.__getitem__)


def _judged_without(
    verdict: MicrographVerdict, reasons: set[str], threshold: float
) -> MicrographVerdict:
    """``verdict`` judged again with the network's ``reasons`` left out.

    P(good) over P(good) plus the other reasons' probabilities; good when that reaches
    ``threshold`` (or no other reason is left), else ``verdict`` unchanged. P(good) and the
    reason scores stay as the network gave them.
    """
    others = {r: (1.0 - verdict.p_good) * s for r, s in verdict.reason_scores.items()}
    others = {r: p for r, p in others.items() if r not in reasons}
    p_good = verdict.p_good / max(verdict.p_good + sum(others.values()), 1e-12)
    if p_good >= threshold or not others:
        return replace(verdict, verdict="good", reason=None)
    return verdict


TRANSMISSION_OUTLIER_SIGMA = 6.0
"""`thick_ice_by_transmission`: a level this many robust spreads (1.4826 x MAD of the session's log
grey levels) under the session's median is also thicker ice, when it is at least
`TRANSMISSION_OUTLIER_FLOOR` under it (and whatever its spread, under
``params.thick_ice_transmission``). The absolute limit reads ice about 920 Å thicker with an energy
filter at 300 kV; without one only the electrons scattered outside the objective aperture are lost
(a mean free path of ~9,000 Å instead of ~3,200 Å), and 1,200-2,500 Å of ice darkens a micrograph
to only 0.81-0.91 of its session (the independent simulator, `bench/independent_sim.py`: all eight
of its thick-ice micrographs kept before). A session's own spread says how far its good
micrographs' ice and dose vary: measured 2026-12-06 (session 25, `/tmp/s25/levels.py`) 0.000-0.033
on the per-session held-out sets and the independent simulator, where good micrographs lie at 0.974
or more of their session's median, the limit then 0.82-0.90: 20 thick-ice micrographs caught on
14 sets, no good one. A real session whose ice varies more has a wider spread and a lower limit
(at a spread of 0.048 the absolute limit takes over)."""

TRANSMISSION_MAX_LEVEL_SPREAD = 0.2
"""`thick_ice_by_transmission` judges no micrograph in a session whose log grey levels spread
(robustly, 1.4826 x MAD) by more than this: a typical micrograph then received 20 % more or fewer
electrons than the session's median, the 0.75 limit lies within 1.5 spreads of it, and fewer
electrons through (ice) cannot be told from fewer in (a dose that was not held; Poisson counts
look the same). Measured 2026-12-06 (session 26): sessions of one dose spread 0.000-0.033 (the
per-session held-out sets, the independent simulator); `screen simulate`'s own sessions, whose
doses vary 40-55 e/Å² per micrograph, about 0.14 with their thick ice; the held-out sets made with
one dose per micrograph (`bench/micassess_generators.py --alone` without ``--per-session``: each
draws its own from 10-80 e/Å², grey levels up to 7x apart in a session) 0.22-0.80, where the
check had called 20 of 80 good micrographs thick ice, every one kept by the network (P(good)
0.38-1.00)."""

TRANSMISSION_OUTLIER_FLOOR = 0.9
"""... at least 10 % darker: ice about 340 Å thicker with an energy filter (mean free path 3,200 Å),
950 Å without (9,000 Å), so that a session of very tight levels (a constant dose, counts whose
medians are integers: spread 0) does not call a micrograph in ice a little thicker than the rest."""

SHOT_NOISE_AGREEMENT = 0.2
"""A darker micrograph counts as thicker ice only when its noise variance per grey level lies no
more than this fraction below its session's median: it received fewer electrons (Poisson noise
falls with the counts) rather than being rescaled by an export (`screen.processing.exposure`): a
rescale to a fraction ``a`` of the level scales the noise per level by ``a`` too, so under the
0.75 default of the level it reads under 0.8 of the session's."""

SHOT_NOISE_EXCESS = 0.5
"""... and at most this fraction above it: more ice scatters more, and its texture adds to the
neighbouring-pixel differences (no rescale raises the ratio). Measured 2026-12-06 on the
`--per-session` sets whose counts agree on the ratio: thick ice at 0.96-1.21 of its session's
(hot pixels alone: the one at 1.21 had been kept), good micrographs 0.94-1.06."""

TRANSMISSION_MAX_NOISE_SPREAD = 0.1
"""... and only in a session whose micrographs agree on the noise variance per grey level
(robust spread, 1.4826 x MAD, of its logarithm at most this): counts, or counts through one
linear chain of processing. Measured 2026-12-05: 0.01-0.06 on sessions that kept counts (hot
pixels, Fourier binning), wider through denoisers, and JPEG exports stretched per micrograph
over 0.1 (there a grey level says nothing about electrons: no micrograph is judged)."""

TRANSMISSION_MIN_MICROGRAPHS = 4
"""A session needs this many measured micrographs for a median to judge one against."""


LEVEL_MAX_SPREAD = 0.05
"""A session's grey levels agree when the robust spread (1.4826 x MAD) of their log is above 0
(an export that set every micrograph to one level says nothing) and at most this: one dose on
every micrograph. The per-session sets of `bench/micassess_generators.py` measured 0.002-0.04
through counts, binning, hot pixels and denoisers, JPEG exports stretched per micrograph
0.02-0.19 (so `stretched_export` guards the check on levels alone), the 12 real EMPIAR-10017 8-bit exports 0.052 (`thick_ice_by_transmission`,
`thick_ice_needs_darkening`)."""


SHARED_EXTREME_TOLERANCE = 0.005
"""Two micrographs share an extreme value when their lowest (or highest) values differ by at most
this fraction of the session's median value range: 8-bit exports stretched per micrograph end at
0 and 254-255 (the 12 real EMPIAR-10017 exports of `shared/real_examples`), min-max or clipped
float exports at one pair of values; a camera's counts or sums end wherever their noise and hot
pixels put them."""


def stretched_export(verdicts: list[MicrographVerdict]) -> bool:
    """Whether the session's micrographs were stretched into one value range by an export.

    True when at least half of the micrographs with measured extremes (`MicrographVerdict.
    grey_min`, ``grey_max``) share both the session's median lowest and median highest value
    (`SHARED_EXTREME_TOLERANCE`), and when fewer than `TRANSMISSION_MIN_MICROGRAPHS` have them
    (not known: judged as stretched, so that no grey level is believed alone).
    """
    extremes = np.array(
        [
            (float(v.grey_min), float(v.grey_max))
            for v in verdicts
            if v.grey_min is not None and v.grey_max is not None
        ]
    ).reshape(-1, 2)
    if len(extremes) < TRANSMISSION_MIN_MICROGRAPHS:
        return True
    low, high = np.median(extremes, axis=0)
    tolerance = SHARED_EXTREME_TOLERANCE * max(
        float(np.median(extremes[:, 1] - extremes[:, 0])), 0.0
    )
    shared = (np.abs(extremes[:, 0] - low) <= tolerance) & (
        np.abs(extremes[:, 1] - high) <= tolerance
    )
    return bool(shared.mean() >= 0.5)


def thick_ice_by_transmission(
    verdicts: list[MicrographVerdict], params: MicrographAssessParams
) -> list[MicrographVerdict]:
    """The session's verdicts with good micrographs of much thicker ice called bad (``thick_ice``).

    A good micrograph is called bad when its grey level (`MicrographVerdict.grey_level`) is
    under ``params.thick_ice_transmission`` times the median of the session's measured
    micrographs, or under `TRANSMISSION_OUTLIER_FLOOR` times it and `TRANSMISSION_OUTLIER_SIGMA`
    robust spreads of the session's log levels below it, in a session whose levels spread by at
    most `TRANSMISSION_MAX_LEVEL_SPREAD` (one dose), and

    * in a session that agrees on the noise variance per grey level
      (`TRANSMISSION_MAX_NOISE_SPREAD`), its own lies between `SHOT_NOISE_AGREEMENT` below
      and `SHOT_NOISE_EXCESS` above theirs:
      fewer electrons reached the camera, it was not rescaled (`screen.processing.exposure`);
    * in a session whose noise per grey level does not agree (binned frames, where the
      neighbouring-pixel differences carry the particles too, or denoised ones), the session's
      grey levels agree (robust spread above 0 and at most `LEVEL_MAX_SPREAD`) and its
      micrographs do not share their extreme values (`stretched_export`): one dose, no export
      that set each micrograph's range, so a level a quarter lower is fewer electrons.

    Sessions of fewer than `TRANSMISSION_MIN_MICROGRAPHS` measured micrographs, and the check
    turned off (0), return the verdicts unchanged; P(good) and the reason scores stay as the
    network gave them.
    """
    verdicts = list(verdicts)
    measured = _measured_session(
        verdicts, params.thick_ice_transmission, _exposure_measured, TRANSMISSION_MIN_MICROGRAPHS
    )
    if measured is None:
        return verdicts
    level = float(np.median([v.grey_level for v in measured]))
    log_gain = np.log([v.noise_variance / v.grey_level for v in measured])
    centre = float(np.median(log_gain))
    noise_agrees = _robust_spread(log_gain) <= TRANSMISSION_MAX_NOISE_SPREAD
    if not noise_agrees and (not _levels_agree(measured) or stretched_export(measured)):
        return verdicts
    gain = float(np.exp(centre))
    # Where the session's levels are tight, a level far out of them is darker ice even when it is
    # above the absolute limit (no energy filter, 200 kV: the same extra ice loses less).
    spread = _robust_spread(np.log([float(v.grey_level) for v in measured]))
    if spread > TRANSMISSION_MAX_LEVEL_SPREAD:
        return verdicts  # no one dose: a level does not say how many electrons went through
    limit = max(
        params.thick_ice_transmission,
        min(TRANSMISSION_OUTLIER_FLOOR, float(np.exp(-TRANSMISSION_OUTLIER_SIGMA * spread))),
    )
    out = []
    for v in verdicts:
        thicker = (
            v.verdict == "good"
            and _exposure_measured(v)
            and v.grey_level < limit * level
            and (
                not noise_agrees
                or -SHOT_NOISE_AGREEMENT
                <= v.noise_variance / v.grey_level / gain - 1.0
                <= SHOT_NOISE_EXCESS
            )
        )
        out.append(replace(v, verdict="bad", reason="thick_ice") if thicker else v)
    return out


THICK_ICE_MIN_DARKENING = 0.95
"""A micrograph the network calls ``thick_ice`` must have received less than this fraction of its
session's median grey level (`thick_ice_needs_darkening`). Physics: thicker ice lets fewer
electrons through (exp(-t / 3,200 Å) energy filtered at 300 kV), so a micrograph at 0.95 of its
session's level lies in at most ~160 Å more ice than the session's typical one, which is not
thick ice against its own session. Measured 2026-12-05 (session 18, `/tmp/s18/grey.py` on the
`bench/micassess_generators.py --per-session` sets): the network's thick-ice verdicts on good
micrographs sat at 0.98-1.06 of their session's level (all after NL-means denoising), true thick
ice at 0.57-0.90 on every set."""


def thick_ice_needs_darkening(
    verdicts: list[MicrographVerdict], params: MicrographAssessParams
) -> list[MicrographVerdict]:
    """The session's verdicts with the network's thick ice believed only where the level fell.

    A micrograph the network called bad for ``thick_ice`` (P(good) < threshold) whose grey level
    is at least `THICK_ICE_MIN_DARKENING` of its session's median is judged again without that
    reason (`_judged_without`), in a session of at least `TRANSMISSION_MIN_MICROGRAPHS` measured
    micrographs whose levels agree (`LEVEL_MAX_SPREAD`). One that the rest of the evidence keeps
    bad is named by the likeliest remaining reason: its level has just contradicted thick ice.
    Off with the transmission check (``params.thick_ice_transmission`` 0). Micrographs made thick
    ice by the transmission check are not the network's and keep their verdict.
    """
    verdicts = list(verdicts)
    measured = _measured_session(
        verdicts, params.thick_ice_transmission, _exposure_measured, TRANSMISSION_MIN_MICROGRAPHS
    )
    if measured is None or not _levels_agree(measured):
        return verdicts
    median = float(np.median([v.grey_level for v in measured]))
    return _renamed_where(
        verdicts,
        "thick_ice",
        params.threshold,
        lambda v: _exposure_measured(v) and v.grey_level >= THICK_ICE_MIN_DARKENING * median,
    )


def gradient_not_contamination(
    verdicts: list[MicrographVerdict], params: MicrographAssessParams
) -> list[MicrographVerdict]:
    """The verdicts, with ``contaminated`` not believed where it was the ice's smooth gradient.

    A micrograph the network called bad for ``contaminated`` (P(good) under the threshold; or
    renamed to it by a contradicted thick ice) is good when the same network, shown the micrograph
    with its smooth background subtracted (``p_good_flattened``), reaches the threshold, unless
    the opaque or crystalline-ice measure finds contamination itself. Ice thickening towards a
    hole's rim darkens a side of the field smoothly; contamination is sharp-edged and stays after
    the subtraction. Measured 2026-12-07 (`bench/micassess_generators.py --per-session`): the
    three good micrographs the product still lost on the seven per-session held-out sets were
    NL-means-denoised fields whose particles the denoiser had smoothed away and whose ice
    gradient remained (P(good) 0.003-0.012, 0.13-0.66 flattened). A field split by a film edge's
    step is not flattened (`_flattened_p_good`). Off with ``params.gradient_second_look`` False.
    """
    if not params.gradient_second_look:
        return list(verdicts)

    def contamination_measured(v: MicrographVerdict) -> bool:
        opaque = params.max_opaque_fraction > 0 and (v.opaque_fraction or 0.0) >= (
            params.max_opaque_fraction
        )
        crystalline = (
            params.max_crystalline_fraction > 0
            and (v.crystalline_fraction or 0.0) >= params.max_crystalline_fraction
        )
        return opaque or crystalline

    return [
        replace(v, verdict="good", reason=None)
        if _network_reason(v, params.threshold) == "contaminated"
        and v.p_good_flattened is not None
        and v.p_good_flattened >= params.threshold
        and not contamination_measured(v)
        else v
        for v in verdicts
    ]


def measured_session_checks(
    verdicts: list[MicrographVerdict], params: MicrographAssessParams
) -> list[MicrographVerdict]:
    """A session's verdicts after the checks of the image's own measures, in their order.

    The network's thick ice believed only where the level fell (`thick_ice_needs_darkening`),
    its contamination only where it is not the ice's gradient (`gradient_not_contamination`),
    thick ice by transmission, drift by anisotropy and empty fields by the dark-blob census.
    """
    return empty_in_session(
        drift_by_anisotropy(
            thick_ice_by_transmission(
                gradient_not_contamination(thick_ice_needs_darkening(verdicts, params), params),
                params,
            ),
            params,
        ),
        params,
    )


def _renamed_where(
    verdicts: list[MicrographVerdict],
    reason: str,
    threshold: float,
    contradicted: Callable[[MicrographVerdict], bool],
) -> list[MicrographVerdict]:
    """The verdicts, with the network's ``reason`` judged again where a measure contradicts it.

    Each verdict the network called bad for ``reason`` and for which ``contradicted`` holds is
    judged again without it (`_renamed_without`); the others are returned unchanged.
    """
    return [
        _renamed_without(v, reason, threshold)
        if _network_reason(v, threshold) == reason and contradicted(v)
        else v
        for v in verdicts
    ]


def _renamed_without(
    verdict: MicrographVerdict, reason: str, threshold: float
) -> MicrographVerdict:
    """`_judged_without` one contradicted ``reason``; still bad, it takes the likeliest other."""
    again = _judged_without(verdict, {reason}, threshold)
    if again.verdict == "good":
        return again
    others = {r: s for r, s in verdict.reason_scores.items() if r != reason}
    return replace(again, reason=max(others, key=others.__getitem__))


def drift_by_anisotropy(
    verdicts: list[MicrographVerdict], params: MicrographAssessParams
) -> list[MicrographVerdict]:
    """The session's verdicts with good micrographs whose spectrum lost a direction: ``drift``.

    Drift blur of 25 Å or more takes the power along the drift between 80 and 30 Å
    (`screen.processing.anisotropy`); a micrograph is called drift when its anisotropy there is
    significant against the measure's noise (`DRIFT_MIN_SIGNIFICANCE`) and lies
    ``params.drift_outlier_sigma`` robust standard deviations above the median of its session's
    measured micrographs (1.4826 x MAD, at least the median noise scale), in a session of at
    least `DRIFT_MIN_MICROGRAPHS` measured ones. Only good verdicts change; P(good) and the
    reason scores stay as the network gave them. Off (unchanged) with ``drift_outlier_sigma`` 0.
    """
    verdicts = list(verdicts)
    measured = _measured_session(
        verdicts, params.drift_outlier_sigma, _anisotropy_measured, DRIFT_MIN_MICROGRAPHS
    )
    if measured is None:
        return verdicts
    amplitudes = np.array([float(v.anisotropy) for v in measured])
    median = float(np.median(amplitudes))
    spread = max(
        _robust_spread(amplitudes),
        float(np.median([float(v.anisotropy_noise) for v in measured])),
    )
    return [
        replace(v, verdict="bad", reason="drift")
        if v.verdict == "good"
        and _anisotropy_measured(v)
        and v.anisotropy >= DRIFT_MIN_SIGNIFICANCE * v.anisotropy_noise
        and v.anisotropy - median >= params.drift_outlier_sigma * spread
        else v
        for v in verdicts
    ]


def empty_in_session(
    verdicts: list[MicrographVerdict], params: MicrographAssessParams
) -> list[MicrographVerdict]:
    """The session's verdicts with good micrographs that hold no particles: ``empty``.

    A micrograph is empty when it has under ``params.empty_blob_ratio`` of the session's median
    of strong dark blobs per µm² (`screen.stages.picking.dark_blob_census`) and its score map is
    about symmetric (`EMPTY_MAX_TAIL_ASYMMETRY`), in a session of at least
    `EMPTY_MIN_MICROGRAPHS` measured micrographs whose median one has at least
    `EMPTY_MIN_SESSION_BLOBS` strong blobs. The network keeps many empty fields (a field of ice
    and noise is what a good micrograph's background looks like); counting against the session
    needs no statement of what a particle looks like, only that the session's other micrographs
    have them. P(good) and the reason scores stay. The other way round, a micrograph the network
    called bad for ``empty`` (P(good) < threshold) with at least `EMPTY_CONTRADICTED_RATIO` of
    the session's median is judged again without that reason (`_renamed_without`): the census
    contradicts it. Off (unchanged) with ``empty_blob_ratio`` 0.
    """
    verdicts = list(verdicts)
    measured = _measured_session(
        verdicts, params.empty_blob_ratio, _census_measured, EMPTY_MIN_MICROGRAPHS
    )
    if measured is None:
        return verdicts
    if float(np.median([float(v.strong_blobs) for v in measured])) < EMPTY_MIN_SESSION_BLOBS:
        return verdicts
    median = float(np.median([float(v.strong_blobs_per_um2) for v in measured]))
    limit = params.empty_blob_ratio * median
    verdicts = _renamed_where(
        verdicts,
        "empty",
        params.threshold,
        lambda v: (
            _census_measured(v) and v.strong_blobs_per_um2 >= EMPTY_CONTRADICTED_RATIO * median
        ),
    )
    return [
        replace(v, verdict="bad", reason="empty")
        if v.verdict == "good"
        and _census_measured(v)
        and v.strong_blobs_per_um2 < limit
        and v.blob_tail_asymmetry <= EMPTY_MAX_TAIL_ASYMMETRY
        else v
        for v in verdicts
    ]


def _census_measured(verdict: MicrographVerdict) -> bool:
    return (
        verdict.strong_blobs is not None
        and verdict.strong_blobs_per_um2 is not None
        and verdict.blob_tail_asymmetry is not None
        and math.isfinite(verdict.strong_blobs_per_um2)
        and math.isfinite(verdict.blob_tail_asymmetry)
    )


def _measured_session(
    verdicts: list[MicrographVerdict],
    setting: float,
    is_measured: Callable[[MicrographVerdict], bool],
    min_measured: int,
) -> list[MicrographVerdict] | None:
    """The session's verdicts that carry a check's measure (None: too few, or the check off).

    ``setting`` is the check's parameter (0 turns it off); fewer than ``min_measured``
    micrographs with the measure cannot make a session's median.
    """
    if setting <= 0:
        return None
    measured = [v for v in verdicts if is_measured(v)]
    return measured if len(measured) >= min_measured else None


def _robust_spread(values) -> float:
    """1.4826 x the median absolute deviation: the std of Gaussian values (0: half are equal)."""
    values = np.asarray(values, dtype=np.float64)
    return 1.4826 * float(np.median(np.abs(values - np.median(values))))


def _levels_agree(measured: list[MicrographVerdict]) -> bool:
    """Whether measured micrographs' grey levels agree (`LEVEL_MAX_SPREAD`)."""
    return 0.0 < _robust_spread(np.log([float(v.grey_level) for v in measured])) <= LEVEL_MAX_SPREAD


def _anisotropy_measured(verdict: MicrographVerdict) -> bool:
    return (
        verdict.anisotropy is not None
        and verdict.anisotropy_noise is not None
        and verdict.anisotropy_noise > 0
        and math.isfinite(verdict.anisotropy)
    )


def _exposure_measured(verdict: MicrographVerdict) -> bool:
    return (
        verdict.grey_level is not None
        and verdict.noise_variance is not None
        and verdict.grey_level > 0
        and verdict.noise_variance > 0
    )


def load_micrograph_model(params: MicrographAssessParams):
    """Load the Keras model named by ``params.model`` (imports TensorFlow)."""
    return micassess.load_micassess(params.model)


def assess_micrographs(
    images: list[np.ndarray],
    pixel_sizes_A: list[float],
    params: MicrographAssessParams,
    model,
    lossy: list[bool] | None = None,
) -> list[MicrographVerdict]:
    """Assess micrographs in batches.

    Parameters
    ----------
    images
        Motion-corrected micrographs (any size >= 64 px a side; non-square frames are scored
        on several square crops whose P(good) are averaged).
    pixel_sizes_A
        Pixel size of each micrograph, in Å.
    params
        Threshold, model name and batch size.
    model
        The loaded model (:func:`load_micrograph_model`).
    lossy
        True for each micrograph that is a JPEG export (no crystalline-ice check there; see
        :func:`assess_micrographs_with`). ``None``: none is.

    Returns
    -------
    list of MicrographVerdict
        One per image, in order.

    Raises
    ------
    ValueError
        When the lists differ in length, a pixel size is not positive, or the threshold is
        outside [0, 1].
    """
    return assess_micrographs_with(images, pixel_sizes_A, [(params, model)], lossy)[0]


@dataclass(frozen=True)
class _FrameMeasures:
    """What `assess_micrographs_with` measures on each frame beside the networks (None: off)."""

    opaque: float | None
    edge: CarbonEdge | None
    crystalline: float | None
    exposure: Exposure
    directional: DirectionalPower
    census: DarkBlobCensus


def assess_micrographs_with(
    images: list[np.ndarray],
    pixel_sizes_A: list[float],
    assessments: list[tuple[MicrographAssessParams, object]],
    lossy: list[bool] | None = None,
) -> list[list[MicrographVerdict]]:
    """`assess_micrographs` with several (params, model) pairs: one list of verdicts per pair.

    Each frame is cropped, and its spectra and contamination measured, once for all of them.
    ``lossy`` marks JPEG exports, whose finest frequencies hold compression artefacts: no
    crystalline-ice reflections are looked for there (at 1.6 Å/px, JPEG exports of good
    micrographs of `bench/independent_sim.py` reached the limit in up to a quarter of their
    tiles, the same micrographs as MRC or PNG in none).
    """
    if lossy is not None and len(lossy) != len(images):
        raise ValueError(f"{len(images)} images but {len(lossy)} lossy flags")
    if len(images) != len(pixel_sizes_A):
        raise ValueError(f"{len(images)} images but {len(pixel_sizes_A)} pixel sizes")
    for params, _ in assessments:
        if not 0.0 <= params.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {params.threshold}")
        if params.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {params.batch_size}")
    for index, pixel_size_A in enumerate(pixel_sizes_A):
        if not pixel_size_A > 0:
            raise ValueError(f"micrograph {index}: pixel size must be positive, got {pixel_size_A}")
    usable = [i for i, image in enumerate(images) if micassess.is_assessable(image)]
    all_scores = micassess.predict_micrographs_with(
        [model for _, model in assessments],
        [np.asarray(images[i]) for i in usable],
        [float(pixel_sizes_A[i]) for i in usable],
        min(params.batch_size for params, _ in assessments) if assessments else 32,
    )
    want_opaque = any(params.max_opaque_fraction > 0 for params, _ in assessments)
    want_carbon = any(params.max_carbon_fraction > 0 for params, _ in assessments)
    want_crystalline = any(params.max_crystalline_fraction > 0 for params, _ in assessments)

    def measure(i: int) -> _FrameMeasures:
        pixel_size_A = float(pixel_sizes_A[i])
        reduced = reduced_frame(images[i], pixel_size_A)  # shared by the last two measures
        return _FrameMeasures(
            opaque_fraction(images[i]) if want_opaque else None,
            carbon_edge(images[i]) if want_carbon else None,
            _crystalline_share(images[i], pixel_size_A)
            if want_crystalline and not (lossy is not None and lossy[i])
            else None,
            exposure(images[i]),
            # Measured whatever the drift check's setting, as the exposure is: the cached verdict
            # keeps it, so a later run with the check on has it (`pipeline.assess_cache_version`).
            directional_power(images[i], pixel_size_A, reduced),
            dark_blob_census(images[i], pixel_size_A, reduced),
        )

    # Frames measured two at a time, as the network's inputs are prepared: their FFTs, filters
    # and reductions release the GIL (16 K3 frames in memory 6.45 -> 4.8 s on 2 cores).
    measured = dict(zip(usable, threaded_map(measure, usable), strict=True))
    opaque = {i: m.opaque for i, m in measured.items() if m.opaque is not None}
    edges = {i: m.edge for i, m in measured.items() if m.edge is not None}
    carbon = {i: edge.carbon_fraction() for i, edge in edges.items()}
    flattened = _flattened_p_good(
        images,
        pixel_sizes_A,
        assessments,
        usable,
        all_scores,
        lambda i: edges[i] if i in edges else carbon_edge(images[i]),
    )
    crystalline = {i: m.crystalline for i, m in measured.items() if m.crystalline is not None}
    exposures = {i: m.exposure for i, m in measured.items()}
    directional = {i: m.directional for i, m in measured.items()}
    census = {i: m.census for i, m in measured.items()}
    unusable = MicrographVerdict(p_good=0.0, verdict="bad", reason=None, reason_scores={})
    out = []
    for k, ((params, _), scores) in enumerate(zip(assessments, all_scores, strict=True)):
        verdicts = [unusable] * len(images)
        for row, index in enumerate(usable):
            verdicts[index] = _verdict(
                float(scores["p_good"][row]),
                scores["reason"][row],
                params,
                opaque.get(index) if params.max_opaque_fraction > 0 else None,
                carbon.get(index) if params.max_carbon_fraction > 0 else None,
                crystalline.get(index) if params.max_crystalline_fraction > 0 else None,
                exposures[index],
                directional.get(index),
                census.get(index),
            )
            if (k, index) in flattened:
                verdicts[index] = replace(verdicts[index], p_good_flattened=flattened[k, index])
        out.append(verdicts)
    return out


def _flattened_p_good(
    images: list[np.ndarray],
    pixel_sizes_A: list[float],
    assessments: list[tuple[MicrographAssessParams, object]],
    usable: list[int],
    all_scores: list[dict[str, np.ndarray]],
    edge_of: Callable[[int], CarbonEdge],
) -> dict[tuple[int, int], float]:
    """P(good) of each network on its ``contaminated`` calls, their smooth background removed.

    Keyed by (assessment, image index). Only micrographs a network called bad (P(good) under its
    threshold) with ``contaminated`` among its two likeliest reasons are seen again (the second:
    a thick-ice call its session's grey level contradicts is renamed to it,
    `thick_ice_needs_darkening`), and only where no step of a film edge's contrast splits the
    field (``edge_of(index)``, `CARBON_MIN_STEP_CONTRAST`, however wide its transition): a
    degree-2 surface takes part of a carbon film's step away, which is no ice gradient. Each
    frame is flattened once for every network that wants it.
    """
    wanted: dict[int, list[int]] = {}
    contaminated = MICROGRAPH_REASONS.index("contaminated")
    for k, ((params, _), scores) in enumerate(zip(assessments, all_scores, strict=True)):
        if not params.gradient_second_look:
            continue
        for row, index in enumerate(usable):
            reason_row = scores["reason"][row]
            top_two = np.argsort(reason_row)[-2:]
            # all-zero rows: a network without a reason head (the paper's) names no contamination
            if (
                scores["p_good"][row] < params.threshold
                and contaminated in top_two
                and reason_row[contaminated] > 0
            ):
                wanted.setdefault(index, []).append(k)
    wanted = {
        i: ks for i, ks in wanted.items() if edge_of(i).step_contrast < CARBON_MIN_STEP_CONTRAST
    }
    flat = {i: np.asarray(images[i], np.float32) - smooth_background(images[i]) for i in wanted}
    out: dict[tuple[int, int], float] = {}
    for k in sorted({k for ks in wanted.values() for k in ks}):
        indices = [i for i, ks in wanted.items() if k in ks]
        (scores,) = micassess.predict_micrographs_with(
            [assessments[k][1]],
            [flat[i] for i in indices],
            [float(pixel_sizes_A[i]) for i in indices],
            assessments[k][0].batch_size,
        )
        out.update({(k, i): float(p) for i, p in zip(indices, scores["p_good"], strict=True)})
    return out


def _verdict(
    p_good: float,
    reason_row: np.ndarray,
    params: MicrographAssessParams,
    opaque: float | None,
    carbon: float | None,
    crystalline: float | None = None,
    measured: Exposure | None = None,
    directional: DirectionalPower | None = None,
    census: DarkBlobCensus | None = None,
) -> MicrographVerdict:
    """One micrograph's verdict from the network's scores and the image checks' measures."""
    reason_scores = {
        name: float(value) for name, value in zip(MICROGRAPH_REASONS, reason_row, strict=True)
    }
    bad = p_good < params.threshold
    verdict = MicrographVerdict(
        p_good=p_good,
        verdict="bad" if bad else "good",
        # A network without a reason head (the paper's) gives all-zero reason scores.
        reason=(
            max(reason_scores, key=reason_scores.__getitem__)
            if bad and any(reason_scores.values())
            else None
        ),
        reason_scores=reason_scores,
        opaque_fraction=opaque,
        carbon_fraction=carbon,
        crystalline_fraction=crystalline,
        grey_level=None if measured is None else measured.level,
        noise_variance=None if measured is None else measured.noise_variance,
        anisotropy=None if directional is None else directional.amplitude,
        anisotropy_noise=None if directional is None else directional.noise,
        grey_min=None if measured is None or math.isnan(measured.low) else measured.low,
        grey_max=None if measured is None or math.isnan(measured.high) else measured.high,
        strong_blobs=None if census is None else census.strong,
        strong_blobs_per_um2=None if census is None else census.strong_per_um2,
        blob_tail_asymmetry=None if census is None else census.tail_asymmetry,
    )
    if not bad and opaque is not None and opaque >= params.max_opaque_fraction:
        return replace(verdict, verdict="bad", reason="contaminated")
    if carbon is not None and carbon >= params.max_carbon_fraction:
        # A film edge over a third of the field is the reason even where the network had
        # another: the check fired on no other kind of bad micrograph (bench/carbon_edges.py).
        return replace(verdict, verdict="bad", reason="carbon")
    if not bad and crystalline is not None and crystalline >= params.max_crystalline_fraction:
        return replace(verdict, verdict="bad", reason="contaminated")
    return verdict


def _crystalline_share(image: np.ndarray, pixel_size_A: float) -> float | None:
    """Share of the micrograph's tiles with crystalline-ice reflections (None: not measurable).

    Not measurable either on a micrograph that shows a JPEG block grid (an export converted to
    MRC or TIFF): its finest frequencies hold the blocks' artefacts (every tile of the
    EMPIAR-10017 exports coded again at quality 30 read as ice, 2026-12-06).
    """
    if not measurable(pixel_size_A) or shows_block_grid(image):
        return None
    found = ice_reflections(image, pixel_size_A)
    return None if found is None else found.tile_share


BACKEND = Backend(
    stage="assess_micrographs",
    name="builtin",
    # 3: hot pixels clipped before the Fourier crop; 4: opaque check; 5: its margin; 6: carbon
    # check; 7: it follows arcs too; 8: crystalline-ice reflections; 9: grey level and noise;
    # 10: directional power (anisotropy) for the drift check; 11: lowest and highest values;
    # 12: crystalline ice read only where the band is transmitted and no JPEG grid shows;
    # the opaque check's block means median-filtered (hot pixels); 13: the dark-blob census;
    # 14: bright outliers (spread hot pixels) set to the median in the drift and census frame;
    # 15: P(good) of contaminated calls with the smooth background subtracted; 16: the
    # network's input clipped at the bright-outlier level too
    version="16",
    params_type=MicrographAssessParams,
    compute=assess_micrographs,
)
