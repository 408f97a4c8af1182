"""Smoke tests on the real micrographs of shared/real_examples (skipped where it is absent).

They are no measurement (we evaluate on real data the project never sees); they fail when a
change breaks what a person would expect on real pixels.
"""

import numpy as np
import pytest

from screen.io.real_examples import (
    EMPIAR10017_DIAMETER_A,
    MICASSESS_TRAINING_EXPORTS,
    real_examples,
)
from screen.processing.boxes import match_picks
from screen.processing.filters import bin_to_pixel_size
from screen.stages.assess_micrographs import (
    EMPTY_MAX_TAIL_ASYMMETRY,
    MicrographAssessParams,
    assess_micrographs,
    drift_by_anisotropy,
    empty_in_session,
    load_micrograph_model,
    stretched_export,
    thick_ice_by_transmission,
)
from screen.stages.diameter import DiameterParams, estimate_diameter
from screen.stages.picking import PickParams, pick_particles
from screen.stages.records import CtfFit, Optics

EXAMPLES = real_examples()
pytestmark = pytest.mark.skipif(
    not EXAMPLES, reason="shared/real_examples is not beside the repository"
)


@pytest.fixture(scope="module")
def model():
    return load_micrograph_model(MicrographAssessParams())


GOOD_EXAMPLES = [e for e in EXAMPLES if e.verdict == "good"]


@pytest.mark.xfail(
    strict=True,
    reason="issue 10, the known defect of micassess_small_v2: it calls every good real example "
    "bad (P(good) <= 0.0001, 'crowded': its blob statistics assume shot noise, and these are "
    "denoised or binned). Remove this mark when the shipped weights get them right (strict: one "
    "right example already fails here).",
)
@pytest.mark.parametrize("example", GOOD_EXAMPLES, ids=lambda e: e.path.stem[:40])
def test_real_micrograph_gets_the_verdict_a_person_gives(example, model):
    (verdict,) = assess_micrographs(
        [example.read()], [example.pixel_size_A], MicrographAssessParams(), model
    )
    assert verdict.verdict == example.verdict, f"P(good) {verdict.p_good:.4f}"


@pytest.mark.parametrize(
    "weights", ["micassess_small_v2", "micassess_small_v3", "micassess_small_v5"]
)
def test_the_contaminated_real_micrograph_is_bad_with_either_model(weights):
    """Every network keeps it (P(good) 0.65, 0.92, 0.93); the opaque check of the stage rejects it:
    13 % of its field lies under the ball (3 % is the limit), the Magellon micrograph's small
    ball 0.15 %, the EMPIAR exports 0 %."""
    params = MicrographAssessParams(model=weights)
    (example,) = [e for e in EXAMPLES if e.verdict == "bad"]
    (verdict,) = assess_micrographs(
        [example.read()], [example.pixel_size_A], params, load_micrograph_model(params)
    )
    assert (verdict.verdict, verdict.reason) == ("bad", "contaminated")
    assert 0.1 < verdict.opaque_fraction < 0.25
    good = assess_micrographs(
        [e.read() for e in GOOD_EXAMPLES[:3]],
        [e.pixel_size_A for e in GOOD_EXAMPLES[:3]],
        params,
        load_micrograph_model(params),
    )
    assert all(v.opaque_fraction < 0.01 for v in good)


def test_the_contaminated_real_micrograph_with_hot_pixels_is_still_bad(model):
    """300 hot pixels at 20 times the frame's maximum: smoothed into the field unclipped, they
    outweighed the ball (opaque share 0: kept, 2026-12-06); clipped first, 13 % again."""
    (example,) = [e for e in EXAMPLES if e.verdict == "bad"]
    image = example.read().copy()
    hot = np.random.default_rng(1).integers(0, image.size, 300)
    image.flat[hot] = 20.0 * image.max()
    params = MicrographAssessParams()
    (verdict,) = assess_micrographs([image], [example.pixel_size_A], params, model)
    assert (verdict.verdict, verdict.reason) == ("bad", "contaminated")
    assert 0.1 < verdict.opaque_fraction < 0.25


def test_no_real_example_has_a_carbon_film_edge():
    """None of the 14 shows a film edge: step contrasts 1.0-3.9 (the check needs 4 with a sharp
    transition), darker sides 5-17 % of the field (it needs 30 %; bench/carbon_edges.py)."""
    from screen.processing.carbon import carbon_edge

    for example in EXAMPLES:
        edge = carbon_edge(example.read())
        assert edge.carbon_fraction() == 0.0, example.path.name
        assert edge.dark_fraction < 0.25, example.path.name


