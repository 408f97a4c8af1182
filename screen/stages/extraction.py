"""Particle extraction: phase flip, Fourier-crop, cut boxes, invert, normalise (RELION style).

1. The micrograph's contrast (``image / mean - 1``) is Fourier-cropped to about
   ``target_pixel_size_A`` (3.5–4 Å in Li et al. 2020).
2. It is phase-flipped with the fitted CTF (multiplied by ``sign(-CTF)`` in Fourier space: every
   frequency then shows protein dark, as at low frequency). Cropping first gives the same result
   for the kept frequencies at a fraction of the cost.
3. Boxes of ``box_diameters`` x the diameter (rounded up to an even size) are cut around the
   picks; parts outside the micrograph are filled with the background (0 after step 4).
4. Contrast is inverted so protein is white (RELION's convention), and each box is normalised
   to zero mean and unit standard deviation outside a circle of the particle diameter.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from screen.processing.boxes import circular_mask, extract_boxes
from screen.processing.ctf import CtfParams, ctf_2d
from screen.processing.filters import (
    apply_transfer,
    bin_to_pixel_size,
    clip_outliers,
    relative_contrast,
)
from screen.processing.fourier import fourier_crop
from screen.stages.base import Backend
from screen.stages.records import CtfFit, Optics, ParticleStack, Picks


@dataclass(frozen=True)
class ExtractParams:
    """Parameters of particle extraction.

    Attributes
    ----------
    target_pixel_size_A
        Pixel size of the extracted particles (never finer than the micrograph's).
    box_diameters
        Box size in particle diameters (rounded up to an even number of pixels); two diameters
        leave room for 2D masks up to twice the diameter.
    min_box_px
        Smallest box.
    phase_flip
        Phase-flip with the CTF before cutting boxes.
    background_diameters
        Pixels outside a circle of this many diameters give each box's mean and std.
    """

    target_pixel_size_A: float = 3.75
    box_diameters: float = 2.0
    min_box_px: int = 32
    phase_flip: bool = True
    background_diameters: float = 1.0


def box_size_px(diameter_A: float, pixel_size_A: float, params: ExtractParams) -> int:
    """Even box size (pixels at ``pixel_size_A``) of ``params.box_diameters`` diameters."""
    size = int(np.ceil(params.box_diameters * diameter_A / pixel_size_A / 2.0)) * 2
    return max(size, params.min_box_px + params.min_box_px % 2)


def ctf_params(ctf: CtfFit, optics: Optics) -> CtfParams:
    """The CTF model of a fit with the session's optics."""
    return CtfParams(
        defocus_u_A=ctf.defocus_u_A,
        defocus_v_A=ctf.defocus_v_A,
        astigmatism_angle_deg=ctf.astigmatism_angle_deg,
        voltage_kV=optics.voltage_kV,
        cs_mm=optics.cs_mm,
        amplitude_contrast=optics.amplitude_contrast,
    )


def phase_flip(image: np.ndarray, pixel_size_A: float, ctf: CtfFit, optics: Optics) -> np.ndarray:
    """Multiply the image's spectrum by ``sign(-CTF)`` (protein dark at every frequency)."""
    params = ctf_params(ctf, optics)
    flip = np.where(ctf_2d(image.shape, pixel_size_A, params) > 0, -1.0, 1.0).astype(np.float32)
    return apply_transfer(image, flip)


def wiener_correct(
    image: np.ndarray, pixel_size_A: float, ctf: CtfFit, optics: Optics, epsilon: float
) -> np.ndarray:
    """Multiply the image's spectrum by ``-CTF (1 + epsilon) / (CTF^2 + epsilon)`` (protein dark).

    Where ``|CTF|`` is 1 the gain is 1, as the phase flip's; near the CTF's zeros, where the
    flip passes noise at full weight, it falls to 0. ``epsilon`` is relative to the CTF's own
    scale (its largest square is 1), not to any image statistic.
    """
    ctf_values = ctf_2d(image.shape, pixel_size_A, ctf_params(ctf, optics))
    gain = -ctf_values * (1.0 + epsilon) / (ctf_values * ctf_values + epsilon)
    return apply_transfer(image, gain.astype(np.float32))


def normalise_boxes(boxes: np.ndarray, background_radius_px: float) -> np.ndarray:
    """Zero mean and unit standard deviation outside ``background_radius_px``, per box."""
    outside = ~circular_mask(boxes.shape[-1], background_radius_px)
    if outside.sum() < 8:
        outside = np.ones_like(outside)
    values = boxes[:, outside]
    mean = values.mean(axis=1)
    std = values.std(axis=1)
    std = np.where(std > 0, std, 1.0)
    return ((boxes - mean[:, None, None]) / std[:, None, None]).astype(np.float32)


def extract_particles(
    image: np.ndarray,
    picks: Picks,
    pixel_size_A: float,
    diameter_A: float,
    ctf: CtfFit | None,
    optics: Optics,
    params: ExtractParams,
) -> ParticleStack:
    """Extract normalised, phase-flipped particle boxes (protein white) around picks.

    Parameters
    ----------
    image
        Micrograph (particles dark).
    picks
        Positions in the micrograph's pixels.
    pixel_size_A
        The micrograph's pixel size.
    diameter_A
        Particle diameter (sets the box and the normalisation circle).
    ctf
        CTF fit of this micrograph (used when ``params.phase_flip``; None: no fit, not flipped).
    optics
        Voltage, Cs and amplitude contrast of the session.
    params
        Extraction parameters.

    Returns
    -------
    ParticleStack
        ``(n, box, box)`` float32 images at the binned pixel size; ``micrograph_index`` is zero
        (the pipeline sets it); ``x_px``/``y_px`` are the picks in the micrograph's pixels.

    Hot and dead pixels (the darkest and brightest 0.05 %) are clipped first
    (`screen.processing.filters.clip_outliers`): one in a box would set its normalisation.
    """
    image = clip_outliers(image)
    contrast = relative_contrast(image, level=float(image.mean()))
    binned, binned_px = bin_to_pixel_size(contrast, pixel_size_A, params.target_pixel_size_A)
    if params.phase_flip and ctf is not None:  # after cropping: the same frequencies, less cost
        binned = phase_flip(binned, binned_px, ctf, optics)
    box_px = box_size_px(diameter_A, binned_px, params)
    scale_x = binned.shape[1] / image.shape[1]
    scale_y = binned.shape[0] / image.shape[0]
    boxes = -extract_boxes(
        binned, picks.x_px * scale_x, picks.y_px * scale_y, box_px, fill=float(binned.mean())
    )
    radius_px = 0.5 * params.background_diameters * diameter_A / binned_px
    images = normalise_boxes(boxes, radius_px) if len(boxes) else boxes
    return ParticleStack(
        images=images,
        pixel_size_A=binned_px,
        micrograph_index=np.zeros(len(picks), dtype=np.int64),
        x_px=np.asarray(picks.x_px, dtype=np.float64),
        y_px=np.asarray(picks.y_px, dtype=np.float64),
    )


def binned_stack(stack: ParticleStack, max_box_px: int) -> ParticleStack:
    """The stack Fourier-binned to at most ``max_box_px`` (2D cost grows with the box squared)."""
    box = stack.images.shape[-1]
    if box <= max_box_px:
        return stack
    size = max_box_px // 2 * 2
    images = np.stack([fourier_crop(image, (size, size)) for image in stack.images])
    return dataclasses.replace(stack, images=images, pixel_size_A=stack.pixel_size_A * box / size)


def stack_subset(stack: ParticleStack, limit: int, seed: int) -> tuple[ParticleStack, np.ndarray]:
    """At most ``limit`` particles of ``stack`` drawn at random (sorted), and their indices."""
    n = len(stack.images)
    if n <= limit:
        return stack, np.arange(n)
    chosen = np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))
    return (
        ParticleStack(
            stack.images[chosen],
            stack.pixel_size_A,
            stack.micrograph_index[chosen],
            stack.x_px[chosen],
            stack.y_px[chosen],
        ),
        chosen,
    )


