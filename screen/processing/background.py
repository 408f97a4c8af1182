"""The smooth background of a micrograph: a robust low-order polynomial surface.

Ice in a hole is rarely flat: it thickens towards the rim, so the grey level falls smoothly
across the field. Such a gradient is no contamination (sharp-edged dark objects) and no thick
ice (a whole field that received fewer electrons). :func:`smooth_background` fits it to the
field's block medians with a bisquare-weighted least-squares fit, so that particles,
contamination balls and carbon steps, which cover a minority of the blocks or are not smooth,
do not pull it; subtracting it leaves what lies on the gradient.
"""

from __future__ import annotations

import numpy as np

from screen.processing.filters import clip_outliers

BACKGROUND_ORDER = 2
"""Degree of the polynomial surface: a plane and a bowl or saddle (thicker ice towards one or both
sides of a hole). Higher orders start to follow large contamination patches."""

BACKGROUND_BLOCKS = 24
"""Blocks per side whose medians the surface is fitted to: coarse enough that a block holds many
particles (a block of a 4k frame at 1 Å/px is ~170 Å wide, wider at coarser pixels), fine
enough for a degree-2 surface."""

_BISQUARE_C = 4.685  # Tukey's bisquare constant: 95 % efficiency under Gaussian residuals
_ITERATIONS = 10
_BLOCK_SAMPLES = 4096


def _exponents(order: int) -> list[tuple[int, int]]:
    """The terms y^i x^j of a polynomial of degree ``order``, as (i, j), by degree."""
    return [(i, degree - i) for degree in range(order + 1) for i in range(degree + 1)]


def smooth_background(
    image: np.ndarray, order: int = BACKGROUND_ORDER, blocks: int = BACKGROUND_BLOCKS
) -> np.ndarray:
    """The micrograph's smooth background: a robust polynomial surface of degree ``order``.

    Parameters
    ----------
    image
        The micrograph (2D); hot and dead pixels are clipped first (`clip_outliers`).
    order
        Degree of the surface (2: plane plus quadratic terms).
    blocks
        The surface is fitted to the medians of ``blocks x blocks`` blocks (fewer where a side
        has fewer pixels), with Tukey bisquare weights on their residuals (iteratively
        reweighted), so that blocks under contamination or carbon weigh nothing.

    Returns
    -------
    ndarray
        The surface at every pixel, float32, the image's shape.
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"expected a 2D image, got shape {image.shape}")
    ny, nx = image.shape
    # Every step-th pixel of each row and column: a block's median from at most ~4,000 pixels
    # (a K3 frame's blocks hold 40,000), a tenth of the time.
    step = max(1, int(np.sqrt(ny * nx / blocks**2 / _BLOCK_SAMPLES)))
    sample = clip_outliers(image[::step, ::step].astype(np.float32))
    by, bx = max(sample.shape[0] // blocks, 1), max(sample.shape[1] // blocks, 1)
    my, mx = sample.shape[0] // by, sample.shape[1] // bx
    medians = np.median(
        sample[: my * by, : mx * bx]
        .reshape(my, by, mx, bx)
        .transpose(0, 2, 1, 3)
        .reshape(my, mx, -1),
        axis=2,
    )
    # block centres in coordinates -1..1 of the whole frame
    yc = ((np.arange(my) + 0.5) * by * step / ny) * 2 - 1
    xc = ((np.arange(mx) + 0.5) * bx * step / nx) * 2 - 1
    terms = _exponents(order)
    by_y, by_x = np.meshgrid(yc, xc, indexing="ij")
    design = np.stack([(by_y**i * by_x**j).ravel() for i, j in terms], axis=1)
    values = medians.ravel()
    weights = np.ones_like(values)
    coefficients = np.zeros(design.shape[1])
    for _ in range(_ITERATIONS):
        coefficients, *_ = np.linalg.lstsq(design * weights[:, None], values * weights, rcond=None)
        residuals = values - design @ coefficients
        scale = 1.4826 * float(np.median(np.abs(residuals)))
        if scale <= 0:
            break  # the surface passes through at least half of the blocks: done
        u = residuals / (_BISQUARE_C * scale)
        weights = np.where(np.abs(u) < 1, (1 - u**2) ** 2, 0.0)
    y = (((np.arange(ny) + 0.5) / ny) * 2 - 1).astype(np.float32)
    x = (((np.arange(nx) + 0.5) / nx) * 2 - 1).astype(np.float32)
    # separable: sum over i of y^i * P_i(x), P_i the terms with y^i (one pass per power of y)
    in_x = np.zeros((order + 1, nx), dtype=np.float32)
    for (i, j), coefficient in zip(terms, coefficients, strict=True):
        in_x[i] += np.float32(coefficient) * x**j
    surface = np.zeros((ny, nx), dtype=np.float32)
    for i, row in enumerate(in_x):
        surface += (y**i)[:, None] * row[None, :]
    return surface
