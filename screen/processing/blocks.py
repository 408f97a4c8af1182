"""The 8 x 8 block grid of a JPEG export, seen in the pixels.

JPEG codes each 8 x 8 block of pixels on its own; at any but the highest quality the blocks'
edges stay as small steps between neighbouring pixels, always between the same columns (and
rows) of the grid. A micrograph that was once a JPEG keeps that grid after it is converted to
MRC or TIFF, and its finest frequencies hold the blocks' artefacts rather than the specimen's
(spots near 1/16-cycle multiples that read as crystalline-ice reflections at 3.8 Å). Nothing a
microscope, a detector, binning or a denoiser does favours one column in eight, so the grid is a
property of the export, whatever the grey-level scale.
"""

from __future__ import annotations

import numpy as np

BLOCK_PX = 8
"""JPEG's block side (pixels)."""

BLOCK_GRID_MIN = 1.1
"""A micrograph shows the grid where, along both axes, the mean step between neighbouring pixels
at one phase of the 8-px period exceeds every other phase's by this factor. Measured 2026-12-06
(session script): micrographs never JPEG-coded 1.000-1.047 (80 each of the simulator's clean,
NL-means-denoised, Fourier-binned, hot-pixel and randomised sets; the Magellon and contaminated
real micrographs under eleven transformations: binning, blur, noise, crops, gamma, 8-bit
stretch); the twelve EMPIAR-10017 exports 1.000-1.001 (a JPEG of high quality: no step shows,
and their band reads as no ice); the same exports coded again at quality 30 1.56-1.74; 21 of 80 of the simulator's JPEG
round trips (random quality) 1.1-1.67."""

_ROWS = 128
"""Rows (and columns) sampled evenly: each phase's mean step then averages ~5 x 10^4 differences."""


def block_grid_contrast(image: np.ndarray) -> float:
    """How much one phase of the 8-px period stands out in the neighbouring-pixel steps.

    Returns
    -------
    float
        The smaller, over the two axes, of the largest phase's mean absolute step over the
        second largest's (steps clipped at their 99th percentile, so that hot pixels and sharp
        edges do not favour a phase). About 1 for an image without a block grid; 1.0 for a frame
        under two blocks across.
    """
    frame = np.asarray(image)
    if min(frame.shape) < 2 * BLOCK_PX + 1:
        return 1.0
    contrasts = []
    rows = frame[:: max(1, frame.shape[0] // _ROWS)]
    # A central strip of whole columns (contiguous in memory; a strided one reads the frame)
    start = max(0, (frame.shape[1] - _ROWS) // 2)
    columns = frame[:, start : start + _ROWS]
    for sampled in (rows.astype(np.float32), columns.T.astype(np.float32)):
        steps = np.abs(np.diff(sampled, axis=1))
        limit = np.percentile(steps[:: max(1, steps.shape[0] // 32)], 99.0)
        steps = np.minimum(steps, limit)
        n = steps.shape[1] // BLOCK_PX * BLOCK_PX
        by_phase = np.sort(steps[:, :n].reshape(steps.shape[0], -1, BLOCK_PX).mean(axis=(0, 1)))
        contrasts.append(by_phase[-1] / by_phase[-2] if by_phase[-2] > 0 else 1.0)
    return float(min(contrasts))


def shows_block_grid(image: np.ndarray) -> bool:
    """Whether the micrograph was once JPEG-coded at a quality that left the block grid."""
    return block_grid_contrast(image) >= BLOCK_GRID_MIN