def test_no_real_example_shows_crystalline_ice_reflections():
    """The EMPIAR-10017 exports (1.77 Å/px: the band up to 3.72 Å is resolved) are vitreous:
    no tile reaches the limit (strongest 3 x 3 means 3.2-5.2 against 8; denoised 8-bit JPEG).
    The Magellon micrograph (6.32 Å/px) cannot show the band."""
    from screen.processing.ice import ice_reflections

    for example in EXAMPLES:
        found = ice_reflections(example.read(), example.pixel_size_A)
        if example.pixel_size_A > 2.0:
            assert found is None, example.path.name
        elif example.verdict == "good":
            assert found.tile_share == 0.0, (example.path.name, found)
            assert found.strongest_ratio < 7.0, (example.path.name, found)


@pytest.mark.parametrize("sigma_px", [0.7, 1.5, 2.0])
def test_a_smoothed_real_export_shows_no_crystalline_ice(sigma_px):
    """One EMPIAR-10017 export smoothed again (an export low-passed or denoised harder): its
    band carries rounding residue and near-axis streaks, not ice. Before the band's power was
    checked (2026-12-06) every tile read as ice from 1.5 px on and every good export of such a
    session was called "contaminated"."""
    from scipy import ndimage as ndi

    from screen.processing.ice import ice_reflections

    example = next(e for e in EXAMPLES if e.path.suffix == ".jpg")
    found = ice_reflections(ndi.gaussian_filter(example.read(), sigma_px), example.pixel_size_A)
    assert found is None or found.tile_share == 0.0, found


KEPT_BY_V3_FLOOR = 9
"""Good real examples micassess_small_v3 keeps (measured 9 of 13 on 2026-12-03: Magellon and 8
of the 12 EMPIAR-10017 exports; the closest kept one at P(good) 0.20, the closest lost at 0.071)."""


def _assessed(examples, weights: str):
    params = MicrographAssessParams(model=weights)
    return assess_micrographs(
        [e.read() for e in examples],
        [e.pixel_size_A for e in examples],
        params,
        load_micrograph_model(params),
    )


def test_the_domain_randomised_model_keeps_most_good_real_micrographs():
    """micassess_small_v3 on the good real examples (12 denoised EMPIAR-10017 exports, the binned
    Magellon micrograph): measured 2026-12-03, see its model card. A floor; v2 keeps none."""
    verdicts = _assessed(GOOD_EXAMPLES, "micassess_small_v3")
    kept = sum(v.verdict == "good" for v in verdicts)
    assert kept >= KEPT_BY_V3_FLOOR, [f"{v.p_good:.3f}" for v in verdicts]


def test_the_fallback_model_keeps_every_good_real_micrograph():
    """micassess_small_v5, the domain fallback of ``screen run``, on the good real examples whose
    pixels never reached its training: the Magellon micrograph and the six EMPIAR-10017 exports
    outside ``MICASSESS_TRAINING_EXPORTS`` (the first two among them; v3 lost two of these six,
    P 0.071 and 0.029). Measured 2026-12-03: P(good) 0.82-0.999. The six exports it trained on
    are checked too, but they are not evidence."""
    held_out = [e for e in GOOD_EXAMPLES if e.path.name not in MICASSESS_TRAINING_EXPORTS]
    assert len(held_out) == len(GOOD_EXAMPLES) - len(MICASSESS_TRAINING_EXPORTS) >= 3
    verdicts = _assessed(GOOD_EXAMPLES, "micassess_small_v5")
    lost = [
        f"{e.path.name}: P(good) {v.p_good:.3f} ({v.reason})"
        for e, v in zip(GOOD_EXAMPLES, verdicts, strict=True)
        if v.verdict != "good"
    ]
    assert not lost, lost
    # The twelve exports as one session: stretched into 0-255 each, so no grey level of theirs
    # is read as electrons, and the session's checks keep every one.
    exports = [v for e, v in zip(GOOD_EXAMPLES, verdicts, strict=True) if e.path.suffix == ".jpg"]
    assert len(exports) == 12 and stretched_export(exports)
    params = MicrographAssessParams(model="micassess_small_v5")
    checked = empty_in_session(
        drift_by_anisotropy(thick_ice_by_transmission(exports, params), params), params
    )
    assert [v.verdict for v in checked] == ["good"] * 12
    # Their strong dark blobs (measured 2026-12-06: 35-465 per export, at 0.21-2.84 of their
    # median) and the dark side of every score map (tail asymmetry 1.20-1.48) say particles.
    assert all(v.blob_tail_asymmetry > EMPTY_MAX_TAIL_ASYMMETRY for v in exports)


