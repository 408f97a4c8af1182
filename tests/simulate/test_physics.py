"""The simulator's physics against theory: Thon rings, particle SNR, counts, particle positions."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy.ndimage import binary_dilation, gaussian_filter, median_filter
from scipy.signal import savgol_filter

from screen.processing.ctf import (
    ctf_phase_aberration,
    ctf_zero_frequencies_A,
    defocus_from_zero_A,
)
from screen.processing.fourier import periodogram_average
from screen.simulate.placement import nearest_neighbour_distance_A
from screen.simulate.plan import plan_micrograph
from screen.simulate.render import render_micrograph
from screen.simulate.session import session_models, session_plans, simulate_screen
from screen.simulate.spec import ScreenSpec, SessionSpec, SpeciesSpec, StructureSpec

STRUCTURE = StructureSpec("p140", 140.0, 186.0, "C1", n_domains=5, elongation=1.8, seed=11)
SESSION = SessionSpec(
    "physics",
    (SpeciesSpec(STRUCTURE),),
    particles_per_um2=1500,
    particle_snr=(0.02, 0.06),
    good_contamination_prob=0.0,
    good_carbon_edge_prob=0.0,
)
THON_SCREEN = ScreenSpec((SESSION,), frame_px=(1024, 1024), pixel_size_A=1.2)
SMALL_SCREEN = ScreenSpec((SESSION,), frame_px=(512, 512), pixel_size_A=2.0)


@pytest.fixture(scope="module")
def models():
    return session_models(SESSION)


def _render(screen, models, reason, seed, **changes):
    plan = plan_micrograph("m", reason, SESSION, screen, models, np.random.default_rng(seed))
    if "ctf" in changes:
        changes["ctf"] = dataclasses.replace(plan.ctf, **changes["ctf"])
    plan = dataclasses.replace(plan, **changes)
    return plan, render_micrograph(plan, models, screen.frame_px, screen.pixel_size_A)


# --- Thon rings -------------------------------------------------------------------------------


def _radial_profile(power, pixel_size_A, angle_deg=None, half_width_deg=10.0):
    """Ring means of a centred spectrum, optionally only in a sector (and its mirror) at angle_deg."""
    n = power.shape[0]
    y, x = np.indices(power.shape)
    dy, dx = y - n // 2, x - n // 2
    ring = np.floor(np.hypot(dx, dy)).astype(int)
    keep = ring < n // 2
    if angle_deg is not None:
        offset = (np.degrees(np.arctan2(dy, dx)) - angle_deg + 90.0) % 180.0 - 90.0
        keep &= np.abs(offset) <= half_width_deg
    sums = np.bincount(ring[keep], weights=power[keep], minlength=n // 2)
    counts = np.bincount(ring[keep], minlength=n // 2)
    k_A = (np.arange(n // 2) + 0.5) / (n * pixel_size_A)
    return k_A[counts > 0], sums[counts > 0] / counts[counts > 0]


def _implied_defoci(k_A, power, ctf, angle_deg, zero_indices):
    """Defocus implied by each observed CTF minimum (Thon-ring zero) of a radial power profile.

    The log power minus a smooth background (running median + linear Savitzky-Golay) leaves the
    rings. Around the n-th theoretical zero the residual is fitted, over one ring period, by
    ``a + b cos(2 chi) + c sin(2 chi)`` with chi the theoretical phase: the fitted phase offset
    locates the observed minimum (a least-squares refinement of the minimum that uses every
    sample of the trough, where a three-point parabola only sees the noisiest ones); its
    frequency then gives the defocus through ``defocus_from_zero_A``.
    """
    log_power = np.log(power)
    window = (len(k_A) // 12) * 2 + 1
    background = savgol_filter(median_filter(log_power, size=window, mode="nearest"), window, 1)
    residual = log_power - background
    chi = ctf_phase_aberration(k_A, np.radians(angle_deg), ctf)
    implied = []
    for n in zero_indices:
        trough = np.abs(chi - n * np.pi) <= np.pi / 2
        design = np.column_stack(
            [np.ones(trough.sum()), np.cos(2 * chi[trough]), np.sin(2 * chi[trough])]
        )
        (_, b, c), *_ = np.linalg.lstsq(design, residual[trough], rcond=None)
        # residual ~ a - A cos(2 chi - psi): the minimum lies at chi = n pi + psi / 2.
        psi = np.arctan2(-c, -b)
        k_min = np.interp(n * np.pi + psi / 2, chi, k_A)
        implied.append(defocus_from_zero_A(k_min, n, ctf))
    return np.array(implied)


def _spectrum(counts_images):
    return np.mean(
        [periodogram_average(c, tile_px=512, overlap=0.75) for c in counts_images], axis=0
    )


@pytest.mark.parametrize("defocus_um", [1.0, 1.8, 2.6])
def test_thon_rings_give_back_the_true_defocus(models, defocus_um):
    defocus_A = defocus_um * 1e4
    ctf_change = {"defocus_u_A": defocus_A, "defocus_v_A": defocus_A}
    images, ctf = [], None
    for reason, seed in (("good", 1), ("empty", 2)):
        plan, rendered = _render(THON_SCREEN, models, reason, seed, ctf=ctf_change)
        images.append(rendered.counts)
        ctf = plan.ctf
    k_A, power = _radial_profile(_spectrum(images), THON_SCREEN.pixel_size_A)
    zeros = ctf_zero_frequencies_A(ctf, k_A[-1])
    indices = [n for n in range(2, 15) if zeros[n - 1] < 0.9 * k_A[-1]]
    assert len(indices) >= 9

    implied = _implied_defoci(k_A, power, ctf, 0.0, indices)

    error = np.median(implied) / defocus_A - 1.0
    assert abs(error) < 0.01, (error, implied)


def test_astigmatic_thon_rings_give_defocus_u_and_v_in_sectors(models):
    ctf_change = {"defocus_u_A": 22000.0, "defocus_v_A": 16000.0, "astigmatism_angle_deg": 30.0}
    images = []
    for seed in range(4):
        plan, rendered = _render(THON_SCREEN, models, "good", seed, ctf=ctf_change)
        images.append(rendered.counts)
    spectrum = _spectrum(images)

    for axis_deg, expected_A in ((30.0, 22000.0), (120.0, 16000.0)):
        k_A, power = _radial_profile(spectrum, THON_SCREEN.pixel_size_A, angle_deg=axis_deg)
        implied = _implied_defoci(k_A, power, plan.ctf, axis_deg, range(2, 13))
        assert np.median(implied) / expected_A - 1.0 == pytest.approx(0.0, abs=0.02), axis_deg


# --- particle SNR and counts --------------------------------------------------------------------


def _measured_snr(rendered):
    mask = rendered.particle_mask
    noise = rendered.counts - rendered.expected_counts
    return float(rendered.particle_counts[mask].var() / noise[mask].var())


@pytest.fixture(scope="module")
def good_renders(models):
    return [_render(SMALL_SCREEN, models, "good", seed) for seed in (3, 4, 5, 6)]


def test_particle_snr_matches_the_plan_target(good_renders):
    low, high = SESSION.particle_snr
    for plan, rendered in good_renders:
        snr = _measured_snr(rendered)
        assert 0.85 * low <= snr <= 1.15 * high
        assert snr == pytest.approx(plan.target_snr, rel=0.15)
    targets = [plan.target_snr for plan, _ in good_renders]
    assert max(targets) - min(targets) > 0.005  # the draws really span the range


def test_thick_ice_lowers_the_particle_snr_below_target(models):
    for seed in (3, 4):
        plan, rendered = _render(SMALL_SCREEN, models, "thick_ice", seed)
        assert plan.ice_thickness_A >= 1000.0
        assert _measured_snr(rendered) < 0.85 * plan.target_snr


def test_mean_counts_follow_dose_and_ice_transmission(good_renders):
    pixel_area = SMALL_SCREEN.pixel_size_A**2
    for plan, rendered in good_renders:
        per_pixel = plan.dose_e_per_A2 * pixel_area
        ratio = rendered.counts.mean() / per_pixel
        assert 0.7 < ratio < 1.3
        # Inelastic loss in vitreous ice at 300 kV: mean free path ~3200 Å.
        assert ratio == pytest.approx(np.exp(-plan.ice_thickness_A / 3200.0), rel=0.03)


def test_counts_are_poisson_around_the_expected_image(good_renders):
    for _, rendered in good_renders:
        noise = rendered.counts.astype(np.float64) - rendered.expected_counts
        mean_counts = rendered.expected_counts.mean(dtype=np.float64)
        assert abs(noise.mean()) < 4.0 * np.sqrt(mean_counts / noise.size)  # unbiased
        assert noise.var() / mean_counts == pytest.approx(1.0, rel=0.05)
        assert np.all(rendered.counts == np.round(rendered.counts))
        assert rendered.counts.min() >= 0


# --- particle count and positions ---------------------------------------------------------------


def test_particle_rows_written_match_the_plans(tmp_path):
    screen = ScreenSpec(
        (dataclasses.replace(SESSION, n_micrographs=3, bad_mix={"crowded": 0.34}),),
        frame_px=(256, 256),
        pixel_size_A=2.5,
        seed=5,
    )
    simulate_screen(screen, tmp_path)
    truth = tmp_path / "sessions" / "physics" / "ground_truth"
    particles = pd.read_csv(truth / "particles.csv")
    micrographs = pd.read_csv(truth / "micrographs.csv")
    plans = session_plans(screen, 0)

    rows = particles.groupby("micrograph").size()
    for plan in plans:
        assert rows.get(f"{plan.name}.mrc", 0) == plan.n_particles
        mine = particles[particles["micrograph"] == f"{plan.name}.mrc"]
        np.testing.assert_allclose(mine["x_px"], plan.particle_x_A / screen.pixel_size_A)
    assert micrographs["n_particles"].tolist() == [p.n_particles for p in plans]
    assert sum(p.n_particles for p in plans) > 20


def test_particle_signal_is_localised_in_the_discs(good_renders):
    pixel_size_A = SMALL_SCREEN.pixel_size_A
    for _, rendered in good_renders:
        signal = np.abs(rendered.particle_counts)
        mask = rendered.particle_mask
        halo_px = int(round(40.0 / pixel_size_A))  # CTF delocalisation at ~2 µm defocus
        outside = ~binary_dilation(mask, iterations=halo_px)
        assert outside.mean() > 0.2
        assert signal[mask].mean() > 5.0 * signal[outside].mean()


def test_particles_sit_at_their_ground_truth_positions(good_renders):
    pixel_size_A = SMALL_SCREEN.pixel_size_A
    for plan, rendered in good_renders:
        smooth = np.abs(gaussian_filter(rendered.particle_counts, 20.0 / pixel_size_A))
        threshold = np.quantile(smooth, 0.8)
        nn = nearest_neighbour_distance_A(plan.particle_x_A, plan.particle_y_A)
        isolated = nn > 1.2 * STRUCTURE.diameter_A
        ix = np.round(plan.particle_x_A[isolated] / pixel_size_A).astype(int)
        iy = np.round(plan.particle_y_A[isolated] / pixel_size_A).astype(int)
        inside = (ix >= 0) & (iy >= 0) & (ix < smooth.shape[1]) & (iy < smooth.shape[0])
        assert inside.sum() >= 3
        at_centres = smooth[iy[inside], ix[inside]]
        assert np.mean(at_centres > threshold) >= 0.9
        # Random positions do not do as well: the signal is where the plan says.
        rng = np.random.default_rng(0)
        shuffled = smooth[
            rng.integers(0, smooth.shape[0], 200), rng.integers(0, smooth.shape[1], 200)
        ]
        assert np.mean(shuffled > threshold) < 0.5


# --- background clutter ------------------------------------------------------------------------


def test_background_clutter_textures_the_ice_between_particles_at_its_set_strength(models):
    """Clutter 0 renders exactly as before; clutter c adds texture between the particles
    (band 15-200 Å) whose contrast grows with c, while the particles' own signal stays."""
    clean_plan, clean = _render(SMALL_SCREEN, models, "good", 5)
    _, same = _render(SMALL_SCREEN, models, "good", 5, clutter=0.0)
    assert np.array_equal(clean.counts, same.counts)
    outside = ~binary_dilation(clean.particle_mask, iterations=4)

    def texture(image):  # band-passed std of the ice between particles, over the shot noise
        band = gaussian_filter(image, 15.0 / 2.0) - gaussian_filter(image, 100.0 / 2.0)
        return float(band[outside].std())

    levels = [texture(clean.expected_counts)]
    for clutter in (0.5, 1.5):
        _, cluttered = _render(SMALL_SCREEN, models, "good", 5, clutter=clutter)
        levels.append(texture(cluttered.expected_counts))
        np.testing.assert_allclose(cluttered.particle_counts, clean.particle_counts, rtol=1e-4)
    assert levels[0] < levels[1] < levels[2] and levels[2] > 4 * levels[0], levels


def test_a_session_draws_its_micrographs_clutter_from_its_range():
    session = dataclasses.replace(SESSION, background_clutter=(0.2, 0.6), n_micrographs=6)
    screen = ScreenSpec((session,), frame_px=(256, 256), pixel_size_A=3.0, seed=4)
    clutter = [plan.clutter for plan in session_plans(screen, 0)]
    assert all(0.2 <= c <= 0.6 for c in clutter) and len(set(clutter)) == 6
    clean = ScreenSpec((SESSION,), frame_px=(256, 256), pixel_size_A=3.0, seed=4)
    assert all(plan.clutter == 0.0 for plan in session_plans(clean, 0))
