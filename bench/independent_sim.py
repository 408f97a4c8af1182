"""An independent cryo-EM micrograph simulator, held out from `screen`'s own (`screen simulate`).

    python bench/independent_sim.py --out DIR \
        --sessions ribosome tetramer_d2 shell rod small --micrographs 8 --frame-px 1024 --seed 0

Written from scratch so that `screen run` can be measured on data it was not tuned on: it imports
nothing from `screen` (only numpy, scipy, mrcfile and pandas) and makes its own physics choices.

* Particles are pseudo-atomic models: Poisson-distributed point atoms at protein heavy-atom density
  (one per 17 Å^3) filling a shape whose surface is roughened by a few random plane waves, with
  internal structure: each atom's weight (its scattering relative to an average protein atom) is
  modulated by +-30 % (s.d.) by a smooth 3D Gaussian random field (correlation lengths 15 and
  30 Å, symmetrised over the particle's point group), the field's lowest 4 % are emptied as solvent
  channels, and a few random spherical pockets (6-13 Å) are carved out. Five shapes: "ribosome"
  (large subunit with a flat interface face, stalks and a central protuberance, an exit tunnel; a
  ~10 Å groove to the small subunit, which has a head/body cleft, bridged by five contacts; half of
  the atoms, a patchy core, are RNA with 1.6x protein's contrast), "tetramer_d2" (four two-domain
  monomers in D2 symmetry around a central cavity opened by a channel, beta-galactosidase-like),
  "shell" (apoferritin-like: 24 elongated subunits in 432 symmetry tiling a hollow shell, 120 Å
  outer / 78 Å inner), "rod" (spherocylinder 200 x 70 Å of stacked rings with shallow grooves and a
  narrow axial channel) and "small" (~90 kDa two-lobed globule, 80 Å, with a cleft). The true
  diameter is the longest extent of the atom cloud (convex hull, all pairs of hull vertices).
* Projection: every particle is rotated (uniform on SO(3), or a preferred-orientation cone), its
  atoms deposited bilinearly on a 2x oversampled field grid; the Gaussian atom blur
  (B-factor, exp(-B k^2/4)) is applied once to the whole field in Fourier space, which is then
  cropped to the output grid (anti-aliased). Phase per atom = interaction constant x (protein mean
  inner potential in excess of ice) x volume per atom x the atom's weight.
* Placement: random sequential adsorption of the *projected footprints* (orientation aware), so
  rods and subunits pack near-touching without overlapping, at a projected-area coverage drawn
  per micrograph.
* Ice: a phase Gaussian random field with a power-law spectrum whose variance follows the water
  molecules' column count (scaled by an effective structure factor), a linear thickness gradient
  plus slow undulations; no energy filter: the unscattered fraction exp(-t/lambda_inelastic)
  carries the phase contrast, the inelastic electrons form a contrast-free background, and the
  objective aperture removes exp(-t/lambda_aperture) of the beam. Optional dark contamination
  balls with a soft edge (never more than 1.5 % of the field; no particle under them).
* CTF (own implementation): chi = pi lambda df(theta) k^2 - pi/2 Cs lambda^3 k^4 with elliptical
  astigmatism, CTF = -(sqrt(1-A^2) sin chi + A cos chi) exp(-B_env k^2/4), applied to the
  projected phase (weak-phase approximation, contrast = 2 CTF x phase): particles are dark.
* Detector: a counting detector's MTF (sinc(fx) sinc(fy), pixel integration) on the expected
  image, then Poisson counting at the dose. Output: float32 MRC (counts per pixel) with the pixel
  size in the header, `truth.csv` (micrograph, x_px, y_px, shape, diameter_A; x is the column,
  y the row, 0 at the first pixel's centre) and `conditions.csv` (optics per micrograph, its
  `kind` and a `kind_detail`).
* Bad micrographs (`--kinds`, or `simulate_session(kinds=...)`; default all "good"): empty,
  crowded, aggregated, contaminated, carbon, thick_ice, drift and bad_ctf, each a good micrograph
  of the session changed physically (see "bad micrographs" below). Their own random numbers come
  from a generator seeded with the session's seed and the micrograph's index, and they draw from
  the session's generator exactly what a good one would, so every good micrograph is bit-identical
  to the one an all-good session of that seed makes (and all-good sessions are unchanged).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
from scipy.ndimage import binary_dilation, gaussian_filter, map_coordinates
from scipy.spatial import ConvexHull, cKDTree
from scipy.spatial.transform import Rotation

# --- physical constants and optics ---------------------------------------------------------------

VOLTAGE_kV = 300.0
CS_mm = 2.7
ELECTRON_REST_ENERGY_keV = 510.999
ATOM_VOLUME_A3 = 17.0  # volume per non-hydrogen atom of protein (1.35 g/cm^3, ~14 Da per atom)
PROTEIN_EXCESS_POTENTIAL_V = 2.5  # protein mean inner potential over vitreous ice (~7 V vs 4.5 V)
ICE_POTENTIAL_V = 4.5
WATER_MOLECULE_VOLUME_A3 = 30.0
ICE_STRUCTURE_FACTOR = 0.1  # effective S(k) of amorphous ice at the imaged frequencies
ICE_SPECTRUM_EXPONENT = 0.8  # power spectrum ~ (k^2 + k0^2)^(-exponent/2)
ICE_SPECTRUM_CORNER_A = 200.0
INELASTIC_MFP_A = 3100.0  # inelastic mean free path in vitreous ice at 300 kV
APERTURE_MFP_A = 9000.0  # mean free path for scattering outside the objective aperture
OVERSAMPLING = 2
DEFOCUS_RANGE_um = (0.8, 2.5)
ASTIGMATISM_MAX_A = 500.0
AMPLITUDE_CONTRAST_RANGE = (0.07, 0.10)
ENVELOPE_B_RANGE_A2 = (50.0, 150.0)
ATOM_B_RANGE_A2 = (20.0, 40.0)
DOSE_RANGE_e_per_A2 = (20.0, 60.0)
ICE_THICKNESS_RANGE_A = (300.0, 800.0)
ICE_GRADIENT_MAX_FRACTION = 0.25  # thickness change across the field, relative to the mean
CONTAMINATION_PROBABILITY = 0.3
CONTAMINATION_MAX_AREA_FRACTION = 0.015
PLACEMENT_TRIES = 300
FOOTPRINT_GAP_px = 1


def electron_wavelength_A(voltage_kV: float) -> float:
    """Relativistic electron wavelength."""
    volts = voltage_kV * 1e3
    return 12.2643 / np.sqrt(volts * (1.0 + 0.97848e-6 * volts))


def interaction_constant_rad_per_V_A(voltage_kV: float) -> float:
    """sigma = 2 pi / (lambda V) x (m c^2 + e V) / (2 m c^2 + e V), rad per (V x Å)."""
    wavelength_A = electron_wavelength_A(voltage_kV)
    e0 = ELECTRON_REST_ENERGY_keV
    return 2 * np.pi / (wavelength_A * voltage_kV * 1e3) * (e0 + voltage_kV) / (2 * e0 + voltage_kV)


# --- particles -----------------------------------------------------------------------------------
#
# A shape is a geometric indicator (which trial points are inside) plus internal structure:
# * a smooth 3D Gaussian random field (two scales, correlation lengths ~15 and ~30 Å; symmetrised
#   over the particle's point group) modulates every atom's weight by +-FIELD_AMPLITUDE (domains of
#   different packing density, flexible low-density parts);
# * the field's deepest troughs and a few random spherical pockets are emptied (solvent channels,
#   crevices and cavities);
# * an optional composition map gives some atoms a higher weight (the ribosome's RNA, ~1.6x).


@dataclass(frozen=True)
class ShapeSpec:
    """A particle shape and the session defaults chosen for it."""

    name: str
    indicator: Callable[[np.ndarray], np.ndarray]  # (n, 3) Å -> bool inside
    half_box_A: float  # half side of a box holding the shape
    pixel_size_A: float
    coverage_range: tuple[float, float]  # projected-area fraction of the field
    symmetry: str | None = None  # scipy point group ("D2", "O") of the particle
    n_pockets: int = 0  # random spherical solvent pockets (per asymmetric unit)
    pocket_radius_A: tuple[float, float] = (6.0, 11.0)
    composition: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None  # (atoms, field) -> w


FIELD_CORRELATION_LENGTHS_A = (15.0, 30.0)  # e^-1 distance of the field's correlation
FIELD_SPACING_A = 3.0
FIELD_AMPLITUDE = 0.3  # standard deviation of the relative atom weight
CHANNEL_QUANTILE = 0.04  # share of atoms (lowest field values) removed as solvent channels
RNA_CONTRAST = 1.6  # nucleic acid over protein (denser, phosphorus)


def _ellipsoid(p: np.ndarray, centre: tuple[float, float, float], semi_axes_A) -> np.ndarray:
    q = (p - np.asarray(centre)) / np.asarray(semi_axes_A)
    return np.einsum("ij,ij->i", q, q)


RIBOSOME_INTERFACE_A = (27.0, 37.0)  # the groove between the subunits (z range)
RIBOSOME_BRIDGES_A = ((-30.0, 20.0), (25.0, -25.0), (30.0, 25.0), (-20.0, -28.0), (0.0, 0.0))


def _ribosome(p: np.ndarray) -> np.ndarray:
    """Large subunit (flat interface face), small subunit, two stalks, bridges, exit tunnel."""
    z0, z1 = RIBOSOME_INTERFACE_A
    large = (_ellipsoid(p, (0.0, 0.0, -20.0), (88.0, 80.0, 68.0)) < 1.0) & (p[:, 2] < z0)
    large |= _ellipsoid(p, (84.0, 22.0, -5.0), (30.0, 15.0, 16.0)) < 1.0  # "L1 stalk"
    large |= _ellipsoid(p, (-82.0, -12.0, -8.0), (28.0, 12.0, 12.0)) < 1.0  # "L7/L12 stalk"
    large |= _ellipsoid(p, (-8.0, 38.0, 20.0), (30.0, 22.0, 26.0)) < 1.0  # central protuberance
    small = (_ellipsoid(p, (10.0, -5.0, z1), (85.0, 60.0, 70.0)) < 1.0) & (p[:, 2] > z1)
    neck = (np.abs(p[:, 0] - 30.0) < 5.0) & (p[:, 2] > z1 + 25.0)  # head / body cleft
    small &= ~(neck & (p[:, 1] > -5.0))
    bridges = np.zeros(len(p), bool)
    for bx, by in RIBOSOME_BRIDGES_A:
        bridges |= np.hypot(p[:, 0] - bx, p[:, 1] - by) < 12.0
    bridges &= (p[:, 2] >= z0 - 2.0) & (p[:, 2] <= z1 + 2.0)
    tunnel = (np.hypot(p[:, 0] - 10.0, p[:, 1] + 5.0) < 8.0) & (p[:, 2] < z0)
    return ((large & ~tunnel) | small | bridges) & ~(np.abs(p[:, 1]) > 90.0)


def _ribosome_composition(atoms: np.ndarray, field: np.ndarray) -> np.ndarray:
    """Half the atoms are RNA (RNA_CONTRAST): a patchy core, proteins mostly at the periphery."""
    large = atoms[:, 2] < RIBOSOME_INTERFACE_A[0] + 2.0
    depth = np.where(
        large,
        np.sqrt(_ellipsoid(atoms, (0.0, 0.0, -20.0), (88.0, 80.0, 68.0))),
        np.sqrt(_ellipsoid(atoms, (10.0, -5.0, RIBOSOME_INTERFACE_A[1]), (85.0, 60.0, 70.0))),
    )
    score = field - 2.5 * depth
    rna = score > np.median(score)
    return np.where(rna, RNA_CONTRAST, 1.0)


TETRAMER_CENTRE_A = np.array([38.0, 22.0, 13.0])
TETRAMER_DOMAIN_ROTATION = Rotation.from_euler("zyx", [35.0, 20.0, 10.0], degrees=True).as_matrix()


def _tetramer_d2(p: np.ndarray) -> np.ndarray:
    """Four two-domain monomers in D2 symmetry around a central cavity (beta-galactosidase-like)."""
    inside = np.zeros(len(p), bool)
    for op in Rotation.create_group("D2").as_matrix():
        q = (p - op @ TETRAMER_CENTRE_A) @ (op @ TETRAMER_DOMAIN_ROTATION)
        inside |= _ellipsoid(q, (-12.0, 0.0, 0.0), (40.0, 30.0, 27.0)) < 1.0
        inside |= _ellipsoid(q, (26.0, 4.0, 2.0), (26.0, 24.0, 22.0)) < 1.0
    cavity = _ellipsoid(p, (0.0, 0.0, 0.0), (30.0, 24.0, 20.0)) < 1.0
    channel = np.hypot(p[:, 0], p[:, 1]) < 13.0  # opens the cavity along one two-fold axis
    return inside & ~cavity & ~channel


SHELL_RADII_A = (39.0, 60.0)


def _shell_blob_frames() -> tuple[np.ndarray, np.ndarray]:
    """Centres and orientations of 24 subunits in octahedral (432) symmetry on the shell."""
    base_direction = np.array([0.222, 0.499, 0.838])  # tiles the sphere well (98 % covered)
    base_direction /= np.linalg.norm(base_direction)
    radius = sum(SHELL_RADII_A) / 2
    # subunit long axis tangential: perpendicular to the radius, tilted 95 degrees
    tangent = np.cross(base_direction, [0.0, 0.0, 1.0])
    tangent /= np.linalg.norm(tangent)
    other = np.cross(base_direction, tangent)
    long_axis = np.cos(np.radians(95)) * tangent + np.sin(np.radians(95)) * other
    mid_axis = np.cross(base_direction, long_axis)
    frame = np.column_stack([long_axis, mid_axis, base_direction])
    ops = Rotation.create_group("O").as_matrix()
    return ops @ (radius * base_direction), ops @ frame


SHELL_CENTRES_A, SHELL_FRAMES = _shell_blob_frames()


def _shell(p: np.ndarray) -> np.ndarray:
    """Apoferritin-like: 24 elongated subunits (four-helix bundles) tiling a hollow shell."""
    r = np.linalg.norm(p, axis=1)
    inside = np.zeros(len(p), bool)
    for centre, frame in zip(SHELL_CENTRES_A, SHELL_FRAMES, strict=True):
        inside |= _ellipsoid((p - centre) @ frame, (0.0, 0.0, 0.0), (32.0, 17.0, 12.0)) < 1.0
    return inside & (r > SHELL_RADII_A[0]) & (r < SHELL_RADII_A[1])


def _rod(p: np.ndarray) -> np.ndarray:
    """Spherocylinder of stacked rings (~40 Å repeat, shallow grooves) around a narrow channel."""
    half_length_A, radius_A = 65.0, 35.0
    z = np.clip(p[:, 2], -half_length_A, half_length_A)
    rho = np.hypot(p[:, 0], p[:, 1])
    groove = (np.abs((p[:, 2] + 20.0) % 40.0 - 20.0) < 4.0) & (rho > radius_A - 8.0)
    return (np.hypot(rho, p[:, 2] - z) < radius_A) & ~groove & (rho > 7.0)


def _small(p: np.ndarray) -> np.ndarray:
    """~100 kDa globule of two lobes with a substrate cleft between them."""
    body = _ellipsoid(p, (0.0, 0.0, 0.0), (40.0, 30.0, 26.0)) < 1.0
    cleft = (np.abs(p[:, 0] - 4.0 - 0.2 * p[:, 2]) < 4.0) & (p[:, 1] > -4.0)
    return body & ~cleft


SHAPES: dict[str, ShapeSpec] = {
    s.name: s
    for s in (
        ShapeSpec(
            "ribosome",
            _ribosome,
            150.0,
            2.0,
            (0.10, 0.35),
            None,
            10,
            (7.0, 13.0),
            _ribosome_composition,
        ),
        ShapeSpec("tetramer_d2", _tetramer_d2, 110.0, 1.6, (0.10, 0.35), "D2", 2),
        ShapeSpec("shell", _shell, 65.0, 1.5, (0.10, 0.35), "O", 0),
        ShapeSpec("rod", _rod, 105.0, 1.6, (0.08, 0.30), None, 4),
        ShapeSpec("small", _small, 45.0, 1.1, (0.08, 0.30), None, 1, (5.0, 8.0)),
    )
}


@dataclass(frozen=True)
class AtomModel:
    """A pseudo-atomic particle, centred on its centre of mass."""

    shape: str
    atoms_A: np.ndarray  # (n, 3)
    weights: np.ndarray  # (n,) scattering of each atom relative to an average protein atom
    diameter_A: float  # longest extent of the atom cloud


def _roughness(p: np.ndarray, rng: np.random.Generator, amplitude_A: float = 5.0) -> np.ndarray:
    """Slow random displacement of the surface: a sum of plane waves (~60 Å wavelength)."""
    shift = np.zeros((len(p), 3))
    for _ in range(6):
        direction = rng.normal(size=3)
        k = direction / np.linalg.norm(direction) * 2 * np.pi / rng.uniform(40.0, 80.0)
        shift += (
            amplitude_A
            / 2.5
            * np.cos(p @ k + rng.uniform(0, 2 * np.pi))[:, None]
            * rng.normal(size=3)
        )
    return shift


def _symmetry_ops(spec: ShapeSpec) -> np.ndarray:
    if spec.symmetry is None:
        return np.eye(3)[None]
    return Rotation.create_group(spec.symmetry).as_matrix()


def smooth_field(
    points_A: np.ndarray, half_box_A: float, rng: np.random.Generator, ops: np.ndarray
) -> np.ndarray:
    """Zero-mean, unit-variance (over the points) smooth random field, averaged over ops.

    Gaussian-filtered white noise on a FIELD_SPACING_A grid (sigma = correlation length / 2 gives
    a correlation exp(-r^2 / L^2)), one per correlation length, summed and read trilinearly."""
    n = int(np.ceil(2 * half_box_A / FIELD_SPACING_A)) + 2
    total = np.zeros(len(points_A))
    for length_A in FIELD_CORRELATION_LENGTHS_A:
        grid = gaussian_filter(rng.normal(size=(n, n, n)), length_A / 2 / FIELD_SPACING_A)
        grid /= grid.std()
        for op in ops:
            coords = ((points_A @ op.T + half_box_A) / FIELD_SPACING_A).T
            total += map_coordinates(grid, coords, order=1, mode="nearest")
    return (total - total.mean()) / total.std()


def longest_extent_A(points_A: np.ndarray) -> float:
    """Largest distance between two points (over the convex hull's vertices)."""
    vertices = points_A[ConvexHull(points_A).vertices]
    best = 0.0
    for start in range(0, len(vertices), 512):
        d = np.linalg.norm(vertices[start : start + 512, None, :] - vertices[None, :, :], axis=2)
        best = max(best, float(d.max()))
    return best


def build_model(spec: ShapeSpec, rng: np.random.Generator) -> AtomModel:
    """Poisson atoms at protein density inside the (roughened) shape, with internal structure."""
    box_volume_A3 = (2 * spec.half_box_A) ** 3
    n_trial = rng.poisson(box_volume_A3 / ATOM_VOLUME_A3)
    points = rng.uniform(-spec.half_box_A, spec.half_box_A, size=(n_trial, 3))
    atoms = points[spec.indicator(points + _roughness(points, rng))]
    ops = _symmetry_ops(spec)
    field = smooth_field(atoms, spec.half_box_A, rng, ops)
    # solvent pockets: spheres centred on random atoms, repeated by the point group
    keep = field > np.quantile(field, CHANNEL_QUANTILE)
    for _ in range(spec.n_pockets):
        centre = atoms[rng.integers(len(atoms))]
        radius_A = rng.uniform(*spec.pocket_radius_A)
        for op in ops:
            keep &= np.linalg.norm(atoms - op @ centre, axis=1) > radius_A
    atoms, field = atoms[keep], field[keep]
    weights = np.clip(1.0 + FIELD_AMPLITUDE * field, 0.3, 2.0)
    if spec.composition is not None:
        weights *= spec.composition(atoms, field)
    centre = atoms.mean(axis=0)
    return AtomModel(spec.name, atoms - centre, weights, longest_extent_A(atoms))


def random_rotations(
    n: int, rng: np.random.Generator, preferred_fraction: float, cone_deg: float = 15.0
) -> np.ndarray:
    """Uniform rotations, or a fraction whose model z axis lies within cone_deg of the beam."""
    mats = Rotation.random(n, random_state=rng).as_matrix()
    n_pref = int(round(preferred_fraction * n))
    if n_pref:
        tilt = np.arccos(1 - rng.uniform(0, 1, n_pref) * (1 - np.cos(np.radians(cone_deg))))
        angles = np.column_stack(
            [rng.uniform(0, 2 * np.pi, n_pref), tilt, rng.uniform(0, 2 * np.pi, n_pref)]
        )
        mats[:n_pref] = Rotation.from_euler("ZYZ", angles).as_matrix()
    return mats[rng.permutation(n)]


# --- field ---------------------------------------------------------------------------------------


@dataclass
class Conditions:
    """Optics and ice of one micrograph."""

    pixel_size_A: float
    defocus_u_um: float
    defocus_v_um: float
    astigmatism_angle_deg: float
    amplitude_contrast: float
    envelope_b_A2: float
    atom_b_A2: float
    dose_e_per_A2: float
    ice_thickness_A: float
    coverage: float


def frequencies_per_A(n: int, pixel_size_A: float) -> tuple[np.ndarray, np.ndarray]:
    """Full-grid spatial frequencies (kx, ky) in 1/Å, numpy FFT order."""
    f = np.fft.fftfreq(n, d=pixel_size_A)
    return np.meshgrid(f, f)


def ctf(kx: np.ndarray, ky: np.ndarray, c: Conditions) -> np.ndarray:
    """Phase-contrast transfer with amplitude contrast and an envelope B-factor (underfocus > 0)."""
    wavelength_A = electron_wavelength_A(VOLTAGE_kV)
    k2 = kx**2 + ky**2
    theta = np.arctan2(ky, kx)
    mean_A = (c.defocus_u_um + c.defocus_v_um) / 2 * 1e4
    half_diff_A = (c.defocus_u_um - c.defocus_v_um) / 2 * 1e4
    defocus_A = mean_A + half_diff_A * np.cos(2 * (theta - np.radians(c.astigmatism_angle_deg)))
    cs_A = CS_mm * 1e7
    chi = np.pi * wavelength_A * defocus_A * k2 - np.pi / 2 * cs_A * wavelength_A**3 * k2**2
    a = c.amplitude_contrast
    return -(np.sqrt(1 - a * a) * np.sin(chi) + a * np.cos(chi)) * np.exp(-c.envelope_b_A2 * k2 / 4)


def counting_mtf(n: int) -> np.ndarray:
    """Pixel-integration MTF of a counting detector, sinc(fx) sinc(fy), f in cycles per pixel."""
    f = np.fft.fftfreq(n)
    return np.outer(np.sinc(f), np.sinc(f))


def power_law_field(
    n: int, pixel_size_A: float, rng: np.random.Generator, exponent: float, corner_A: float
) -> np.ndarray:
    """Unit-variance Gaussian random field with power spectrum (k^2 + k0^2)^(-exponent/2)."""
    kx, ky = frequencies_per_A(n, pixel_size_A)
    amplitude = (kx**2 + ky**2 + corner_A**-2) ** (-exponent / 4)
    amplitude[0, 0] = 0.0
    field = np.fft.ifft2(np.fft.fft2(rng.normal(size=(n, n))) * amplitude).real
    return field / field.std()


def thickness_map_A(
    n: int, pixel_size_A: float, c: Conditions, rng: np.random.Generator
) -> np.ndarray:
    """Mean thickness, a linear gradient in a random direction and slow undulations."""
    u = (np.arange(n) - n / 2) / n
    xx, yy = np.meshgrid(u, u)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xx + np.sin(angle) * yy) * rng.uniform(0, ICE_GRADIENT_MAX_FRACTION)
    undulation = 0.04 * power_law_field(n, pixel_size_A, rng, 4.0, 400.0)
    return c.ice_thickness_A * (1 + ramp + undulation)


