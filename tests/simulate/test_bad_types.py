"""Every bad micrograph type looks, on the image, like what its label says."""

import dataclasses

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter, median_filter
from scipy.signal import savgol_filter

from screen.processing.ctf import ctf_2d
from screen.processing.fourier import periodogram_average, rotational_average
from screen.simulate.fields import pixel_coordinates_A
from screen.simulate.placement import nearest_neighbour_distance_A
from screen.simulate.plan import assign_reasons, plan_micrograph
from screen.simulate.render import render_micrograph
from screen.simulate.session import session_models
from screen.simulate.spec import BAD_REASONS, ScreenSpec, SessionSpec, SpeciesSpec, StructureSpec

DIAMETER_A = 140.0
STRUCTURE = StructureSpec("p140", DIAMETER_A, 186.0, "C1", n_domains=5, elongation=1.8, seed=11)
SESSION = SessionSpec(
    "bad",
    (SpeciesSpec(STRUCTURE),),
    particles_per_um2=1500,
    good_contamination_prob=0.0,
    good_carbon_edge_prob=0.0,
)
SCREEN = ScreenSpec((SESSION,), frame_px=(512, 512), pixel_size_A=2.5)
PIXEL_A = SCREEN.pixel_size_A
SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def models():
    return session_models(SESSION)


@pytest.fixture(scope="module")
def render(models):
    """``render(reason, seed)`` -> (plan, rendered); the same seed gives the same micrograph family
    (defocus, ice, dose, particle density are drawn before the reason-specific draws)."""
    cache = {}

    def _render(reason, seed):
        if (reason, seed) not in cache:
            plan = plan_micrograph(
                "m", reason, SESSION, SCREEN, models, np.random.default_rng(seed)
            )
            cache[reason, seed] = plan, render_micrograph(plan, models, SCREEN.frame_px, PIXEL_A)
        return cache[reason, seed]

    return _render


def _per_dose(plan, rendered):
    return rendered.counts / (plan.dose_e_per_A2 * PIXEL_A**2)


def _low_pass(image, resolution_A=20.0):
    return gaussian_filter(image, resolution_A / PIXEL_A / 2)


def _measured_snr(rendered):
    mask = rendered.particle_mask
    return float(
        rendered.particle_counts[mask].var()
        / (rendered.counts - rendered.expected_counts)[mask].var()
    )


def _dark_fraction(image, reference):
    """Share of pixels below the reference's median - 3 robust sd (low-passed, per unit dose)."""
    median = np.median(reference)
    robust_sd = 1.4826 * np.median(np.abs(reference - median))
    return float(np.mean(image < median - 3.0 * robust_sd))


def test_same_seed_gives_the_same_micrograph_family(render):
    good, _ = render("good", 0)
    for reason in BAD_REASONS:
        bad, _ = render(reason, 0)
        assert bad.reason == reason and bad.verdict == "bad"
        if reason not in ("empty", "thick_ice"):
            assert bad.ice_thickness_A == good.ice_thickness_A
        if reason != "bad_ctf":
            assert bad.ctf.defocus_u_A == good.ctf.defocus_u_A


@pytest.mark.parametrize("seed", SEEDS)
def test_empty(render, seed):
    plan, rendered = render("empty", seed)
    good_plan, good = render("good", seed)
    assert plan.n_particles <= 2
    assert good_plan.n_particles >= 15

    def particle_scale_variance(p, r):
        image = _per_dose(p, r)  # band: 20 Å to the particle size
        return (_low_pass(image, 20.0) - _low_pass(image, DIAMETER_A)).var()

    assert particle_scale_variance(plan, rendered) < 0.9 * particle_scale_variance(good_plan, good)


@pytest.mark.parametrize("seed", SEEDS)
def test_crowded(render, seed):
    plan, _ = render("crowded", seed)
    ny, nx = SCREEN.frame_px
    coverage = plan.n_particles * np.pi * (DIAMETER_A / 2) ** 2 / (ny * nx * PIXEL_A**2)
    assert coverage > 0.6
    nn = nearest_neighbour_distance_A(plan.particle_x_A, plan.particle_y_A)
    assert np.mean(nn < DIAMETER_A) > 0.8
    good_plan, _ = render("good", seed)
    good_nn = nearest_neighbour_distance_A(good_plan.particle_x_A, good_plan.particle_y_A)
    assert np.median(nn) < 0.5 * np.median(good_nn)