@pytest.mark.parametrize("z_scored", [False, True], ids=["as_given", "z_scored"])
def test_picking_finds_the_manual_picks_at_the_known_diameter(z_scored):
    """629 manual picks on a denoised EMPIAR-10017 export; measured recall 0.80, precision 0.73.
    The same export z-scored (a normalised MRC, median near 0): 105 picks, recall 0.13, before
    `relative_contrast` (2026-12-06); the same picks since."""
    example = _manual_example()
    image = example.read()
    if z_scored:
        image = (image - image.mean()) / image.std()
    picks = pick_particles(image, example.pixel_size_A, EMPIAR10017_DIAMETER_A, PickParams())
    truth = example.picks_xy_px()
    assert len(truth) == 629
    tp, fp, fn = match_picks(
        np.column_stack([picks.x_px, picks.y_px]), truth, 0.3 * EMPIAR10017_DIAMETER_A / 1.77
    )
    assert tp / (tp + fn) >= 0.7 and tp / (tp + fp) >= 0.6


def _manual_example():
    (example,) = [e for e in EXAMPLES if e.picks_path and "manual" in e.picks_path.name]
    return example


@pytest.fixture(scope="module")
def diameter_estimates():
    """The diameter stage on the manual-picks export, full resolution or binned 2x (cached).

    A few of the stage's 19 trial diameters (all take minutes on a 4096² frame): six for the
    spread edge (its plateau needs five agreeing), four for the exclusion gap alone.
    """
    cache = {}

    def estimate(binned: bool, method: str):
        if (binned, method) not in cache:
            example = _manual_example()
            image, pixel_size_A = example.read(), example.pixel_size_A
            ctfs = None
            if binned:
                image, pixel_size_A = bin_to_pixel_size(image, pixel_size_A, 2 * pixel_size_A)
                ctfs = [CtfFit(14600.0, 14600.0, 0.0, 11.0, 0.5)]
            if method == "spread_edge":
                params = DiameterParams(scale_trials_A=(126.0, 141.0, 159.0, 178.0, 200.0, 224.0))
            else:
                params = DiameterParams(
                    scale_trials_A=(126.0, 159.0, 200.0, 252.0), use_spread_edge=False
                )
            cache[binned, method] = estimate_diameter(
                [image], pixel_size_A, params, ctfs, Optics(pixel_size_A)
            )
        return cache[binned, method]

    return estimate


@pytest.mark.parametrize("method", ["spread_edge", "gap"])
@pytest.mark.parametrize("binned", [False, True], ids=["full", "binned2x"])
def test_diameter_of_beta_galactosidase_within_15_percent(binned, method, diameter_estimates):
    """One dense EMPIAR-10017 export: the spread edge (measured 166 ± 8 Å, full and binned) and
    the exclusion gap (before both: 151 Å in full and 417 Å on the 2x-binned copy, whose CTF fit,
    1.46 µm to 11 Å, let the refinement run away)."""
    estimate = diameter_estimates(binned, method)
    assert estimate.method == method
    assert estimate.diameter_A == pytest.approx(EMPIAR10017_DIAMETER_A, rel=0.15)
    assert estimate.uncertainty_A < 0.15 * EMPIAR10017_DIAMETER_A


def test_picking_at_the_pipelines_own_diameter_finds_the_manual_picks(diameter_estimates):
    """Issue 10's bar: recall >= 0.7 at precision >= 0.6 on the 629 manual picks with the
    diameter the pipeline estimates itself (a hit within 0.3 of the true 180 Å). Measured at the
    spread edge's 166 Å: 0.855 / 0.719 (at the gap's 181 Å: 0.787 / 0.732)."""
    example = _manual_example()
    estimate = diameter_estimates(False, "spread_edge")
    picks = pick_particles(example.read(), example.pixel_size_A, estimate.diameter_A, PickParams())
    tp, fp, fn = match_picks(
        np.column_stack([picks.x_px, picks.y_px]),
        example.picks_xy_px(),
        0.3 * EMPIAR10017_DIAMETER_A / example.pixel_size_A,
    )
    recall, precision = tp / (tp + fn), tp / (tp + fp)
    assert recall >= 0.7 and precision >= 0.6, (estimate.diameter_A, recall, precision)


def test_diameter_of_the_magellon_rings_within_15_percent():
    """One sparse 512² frame binned 8x: no significant gap, CTF fit not trusted, so the scale
    space decides; its curve is flat from 100 to 400 Å and the plateau's onset is taken (its
    maximum, at the last trial, gave 566 Å). Measured 129 Å for the ~120-Å rings."""
    (example,) = [e for e in EXAMPLES if e.path.name.startswith("magellon")]
    estimate = estimate_diameter([example.read()], example.pixel_size_A, DiameterParams())
    assert estimate.method == "scale_space"
    assert estimate.diameter_A == pytest.approx(example.diameter_A, rel=0.15)


