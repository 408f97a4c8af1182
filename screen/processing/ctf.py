"""Contrast transfer function (CTF) model shared by the simulator and the CTF estimator.

Conventions follow CTFFIND4/RELION: defocus is positive for underfocus, in Å; ``defocus_u_A`` is the
defocus along the axis at ``astigmatism_angle_deg`` from the x axis, ``defocus_v_A`` along the
perpendicular axis. Spatial frequencies are in 1/Å.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np


def electron_wavelength_A(voltage_kV: float) -> float:
    """Relativistic electron wavelength in Å for an accelerating voltage in kV."""
    volts = voltage_kV * 1e3
    return float(12.2642598 / np.sqrt(volts * (1.0 + 0.97846e-6 * volts)))


def interaction_constant_rad_per_V_A(voltage_kV: float) -> float:
    """Interaction constant sigma (rad per V·Å): phase shift per unit projected potential."""
    rest_energy_keV = 510.99895
    wavelength_A = electron_wavelength_A(voltage_kV)
    return float(
        2.0
        * np.pi
        / (wavelength_A * voltage_kV * 1e3)
        * (rest_energy_keV + voltage_kV)
        / (2.0 * rest_energy_keV + voltage_kV)
    )


@dataclass(frozen=True)
class CtfParams:
    """Microscope optics and defocus of one micrograph."""

    defocus_u_A: float
    defocus_v_A: float
    astigmatism_angle_deg: float = 0.0
    voltage_kV: float = 300.0
    cs_mm: float = 2.7
    amplitude_contrast: float = 0.1
    phase_shift_deg: float = 0.0

    @property
    def mean_defocus_A(self) -> float:
        """Mean of the two principal defoci, in Å."""
        return 0.5 * (self.defocus_u_A + self.defocus_v_A)


def frequency_grid(shape: tuple[int, int], pixel_size_A: float, *, rfft: bool = True):
    """Spatial frequencies (kx, ky) in 1/Å of an FFT of an image of ``shape`` (ny, nx).

    With ``rfft=True`` the grid matches ``numpy.fft.rfft2`` (half plane along x).
    """
    ny, nx = shape
    kx = ((np.fft.rfftfreq(nx) if rfft else np.fft.fftfreq(nx)) / pixel_size_A).astype(np.float32)
    ky = (np.fft.fftfreq(ny) / pixel_size_A).astype(np.float32)
    return np.meshgrid(kx, ky, indexing="xy", sparse=False)


def ctf_phase_aberration(k_A: np.ndarray, angle_rad: np.ndarray, params: CtfParams) -> np.ndarray:
    """Phase aberration chi(k) in radians, including amplitude contrast and phase shift."""
    wavelength_A = electron_wavelength_A(params.voltage_kV)
    cs_A = params.cs_mm * 1e7
    # Python floats keep float32 arrays in float32 (NumPy 2 promotion rules).
    mean_A = 0.5 * float(params.defocus_u_A + params.defocus_v_A)
    half_diff_A = 0.5 * float(params.defocus_u_A - params.defocus_v_A)
    astig_rad = float(np.deg2rad(params.astigmatism_angle_deg))
    defocus_A = mean_A + half_diff_A * np.cos(2.0 * (angle_rad - astig_rad))
    k2 = k_A**2
    chi = float(np.pi * wavelength_A) * defocus_A * k2 - float(
        0.5 * np.pi * cs_A * wavelength_A**3
    ) * (k2 * k2)
    amplitude_phase = float(np.arcsin(np.clip(params.amplitude_contrast, 0.0, 1.0)))
    return chi + (amplitude_phase + float(np.deg2rad(params.phase_shift_deg)))


def ctf_2d(shape: tuple[int, int], pixel_size_A: float, params: CtfParams) -> np.ndarray:
    """CTF on the rfft2 grid of an image of ``shape``: ``-sin(chi)``.

    The sign makes a positive projected potential appear dark at low frequency, as protein does in
    an underfocused cryo-EM image.
    """
    kx, ky = frequency_grid(shape, pixel_size_A)
    k = np.hypot(kx, ky)
    angle = np.arctan2(ky, kx)
    return -np.sin(ctf_phase_aberration(k, angle, params))


def _direction(params: CtfParams, angle_deg: float | None) -> tuple[CtfParams, float]:
    """Parameters and angle (rad) for a 1D CTF: along ``angle_deg``, or the mean defocus."""
    if angle_deg is not None:
        return params, float(np.deg2rad(angle_deg))
    mean = params.mean_defocus_A
    return dataclasses.replace(params, defocus_u_A=mean, defocus_v_A=mean), 0.0


def ctf_1d(k_A: np.ndarray, params: CtfParams, angle_deg: float | None = None) -> np.ndarray:
    """CTF along one direction (default: the mean defocus, i.e. a rotational average's zeros)."""
    params, angle = _direction(params, angle_deg)
    return -np.sin(ctf_phase_aberration(np.asarray(k_A), angle, params))


def ctf_zero_frequencies_A(params: CtfParams, k_max_A: float, angle_deg: float | None = None):
    """Spatial frequencies (1/Å) of the CTF zeros up to ``k_max_A`` along one direction.

    Zeros are where the phase aberration crosses a multiple of pi, found on a fine grid and
    refined by linear interpolation.
    """
    params, angle = _direction(params, angle_deg)
    k = np.linspace(0.0, k_max_A, 20001)
    chi = ctf_phase_aberration(k, angle, params)
    n = np.floor(chi / np.pi)
    crossings = np.nonzero(np.diff(n) != 0)[0]
    targets = np.maximum(n[crossings], n[crossings + 1]) * np.pi
    frac = (targets - chi[crossings]) / (chi[crossings + 1] - chi[crossings])
    return k[crossings] + frac * (k[crossings + 1] - k[crossings])


def defocus_from_zero_A(k_A: float, zero_index: int, params: CtfParams) -> float:
    """Defocus (Å) for which the ``zero_index``-th CTF zero (counted as chi = n·pi) lies at ``k_A``.

    Inverts ``chi(k) = n·pi`` for the defocus, keeping Cs, voltage and amplitude contrast.
    """
    wavelength_A = electron_wavelength_A(params.voltage_kV)
    cs_A = params.cs_mm * 1e7
    offset = np.arcsin(params.amplitude_contrast) + np.deg2rad(params.phase_shift_deg)
    k2 = k_A**2
    return float(
        (zero_index * np.pi - offset + 0.5 * np.pi * cs_A * wavelength_A**3 * k2**2)
        / (np.pi * wavelength_A * k2)
    )
