"""Smooth and textured fields of a micrograph: ice thickness, carbon film, contamination, drift.

All functions are pure: they take the frame geometry (shape, pixel size) and parameters, and
return arrays on the pixel grid (real space) or on the rfft2 grid (Fourier space).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import fft as sfft

from screen.processing.ctf import frequency_grid


@dataclass(frozen=True)
class CarbonFilm:
    """A carbon film covering the frame on one side of a (slightly curved) edge.

    The edge passes at ``offset_A`` from the frame centre along the unit normal at
    ``normal_angle_deg``; carbon lies where the signed distance is positive.
    """

    normal_angle_deg: float
    offset_A: float
    curvature_per_A: float
    thickness_A: float

    def signed_distance_A(self, x_A: np.ndarray, y_A: np.ndarray, centre_A: tuple[float, float]):
        """Signed distance (Å) to the edge; positive on the carbon side."""
        angle = np.radians(self.normal_angle_deg)
        dx, dy = x_A - centre_A[0], y_A - centre_A[1]
        along_normal = dx * np.cos(angle) + dy * np.sin(angle)
        along_edge = -dx * np.sin(angle) + dy * np.cos(angle)
        return along_normal - self.offset_A + self.curvature_per_A * along_edge**2


def pixel_coordinates_A(shape: tuple[int, int], pixel_size_A: float):
    """(x_A, y_A) coordinate grids of pixel centres, in Å."""
    ny, nx = shape
    return np.meshgrid(np.arange(nx) * pixel_size_A, np.arange(ny) * pixel_size_A, indexing="xy")


def gaussian_random_field(
    shape: tuple[int, int], pixel_size_A: float, correlation_A: float, rng: np.random.Generator
) -> np.ndarray:
    """Zero-mean, unit-variance smooth random field with a Gaussian correlation length.

    The field is made on a grid binned so that the correlation length spans ~4 coarse pixels,
    then interpolated: smooth fields cost little even on K3-sized frames.
    """
    from scipy.ndimage import zoom

    ny, nx = shape
    binning = int(max(1, min(correlation_A / pixel_size_A / 4.0, min(shape) / 16)))
    coarse = (-(-ny // binning), -(-nx // binning))
    kx, ky = frequency_grid(coarse, pixel_size_A * binning)
    envelope = np.exp(-2.0 * (np.pi * correlation_A) ** 2 * (kx**2 + ky**2))
    noise = sfft.rfft2(rng.standard_normal(coarse, dtype=np.float32), workers=-1)
    field = sfft.irfft2(noise * envelope, s=coarse, workers=-1)
    if binning > 1:
        field = zoom(field, binning, order=1, grid_mode=True, mode="grid-wrap")[:ny, :nx]
    field -= field.mean()
    return (field / (field.std() + 1e-12)).astype(np.float32)


def ice_thickness_map(
    shape: tuple[int, int],
    pixel_size_A: float,
    mean_A: float,
    gradient: float,
    gradient_angle_deg: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Ice thickness map in Å.

    A linear gradient (relative change ``gradient`` across the frame) plus gentle undulations
    (5 % of the mean, correlation length a quarter of the frame).
    """
    ny, nx = shape
    angle = np.radians(gradient_angle_deg)
    extent_A = max(shape) * pixel_size_A
    x = ((np.arange(nx) - (nx - 1) / 2) * pixel_size_A * np.cos(angle) / extent_A).astype(
        np.float32
    )
    y = ((np.arange(ny) - (ny - 1) / 2) * pixel_size_A * np.sin(angle) / extent_A).astype(
        np.float32
    )
    undulation = gaussian_random_field(shape, pixel_size_A, extent_A / 4, rng)
    thickness = np.float32(mean_A) * (
        1.0 + np.float32(gradient) * (x[None, :] + y[:, None]) + np.float32(0.05) * undulation
    )
    return np.clip(thickness, 5.0, None)


def ball_thickness_A(shape: tuple[int, int], pixel_size_A: float, balls: np.ndarray) -> np.ndarray:
    """Projected thickness (Å) of spherical contaminants; ``balls`` rows are (x_A, y_A, radius_A)."""
    x_A, y_A = pixel_coordinates_A(shape, pixel_size_A)
    thickness = np.zeros(shape, dtype=np.float32)
    for bx, by, radius in np.asarray(balls, dtype=float).reshape(-1, 3):
        r2 = (x_A - bx) ** 2 + (y_A - by) ** 2
        inside = r2 < radius**2
        thickness[inside] += 2.0 * np.sqrt(radius**2 - r2[inside])
    return thickness