@pytest.mark.parametrize("seed", SEEDS)
def test_aggregated(render, seed):
    plan, rendered = render("aggregated", seed)
    good_plan, _ = render("good", seed)
    assert plan.particle_in_aggregate.mean() >= 0.5
    assert len(plan.aggregate_blobs) >= 2
    nn = nearest_neighbour_distance_A(plan.particle_x_A, plan.particle_y_A)
    good_nn = nearest_neighbour_distance_A(good_plan.particle_x_A, good_plan.particle_y_A)
    assert np.median(nn) < 0.9 * np.median(good_nn)
    # The amorphous blobs are in the image: strong protein signal at each blob centre.
    signal = np.abs(_low_pass(rendered.particle_counts, 40.0))
    inside = [
        (int(y / PIXEL_A), int(x / PIXEL_A))
        for x, y, _ in plan.aggregate_blobs
        if 0 <= x < SCREEN.frame_px[1] * PIXEL_A and 0 <= y < SCREEN.frame_px[0] * PIXEL_A
    ]
    assert inside
    threshold = np.quantile(signal, 0.75)
    assert np.mean([signal[iy, ix] > threshold for iy, ix in inside]) >= 0.5


@pytest.mark.parametrize("seed", SEEDS)
def test_contaminated(render, seed):
    plan, rendered = render("contaminated", seed)
    good_plan, good = render("good", seed)
    assert len(plan.balls) > 0 or plan.crystalline_coverage > 0.3
    reference = _low_pass(_per_dose(good_plan, good))
    assert _dark_fraction(_low_pass(_per_dose(plan, rendered)), reference) > 0.05
    assert _dark_fraction(reference, reference) < 0.02
    # Strong low-frequency texture: the 20 Å low-passed image varies far more than a clean one.
    assert _low_pass(_per_dose(plan, rendered)).var() > 10 * reference.var()


def _carbon_distance(plan):
    x_A, y_A = pixel_coordinates_A(SCREEN.frame_px, PIXEL_A)
    ny, nx = SCREEN.frame_px
    return plan.carbon.signed_distance_A(x_A, y_A, (nx * PIXEL_A / 2, ny * PIXEL_A / 2))


@pytest.mark.parametrize("seed", SEEDS)
def test_carbon(render, seed):
    plan, rendered = render("carbon", seed)
    distance = _carbon_distance(plan)
    assert np.mean(distance > 0) >= 0.35
    counts = rendered.counts
    on, off = distance > 50.0, distance < -50.0
    assert off.mean() > 0.03
    assert counts[on].mean() < 0.95 * counts[off].mean()
    high_pass = counts - gaussian_filter(counts, 1.5)
    relative_power_on = high_pass[on].var() / counts[on].mean() ** 2
    relative_power_off = high_pass[off].var() / counts[off].mean() ** 2
    assert relative_power_on > 1.15 * relative_power_off
    ny, nx = SCREEN.frame_px
    particle_distance = plan.carbon.signed_distance_A(
        plan.particle_x_A, plan.particle_y_A, (nx * PIXEL_A / 2, ny * PIXEL_A / 2)
    )
    assert np.sum(np.abs(particle_distance) < DIAMETER_A) >= 3


@pytest.mark.parametrize("seed", SEEDS)
def test_thick_ice(render, seed):
    plan, rendered = render("thick_ice", seed)
    good_plan, good = render("good", seed)
    assert plan.ice_thickness_A >= 1000.0
    assert _per_dose(plan, rendered).mean() < 0.9 * _per_dose(good_plan, good).mean()
    assert _measured_snr(rendered) < 0.9 * plan.target_snr
    assert _measured_snr(good) == pytest.approx(good_plan.target_snr, rel=0.15)