def test_screen_run_on_the_magellon_rings_never_silently_keeps_no_particle(tmp_path):
    """The real rings (one 512² frame, 6.32 Å/px) through `screen run`: good classes are found,
    or the run says loudly that class assessment may be outside its domain (class_assess_v3
    called every class noise, by eye the largest ones are clear rings)."""
    import json

    from typer.testing import CliRunner

    from screen.cli import app

    (example,) = [e for e in EXAMPLES if e.path.name.startswith("magellon")]
    folder = tmp_path / "magellon"
    folder.mkdir()
    (folder / example.path.name).symlink_to(example.path.resolve())
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        f"session,micrographs,pixel_size_A\nrings,magellon,{example.pixel_size_A}\n"
    )
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", str(manifest), "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "sessions" / "rings" / "summary.json").read_text())
    assert summary["picked_particles"] >= 100
    warning = summary["class_domain_warning"]
    assert summary["good_particles"] > 0 or warning, summary
    if summary["good_particles"] == 0:
        assert "outside its trained domain" in warning and "WARNING rings" in result.output
        assert "outside its trained domain" in (out / "report.html").read_text()


@pytest.mark.parametrize("quality", [30, 60])
def test_a_real_export_coded_again_as_jpeg_is_not_read_as_crystalline_ice(quality):
    """An EMPIAR-10017 export JPEG-coded again and converted to MRC (a user's preview): its
    finest frequencies hold block artefacts that read as ice reflections (at quality 30 every
    tile, ratio 23; 60: 38 % of tiles), so the block grid it shows turns the check off, and the
    good micrograph stays good (2026-12-06: before, every one was called "contaminated")."""
    import io

    from PIL import Image

    from screen.processing.blocks import shows_block_grid

    example = next(
        e for e in EXAMPLES if e.path.name == "empiar10017_Falcon_2012_06_12-15_30_21_0.jpg"
    )
    buffer = io.BytesIO()
    Image.fromarray(example.read().astype(np.uint8)).save(buffer, "JPEG", quality=quality)
    coded = np.asarray(Image.open(buffer), dtype=np.float32)
    assert shows_block_grid(coded)
    params = MicrographAssessParams(model="micassess_small_v5")
    (verdict,) = assess_micrographs(
        [coded], [example.pixel_size_A], params, load_micrograph_model(params)
    )
    assert verdict.crystalline_fraction is None
    assert verdict.verdict == "good", verdict


def test_a_real_export_low_passed_at_8_A_is_not_fitted_past_8_A(hard_low_pass):
    """An EMPIAR-10017 export with everything finer than 8 Å cut off (as exports may be): its CTF
    fit resolution cannot be finer than the cut (2026-12-06: before, "fitted" to 3.9 Å, the
    taper's leakage and the cut's edge read as Thon rings; `ctf.LIVE_POWER_DROP`)."""
    from screen.stages.ctf import CtfSearch, estimate_ctf

    example = next(
        e for e in EXAMPLES if e.path.name == "empiar10017_Falcon_2012_06_12-14_33_35_0.jpg"
    )
    low_passed = hard_low_pass(example.read(), example.pixel_size_A, 8.0)
    fit = estimate_ctf(low_passed, Optics(example.pixel_size_A), CtfSearch())
    assert fit.fit_resolution_A >= 0.97 * 8.0, fit


def test_the_real_exports_binned_2x_are_a_ctf_pattern_not_rings():
    """The denoised EMPIAR-10017 exports binned 2x (3.54 Å/px): 5 of 12 fits land on 1.44 µm "to
    11 Å" within 59 Å of one another (measured 2026-12-06; the exports' rotational profile shows
    one dip, at 33 Å, in every export), so close that no session is focused that way: the
    processing's pattern. Marked as following no ring, every fit of the session then says so."""
    from screen.stages.ctf import CtfSearch, estimate_ctf, without_fixed_pattern

    exports = [e for e in GOOD_EXAMPLES if e.path.suffix == ".jpg"]
    fits = []
    for example in exports:
        image, pixel_A = bin_to_pixel_size(
            example.read(), example.pixel_size_A, 2 * example.pixel_size_A
        )
        fits.append(estimate_ctf(image, Optics(pixel_A), CtfSearch()))
    marked, pattern = without_fixed_pattern(fits, CtfSearch())
    assert pattern is not None and pattern.n_fits >= 5, [f.mean_defocus_A for f in fits]
    assert 1.3e4 < pattern.defocus_A < 1.6e4
    assert all(f.fit_resolution_A == CtfSearch().low_res_A for f in marked)