def crystalline_ice(
    shape: tuple[int, int], pixel_size_A: float, coverage: float, rng: np.random.Generator
) -> np.ndarray:
    """Extra optical density of crystalline-ice domains: mottled dark blobs, zero elsewhere.

    About ``coverage`` of the frame is inside a domain; each domain is darker where the field is
    higher, which gives the blotchy low-frequency texture of real crystalline ice.
    """
    correlation_A = rng.uniform(150.0, 500.0)
    field = gaussian_random_field(shape, pixel_size_A, correlation_A, rng)
    threshold = np.quantile(field, 1.0 - np.clip(coverage, 0.0, 1.0))
    density = np.clip(field - threshold, 0.0, None)
    texture = 0.5 + 0.5 * gaussian_random_field(shape, pixel_size_A, correlation_A / 4, rng)
    return (density * (0.6 + 0.8 * texture)).astype(np.float32)


def ice_lattice_phase(
    shape: tuple[int, int], pixel_size_A: float, domains: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Hexagonal-ice lattice fringes (3.9 Å spacing) inside crystalline domains, as a weak phase.

    Returns zeros when the pixel size cannot resolve 3.9 Å.
    """
    spacing_A = 3.9
    if 2.0 * pixel_size_A >= spacing_A:
        return np.zeros(shape, dtype=np.float32)
    x_A, y_A = pixel_coordinates_A(shape, pixel_size_A)
    base = rng.uniform(0, np.pi / 3)
    lattice = sum(
        np.cos(
            2
            * np.pi
            / spacing_A
            * (x_A * np.cos(base + i * np.pi / 3) + y_A * np.sin(base + i * np.pi / 3))
        )
        for i in range(3)
    )
    return (0.05 * lattice * np.clip(domains, 0, 1)).astype(np.float32)


def drift_transfer(
    shape: tuple[int, int], pixel_size_A: float, trajectory_A: np.ndarray
) -> np.ndarray:
    """Fourier transfer function of summing frames shifted along ``trajectory_A`` (n, 2) in Å.

    The average of the frames' phase ramps: a motion blur along the path. A path shorter than a
    pixel is replaced by the Gaussian with the same second moments (exact to second order).
    """
    path = np.asarray(trajectory_A, dtype=float).reshape(-1, 2)
    path = path - path.mean(axis=0)
    kx, ky = frequency_grid(shape, pixel_size_A)
    if np.ptp(path, axis=0).max() < pixel_size_A:
        cov = path.T @ path / len(path)
        quad = cov[0, 0] * kx**2 + 2 * cov[0, 1] * kx * ky + cov[1, 1] * ky**2
        return np.exp(-2.0 * np.pi**2 * quad).astype(np.complex64)
    transfer = np.zeros(kx.shape, dtype=np.complex64)
    for shift in path:
        transfer += fourier_shift_transfer(shape, pixel_size_A, shift)
    return transfer / len(path)


def fourier_shift_transfer(shape: tuple[int, int], pixel_size_A: float, shift_A) -> np.ndarray:
    """Phase ramp (rfft2 grid) that shifts an image by ``shift_A`` (dx, dy) in Å."""
    ny, nx = shape
    kx = np.fft.rfftfreq(nx) / pixel_size_A
    ky = np.fft.fftfreq(ny) / pixel_size_A
    ramp_x = np.exp(-2j * np.pi * kx * float(shift_A[0])).astype(np.complex64)
    ramp_y = np.exp(-2j * np.pi * ky * float(shift_A[1])).astype(np.complex64)
    return np.outer(ramp_y, ramp_x)


def drift_trajectory(
    n_frames: int, total_A: float, angle_deg: float, curvature: float, rng: np.random.Generator
) -> np.ndarray:
    """Stage drift per frame (n, 2) in Å: fast at first, decaying, slightly curved, with jitter."""
    t = np.arange(n_frames, dtype=float)
    progress = 1.0 - np.exp(-t / max(n_frames / 3.0, 1.0))
    progress /= max(progress[-1], 1e-9)
    angle = np.radians(angle_deg) + curvature * progress
    steps = total_A * np.diff(np.concatenate([[0.0], progress]))
    path = np.cumsum(np.stack([steps * np.cos(angle), steps * np.sin(angle)], axis=1), axis=0)
    path += rng.normal(scale=0.15, size=path.shape)
    return path - path.mean(axis=0)