def contamination(n: int, pixel_size_A: float, rng: np.random.Generator) -> np.ndarray:
    """Opacity (0 clear, ~0.9 at a ball's centre) of 1-3 soft-edged balls, or zeros."""
    opacity = np.zeros((n, n))
    if rng.uniform() > CONTAMINATION_PROBABILITY:
        return opacity
    n_balls = int(rng.integers(1, 4))
    area_px = CONTAMINATION_MAX_AREA_FRACTION * n * n / n_balls
    yy, xx = np.mgrid[0:n, 0:n]
    for _ in range(n_balls):
        radius_px = np.sqrt(area_px / np.pi) * rng.uniform(0.6, 1.0)
        cx, cy = rng.uniform(radius_px, n - radius_px, 2)
        rho2 = ((xx - cx) ** 2 + (yy - cy) ** 2) / radius_px**2
        opacity = np.maximum(opacity, 0.9 * np.sqrt(np.clip(1 - rho2, 0, 1)) ** 0.3)
    return gaussian_filter(opacity, 20.0 / pixel_size_A)


@dataclass
class Placement:
    """Particles placed on one micrograph: centres (pixels) and rotated atoms."""

    x_px: list[float]
    y_px: list[float]
    rotations: list[np.ndarray]


def _footprint(xy_px: np.ndarray, grow_px: int) -> np.ndarray:
    """Occupied (dx, dy) pixel offsets of a projected atom cloud, grown by grow_px."""
    lo = xy_px.min(axis=0) - grow_px
    size = xy_px.max(axis=0) - lo + grow_px + 1
    grid = np.zeros((size[1], size[0]), bool)
    grid[xy_px[:, 1] - lo[1], xy_px[:, 0] - lo[0]] = True
    if grow_px:
        grid = binary_dilation(grid, np.ones((2 * grow_px + 1, 2 * grow_px + 1), bool))
    dy, dx = np.nonzero(grid)
    return np.column_stack([dx + lo[0], dy + lo[1]])


