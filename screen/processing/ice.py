"""Crystalline ice seen in the power spectrum: Bragg reflections at 3.4-3.9 Å.

Vitreous ice scatters into a broad diffuse ring; crystalline ice (hexagonal or cubic, from slow
freezing, devitrification or frost) diffracts into sharp reflections: hexagonal ice (100) at
3.90 Å, (002) at 3.67 Å and (101) at 3.44 Å, cubic ice (111) at 3.67 Å: the ice spots and
rings that stand out of a CTF program's diagnostic spectrum of a crystalline micrograph, a domain
of a few hundred Å giving a spot about one frequency sample wide. Nothing else a cryo-EM micrograph holds is
periodic at 3.4-3.9 Å (protein and vitreous ice are amorphous; the gold of a grid diffracts at
2.35 Å), so such spots are crystalline ice whatever the detector, dose or export.

The micrograph is cut into tiles (a regular sample of at most ``max_tiles``, edges tapered); in
each tile's periodogram every sample of the band is divided by its radius's mean (a robust
estimate interpolated at the sample's radius: the Thon rings and the detector's and export's
transfer are the same along a radius, so they divide out), averaged over its 3 x 3 neighbourhood,
and a tile holds ice reflections when the largest such mean reaches ``min_spot_ratio`` (8). Without
reflections the samples are about exponential with mean 1, so a 3 x 3 mean of nine is about
Gamma(9, 1/9), whose largest value over a tile's few thousand band samples lies near 3: measured
3.1-3.6 on shot noise and smoothed noise, 3.2-5.2 on the twelve real EMPIAR-10017 exports
(denoised 8-bit JPEG at 1.77 Å/px; ``tests/test_real_examples.py``). 8 is chosen from those
statistics, not from any simulated micrograph. Samples within a few degrees of the pixel axes
(gain stripes, row artefacts, the tile's own edges) and near the lattice of an 8 x 8 block
transform (JPEG exports: artefacts at multiples of 1/8 cycle per pixel) are left out.

Only where the pixel size resolves the band (finer than about 1.9 Å/px) can this be measured;
elsewhere the result is ``None`` and crystalline ice is judged from the image (MicAssess).
`screen simulate`'s crystalline domains carry fringes too faint to reach the limit once its
radiation-damage and B-factor envelopes have acted (3 x 3 means 2.9-3.8 on the eleven
crystalline micrographs of ``bench/crystalline_ice.py``, 1.0-1.8 Å/px): the check is for real
crystalline ice and is tested on added lattices (``tests/processing/test_ice.py``), not measured
on the simulator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

ICE_BAND_A: tuple[float, float] = (3.3, 4.05)
"""d-spacings (Å) searched: hexagonal ice's 3.90, 3.67 and 3.44 Å and cubic ice's 3.67 Å."""

NYQUIST_SHARE = 0.95
"""The band is searched up to this share of the Nyquist frequency (the last samples are aliased)."""

AXIS_EXCLUSION_DEG = 3.0
"""Samples within this angle of the pixel axes are left out (stripes and row artefacts)."""

BLOCK_PERIOD_PX = 8
"""Period (pixels) of a block transform whose artefacts are left out (JPEG's 8 x 8 blocks)."""

REFERENCE_RING_A: tuple[float, float] = (6.6, 8.1)
"""d-spacings (Å) of the ring at twice the band's spacing, against which the band's power is read."""

MIN_BAND_SHARE = 0.01
"""A tile's band must hold at least this share of the reference ring's median power (after the
high-pass, which passes the band about four times more than this ring) for its reflections to
be read. Measured 2026-12-06 (session script, per-tile medians): the twelve denoised EMPIAR-10017
JPEG exports 1.3-1.7, the contaminated real micrograph 1.3-2.1; one export smoothed again by a
Gaussian of 0.5 / 0.7 / 1 / 1.5 / 2 px: 0.70 / 0.13 / 5e-3 / 3e-6 / 5e-8. From 1.5 px on the
band held only rounding residue and near-axis streaks, read as reflections on every tile
(ratio 8-13,000: every good export "contaminated"). White shot noise under a detector's MTF
and a CTF envelope does not fall a hundredfold over one octave, so a raw micrograph stays far
above 0.01 whatever the detector; only a low-pass past 4 Å brings a tile under it."""

HIGH_PASS_SIGMA_A = 1.4
"""Width (Å) of the Gaussian whose smoothed copy is subtracted from each tile: it passes at
least 90 % of the band's amplitude (1 - exp(-2 pi^2 sigma^2 k^2) at 1/4.05 Å) and removes what
lies far below it. Set from the band, not measured on any micrograph."""


@dataclass(frozen=True)
class IceReflections:
    """Crystalline-ice reflections found in a micrograph's tiles.

    Attributes
    ----------
    tile_share
        Share of the tiles read that hold at least one reflection (about the share of the
        field under crystalline ice, for domains larger than a tile).
    tiles
        Number of tiles read (sampled tiles whose band was transmitted, ``MIN_BAND_SHARE``).
    strongest_ratio
        Largest 3 x 3 mean of a band sample over its radius's median, over all tiles.
    strongest_spacing_A
        d-spacing (Å) where it lies.
    """

    tile_share: float
    tiles: int
    strongest_ratio: float
    strongest_spacing_A: float


def measurable(pixel_size_A: float) -> bool:
    """Whether the pixel size resolves the ice band's coarse end (3.9-4.05 Å)."""
    return 1.0 / ICE_BAND_A[1] < NYQUIST_SHARE / (2.0 * pixel_size_A)


def ice_reflections(
    image: np.ndarray,
    pixel_size_A: float,
    tile_px: int = 256,
    max_tiles: int = 24,
    min_spot_ratio: float = 8.0,
) -> IceReflections | None:
    """Crystalline-ice reflections in a micrograph (``None`` where the pixel size cannot show them).

    Parameters
    ----------
    image
        The micrograph (any intensity scale).
    pixel_size_A
        Its pixel size.
    tile_px
        Side of the tiles (smaller for frames under two tiles across).
    max_tiles
        At most this many tiles, spread evenly over the frame.
    min_spot_ratio
        A tile holds a reflection where a 3 x 3 mean of band samples over their radius's median
        reaches this (see the module's notes for why 8).
    """
    if not measurable(pixel_size_A):
        return None
    frame = np.asarray(image)
    tile = int(min(tile_px, 2 ** int(np.log2(max(min(frame.shape) // 2, 16)))))
    band, radius_bin, n_bins = _band_samples(tile, pixel_size_A)
    if not band.any():
        return None
    # Edges tapered over a tenth of the tile on each side: without it a smooth (denoised)
    # export's strong low frequencies leak into the band; a full taper would correlate
    # neighbouring samples and break the statistics of the 3 x 3 mean.
    from scipy import fft as sfft
    from scipy.signal.windows import tukey  # imported here: scipy.signal is slow to import

    taper = tukey(tile, alpha=0.2).astype(np.float32)
    window = np.outer(taper, taper)
    corners = _tile_corners(frame.shape, tile, max_tiles)
    band_rows, band_cols = np.nonzero(band)
    bins = radius_bin[band]
    radii = np.hypot(np.fft.fftfreq(tile)[band_rows], np.fft.rfftfreq(tile)[band_cols]) * tile
    patches = np.stack([frame[y : y + tile, x : x + tile] for y, x in corners]).astype(np.float32)
    # Low frequencies taken out before the taper (a Gaussian high-pass that keeps the band):
    # a smoothed export's band lies up to a billion times below its low frequencies, and the
    # taper's side lobes would carry those into the band as streaks that read as spots.
    sigma_px = HIGH_PASS_SIGMA_A / pixel_size_A
    patches -= ndi.gaussian_filter(patches, (0.0, sigma_px, sigma_px), truncate=3.0)
    # Each row's and column's mean taken out too: stripes along the pixel axes (a gain
    # reference's, a detector's rows) lie on the axes, which are left out, but the taper's
    # side lobes spread them to the samples beside (ratio 38 at 3.9 Å on a real export with
    # gain-like column stripes, 2026-12-06).
    patches -= patches.mean(axis=1, keepdims=True)
    patches -= patches.mean(axis=2, keepdims=True)
    patches *= window
    power = np.abs(sfft.rfft2(patches, axes=(1, 2), workers=-1)) ** 2
    # A tile whose band lies far below the ring at twice its spacing was low-passed (smoothed
    # or denoised past 4 Å): its band holds rounding and artefacts, not ice; it is left out.
    reference = _ring(tile, pixel_size_A, REFERENCE_RING_A)
    transmitted = np.median(power[:, band_rows, band_cols], axis=1) >= MIN_BAND_SHARE * np.median(
        power[:, reference], axis=1
    )
    if not transmitted.any():
        return None
    power = power[transmitted]
    samples = power[:, band_rows, band_cols]  # (tiles, band samples)
    # The radius's mean, estimated robustly (median / ln 2 for exponential samples) per radius
    # bin and interpolated (in log) at each sample's own radius: the spectrum can fall by a
    # large factor across one bin near Nyquist (a denoised or smoothed export).
    medians = _medians_by_bin(samples, bins, n_bins)
    ratio = np.zeros_like(power)
    for t in range(len(power)):
        filled = np.flatnonzero(medians[t] > 0)
        expected = np.exp(np.interp(radii, filled, np.log(medians[t, filled]))) / np.log(2.0)
        ratio[t, band_rows, band_cols] = samples[t] / np.maximum(expected, 1e-30)
    smoothed = _mean_3x3(ratio)[:, band_rows, band_cols]
    strongest = smoothed.max(axis=1)
    with_ice = int((strongest >= min_spot_ratio).sum())
    t, k = np.unravel_index(int(np.argmax(smoothed)), smoothed.shape)
    best_ratio = float(smoothed[t, k])
    fy, fx = np.fft.fftfreq(tile)[band_rows[k]], np.fft.rfftfreq(tile)[band_cols[k]]
    best_spacing_A = float(pixel_size_A / np.hypot(fx, fy))
    return IceReflections(
        tile_share=with_ice / len(power),
        tiles=len(power),
        strongest_ratio=best_ratio,
        strongest_spacing_A=best_spacing_A,
    )


def _ring(tile: int, pixel_size_A: float, spacings_A: tuple[float, float]) -> np.ndarray:
    """Mask of a ring of d-spacings (Å) on a tile's rfft grid, the pixel axes left out."""
    fy = np.fft.fftfreq(tile)[:, None]
    fx = np.fft.rfftfreq(tile)[None, :]
    k_A = np.hypot(fx, fy) / pixel_size_A
    angle = np.degrees(np.arctan2(np.abs(fy), fx))
    return (
        (k_A >= 1.0 / spacings_A[1])
        & (k_A <= 1.0 / spacings_A[0])
        & (angle > AXIS_EXCLUSION_DEG)
        & (angle < 90.0 - AXIS_EXCLUSION_DEG)
    )


def _band_samples(tile: int, pixel_size_A: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Mask of the band's samples on a tile's rfft grid, their radius bins and the bin count."""
    fy = np.fft.fftfreq(tile)[:, None]  # cycles per pixel
    fx = np.fft.rfftfreq(tile)[None, :]
    finest_A = max(ICE_BAND_A[0], 2.0 * pixel_size_A / NYQUIST_SHARE)
    band = _ring(tile, pixel_size_A, (finest_A, ICE_BAND_A[1]))
    block = 1.0 / BLOCK_PERIOD_PX
    near_x = np.abs(fx / block - np.round(fx / block)) * block * tile <= 2.5
    near_y = np.abs(fy / block - np.round(fy / block)) * block * tile <= 2.5
    band &= ~(near_x & near_y)
    radius_bin = np.round(np.hypot(fx, fy) * tile).astype(int)
    return band, radius_bin, int(radius_bin.max()) + 1


def _medians_by_bin(values: np.ndarray, bins: np.ndarray, n_bins: int) -> np.ndarray:
    """Median of each row of ``values`` (tiles, samples) within each integer bin (empty bins 0)."""
    order = np.argsort(bins, kind="stable")
    sorted_bins = bins[order]
    starts = np.searchsorted(sorted_bins, np.arange(n_bins), side="left")
    counts = np.searchsorted(sorted_bins, np.arange(n_bins), side="right") - starts
    grouped = values[:, order]
    for b in np.flatnonzero(counts):  # sort each bin's samples, all tiles at once
        grouped[:, starts[b] : starts[b] + counts[b]].sort(axis=1)
    low = starts + np.maximum(counts - 1, 0) // 2
    high = starts + counts // 2
    medians = 0.5 * (
        grouped[:, np.minimum(low, grouped.shape[1] - 1)]
        + grouped[:, np.minimum(high, grouped.shape[1] - 1)]
    )
    return np.where(counts > 0, medians, 0.0)


def _mean_3x3(values: np.ndarray) -> np.ndarray:
    """Mean over each sample's 3 x 3 neighbourhood, per tile (the frequency rows wrap)."""
    from scipy.ndimage import uniform_filter

    return uniform_filter(values, size=(1, 3, 3), mode=("nearest", "wrap", "nearest"))


def _tile_corners(shape: tuple[int, ...], tile: int, max_tiles: int) -> list[tuple[int, int]]:
    """Top-left corners of at most ``max_tiles`` tiles on an even grid over the frame."""
    ny, nx = shape[0] // tile, shape[1] // tile
    ys = np.arange(ny) * tile + (shape[0] - ny * tile) // 2
    xs = np.arange(nx) * tile + (shape[1] - nx * tile) // 2
    corners = [(int(y), int(x)) for y in ys for x in xs]
    if len(corners) > max_tiles:
        pick = np.round(np.linspace(0, len(corners) - 1, max_tiles)).astype(int)
        corners = [corners[i] for i in pick]
    return corners
