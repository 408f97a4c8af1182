"""Fourier-space helpers: power spectra, rotational averages, Fourier cropping."""

from __future__ import annotations

import numpy as np
from scipy import fft as sfft


def periodogram_average(image: np.ndarray, tile_px: int = 512, overlap: float = 0.5) -> np.ndarray:
    """Average power spectrum of overlapping, mean-subtracted, tapered tiles (Welch's method).

    Returns the centred (fftshifted) 2D power spectrum of shape ``(tile_px, tile_px)``.
    Tiles reduce the speckle of a single periodogram, as CTFFIND does.
    """
    ny, nx = image.shape
    tile_px = min(tile_px, ny, nx)
    step = max(1, int(tile_px * (1.0 - overlap)))
    window = np.outer(np.hanning(tile_px), np.hanning(tile_px)).astype(np.float32)
    total = np.zeros((tile_px, tile_px), dtype=np.float64)
    count = 0
    for y0 in range(0, ny - tile_px + 1, step):
        for x0 in range(0, nx - tile_px + 1, step):
            tile = image[y0 : y0 + tile_px, x0 : x0 + tile_px].astype(np.float32)
            tile = (tile - tile.mean()) * window
            total += np.abs(sfft.fft2(tile, workers=-1)) ** 2
            count += 1
    return np.fft.fftshift(total / max(count, 1))


def rotational_average(
    power: np.ndarray, pixel_size_A: float, n_bins: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Rotational average of a centred square power spectrum.

    Returns
    -------
    k_A : ndarray
        Spatial frequency of each bin centre, in 1/Å (0 to Nyquist).
    values : ndarray
        Mean power in each ring.
    """
    n = power.shape[0]
    n_bins = n_bins or n // 2
    y, x = np.indices(power.shape)
    radius = np.hypot(x - n // 2, y - n // 2)
    ring = np.floor(radius / (n / 2) * n_bins).astype(int)
    keep = ring < n_bins
    sums = np.bincount(ring[keep], weights=power[keep], minlength=n_bins)
    counts = np.bincount(ring[keep], minlength=n_bins)
    values = sums / np.maximum(counts, 1)
    k_A = (np.arange(n_bins) + 0.5) / n_bins * (0.5 / pixel_size_A)
    return k_A, values


def fourier_crop(
    image: np.ndarray,
    shape: tuple[int, int],
    value_range: tuple[float, float] | None = None,
    block_rows: int = 512,
) -> np.ndarray:
    """Down-sample an image to ``shape`` by cropping its Fourier transform (no aliasing).

    ``value_range`` (low, high), when given, clips the pixel values first (as ``np.clip`` of the
    whole image would, without its full-size copy). The mean is preserved; the output is float32.
    """
    ny, nx = image.shape
    my, mx = shape
    if my > ny or mx > nx:
        raise ValueError(f"cannot Fourier-crop {image.shape} up to {shape}")
    # Separable, in blocks of rows: each block's transform along x, cropped to the kept columns,
    # then the transform along y of those columns only. The same numbers as a full 2D transform,
    # with half its work for a 2x crop and no full-size intermediate (a K3 frame's were 94-190 MB
    # each, whose fresh pages cost more than the transform on a 2-core VM).
    kept = mx // 2 + 1
    rows = np.empty((ny, kept), dtype=np.complex64)
    for y0 in range(0, ny, block_rows):
        block = np.asarray(image[y0 : y0 + block_rows], dtype=np.float32)
        if value_range is not None:
            block = np.clip(block, float(value_range[0]), float(value_range[1]))
        rows[y0 : y0 + block_rows] = sfft.rfft(block, axis=1, workers=-1)[:, :kept]
    spectrum = sfft.fft(rows, axis=0, workers=-1, overwrite_x=True)
    half_y = (my + 1) // 2
    cropped = np.concatenate([spectrum[:half_y], spectrum[ny - (my - half_y) :]])
    out = sfft.irfft2(cropped, s=(my, mx), workers=-1)
    return (out * (my * mx) / (ny * nx)).astype(np.float32)