def place_particles(
    model: AtomModel,
    n_px: int,
    c: Conditions,
    blocked: np.ndarray,
    rng: np.random.Generator,
    preferred_fraction: float,
) -> Placement:
    """Random sequential adsorption of projected footprints until the coverage is reached."""
    a = c.pixel_size_A
    occupied = blocked.copy()
    placement = Placement([], [], [])
    covered_px, target_px = 0, c.coverage * n_px * n_px
    failures = 0
    while covered_px < target_px and failures < 5:
        rotation = random_rotations(1, rng, preferred_fraction)[0]
        xy = (model.atoms_A @ rotation.T)[:, :2] / a
        offsets = _footprint(np.round(xy).astype(int), 0)
        padded = _footprint(np.round(xy).astype(int), FOOTPRINT_GAP_px)
        lo, hi = padded.min(axis=0), padded.max(axis=0)
        for _ in range(PLACEMENT_TRIES):
            cx = int(rng.integers(-lo[0], n_px - hi[0]))
            cy = int(rng.integers(-lo[1], n_px - hi[1]))
            if not occupied[padded[:, 1] + cy, padded[:, 0] + cx].any():
                occupied[padded[:, 1] + cy, padded[:, 0] + cx] = True
                covered_px += len(offsets)
                shift = rng.uniform(-0.5, 0.5, 2)
                placement.x_px.append(cx + shift[0])
                placement.y_px.append(cy + shift[1])
                placement.rotations.append(rotation)
                failures = 0
                break
        else:
            failures += 1
    return placement