def picked_stack(
    micrographs: list[np.ndarray],
    ctfs: list[CtfFit],
    optics: Optics,
    diameter_A: float,
    pick_params,
    params: ExtractParams,
) -> ParticleStack | None:
    """Pick every micrograph at ``diameter_A`` and extract one stack (None without a pick).

    ``pick_params`` are `screen.stages.picking.PickParams`; ``micrograph_index`` of the stack
    indexes ``micrographs``. `screen run` does the same with caching and per-micrograph errors.
    """
    from screen.stages.picking import pick_particles

    parts = []
    for m, (image, ctf) in enumerate(zip(micrographs, ctfs, strict=True)):
        picks = pick_particles(image, optics.pixel_size_A, diameter_A, pick_params)
        if len(picks) == 0:
            continue
        stack = extract_particles(
            image, picks, optics.pixel_size_A, diameter_A, ctf, optics, params
        )
        parts.append(dataclasses.replace(stack, micrograph_index=np.full(len(picks), m)))
    if not parts:
        return None
    return ParticleStack(
        np.concatenate([p.images for p in parts]),
        parts[0].pixel_size_A,
        np.concatenate([p.micrograph_index for p in parts]),
        np.concatenate([p.x_px for p in parts]),
        np.concatenate([p.y_px for p in parts]),
    )


BACKEND = Backend(
    stage="extraction",
    name="builtin",
    version="3",  # 2: hot and dead pixels clipped; 3: contrast of zero-centred images
    params_type=ExtractParams,
    compute=extract_particles,
)
