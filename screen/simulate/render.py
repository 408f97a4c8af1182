"""Image formation: from a micrograph plan to electron counts.

Physics (weak-phase approximation, energy-filtered):

* particles: Gaussian pseudo-atoms projected along z; projected potential = mass x
  ``PROTEIN_EXCESS_POTENTIAL_V_A3_PER_DA`` (protein over vitreous ice), phase = sigma x potential;
* amorphous ice and carbon: random phase texture whose variance grows with thickness (ice with the
  low-frequency suppression of a liquid's structure factor), so empty ice still shows Thon rings;
  carbon adds its mean potential (edge fringes) and absorption;
* contamination: ice/ethane balls and crystalline-ice domains absorb strongly (dark objects);
* transfer: CTF (defocus, astigmatism, Cs, amplitude contrast) x B-factor envelope x radiation-damage
  envelope (Grant & Grigorieff critical exposure) x detector MTF x uncorrected motion blur;
* intensity = transmission x (1 + 2 x contrast); thickness lowers transmission (inelastic loss) and
  blurs (multiple scattering); counts are Poisson with mean dose x pixel area x intensity.

The particle contrast is finally scaled so that, under this micrograph's good conditions, the particle
SNR (signal variance in the particle discs over the Poisson noise variance, at this pixel size)
equals the plan's target; bad conditions then degrade it physically.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from scipy import fft as sfft
from scipy.special import expit

from screen.processing.ctf import (
    CtfParams,
    ctf_2d,
    frequency_grid,
    interaction_constant_rad_per_V_A,
)
from screen.simulate import fields
from screen.simulate.orientations import rotation_matrices
from screen.simulate.plan import MicrographPlan
from screen.simulate.structures import PseudoAtomModel

PROTEIN_EXCESS_POTENTIAL_V_A3_PER_DA = 3.3
WATER_MOLECULE_POTENTIAL_V_A3 = 135.0
WATER_MOLECULE_VOLUME_A3 = 30.0
CARBON_ATOM_POTENTIAL_V_A3 = 120.0
CARBON_ATOMS_PER_A3 = 0.1
CARBON_MEAN_POTENTIAL_V = 10.5
# The film's mean phase (~1 rad) is far from weak; a tenth of it through the CTF gives the edge's
# Fresnel fringe and amplitude-contrast step, the rest is uniform and has no contrast.
CARBON_EDGE_PHASE_FRACTION = 0.1
ICE_INELASTIC_MFP_300KV_A = 3200.0
CARBON_INELASTIC_MFP_A = 1600.0
CONTAMINATION_ATTENUATION_A = 700.0
THICK_ICE_BLUR_A2_PER_A = 0.15
AGGREGATE_BEAD_SIGMA_A = 6.0
GOOD_ICE_MAX_A = 550.0
DEGRADING_REASONS = frozenset({"thick_ice", "drift", "bad_ctf"})
"""Reasons whose particle SNR is set under good conditions, then degraded by the bad ones."""


@dataclass(frozen=True)
class RenderedMicrograph:
    """A rendered micrograph in electron counts, with its noiseless parts for ground truth."""

    counts: np.ndarray  # noisy image (float32 counts per pixel)
    expected_counts: np.ndarray  # noiseless mean counts
    particle_counts: np.ndarray  # the particles' share of expected_counts
    particle_mask: np.ndarray  # bool, union of the particle discs
    particle_snr: float  # measured on the final image: var(signal in discs) / noise variance
    contrast_scale: float
    frames: np.ndarray | None = None  # (n_frames, ny, nx) counts when a movie was asked for


def render_micrograph(
    plan: MicrographPlan,
    models: list[PseudoAtomModel],
    frame_px: tuple[int, int],
    pixel_size_A: float,
    n_frames: int = 0,
) -> RenderedMicrograph:
    """Render ``plan`` on a frame of ``frame_px`` (ny, nx) pixels; ``n_frames`` > 0 adds a movie."""
    shape = tuple(frame_px)
    kx, ky = frequency_grid(shape, pixel_size_A)
    k = np.hypot(kx, ky).astype(np.float32)
    sigma = interaction_constant_rad_per_V_A(plan.ctf.voltage_kV)
    rng = np.random.default_rng(plan.noise_seed)

    particle_phase = _particle_phase_fft(plan, models, shape, pixel_size_A, k, sigma)
    mask = _particle_mask(plan, models, shape, pixel_size_A)
    thickness = fields.ice_thickness_map(
        shape,
        pixel_size_A,
        plan.ice_thickness_A,
        plan.ice_gradient,
        plan.ice_gradient_angle_deg,
        rng,
    )
    background_phase, transmission = _background(
        plan, shape, pixel_size_A, k, sigma, thickness, rng
    )

    transfer = _transfer(plan, shape, pixel_size_A, k, thickness)
    dose_px = plan.dose_e_per_A2 * pixel_size_A**2
    scale = 1.0
    isolated = _isolated_layout(plan, models, shape, pixel_size_A)
    if isolated is not None:
        # The SNR a particle of this micrograph has when alone, under good conditions: it sets
        # the contrast per dalton, the same for crowded, clumped and aggregate protein.
        ref_phase = _particle_phase_fft(isolated, models, shape, pixel_size_A, k, sigma)
        ref_mask = _particle_mask(isolated, models, shape, pixel_size_A)
        ref_transfer, ref_transmission = transfer, transmission
        if plan.reason in DEGRADING_REASONS:
            reference = _reference_conditions(plan)
            ref_thickness = thickness * (
                reference.ice_thickness_A / max(plan.ice_thickness_A, 1e-6)
            )
            ref_transfer = _transfer(reference, shape, pixel_size_A, k, ref_thickness)
            ref_transmission = np.exp(-ref_thickness / _ice_mfp_A(plan.ctf.voltage_kV))
        signal = ref_transmission[ref_mask] * _contrast(ref_phase, ref_transfer, shape)[ref_mask]
        snr0 = float(4.0 * dose_px * signal.var() / ref_transmission[ref_mask].mean())
        scale = float(np.sqrt(plan.target_snr / snr0)) if snr0 > 0 else 1.0
    particle_contrast = _contrast(particle_phase, transfer, shape) * np.float32(scale)
    if plan.clutter > 0 and mask.any():
        # As strong, in the image, as ``clutter`` x the particles' contrast over their discs.
        clutter = _clutter_phase_fft(plan, shape, k)
        unit = _contrast(clutter, transfer, shape)
        ratio = float(particle_contrast[mask].std()) / max(float(unit.std()), 1e-12)
        background_phase = background_phase + clutter * np.float32(plan.clutter * ratio)
    other_contrast = _contrast(background_phase, transfer, shape)
    intensity = transmission * (1.0 + 2.0 * (particle_contrast + other_contrast))
    expected = (dose_px * np.clip(intensity, 0.0, None)).astype(np.float32)
    particle_counts = (dose_px * transmission * 2.0 * particle_contrast).astype(np.float32)
    counts = rng.poisson(expected).astype(np.float32)
    snr = float("nan")
    if mask.any():
        snr = float(particle_counts[mask].var() / expected[mask].mean())
    frames = None
    if n_frames > 0:
        inputs = _MovieInputs(particle_phase * scale + background_phase, transmission, thickness, k)
        frames = _movie(inputs, plan, pixel_size_A, n_frames, rng)
    return RenderedMicrograph(counts, expected, particle_counts, mask, snr, scale, frames)


def _isolated_layout(plan: MicrographPlan, models, shape, pixel_size_A) -> MicrographPlan | None:
    """The micrograph's particles (same species and views) moved onto a grid, apart, no aggregates.

    None when the micrograph has no particles.
    """
    if plan.n_particles == 0:
        return None
    spacing_A = 1.6 * max(m.diameter_A for m in models)
    ny, nx = shape
    columns = max(int(nx * pixel_size_A // spacing_A), 1)
    rows = max(int(ny * pixel_size_A // spacing_A), 1)
    n = min(plan.n_particles, columns * rows)
    index = np.arange(n)
    offset_x = (nx * pixel_size_A - columns * spacing_A) / 2 + spacing_A / 2
    offset_y = (ny * pixel_size_A - rows * spacing_A) / 2 + spacing_A / 2
    return dataclasses.replace(
        plan,
        particle_x_A=offset_x + (index % columns) * spacing_A,
        particle_y_A=offset_y + (index // columns) * spacing_A,
        particle_species=plan.particle_species[:n],
        particle_euler_deg=plan.particle_euler_deg[:n],
        particle_in_aggregate=np.zeros(n, dtype=bool),
        aggregate_blobs=np.zeros((0, 3)),
    )


def _ice_mfp_A(voltage_kV: float) -> float:
    """Inelastic mean free path of vitreous ice, scaled from 300 kV by beta squared."""

    def beta2(kv: float) -> float:
        gamma = 1.0 + kv / 510.99895
        return 1.0 - 1.0 / gamma**2

    return ICE_INELASTIC_MFP_300KV_A * beta2(voltage_kV) / beta2(300.0)


@dataclass(frozen=True)
class _Conditions:
    ctf: CtfParams
    b_factor_A2: float
    dose_e_per_A2: float
    ice_thickness_A: float
    blur_path_A: np.ndarray


def _reference_conditions(plan: MicrographPlan) -> _Conditions:
    """The same micrograph under good conditions: sane CTF, normal ice, no motion blur."""
    ctf, b_factor = plan.ctf, plan.b_factor_A2
    if plan.reason == "bad_ctf":
        ctf = dataclasses.replace(ctf, defocus_u_A=15000.0, defocus_v_A=14800.0)
        b_factor = 80.0
    return _Conditions(
        ctf,
        b_factor,
        plan.dose_e_per_A2,
        min(plan.ice_thickness_A, GOOD_ICE_MAX_A),
        np.zeros((1, 2)),
    )


def _transfer(plan, shape, pixel_size_A, k, thickness_map, with_damage=True) -> np.ndarray:
    """CTF x envelopes x MTF x motion blur on the rfft2 grid.

    The radiation-damage envelope is that of the whole exposure (a non-dose-weighted sum);
    ``with_damage=False`` leaves it out, for movie frames that apply their own.
    """
    mean_thickness = float(np.mean(thickness_map))
    b_total = plan.b_factor_A2 + THICK_ICE_BLUR_A2_PER_A * mean_thickness
    envelope = np.exp(-b_total * k**2 / 4.0)
    damage = 1.0
    if with_damage:
        critical = critical_dose(k, plan.ctf.voltage_kV)
        damage = damage_envelope(critical, 0.0, plan.dose_e_per_A2)
    mtf = np.sinc(k * pixel_size_A)
    transfer = ctf_2d(shape, pixel_size_A, plan.ctf) * envelope * damage * mtf
    if np.abs(plan.blur_path_A).max() > 0.25 * pixel_size_A:
        transfer = transfer * fields.drift_transfer(shape, pixel_size_A, plan.blur_path_A)
    return transfer.astype(np.complex64)


def critical_dose(k_A: np.ndarray, voltage_kV: float) -> np.ndarray:
    """Critical exposure Ne(k) in e/Å² (Grant & Grigorieff 2015).

    ``Ne(k) = 0.245 k^-1.665 + 2.81`` at 300 kV, times 0.8 at 200 kV as in cisTEM (linear in
    between and beyond, never below 0.4).
    """
    voltage_factor = max(0.4, 0.8 + 0.2 * (voltage_kV - 200.0) / 100.0)
    return (0.245 * np.maximum(k_A, 1e-4) ** -1.665 + 2.81) * np.float32(voltage_factor)


def damage_envelope(critical: np.ndarray, start_dose: float, end_dose: float) -> np.ndarray:
    """Mean of exp(-dose / (2 Ne(k))) over the dose interval [start_dose, end_dose] (e/Å²)."""
    span = max(end_dose - start_dose, 1e-9)
    return (2.0 * critical / span) * (
        np.exp(-start_dose / (2.0 * critical)) - np.exp(-end_dose / (2.0 * critical))
    )


def _contrast(phase_fft: np.ndarray, transfer: np.ndarray, shape) -> np.ndarray:
    return sfft.irfft2(phase_fft * transfer, s=shape, workers=-1).astype(np.float32)


def _splat(x_px: np.ndarray, y_px: np.ndarray, weights: np.ndarray, shape) -> np.ndarray:
    """Bilinear deposit of point weights onto the pixel grid (points outside are dropped)."""
    ny, nx = shape
    x0, y0 = np.floor(x_px).astype(np.int64), np.floor(y_px).astype(np.int64)
    fx, fy = x_px - x0, y_px - y0
    xi = np.concatenate([x0, x0 + 1, x0, x0 + 1])
    yi = np.concatenate([y0, y0, y0 + 1, y0 + 1])
    w = np.concatenate(
        [
            (1 - fx) * (1 - fy) * weights,
            fx * (1 - fy) * weights,
            (1 - fx) * fy * weights,
            fx * fy * weights,
        ]
    )
    ok = (xi >= 0) & (xi < nx) & (yi >= 0) & (yi < ny)
    return np.bincount(yi[ok] * nx + xi[ok], weights=w[ok], minlength=ny * nx).reshape(shape)


def _particle_phase_fft(plan, models, shape, pixel_size_A, k, sigma) -> np.ndarray:
    """Fourier transform of the particles' (and aggregates') phase shift."""
    phase_per_Da = sigma * PROTEIN_EXCESS_POTENTIAL_V_A3_PER_DA / pixel_size_A**2
    total = np.zeros(k.shape, dtype=np.complex64)
    for index, model in enumerate(models):
        chosen = np.nonzero(plan.particle_species == index)[0]
        if chosen.size == 0:
            continue
        grid = np.zeros(shape)
        rotations = rotation_matrices(plan.particle_euler_deg[chosen])
        for start in range(0, chosen.size, 64):
            part = slice(start, start + 64)
            xy = np.einsum("pij,aj->pai", rotations[part, :2, :], model.positions_A)
            x = (xy[..., 0] + plan.particle_x_A[chosen][part, None]) / pixel_size_A
            y = (xy[..., 1] + plan.particle_y_A[chosen][part, None]) / pixel_size_A
            w = np.broadcast_to(model.masses_Da, x.shape)
            grid += _splat(x.ravel(), y.ravel(), w.ravel(), shape)
        total += (
            sfft.rfft2(grid * phase_per_Da, workers=-1)
            * np.exp(-2 * (np.pi * model.sigma_A * k) ** 2)
        ).astype(np.complex64)
    if len(plan.aggregate_blobs):
        x, y, w = _aggregate_beads(plan, models, np.random.default_rng(plan.noise_seed + 1))
        grid = _splat(x / pixel_size_A, y / pixel_size_A, w, shape)
        total += (
            sfft.rfft2(grid * phase_per_Da, workers=-1)
            * np.exp(-2 * (np.pi * AGGREGATE_BEAD_SIGMA_A * k) ** 2)
        ).astype(np.complex64)
    return total


def _aggregate_beads(plan, models, rng):
    """Amorphous protein aggregates: clusters of sub-blobs, mass ~ half-dense protein."""
    xs, ys, ws = [], [], []
    for bx, by, radius in plan.aggregate_blobs:
        n_sub = int(rng.integers(4, 12))
        sub_centres = np.array([bx, by]) + rng.normal(scale=radius / 2, size=(n_sub, 2))
        per_sub = 400
        points = sub_centres[:, None, :] + rng.normal(scale=radius / 4, size=(n_sub, per_sub, 2))
        mass = 0.4 * 0.81 * (4 / 3) * np.pi * radius**3 / (n_sub * per_sub)
        xs.append(points[..., 0].ravel())
        ys.append(points[..., 1].ravel())
        ws.append(np.full(n_sub * per_sub, mass))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ws)


def _particle_mask(plan, models, shape, pixel_size_A) -> np.ndarray:
    """Union of discs (particle diameter) around every particle centre."""
    ny, nx = shape
    mask = np.zeros(shape, dtype=bool)
    for x_A, y_A, s in zip(
        plan.particle_x_A, plan.particle_y_A, plan.particle_species, strict=True
    ):
        radius_px = models[s].diameter_A / 2 / pixel_size_A
        cx, cy = x_A / pixel_size_A, y_A / pixel_size_A
        x0, x1 = max(int(cx - radius_px), 0), min(int(cx + radius_px) + 2, nx)
        y0, y1 = max(int(cy - radius_px), 0), min(int(cy + radius_px) + 2, ny)
        if x0 >= x1 or y0 >= y1:
            continue
        yy, xx = np.ogrid[y0:y1, x0:x1]
        mask[y0:y1, x0:x1] |= (xx - cx) ** 2 + (yy - cy) ** 2 <= radius_px**2
    return mask


def _clutter_phase_fft(plan, shape, k) -> np.ndarray:
    """Background clutter (Fourier, unit RMS phase): a random texture at 15-200 Å.

    Real micrographs are not clean ice between particles: ice roughness, denatured protein,
    dissociated subunits and small debris give texture at the particles' own scales (the
    EMPIAR-10017 exports of ``shared/real_examples`` show it about a third as strong as the
    particles). A Gaussian random field band-passed between a correlation length of 15-60 Å and
    200 Å, half of the time made skewed (``exp`` of 0.4-0.8 x the field: debris rather than
    roughness). Its own random stream: the rest of the micrograph is as without clutter.
    """
    rng = np.random.default_rng([plan.noise_seed, 4])
    length_A = float(rng.uniform(15.0, 60.0))
    band = np.exp(-((k * length_A) ** 2)) * (1.0 - np.exp(-((k * 200.0) ** 2)))
    white = sfft.rfft2(rng.standard_normal(shape, dtype=np.float32), workers=-1)
    field = sfft.irfft2(white * band, s=shape, workers=-1)
    field /= max(float(field.std()), 1e-12)
    if rng.random() < 0.5:
        field = np.exp(rng.uniform(0.4, 0.8) * field)
        field = (field - field.mean()) / max(float(field.std()), 1e-12)
    return sfft.rfft2(field.astype(np.float32), workers=-1).astype(np.complex64)


def _background(plan, shape, pixel_size_A, k, sigma, thickness, rng):
    """Phase (Fourier) of ice, carbon and contamination edges; and the transmission map."""
    x_A, y_A = fields.pixel_coordinates_A(shape, pixel_size_A)
    centre = (shape[1] * pixel_size_A / 2, shape[0] * pixel_size_A / 2)
    structure = 0.06 + 0.94 * (1.0 - np.exp(-((3.0 * k) ** 2)))
    water_px = sigma * WATER_MOLECULE_POTENTIAL_V_A3 / pixel_size_A
    ice_noise = rng.standard_normal(shape, dtype=np.float32) * water_px
    ice_noise *= np.sqrt(thickness / WATER_MOLECULE_VOLUME_A3)
    phase_fft = sfft.rfft2(ice_noise, workers=-1) * np.sqrt(structure)
    transmission = np.exp(-thickness / _ice_mfp_A(plan.ctf.voltage_kV))

    real_phase = np.zeros(shape, dtype=np.float32)
    if plan.carbon is not None:
        distance = plan.carbon.signed_distance_A(x_A, y_A, centre)
        cover = expit(distance / 4.0).astype(np.float32)
        carbon_t = plan.carbon.thickness_A * cover
        carbon_px = sigma * CARBON_ATOM_POTENTIAL_V_A3 / pixel_size_A
        carbon_noise = rng.standard_normal(shape, dtype=np.float32) * carbon_px
        carbon_noise *= np.sqrt(CARBON_ATOMS_PER_A3 * carbon_t)
        phase_fft = phase_fft + sfft.rfft2(carbon_noise, workers=-1) * np.sqrt(
            0.5 + 0.5 * structure
        )
        real_phase += sigma * CARBON_MEAN_POTENTIAL_V * carbon_t * CARBON_EDGE_PHASE_FRACTION
        transmission = transmission * np.exp(-carbon_t / CARBON_INELASTIC_MFP_A)
    if len(plan.balls):
        ball_t = fields.ball_thickness_A(shape, pixel_size_A, plan.balls[:, :3])
        absorption = 1.0 - np.exp(-ball_t / CONTAMINATION_ATTENUATION_A)
        real_phase += 0.8 * absorption
        transmission = transmission * (1.0 - absorption)
    if plan.crystalline_coverage > 0:
        domains = fields.crystalline_ice(shape, pixel_size_A, plan.crystalline_coverage, rng)
        real_phase += 0.3 * np.clip(domains, 0, 2) + fields.ice_lattice_phase(
            shape, pixel_size_A, domains, rng
        )
        transmission = transmission * np.exp(-0.6 * domains)
    if real_phase.any():
        phase_fft = phase_fft + sfft.rfft2(real_phase, workers=-1)
    phase_fft[0, 0] = 0.0
    return phase_fft.astype(np.complex64), transmission.astype(np.float32)


def _movie(inputs: _MovieInputs, plan, pixel_size_A, n_frames, rng) -> np.ndarray:
    """Dose fractions of the exposure, in counts.

    Each frame has its own radiation damage, is shifted along the stage drift and gets its own
    Poisson noise; the frames sum to the micrograph (before motion correction).
    """
    trajectory = plan.trajectory_A
    if len(trajectory) != n_frames:
        raise ValueError(f"plan has a drift for {len(trajectory)} frames, not {n_frames}")
    shape = inputs.transmission.shape
    per_frame = plan.dose_e_per_A2 / n_frames
    undamaged = inputs.phase * _transfer(
        plan, shape, pixel_size_A, inputs.k, inputs.thickness, with_damage=False
    )
    critical = critical_dose(inputs.k, plan.ctf.voltage_kV)
    frames = np.empty((n_frames, *shape), dtype=np.float32)
    for f in range(n_frames):
        damage = damage_envelope(critical, f * per_frame, (f + 1) * per_frame)
        contrast = sfft.irfft2(undamaged * damage, s=shape, workers=-1)
        expected = per_frame * pixel_size_A**2 * inputs.transmission * (1.0 + 2.0 * contrast)
        shifted = sfft.irfft2(
            sfft.rfft2(np.clip(expected, 0.0, None), workers=-1)
            * fields.fourier_shift_transfer(shape, pixel_size_A, trajectory[f]),
            s=shape,
            workers=-1,
        )
        frames[f] = rng.poisson(np.clip(shifted, 0.0, None))
    return frames


@dataclass(frozen=True)
class _MovieInputs:
    phase: np.ndarray
    transmission: np.ndarray
    thickness: np.ndarray
    k: np.ndarray