def bilinear_deposit(
    u: np.ndarray, v: np.ndarray, weights: np.ndarray | None, size: int, wrap: bool
) -> np.ndarray:
    """Points (u columns, v rows; pixel units) deposited bilinearly on a size x size grid, flat.

    ``wrap`` folds points over the edges (periodic); otherwise every point must lie inside.
    """
    i0, j0 = np.floor(u).astype(int), np.floor(v).astype(int)
    fu, fv = u - i0, v - j0
    flat = np.zeros(size * size)
    for di, dj, share in (
        (0, 0, (1 - fu) * (1 - fv)),
        (1, 0, fu * (1 - fv)),
        (0, 1, (1 - fu) * fv),
        (1, 1, fu * fv),
    ):
        i, j = i0 + di, j0 + dj
        if wrap:
            i, j = i % size, j % size
        w = share if weights is None else share * weights
        flat += np.bincount(j * size + i, weights=w, minlength=size * size)
    return flat


def projected_phase_fft(
    model: AtomModel, placement: Placement, n_px: int, c: Conditions
) -> np.ndarray:
    """Fourier transform (output grid) of the particles' projected phase, atom blur applied."""
    s = OVERSAMPLING
    n_fine, a_fine = n_px * s, c.pixel_size_A / s
    fine = np.zeros(n_fine * n_fine)
    for x_px, y_px, rotation in zip(
        placement.x_px, placement.y_px, placement.rotations, strict=True
    ):
        xy = (model.atoms_A @ rotation.T)[:, :2] / a_fine
        u = xy[:, 0] + x_px * s
        v = xy[:, 1] + y_px * s
        fine += bilinear_deposit(u, v, model.weights, n_fine, wrap=True)
    sigma = interaction_constant_rad_per_V_A(VOLTAGE_kV)
    phase_per_atom = sigma * PROTEIN_EXCESS_POTENTIAL_V * ATOM_VOLUME_A3 / a_fine**2
    spectrum = np.fft.fft2(fine.reshape(n_fine, n_fine) * phase_per_atom)
    kx, ky = frequencies_per_A(n_fine, a_fine)
    spectrum *= np.exp(-c.atom_b_A2 * (kx**2 + ky**2) / 4)
    # Fourier crop to the output grid (keeps frequencies up to its Nyquist; no aliasing)
    idx = np.r_[0 : n_px // 2, n_fine - n_px // 2 : n_fine]
    return spectrum[np.ix_(idx, idx)] / (s * s)


def exposure(
    particle_phase_fft: np.ndarray,
    c: Conditions,
    thickness_A: np.ndarray,
    ice_noise: np.ndarray,
    opacity: np.ndarray,
    extra: Extras | None = None,
) -> np.ndarray:
    """Expected counts per pixel: ice and particles through the CTF, absorption, detector MTF.

    ``extra`` (bad micrographs only) adds phase (a carbon film, crystalline ice, a contamination
    ball's rim), attenuation of the unscattered and transmitted beams (carbon, Bragg scattering)
    and a motion-blur transfer function (drift)."""
    n_px, a = len(ice_noise), c.pixel_size_A
    sigma = interaction_constant_rad_per_V_A(VOLTAGE_kV)
    phase_per_molecule = sigma * ICE_POTENTIAL_V * WATER_MOLECULE_VOLUME_A3 / a**2
    molecules_per_px = thickness_A / WATER_MOLECULE_VOLUME_A3 * a**2
    ice_rms_rad = phase_per_molecule * np.sqrt(molecules_per_px * ICE_STRUCTURE_FACTOR)
    ice_phase = ice_rms_rad * ice_noise
    phase_fft = particle_phase_fft + np.fft.fft2(ice_phase)
    if extra is not None and extra.phase is not None:
        phase_fft = phase_fft + np.fft.fft2(extra.phase)
    phase_fft[0, 0] = 0.0  # a constant phase is invisible
    kx, ky = frequencies_per_A(n_px, a)
    contrast = np.fft.ifft2(2 * ctf(kx, ky, c) * phase_fft).real
    if extra is not None and extra.contrast is not None:
        contrast = contrast + extra.contrast
    unscattered = np.exp(-thickness_A / INELASTIC_MFP_A)
    transmitted = np.exp(-thickness_A / APERTURE_MFP_A) * (1 - opacity)
    if extra is not None and extra.unscattered is not None:
        unscattered = unscattered * extra.unscattered
        transmitted = transmitted * extra.transmitted
    expected = c.dose_e_per_A2 * a * a * (transmitted + unscattered * (1 - opacity) * contrast)
    if extra is not None and extra.motion_otf is not None:
        expected = np.fft.ifft2(np.fft.fft2(expected) * extra.motion_otf).real
    expected = np.fft.ifft2(np.fft.fft2(expected) * counting_mtf(n_px)).real
    return expected


def render(
    model: AtomModel,
    c: Conditions,
    n_px: int,
    rng: np.random.Generator,
    preferred_fraction: float,
    kind: str = "good",
    kind_rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, Placement, Conditions, str]:
    """One micrograph (counts per pixel, float32), its particles, its conditions and a detail.

    A bad ``kind`` first draws everything a good micrograph draws from the session's generator
    (its Poisson noise included, then discarded), so that the micrographs after it are the same
    as in an all-good session; what makes it bad comes from ``kind_rng`` (see `make_bad`)."""
    a = c.pixel_size_A
    opacity = contamination(n_px, a, rng)
    blocked = opacity > 0.02
    placement = place_particles(model, n_px, c, blocked, rng, preferred_fraction)
    thickness_A = thickness_map_A(n_px, a, c, rng)
    ice_noise = power_law_field(n_px, a, rng, ICE_SPECTRUM_EXPONENT, ICE_SPECTRUM_CORNER_A)
    particle_fft = projected_phase_fft(model, placement, n_px, c)
    expected = exposure(particle_fft, c, thickness_A, ice_noise, opacity)
    counts = rng.poisson(np.clip(expected, 0, None)).astype(np.float32)
    if kind == "good":
        return counts, placement, c, ""
    if kind not in BAD_KINDS:
        raise ValueError(f"unknown micrograph kind {kind!r} (one of {', '.join(KINDS)})")
    if kind_rng is None:
        raise ValueError("a bad micrograph needs its own generator (kind_rng)")
    base = Base(model, c, n_px, placement, particle_fft, thickness_A, ice_noise, opacity)
    expected, placement, c, detail = make_bad(kind, base, kind_rng)
    counts = kind_rng.poisson(np.clip(expected, 0, None)).astype(np.float32)
    return counts, placement, c, detail


# --- bad micrographs ------------------------------------------------------------------------------
#
# A bad micrograph starts from the good one the session's generator draws (conditions, particles,
# ice) and changes what makes it bad with its own generator (seeded from the session's seed and the
# micrograph's index). One line each:
# * empty: no particles (the sample stayed at the air-water interface or in the blot), in thin
#   (100-300 Å, particles excluded) or unchanged ice;
# * crowded: particles stacked in 2-4 layers (overlaps allowed, projected coverage 2-4 fields), in
#   ice thick enough for them (up to 1100 Å);
# * aggregated: 70-90 % of the particles stuck together in 1-4 clumps grown in 3D by random
#   attachment at 0.6-0.9 diameters (so they overlap in projection), the rest dispersed;
# * contaminated: (2/3) ice or ethane balls on the film, opaque in the middle (projected chord over
#   a 200 Å absorption length), with a Fresnel rim and a thickened-ice halo, covering 8-30 % of the
#   field, no particles under them; or (1/3) polycrystalline ice patches (25-60 % of the field) of
#   300-1000 Å grains, each losing 0-35 % of the beam to Bragg scattering out of the aperture, half
#   of them on a zone axis with hexagonal lattice fringes (3.44-3.90 Å; only where the pixel
#   resolves them);
# * carbon: a carbon film edge across the field (straight, or an arc of a 0.5-1 µm hole), 30-80 % of
#   the field behind 150-400 Å of amorphous carbon (9 V, flatter noise spectrum than ice, 10 %
#   thickness texture, its own inelastic and aperture mean free paths), a sharp step whose phase
#   (1-3 rad, propagated exactly rather than as a weak phase) gives a Fresnel fringe, an ice
#   meniscus at the edge, 85 % of the particles on the film gone;
# * thick_ice: mean ice 1200-2500 Å (the same gradient and undulations, scaled);
# * drift: the whole exposure blurred along a straight or curved (60-180 degree arc) path of
#   30-80 Å, fastest at first (speed decaying over 0.3-2 exposures), as a sum of unaligned
#   frames;
# * bad_ctf: one of strong astigmatism (3000-10000 Å), near focus (0.05-0.25 µm) or a strong
#   envelope (B 400-900 Å^2: beam-induced motion, coherence, charging).

KINDS: tuple[str, ...] = (
    "good",
    "empty",
    "crowded",
    "aggregated",
    "contaminated",
    "carbon",
    "thick_ice",
    "drift",
    "bad_ctf",
)
BAD_KINDS: tuple[str, ...] = KINDS[1:]

EMPTY_THIN_ICE_PROBABILITY = 0.5
EMPTY_THIN_ICE_A = (100.0, 300.0)
CROWDED_LAYERS = (2.0, 4.0)
CROWDED_MAX_ICE_A = 1100.0
BANK_VIEWS = 64  # distinct orientations of a crowded or aggregated micrograph's particles
AGGREGATED_FRACTION = (0.7, 0.9)
AGGREGATE_CLUMPS = (1, 4)
AGGREGATE_CONTACT_DIAMETERS = (0.6, 0.9)
BALL_AREA_FRACTION = (0.08, 0.30)
BALL_ABSORPTION_LENGTH_A = 200.0
BALL_RIM_A = 100.0  # chord over which a ball's phase saturates (its rim's Fresnel fringe)
BALL_HALO_RELATIVE = (0.3, 1.0)  # extra ice at a ball's edge, relative to the mean thickness
BALL_HALO_WIDTH = (0.15, 0.4)  # decay length of the halo, in ball radii
CRYSTALLINE_PROBABILITY = 1 / 3
CRYSTALLINE_AREA_FRACTION = (0.25, 0.6)
CRYSTAL_GRAIN_A = (300.0, 1000.0)
CRYSTAL_BRAGG_LOSS = (0.0, 0.35)
CRYSTAL_ZONE_AXIS_PROBABILITY = 0.5
CRYSTAL_FRINGE_RAD = 0.1
ICE_LATTICE_A = (3.90, 3.67, 3.44)  # hexagonal ice (100), (002), (101)
CARBON_AREA_FRACTION = (0.30, 0.80)
CARBON_THICKNESS_A = (150.0, 400.0)
CARBON_POTENTIAL_V = 9.0
CARBON_ATOM_VOLUME_A3 = 10.0  # 2.0 g/cm^3
CARBON_STRUCTURE_FACTOR = 0.3
CARBON_SPECTRUM_EXPONENT = 0.5
CARBON_SPECTRUM_CORNER_A = 50.0
CARBON_TEXTURE = 0.1  # relative thickness variation of the film
CARBON_INELASTIC_MFP_A = 1800.0
CARBON_APERTURE_MFP_A = 3000.0
CARBON_PARTICLES_KEPT = 0.15
HOLE_RADIUS_A = (5000.0, 10000.0)
MENISCUS_RELATIVE = (0.2, 0.5)
MENISCUS_WIDTH_A = (300.0, 800.0)
THICK_ICE_A = (1200.0, 2500.0)
DRIFT_PATH_A = (30.0, 80.0)
DRIFT_ARC_DEG = (60.0, 180.0)
DRIFT_DECAY = (0.3, 2.0)  # speed ~ exp(-t / decay), t in exposures
DRIFT_SAMPLES = 4000
BAD_CTF_ASTIGMATISM_A = (3000.0, 10000.0)
BAD_CTF_NEAR_FOCUS_um = (0.05, 0.25)
BAD_CTF_ENVELOPE_B_A2 = (400.0, 900.0)


@dataclass
class Extras:
    """What a bad micrograph adds to `exposure` (None: nothing)."""

    phase: np.ndarray | None = None  # rad, added to the projected phase
    unscattered: np.ndarray | None = None  # factor on the unscattered (phase-contrast) beam
    transmitted: np.ndarray | None = None  # factor on the transmitted beam (with unscattered)
    motion_otf: np.ndarray | None = None  # transfer function of the motion blur (FFT order)
    contrast: np.ndarray | None = None  # contrast of a strong phase object, imaged exactly


@dataclass
class Base:
    """The good micrograph a bad one starts from."""

    model: AtomModel
    c: Conditions
    n_px: int
    placement: Placement
    particle_fft: np.ndarray
    thickness_A: np.ndarray
    ice_noise: np.ndarray
    opacity: np.ndarray


def _pixel_grid_A(n_px: int, pixel_size_A: float) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of every pixel in Å from the field's centre."""
    u = (np.arange(n_px) - n_px / 2) * pixel_size_A
    return np.meshgrid(u, u)


def _subset(placement: Placement, keep: np.ndarray) -> Placement:
    idx = np.flatnonzero(keep)
    return Placement(
        [placement.x_px[i] for i in idx],
        [placement.y_px[i] for i in idx],
        [placement.rotations[i] for i in idx],
    )


def _at_centres(image: np.ndarray, placement: Placement) -> np.ndarray:
    n = len(image)
    if not placement.x_px:
        return np.zeros(0)
    x = np.clip(np.round(placement.x_px).astype(int), 0, n - 1)
    y = np.clip(np.round(placement.y_px).astype(int), 0, n - 1)
    return image[y, x]


@dataclass
class Bank:
    """Projections of one model in a few orientations, on the 2x oversampled grid."""

    rotations: np.ndarray  # (v, 3, 3)
    patches: np.ndarray  # (v, p, p) summed atom weights, centre at [half, half]
    half: int
    footprint_px: np.ndarray  # (v,) projected area on the output grid, pixels


def projection_bank(model: AtomModel, c: Conditions, rng: np.random.Generator) -> Bank:
    """BANK_VIEWS uniform orientations, deposited bilinearly (as `projected_phase_fft` does)."""
    s = OVERSAMPLING
    a_fine = c.pixel_size_A / s
    half = int(np.ceil(np.linalg.norm(model.atoms_A, axis=1).max() / a_fine)) + 2
    size = 2 * half + 2
    rotations = random_rotations(BANK_VIEWS, rng, 0.0)
    patches = np.zeros((BANK_VIEWS, size, size))
    footprints = np.zeros(BANK_VIEWS)
    for v, rotation in enumerate(rotations):
        xy = (model.atoms_A @ rotation.T)[:, :2]
        footprints[v] = len(_footprint(np.round(xy / c.pixel_size_A).astype(int), 0))
        u, w = xy[:, 0] / a_fine + half, xy[:, 1] / a_fine + half
        flat = bilinear_deposit(u, w, model.weights, size, wrap=False)
        patches[v] = flat.reshape(size, size)
    return Bank(rotations, patches, half, footprints)


def bank_phase_fft(
    bank: Bank, x_px: np.ndarray, y_px: np.ndarray, views: np.ndarray, n_px: int, c: Conditions
) -> np.ndarray:
    """`projected_phase_fft` for particles drawn from a bank (centres on the fine grid)."""
    s = OVERSAMPLING
    n_fine, a_fine = n_px * s, c.pixel_size_A / s
    fine = np.zeros((n_fine, n_fine))
    size = bank.patches.shape[1]
    offsets = np.arange(size) - bank.half
    for x, y, v in zip(x_px, y_px, views, strict=True):
        rows = (int(round(y * s)) + offsets) % n_fine
        cols = (int(round(x * s)) + offsets) % n_fine
        fine[np.ix_(rows, cols)] += bank.patches[v]
    sigma = interaction_constant_rad_per_V_A(VOLTAGE_kV)
    phase_per_atom = sigma * PROTEIN_EXCESS_POTENTIAL_V * ATOM_VOLUME_A3 / a_fine**2
    spectrum = np.fft.fft2(fine * phase_per_atom)
    kx, ky = frequencies_per_A(n_fine, a_fine)
    spectrum *= np.exp(-c.atom_b_A2 * (kx**2 + ky**2) / 4)
    idx = np.r_[0 : n_px // 2, n_fine - n_px // 2 : n_fine]
    return spectrum[np.ix_(idx, idx)] / (s * s)


def _bank_render(
    base: Base, x_px: np.ndarray, y_px: np.ndarray, rng: np.random.Generator, bank: Bank
) -> tuple[np.ndarray, Placement]:
    views = rng.integers(0, BANK_VIEWS, len(x_px))
    fft = bank_phase_fft(bank, x_px, y_px, views, base.n_px, base.c)
    placement = Placement(
        [float(x) for x in x_px], [float(y) for y in y_px], [bank.rotations[v] for v in views]
    )
    return fft, placement


def _empty(base: Base, rng: np.random.Generator):
    c, thickness = replace(base.c, coverage=0.0), base.thickness_A
    detail = "normal ice"
    if rng.uniform() < EMPTY_THIN_ICE_PROBABILITY:
        t = rng.uniform(*EMPTY_THIN_ICE_A)
        thickness = thickness * (t / c.ice_thickness_A)
        c = replace(c, ice_thickness_A=t)
        detail = "thin ice"
    no_particles = np.zeros_like(base.particle_fft)
    expected = exposure(no_particles, c, thickness, base.ice_noise, base.opacity)
    return expected, Placement([], [], []), c, detail


def _crowded(base: Base, rng: np.random.Generator):
    n = base.n_px
    layers = rng.uniform(*CROWDED_LAYERS)
    bank = projection_bank(base.model, base.c, rng)
    count = int(round(layers * n * n / bank.footprint_px.mean()))
    x, y = rng.uniform(0, n, count), rng.uniform(0, n, count)
    fft, placement = _bank_render(base, x, y, rng, bank)
    t = max(base.c.ice_thickness_A, min(CROWDED_MAX_ICE_A, layers * base.model.diameter_A * 0.8))
    c = replace(base.c, coverage=layers, ice_thickness_A=t)
    thickness = base.thickness_A * (t / base.c.ice_thickness_A)
    expected = exposure(fft, c, thickness, base.ice_noise, base.opacity)
    return expected, placement, c, f"{layers:.1f} layers"


def _aggregated(base: Base, rng: np.random.Generator):
    n, a = base.n_px, base.c.pixel_size_A
    bank = projection_bank(base.model, base.c, rng)
    total = max(
        len(base.placement.x_px), int(round(base.c.coverage * n * n / bank.footprint_px.mean()))
    )
    clumped = int(round(rng.uniform(*AGGREGATED_FRACTION) * total))
    n_clumps = int(rng.integers(AGGREGATE_CLUMPS[0], AGGREGATE_CLUMPS[1] + 1))
    sizes = rng.multinomial(clumped, rng.dirichlet(np.full(n_clumps, 2.0)))
    xs, ys = [rng.uniform(0, n, total - clumped)], [rng.uniform(0, n, total - clumped)]
    for size in sizes:
        members = [np.zeros(3)]
        for _ in range(int(size) - 1):
            direction = rng.normal(size=3)
            step = base.model.diameter_A * rng.uniform(*AGGREGATE_CONTACT_DIAMETERS)
            members.append(
                members[rng.integers(len(members))] + step * direction / np.linalg.norm(direction)
            )
        cloud = np.array(members)[:, :2] / a
        cloud -= cloud.mean(axis=0)
        centre = rng.uniform(0.2 * n, 0.8 * n, 2)
        xs.append(cloud[:, 0] + centre[0])
        ys.append(cloud[:, 1] + centre[1])
    x = np.clip(np.concatenate(xs), 0, n - 1)
    y = np.clip(np.concatenate(ys), 0, n - 1)
    fft, placement = _bank_render(base, x, y, rng, bank)
    expected = exposure(fft, base.c, base.thickness_A, base.ice_noise, base.opacity)
    detail = f"{clumped} of {total} in {n_clumps} clump{'s' * (n_clumps > 1)}"
    return expected, placement, base.c, detail


def _balls(base: Base, rng: np.random.Generator):
    n, a, c = base.n_px, base.c.pixel_size_A, base.c
    xx, yy = _pixel_grid_A(n, a)
    target = rng.uniform(*BALL_AREA_FRACTION)
    typical = int(rng.integers(1, 7))  # a few large balls or many small ones
    clear = 1 - base.opacity
    halo = np.zeros((n, n))
    rim_phase = np.zeros((n, n))
    field_A = n * a
    balls = 0
    while np.mean(clear < 0.5) < target and balls < 60:
        radius_A = np.sqrt(target * field_A**2 / np.pi / typical) * rng.uniform(0.5, 1.2)
        cx, cy = rng.uniform(-field_A / 2, field_A / 2, 2)
        rho = np.hypot(xx - cx, yy - cy) / radius_A
        chord_A = 2 * radius_A * np.sqrt(np.clip(1 - rho**2, 0, 1))
        clear = clear * np.exp(-chord_A / BALL_ABSORPTION_LENGTH_A)
        rim_phase += np.minimum(chord_A, BALL_RIM_A)
        height = rng.uniform(*BALL_HALO_RELATIVE) * c.ice_thickness_A
        width = rng.uniform(*BALL_HALO_WIDTH) * radius_A
        halo = np.maximum(halo, height * np.exp(-np.clip(rho - 1, 0, None) * radius_A / width))
        balls += 1
    opacity = 1 - clear
    keep = _at_centres(opacity, base.placement) < 0.5
    placement = _subset(base.placement, keep)
    fft = projected_phase_fft(base.model, placement, n, c)
    sigma = interaction_constant_rad_per_V_A(VOLTAGE_kV)
    extra = Extras(phase=sigma * ICE_POTENTIAL_V * rim_phase)
    expected = exposure(fft, c, base.thickness_A + halo, base.ice_noise, opacity, extra)
    detail = f"{balls} ball{'s' * (balls > 1)}, {np.mean(opacity > 0.5):.0%} of the field"
    return expected, placement, c, detail


def _crystalline(base: Base, rng: np.random.Generator):
    n, a, c = base.n_px, base.c.pixel_size_A, base.c
    fraction = rng.uniform(*CRYSTALLINE_AREA_FRACTION)
    blobs = gaussian_filter(power_law_field(n, a, rng, 4.0, 2000.0), 1.0)
    patch = blobs > np.quantile(blobs, 1 - fraction)
    grain_A = rng.uniform(*CRYSTAL_GRAIN_A)
    n_grains = max(2, int(round((n * a / grain_A) ** 2)))
    seeds = rng.uniform(0, n, (n_grains, 2))
    yy, xx = np.mgrid[0:n, 0:n]
    _, label = cKDTree(seeds).query(np.column_stack([xx.ravel(), yy.ravel()]))
    label = label.reshape(n, n)
    loss = rng.uniform(*CRYSTAL_BRAGG_LOSS, n_grains)[label]
    on_axis = rng.uniform(size=n_grains) < CRYSTAL_ZONE_AXIS_PROBABILITY
    angle = rng.uniform(0, np.pi / 3, n_grains)
    spacing = rng.choice(ICE_LATTICE_A, n_grains)
    fringes = np.zeros((n, n))
    resolved = 1 / spacing < 1 / (2 * a) * 0.98
    for g in np.flatnonzero(on_axis & resolved):
        inside = (label == g) & patch
        if not inside.any():
            continue
        k = 1 / spacing[g]
        for m in range(3):
            theta = angle[g] + m * np.pi / 3
            wave = np.cos(2 * np.pi * k * a * (np.cos(theta) * xx + np.sin(theta) * yy))
            fringes += np.where(inside, wave, 0.0)
    soft_patch = gaussian_filter(patch.astype(float), 1.0)
    factor = 1 - loss * soft_patch
    extra = Extras(phase=CRYSTAL_FRINGE_RAD * fringes, unscattered=factor, transmitted=factor)
    expected = exposure(base.particle_fft, c, base.thickness_A, base.ice_noise, base.opacity, extra)
    lattice = "lattice fringes" if (on_axis & resolved).any() else "no resolvable fringes"
    detail = f"crystalline ice {fraction:.0%}, {grain_A:.0f} Å grains, {lattice}"
    return expected, base.placement, c, detail


def _contaminated(base: Base, rng: np.random.Generator):
    if rng.uniform() < CRYSTALLINE_PROBABILITY:
        return _crystalline(base, rng)
    return _balls(base, rng)


def strong_phase_contrast(phase: np.ndarray, c: Conditions) -> np.ndarray:
    """Contrast |psi|^2 - 1 of a pure phase object exp(i phase) imaged through the aberrations.

    The film's mean phase (1-3 rad) is beyond the weak-phase approximation: the exit wave is
    propagated exactly (transfer exp(i chi) damped by the envelope; for a weak phase this gives
    -2 sin(chi) phase, as `ctf` does), on a grid padded with the edge values so that the step does
    not wrap around."""
    n = len(phase)
    padded = np.pad(phase, n // 2, mode="edge")
    kx, ky = frequencies_per_A(len(padded), c.pixel_size_A)
    wavelength_A = electron_wavelength_A(VOLTAGE_kV)
    k2 = kx**2 + ky**2
    theta = np.arctan2(ky, kx)
    mean_A = (c.defocus_u_um + c.defocus_v_um) / 2 * 1e4
    half_diff_A = (c.defocus_u_um - c.defocus_v_um) / 2 * 1e4
    defocus_A = mean_A + half_diff_A * np.cos(2 * (theta - np.radians(c.astigmatism_angle_deg)))
    chi = np.pi * wavelength_A * defocus_A * k2 - np.pi / 2 * CS_mm * 1e7 * wavelength_A**3 * k2**2
    transfer = np.exp(1j * chi) * np.exp(-c.envelope_b_A2 * k2 / 4)
    wave = np.fft.ifft2(np.fft.fft2(np.exp(1j * padded)) * transfer)
    return (np.abs(wave) ** 2 - 1)[n // 2 : n // 2 + n, n // 2 : n // 2 + n]


def _carbon(base: Base, rng: np.random.Generator):
    n, a, c = base.n_px, base.c.pixel_size_A, base.c
    xx, yy = _pixel_grid_A(n, a)
    fraction = rng.uniform(*CARBON_AREA_FRACTION)
    phi = rng.uniform(0, 2 * np.pi)
    normal = np.array([np.cos(phi), np.sin(phi)])
    if rng.uniform() < 0.5:
        distance = normal[0] * xx + normal[1] * yy
        shape = "straight"
    else:
        radius_A = rng.uniform(*HOLE_RADIUS_A)
        distance = np.hypot(xx + normal[0] * radius_A, yy + normal[1] * radius_A)
        shape = f"arc (hole radius {radius_A / 1e4:.1f} µm)"
    into_film_A = distance - np.quantile(distance, 1 - fraction)
    film = np.clip(0.5 + into_film_A / a, 0.0, 1.0)  # a one-pixel step
    t_film = rng.uniform(*CARBON_THICKNESS_A)
    texture = power_law_field(n, a, rng, 3.0, 300.0)
    film_A = t_film * (1 + CARBON_TEXTURE * texture) * film
    sigma = interaction_constant_rad_per_V_A(VOLTAGE_kV)
    step_contrast = strong_phase_contrast(sigma * CARBON_POTENTIAL_V * film_A, c)
    per_atom = sigma * CARBON_POTENTIAL_V * CARBON_ATOM_VOLUME_A3 / a**2
    atoms_per_px = film_A / CARBON_ATOM_VOLUME_A3 * a**2
    grain = power_law_field(n, a, rng, CARBON_SPECTRUM_EXPONENT, CARBON_SPECTRUM_CORNER_A)
    grain_phase = per_atom * np.sqrt(atoms_per_px * CARBON_STRUCTURE_FACTOR) * grain
    meniscus = rng.uniform(*MENISCUS_RELATIVE)
    width_A = rng.uniform(*MENISCUS_WIDTH_A)
    thickness = base.thickness_A * (1 + meniscus * np.exp(-np.abs(into_film_A) / width_A))
    extra = Extras(
        phase=grain_phase,
        contrast=step_contrast,
        unscattered=np.exp(-film_A / CARBON_INELASTIC_MFP_A),
        transmitted=np.exp(-film_A / CARBON_APERTURE_MFP_A),
    )
    on_film = _at_centres(film, base.placement) > 0.5
    keep = ~on_film | (rng.uniform(size=len(on_film)) < CARBON_PARTICLES_KEPT)
    placement = _subset(base.placement, keep)
    fft = projected_phase_fft(base.model, placement, n, c)
    expected = exposure(fft, c, thickness, base.ice_noise, base.opacity, extra)
    detail = f"{shape}, {np.mean(film > 0.5):.0%} behind {t_film:.0f} Å of carbon"
    return expected, placement, c, detail


def _thick_ice(base: Base, rng: np.random.Generator):
    t = rng.uniform(*THICK_ICE_A)
    c = replace(base.c, ice_thickness_A=t)
    thickness = base.thickness_A * (t / base.c.ice_thickness_A)
    expected = exposure(base.particle_fft, c, thickness, base.ice_noise, base.opacity)
    return expected, base.placement, c, f"{t:.0f} Å"


def drift_otf(n_px: int, pixel_size_A: float, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """Transfer function of the blur along a drift path (centred on its mean position)."""
    length_A = rng.uniform(*DRIFT_PATH_A)
    decay = rng.uniform(*DRIFT_DECAY)
    t = (np.arange(DRIFT_SAMPLES) + 0.5) / DRIFT_SAMPLES
    travelled = (1 - np.exp(-t / decay)) / (1 - np.exp(-1 / decay)) * length_A  # arc length
    heading = rng.uniform(0, 2 * np.pi)
    if rng.uniform() < 0.5:
        x, y = travelled * np.cos(heading), travelled * np.sin(heading)
        shape = "straight"
    else:
        turn = np.radians(rng.uniform(*DRIFT_ARC_DEG)) * rng.choice([-1.0, 1.0])
        radius = length_A / abs(turn)
        angle = heading + np.sign(turn) * travelled / radius
        x = np.sign(turn) * radius * (np.sin(angle) - np.sin(heading))
        y = -np.sign(turn) * radius * (np.cos(angle) - np.cos(heading))
        shape = f"curved ({np.degrees(abs(turn)):.0f} degrees)"
    u, v = (x - x.mean()) / pixel_size_A, (y - y.mean()) / pixel_size_A
    kernel = bilinear_deposit(u, v, None, n_px, wrap=True)
    kernel /= kernel.sum()
    return np.fft.fft2(kernel.reshape(n_px, n_px)), f"{shape}, {length_A:.0f} Å"


def _drift(base: Base, rng: np.random.Generator):
    otf, detail = drift_otf(base.n_px, base.c.pixel_size_A, rng)
    expected = exposure(
        base.particle_fft,
        base.c,
        base.thickness_A,
        base.ice_noise,
        base.opacity,
        Extras(motion_otf=otf),
    )
    return expected, base.placement, base.c, detail


def _bad_ctf(base: Base, rng: np.random.Generator):
    c = base.c
    mean_um = (c.defocus_u_um + c.defocus_v_um) / 2
    half_um = (c.defocus_u_um - c.defocus_v_um) / 2
    mode = int(rng.integers(3))
    if mode == 0:
        astigmatism_A = rng.uniform(*BAD_CTF_ASTIGMATISM_A)
        half_um = astigmatism_A / 2e4
        detail = f"astigmatism {astigmatism_A:.0f} Å"
    elif mode == 1:
        mean_um = rng.uniform(*BAD_CTF_NEAR_FOCUS_um)
        detail = f"near focus {mean_um:.2f} µm"
    else:
        c = replace(c, envelope_b_A2=rng.uniform(*BAD_CTF_ENVELOPE_B_A2))
        detail = f"envelope B {c.envelope_b_A2:.0f} Å²"
    c = replace(c, defocus_u_um=mean_um + half_um, defocus_v_um=mean_um - half_um)
    expected = exposure(base.particle_fft, c, base.thickness_A, base.ice_noise, base.opacity)
    return expected, base.placement, c, detail


BAD_RENDERERS: dict[str, Callable] = {
    "empty": _empty,
    "crowded": _crowded,
    "aggregated": _aggregated,
    "contaminated": _contaminated,
    "carbon": _carbon,
    "thick_ice": _thick_ice,
    "drift": _drift,
    "bad_ctf": _bad_ctf,
}


def make_bad(
    kind: str, base: Base, rng: np.random.Generator
) -> tuple[np.ndarray, Placement, Conditions, str]:
    """Expected counts, particles, conditions and a one-line detail of a bad micrograph."""
    return BAD_RENDERERS[kind](base, rng)


def draw_conditions(
    spec: ShapeSpec, rng: np.random.Generator, amplitude_contrast: float, dose_e_per_A2: float
) -> Conditions:
    defocus_um = rng.uniform(*DEFOCUS_RANGE_um)
    astigmatism_um = rng.uniform(0, ASTIGMATISM_MAX_A) / 1e4
    return Conditions(
        pixel_size_A=spec.pixel_size_A,
        defocus_u_um=defocus_um + astigmatism_um / 2,
        defocus_v_um=defocus_um - astigmatism_um / 2,
        astigmatism_angle_deg=rng.uniform(0, 180),
        amplitude_contrast=amplitude_contrast,
        envelope_b_A2=rng.uniform(*ENVELOPE_B_RANGE_A2),
        atom_b_A2=rng.uniform(*ATOM_B_RANGE_A2),
        dose_e_per_A2=dose_e_per_A2,
        ice_thickness_A=rng.uniform(*ICE_THICKNESS_RANGE_A),
        coverage=rng.uniform(*spec.coverage_range),
    )


def simulate_session(
    shape: str,
    out: Path,
    n_micrographs: int,
    n_px: int,
    seed: int,
    preferred_fraction: float = 0.0,
    kinds: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Write one session folder (MRCs, truth.csv, conditions.csv); returns the truth table.

    ``kinds``: one per micrograph (see KINDS; default all "good"). A bad micrograph's own draws
    come from a generator seeded with (seed, its index), so the good ones are the same as in an
    all-good session of that seed."""
    kinds = list(kinds) if kinds is not None else ["good"] * n_micrographs
    if len(kinds) != n_micrographs:
        raise ValueError(f"{len(kinds)} kinds for {n_micrographs} micrographs")
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise ValueError(f"unknown micrograph kinds {unknown} (one of {', '.join(KINDS)})")
    spec = SHAPES[shape]
    rng = np.random.default_rng(seed)
    model = build_model(spec, rng)
    folder = out / shape
    folder.mkdir(parents=True, exist_ok=True)
    amplitude_contrast = rng.uniform(*AMPLITUDE_CONTRAST_RANGE)
    dose = rng.uniform(*DOSE_RANGE_e_per_A2)
    field_um2 = (n_px * spec.pixel_size_A / 1e4) ** 2
    print(
        f"{shape}: {len(model.atoms_A)} atoms ({len(model.atoms_A) * 14 / 1e3:.0f} kDa, "
        f"atom weight {model.weights.mean():.2f} ± {model.weights.std():.2f}), "
        f"diameter {model.diameter_A:.0f} Å, pixel {spec.pixel_size_A} Å, dose {dose:.0f} e/Å², "
        f"amplitude contrast {amplitude_contrast:.3f}"
    )
    truth, conditions = [], []
    for index in range(n_micrographs):
        start = time.time()
        c = draw_conditions(spec, rng, amplitude_contrast, dose)
        kind = kinds[index]
        kind_rng = np.random.default_rng([seed, index]) if kind != "good" else None
        image, placement, c, detail = render(
            model, c, n_px, rng, preferred_fraction, kind, kind_rng
        )
        name = f"{shape}_{index:03d}"
        with mrcfile.new(folder / f"{name}.mrc", overwrite=True) as mrc:
            mrc.set_data(image)
            mrc.voxel_size = c.pixel_size_A
        truth += [
            {
                "micrograph": name,
                "x_px": round(x, 2),
                "y_px": round(y, 2),
                "shape": shape,
                "diameter_A": round(model.diameter_A, 1),
            }
            for x, y in zip(placement.x_px, placement.y_px, strict=True)
        ]
        conditions.append(
            {
                "micrograph": name,
                **vars(c),
                "particles": len(placement.x_px),
                "kind": kind,
                "kind_detail": detail,
            }
        )
        bad = f", {kind}: {detail}" if kind != "good" else ""
        print(
            f"  {name}: {len(placement.x_px)} particles ({len(placement.x_px) / field_um2:.0f}/µm², "
            f"coverage {c.coverage:.2f}), defocus {(c.defocus_u_um + c.defocus_v_um) / 2:.2f} µm, "
            f"ice {c.ice_thickness_A:.0f} Å{bad}, {time.time() - start:.1f} s"
        )
    table = pd.DataFrame(truth, columns=["micrograph", "x_px", "y_px", "shape", "diameter_A"])
    table.to_csv(folder / "truth.csv", index=False)
    pd.DataFrame(conditions).round(4).to_csv(folder / "conditions.csv", index=False)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sessions", nargs="+", choices=sorted(SHAPES), default=sorted(SHAPES))
    parser.add_argument("--micrographs", type=int, default=8)
    parser.add_argument("--frame-px", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--preferred-fraction",
        type=float,
        default=0.0,
        help="share of particles within 15 degrees of one view (e.g. 0.8)",
    )
    parser.add_argument(
        "--kinds",
        nargs="+",
        choices=KINDS,
        default=["good"],
        help="micrograph kinds, given to the micrographs in turn (cycled); default all good",
    )
    args = parser.parse_args(argv)
    start = time.time()
    kinds = [args.kinds[i % len(args.kinds)] for i in range(args.micrographs)]
    for shape in args.sessions:
        session_seed = args.seed * 1000 + list(SHAPES).index(shape)
        simulate_session(
            shape,
            args.out,
            args.micrographs,
            args.frame_px,
            session_seed,
            args.preferred_fraction,
            kinds,
        )
    print(f"done in {time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