def _sector_power(power, angle_deg, k_band, half_width_deg=15.0):
    n = power.shape[0]
    y, x = np.indices(power.shape)
    ky, kx = (y - n // 2) / (n * PIXEL_A), (x - n // 2) / (n * PIXEL_A)
    k = np.hypot(kx, ky)
    offset = (np.degrees(np.arctan2(ky, kx)) - angle_deg + 90.0) % 180.0 - 90.0
    return power[(np.abs(offset) < half_width_deg) & (k > k_band[0]) & (k < k_band[1])].mean()


def _blur_anisotropy(plan, rendered):
    """Signal power along ``plan``'s blur direction over that across it (Poisson floor removed)."""
    path = plan.blur_path_A - plan.blur_path_A.mean(axis=0)
    direction = np.linalg.svd(path)[2][0]
    angle = np.degrees(np.arctan2(direction[1], direction[0]))
    power = periodogram_average(rendered.counts, tile_px=512)
    window_energy = np.sum(np.outer(np.hanning(512), np.hanning(512)) ** 2)
    floor = rendered.counts.mean() * window_energy  # white Poisson noise
    band = (0.03, 0.08)
    along = _sector_power(power, angle, band) - floor
    across = _sector_power(power, angle + 90.0, band) - floor
    return along / across


@pytest.mark.parametrize("seed", SEEDS)
def test_drift(render, seed):
    plan, rendered = render("drift", seed)
    good_plan, good = render("good", seed)
    blur_A = np.linalg.norm(np.ptp(plan.blur_path_A, axis=0))
    assert blur_A > 20.0
    drifted = _blur_anisotropy(plan, rendered)
    # The same sectors of a good micrograph: astigmatism alone makes them differ a little.
    reference = _blur_anisotropy(plan, good)
    assert drifted < 0.5
    assert 0.5 < reference < 2.0
    assert drifted < 0.6 * reference
    assert _measured_snr(rendered) < 0.7 * plan.target_snr


def _ring_contrast(counts):
    """Thon-ring contrast at mid frequency: spread of the log rotational average about its trend."""
    k_A, power = rotational_average(periodogram_average(counts, tile_px=256), PIXEL_A)
    log_power = np.log(power)
    trend = savgol_filter(median_filter(log_power, size=21, mode="nearest"), 21, 1)
    band = (k_A > 1 / 30) & (k_A < 1 / 10)
    return float((log_power - trend)[band].std())


def _ctf_ring_modulation(plan):
    """Total variation of the rotationally averaged, B-damped CTF^2 over 1/30-1/10 Å^-1.

    Sharp rings swing between 0 and the envelope several times in the band; astigmatism smears
    them in the rotational average, a tiny defocus leaves a slow monotonic rise, a large B-factor
    flattens them.
    """
    shape = (512, 512)
    ctf = ctf_2d(shape, PIXEL_A, plan.ctf)
    kx = np.fft.rfftfreq(shape[1]) / PIXEL_A
    ky = np.fft.fftfreq(shape[0]) / PIXEL_A
    k = np.hypot(*np.meshgrid(kx, ky))
    power = ctf**2 * np.exp(-plan.b_factor_A2 * k**2 / 2.0)
    ring = (k * shape[0] * PIXEL_A).astype(int)
    profile = np.bincount(ring.ravel(), power.ravel()) / np.maximum(np.bincount(ring.ravel()), 1)
    k_ring = np.arange(len(profile)) / (shape[0] * PIXEL_A)
    band = (k_ring > 1 / 30) & (k_ring < 1 / 10)
    return float(np.abs(np.diff(profile[band])).sum())


@pytest.mark.parametrize("seed", [*SEEDS, 5, 7, 9])
def test_bad_ctf(render, seed):
    plan, rendered = render("bad_ctf", seed)
    good_plan, good = render("good", seed)
    astigmatism_um = (plan.ctf.defocus_u_A - plan.ctf.defocus_v_A) / 1e4
    assert astigmatism_um >= 0.4 or plan.ctf.mean_defocus_A <= 3000.0 or plan.b_factor_A2 >= 400.0
    # The transfer the renderer uses has washed-out rings in the band where a good one has them.
    assert _ctf_ring_modulation(plan) < 0.5 * _ctf_ring_modulation(good_plan)
    if seed in SEEDS:
        assert _ring_contrast(rendered.counts) < 0.9 * _ring_contrast(good.counts)


def test_bad_ctf_kinds_all_occur(models):
    kinds = set()
    for seed in range(30):
        plan = plan_micrograph("m", "bad_ctf", SESSION, SCREEN, models, np.random.default_rng(seed))
        if plan.ctf.defocus_u_A - plan.ctf.defocus_v_A >= 4000.0:
            kinds.add("astigmatism")
        elif plan.ctf.mean_defocus_A <= 2600.0:
            kinds.add("defocus")
        elif plan.b_factor_A2 >= 400.0:
            kinds.add("b_factor")
    assert kinds == {"astigmatism", "defocus", "b_factor"}


def test_unknown_reason_is_rejected(models):
    with pytest.raises(ValueError, match="unknown micrograph reason"):
        plan_micrograph("m", "blurry", SESSION, SCREEN, models, np.random.default_rng(0))


@pytest.mark.parametrize(
    ("n", "mix", "expected"),
    [
        (10, {"empty": 0.25, "carbon": 0.25}, {"good": 5, "empty": 3, "carbon": 2}),
        (7, {"empty": 0.3, "drift": 0.3}, {"good": 3, "empty": 2, "drift": 2}),
        (9, dict.fromkeys(BAD_REASONS, 1 / 9), {"good": 1, **dict.fromkeys(BAD_REASONS, 1)}),
        (5, {}, {"good": 5}),
    ],
)
def test_assign_reasons_gives_exact_largest_remainder_counts(n, mix, expected):
    session = dataclasses.replace(SESSION, n_micrographs=n, bad_mix=mix)
    reasons = assign_reasons(session, np.random.default_rng(4))
    assert len(reasons) == n
    counts = {r: reasons.count(r) for r in set(reasons)}
    assert sum(counts.values()) == n
    # Largest remainder: every count is the floor or the ceiling of its exact share.
    shares = {"good": 1 - sum(mix.values()), **mix}
    for reason, count in counts.items():
        assert np.floor(shares[reason] * n) <= count <= np.ceil(shares[reason] * n + 1e-9)
    if len(expected) == len(counts):
        assert counts == expected


def test_assign_reasons_is_deterministic_for_a_seed():
    session = dataclasses.replace(SESSION, n_micrographs=40, bad_mix={"empty": 0.2, "drift": 0.1})
    first = assign_reasons(session, np.random.default_rng(11))
    assert first == assign_reasons(session, np.random.default_rng(11))
    assert first != assign_reasons(session, np.random.default_rng(12))
    assert first.count("empty") == 8 and first.count("drift") == 4 and first.count("good") == 28


def test_good_micrographs_honour_the_session_aggregate_fraction(models):
    shares = []
    for seed in range(6):
        plan = plan_micrograph("m", "good", SESSION, SCREEN, models, np.random.default_rng(seed))
        shares.append(plan.particle_in_aggregate.mean())
    # 3% asked for: allow up to 5x for small-number rounding on ~25 particles.
    assert np.mean(shares) <= 5 * SESSION.aggregate_fraction


def test_a_micrograph_with_particles_holds_a_quarter_of_its_sessions_expected_count(models):
    """A sparse session expecting 4 particles per field (density x lognormal x Poisson would give
    0-2 to about a quarter of them): good, drift or bad-CTF fields hold at least 3, a quarter of a
    denser session's 24 at least 6; an empty field still draws 0-2."""
    area_um2 = (512 * PIXEL_A) ** 2 / 1e8
    for expected, floor in ((4.0, 3), (24.0, 6)):
        session = dataclasses.replace(SESSION, particles_per_um2=expected / area_um2)
        for reason in ("good", "drift", "bad_ctf"):
            counts = [
                len(plan_micrograph("m", reason, session, SCREEN, models, rng).particle_x_A)
                for rng in (np.random.default_rng(seed) for seed in range(60))
            ]
            assert min(counts) >= floor, (expected, reason, sorted(counts)[:5])
        empty = [
            len(plan_micrograph("m", "empty", session, SCREEN, models, rng).particle_x_A)
            for rng in (np.random.default_rng(seed) for seed in range(20))
        ]
        assert max(empty) <= 3


def test_irregular_contaminants_are_lumps_where_round_ones_are_balls(models):
    """A session of irregular contamination puts clusters of lumps where a round one puts balls,
    on a micrograph of the same CTF and ice."""
    irregular = dataclasses.replace(SESSION, contamination_shapes="irregular")
    lumps, balls = 0, 0
    for seed in range(4):
        round_plan = plan_micrograph(
            "m", "contaminated", SESSION, SCREEN, models, np.random.default_rng(seed)
        )
        lumpy = plan_micrograph(
            "m", "contaminated", irregular, SCREEN, models, np.random.default_rng(seed)
        )
        assert lumpy.ctf == round_plan.ctf and lumpy.ice_thickness_A == round_plan.ice_thickness_A
        assert lumpy.crystalline_coverage == round_plan.crystalline_coverage
        lumps, balls = lumps + len(lumpy.balls), balls + len(round_plan.balls)
        if len(round_plan.balls):  # every lump lies near one of the balls it replaces
            gap = np.hypot(*(lumpy.balls[:, None, :2] - round_plan.balls[None, :, :2]).T)
            assert np.all((gap.T <= 1.6 * round_plan.balls[None, :, 2]).any(axis=1))
    assert balls > 0 and lumps > 1.5 * balls


def test_irregular_contaminants_keep_a_quarter_round_and_are_reproducible():
    from screen.simulate.plan import irregular_contaminants

    balls = np.column_stack([np.arange(40) * 1000.0, np.zeros(40), np.full(40, 200.0)])
    lumpy = irregular_contaminants(balls)
    np.testing.assert_array_equal(lumpy, irregular_contaminants(balls))
    kept_round = np.isin(lumpy[:, 0], balls[:, 0]) & (lumpy[:, 2] == 200.0)
    assert 3 <= kept_round.sum() <= 18  # a quarter of 40 on average
    others = lumpy[~kept_round]
    assert np.all((others[:, 2] >= 70.0) & (others[:, 2] <= 150.0))  # 0.35-0.75 of 200 Å
    assert irregular_contaminants(np.zeros((0, 3))).shape == (0, 3)


def test_an_unknown_contamination_shape_names_the_session(models, tmp_path):
    from screen.errors import ScreenError
    from screen.simulate.scenario import load_scenario

    square = dataclasses.replace(SESSION, contamination_shapes="square")
    with pytest.raises(ValueError, match="session 'bad'.*contamination_shapes 'square'"):
        plan_micrograph("m", "good", square, SCREEN, models, np.random.default_rng(0))
    scenario = tmp_path / "s.toml"
    scenario.write_text(
        'preset = "prex1-small"\n[[sessions]]\nname = "apo"\ncontamination_shapes = "square"\n'
        '  [[sessions.species]]\n  structure = { name = "p", diameter_A = 140, mass_kDa = 186, '
        'symmetry = "C1" }\n'
    )
    with pytest.raises(ScreenError, match="session 'apo': contamination_shapes 'square'"):
        load_scenario(scenario)


def test_grown_aggregates_are_compact_clumps_of_particles_without_bead_clouds(models):
    """A session of grown aggregates piles its clumped particles on one another (3D clumps
    projected) where the beads style scatters them loosely beside bead clouds; the micrograph's
    CTF and ice are the same, and a good micrograph without a clump is drawn identically."""
    grown = dataclasses.replace(SESSION, aggregate_shapes="grown")
    for seed in SEEDS:
        beads = plan_micrograph(
            "m", "aggregated", SESSION, SCREEN, models, np.random.default_rng(seed)
        )
        clumped = plan_micrograph(
            "m", "aggregated", grown, SCREEN, models, np.random.default_rng(seed)
        )
        assert clumped.ctf == beads.ctf and clumped.ice_thickness_A == beads.ice_thickness_A
        assert len(clumped.aggregate_blobs) == 0 and len(beads.aggregate_blobs) >= 2
        assert clumped.particle_in_aggregate.mean() >= 0.5
        inside = clumped.particle_in_aggregate
        nn = nearest_neighbour_distance_A(
            clumped.particle_x_A[inside], clumped.particle_y_A[inside]
        )
        loose = nearest_neighbour_distance_A(
            beads.particle_x_A[beads.particle_in_aggregate],
            beads.particle_y_A[beads.particle_in_aggregate],
        )
        # stuck at 0.6-0.85 diameters in 3D: projected neighbours overlap (< 0.85 diameters)
        assert np.median(nn) < 0.85 * DIAMETER_A
        assert np.median(nn) < np.median(loose)
    good = plan_micrograph("m", "good", grown, SCREEN, models, np.random.default_rng(0))
    same = plan_micrograph("m", "good", SESSION, SCREEN, models, np.random.default_rng(0))
    assert not same.particle_in_aggregate.any()  # no clump: nothing for the style to change
    np.testing.assert_array_equal(good.particle_x_A, same.particle_x_A)


def test_grown_clumps_keep_their_particles_in_the_frame_and_are_reproducible():
    from screen.simulate.placement import grown_clumps

    extent = (1000.0, 800.0)
    first = grown_clumps([30, 5], extent, 100.0, np.random.default_rng(3))
    again = grown_clumps([30, 5], extent, 100.0, np.random.default_rng(3))
    np.testing.assert_array_equal(first.x_A, again.x_A)
    assert 0 < len(first) <= 35 and first.in_aggregate.all()
    assert (first.x_A >= 0).all() and (first.x_A < extent[0]).all()
    assert (first.y_A >= 0).all() and (first.y_A < extent[1]).all()
    assert len(grown_clumps([], extent, 100.0, np.random.default_rng(3))) == 0


def test_an_unknown_aggregate_shape_names_the_session(models):
    odd = dataclasses.replace(SESSION, aggregate_shapes="fractal")
    with pytest.raises(ValueError, match="session 'bad'.*aggregate_shapes 'fractal'"):
        plan_micrograph("m", "good", odd, SCREEN, models, np.random.default_rng(0))
