"""Particle orientations: uniform or preferred views, as RELION Euler angles (rot, tilt, psi).

A particle with angles (rot, tilt, psi) is made by rotating the model's pseudo-atoms with RELION's
matrix ``A = Euler_angles2matrix(rot, tilt, psi)`` (image coordinates = A @ model coordinates) and
projecting along z, as RELION projects a map. Its viewing direction in the model's frame is
``A.T @ z = (sin tilt cos rot, sin tilt sin rot, cos tilt)``.
"""

from __future__ import annotations

import numpy as np

from screen.simulate.spec import OrientationSpec

N_VIEW_BINS = 60


def rotation_matrices(euler_deg: np.ndarray) -> np.ndarray:
    """RELION rotation matrices (n, 3, 3) for (n, 3) angles (rot, tilt, psi) in degrees."""
    rot, tilt, psi = np.radians(np.atleast_2d(euler_deg)).T
    ca, sa, cb, sb, cg, sg = (
        np.cos(rot),
        np.sin(rot),
        np.cos(tilt),
        np.sin(tilt),
        np.cos(psi),
        np.sin(psi),
    )
    cc, cs, sc, ss = cb * ca, cb * sa, sb * ca, sb * sa
    # RELION's Euler_angles2matrix: image coordinates = A @ model coordinates.
    return np.stack(
        [
            np.stack([cg * cc - sg * sa, cg * cs + sg * ca, -cg * sb], axis=-1),
            np.stack([-sg * cc - cg * sa, -sg * cs + cg * ca, sg * sb], axis=-1),
            np.stack([sc, ss, cb], axis=-1),
        ],
        axis=1,
    )


def sample_orientations(spec: OrientationSpec, n: int, rng: np.random.Generator) -> np.ndarray:
    """Draw ``n`` (rot, tilt, psi) triples in degrees from the distribution ``spec``."""
    directions = _uniform_directions(n, rng)
    preferred = rng.random(n) < spec.preferred_fraction
    if preferred.any() and spec.preferred_views:
        views = np.asarray(spec.preferred_views, dtype=float)
        choice = rng.integers(0, len(views), size=int(preferred.sum()))
        centres = _direction_from_tilt_rot(views[choice, 0], views[choice, 1])
        directions[preferred] = _perturb(centres, spec.spread_deg, rng)
    tilt = np.degrees(np.arccos(np.clip(directions[:, 2], -1.0, 1.0)))
    rot = np.degrees(np.arctan2(directions[:, 1], directions[:, 0]))
    psi = rng.uniform(-180.0, 180.0, size=n)
    return np.stack([rot, tilt, psi], axis=1)


def viewing_directions(euler_deg: np.ndarray) -> np.ndarray:
    """Unit viewing directions (n, 3) in the model frame for (rot, tilt, psi) angles."""
    euler = np.atleast_2d(euler_deg)
    return _direction_from_tilt_rot(euler[:, 1], euler[:, 0])


def view_bins(euler_deg: np.ndarray) -> np.ndarray:
    """Index (0..N_VIEW_BINS-1) of the nearest of ``N_VIEW_BINS`` evenly spread directions."""
    return np.argmax(viewing_directions(euler_deg) @ _fibonacci_sphere(N_VIEW_BINS).T, axis=1)


def view_entropy_bits(bins: np.ndarray) -> float:
    """Shannon entropy (bits) of the view-bin histogram; log2(N_VIEW_BINS) when uniform."""
    counts = np.bincount(bins, minlength=N_VIEW_BINS).astype(float)
    if counts.sum() == 0:
        return 0.0
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def _direction_from_tilt_rot(tilt_deg: np.ndarray, rot_deg: np.ndarray) -> np.ndarray:
    tilt, rot = np.radians(tilt_deg), np.radians(rot_deg)
    return np.stack([np.sin(tilt) * np.cos(rot), np.sin(tilt) * np.sin(rot), np.cos(tilt)], axis=-1)


def _uniform_directions(n: int, rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _perturb(centres: np.ndarray, spread_deg: float, rng: np.random.Generator) -> np.ndarray:
    """Tilt each direction by a Rayleigh-distributed angle (scale ``spread_deg``), random azimuth."""
    noise = rng.normal(size=centres.shape)
    noise -= (noise * centres).sum(axis=1, keepdims=True) * centres
    noise /= np.linalg.norm(noise, axis=1, keepdims=True) + 1e-12
    angle = np.radians(spread_deg) * np.sqrt(-2 * np.log(1 - rng.random((len(centres), 1))))
    out = centres * np.cos(angle) + noise * np.sin(angle)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def _fibonacci_sphere(n: int) -> np.ndarray:
    i = np.arange(n) + 0.5
    z = 1 - 2 * i / n
    r = np.sqrt(1 - z**2)
    phi = np.pi * (1 + 5**0.5) * i
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)
