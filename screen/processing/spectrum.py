"""Power-spectrum helpers for CTF fitting: binning, ring profiles, smooth bases, local correlation.

All functions are pure functions of arrays. Spatial frequencies are in 1/Å; spectra are centred
(``fftshift``-ed) and square, as returned by :func:`screen.processing.fourier.periodogram_average`.
"""

from __future__ import annotations

import numpy as np


def half_plane_polar(n: int, pixel_size_A: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Polar coordinates of the kx >= 0 half of a centred ``n`` x ``n`` spectrum.

    The half plane is ``spectrum[:, n // 2:]`` (a power spectrum is centrosymmetric).

    Returns
    -------
    k_A : ndarray
        Spatial frequency of each pixel, in 1/Å, shape ``(n, n - n // 2)``.
    angle_rad : ndarray
        Direction of each pixel from the kx axis, in [-pi/2, pi/2].
    radius_px : ndarray
        Distance from the centre in spectrum pixels.
    """
    offsets = np.arange(n) - n // 2
    ky, kx = np.meshgrid(offsets, offsets[n // 2 :], indexing="ij")
    radius_px = np.hypot(kx, ky)
    return radius_px / (n * pixel_size_A), np.arctan2(ky, kx), radius_px


def binned_mean(
    index: np.ndarray, values: np.ndarray, n_bins: int
) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``values`` in each integer bin ``index`` (0 .. n_bins-1; others are ignored).

    Returns
    -------
    means : ndarray
        Mean per bin (0 where a bin is empty).
    counts : ndarray
        Number of values per bin.
    """
    index = np.asarray(index).ravel()
    values = np.asarray(values, dtype=np.float64).ravel()
    keep = (index >= 0) & (index < n_bins)
    sums = np.bincount(index[keep], weights=values[keep], minlength=n_bins)
    counts = np.bincount(index[keep], minlength=n_bins)
    return sums / np.maximum(counts, 1), counts


def chebyshev_basis(x: np.ndarray, degree: int, domain: tuple[float, float]) -> np.ndarray:
    """Chebyshev polynomials T_0 .. T_degree of ``x``, with ``domain`` mapped to [-1, 1].

    Returns an array of shape ``x.shape + (degree + 1,)``: a smooth basis for backgrounds and
    envelopes in least-squares fits.
    """
    lo, hi = domain
    t = 2.0 * (np.asarray(x, dtype=np.float64) - lo) / max(hi - lo, 1e-12) - 1.0
    return np.polynomial.chebyshev.chebvander(t, degree)


def window_bounds(coordinate: np.ndarray, half_width: float) -> tuple[np.ndarray, np.ndarray]:
    """Index ranges ``[lo, hi)`` of the points within ``half_width`` of each point.

    ``coordinate`` must be non-decreasing.
    """
    coordinate = np.asarray(coordinate, dtype=np.float64)
    lo = np.searchsorted(coordinate, coordinate - half_width, side="left")
    hi = np.searchsorted(coordinate, coordinate + half_width, side="right")
    return lo, hi


def window_mean(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Mean of ``values[lo[i]:hi[i]]`` for each i (cumulative sums, O(n))."""
    cumulative = np.concatenate([[0.0], np.cumsum(np.asarray(values, dtype=np.float64))])
    return (cumulative[hi] - cumulative[lo]) / np.maximum(hi - lo, 1)


def local_correlation(a: np.ndarray, b: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Pearson correlation of ``a`` and ``b`` over the window ``[lo[i], hi[i])`` of each point.

    Windows with fewer than three points, or where either signal is flat, get 0.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    mean_a, mean_b = window_mean(a, lo, hi), window_mean(b, lo, hi)
    cov = window_mean(a * b, lo, hi) - mean_a * mean_b
    var_a = window_mean(a * a, lo, hi) - mean_a**2
    var_b = window_mean(b * b, lo, hi) - mean_b**2
    denominator = np.sqrt(np.clip(var_a, 0.0, None) * np.clip(var_b, 0.0, None))
    valid = (hi - lo >= 3) & (denominator > 1e-12 * (np.abs(mean_a * mean_b) + 1e-300))
    out = np.zeros_like(mean_a)
    out[valid] = cov[valid] / denominator[valid]
    return out


def first_drop(values: np.ndarray, threshold: float) -> int:
    """Number of leading entries of ``values`` that are at least ``threshold``."""
    below = np.nonzero(np.asarray(values) < threshold)[0]
    return int(below[0]) if len(below) else len(values)
