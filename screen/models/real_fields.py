"""MicAssess training examples cut from real micrographs that a person kept.

The simulator cannot make what real particles, a real detector and a real denoiser make together:
``micassess_small_v3`` called 4 of the 12 dense, denoised EMPIAR-10017 exports of
``shared/real_examples`` "crowded", and no simulated good field reproduced that call (bench/README.md:
density, sharpening, denoiser looks and filled bodies were all tried). A kept real micrograph gives
two kinds of labelled example that need no simulator:

- **good**: a sub-field of random size, resampled (Fourier cropping) to a random pixel size, then
  through the same random chain of variation generators as the simulated training sets
  (:mod:`screen.simulate.domain`);
- **crowded**: the sum of 3-5 sub-fields of the same size from other places, each turned and
  flipped at random, then the same chain: several layers of real particles projected on one
  another, which is what the simulator's "crowded" micrographs are (3-5 packed layers, particles
  overlapping), with real particles and real texture. Without these the network could learn "a
  real-looking field is good" instead of "one layer of particles is good".

Layers add because a weak-phase image is linear in the projected density; a denoised 8-bit export
is a monotonic remapping of it, so its sum is only approximately a thicker layer's image, and each
layer is scaled by its own robust spread first so that none dominates.

All functions are pure (arrays, a spec and a ``numpy.random.Generator`` in; arrays out).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from screen.processing.fourier import fourier_crop
from screen.simulate.domain import DomainSpec, randomise

RealSource = tuple[np.ndarray, float]
"""A kept real micrograph and its pixel size (Å)."""


@dataclass(frozen=True)
class RealFieldSpec:
    """How many real-derived examples to cut, and from what range of fields.

    ``frame_px`` and ``pixel_size_A`` are those of the simulated training set (``TRAIN_SET_V3``:
    512-768 px at 2.5-7 Å/px), so that real and simulated examples reach the network alike; a
    field larger than its source is shrunk to fit.
    """

    n_good: int
    n_crowded: int
    seed: int
    frame_px: tuple[int, ...] = (512, 640, 768)
    pixel_size_A: tuple[float, float] = (2.5, 7.0)
    layers: tuple[int, int] = (3, 5)
    domain: DomainSpec | None = None


def sub_field(
    image: np.ndarray,
    pixel_size_A: float,
    frame_px: int,
    target_pixel_A: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, float]:
    """A random square of ``image`` resampled to about ``target_pixel_A``, ``frame_px`` on a side.

    The square covers ``frame_px * target_pixel_A`` Å; where the source is smaller (or
    ``target_pixel_A`` finer than the source's), the frame shrinks or the pixel coarsens to fit.
    Returns the field and its exact pixel size.
    """
    short_px = min(image.shape)
    target_pixel_A = max(target_pixel_A, pixel_size_A)
    side_px = int(round(frame_px * target_pixel_A / pixel_size_A))
    if side_px > short_px:
        side_px = short_px
        frame_px = min(frame_px, int(side_px * pixel_size_A / target_pixel_A))
    frame_px -= frame_px % 2
    y0 = int(rng.integers(0, image.shape[0] - side_px + 1))
    x0 = int(rng.integers(0, image.shape[1] - side_px + 1))
    square = np.asarray(image[y0 : y0 + side_px, x0 : x0 + side_px], np.float32)
    if frame_px < side_px:
        square = fourier_crop(square, (frame_px, frame_px))
    return square, pixel_size_A * side_px / square.shape[0]


def _robust_z(image: np.ndarray) -> np.ndarray:
    median = float(np.median(image))
    spread = 1.4826 * float(np.median(np.abs(image - median)))
    return (image - median) / max(spread, 1e-6)


def _turned(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    turned = np.rot90(image, int(rng.integers(0, 4)))
    return turned[:, ::-1] if rng.random() < 0.5 else turned


def stacked_layers(fields: Sequence[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Several fields of one shape, each scaled to unit robust spread and turned at random, summed."""
    shape = fields[0].shape
    if any(f.shape != shape for f in fields) or shape[0] != shape[1]:
        raise ValueError("stacked layers must be square fields of one shape")
    return np.sum([_turned(_robust_z(f), rng) for f in fields], axis=0).astype(np.float32)


def real_field_images(
    sources: Sequence[RealSource], spec: RealFieldSpec
) -> Iterator[tuple[np.ndarray, float, str]]:
    """Yield ``(image, pixel_size_A, reason)``: ``spec.n_good`` good fields, then the crowded ones.

    Good fields come from the sources in turn; each crowded field stacks layers from random
    sources (at one pixel size and frame). Every field then meets ``spec.domain``'s chain.
    """
    if not sources:
        raise ValueError("no real micrographs to cut training fields from")
    rng = np.random.default_rng([spec.seed, 11])
    for i in range(spec.n_good + spec.n_crowded):
        frame_px = int(rng.choice(spec.frame_px))
        target_A = float(rng.uniform(*spec.pixel_size_A))
        if i < spec.n_good:
            image, pixel_size_A = sources[i % len(sources)]
            field, pixel_A = sub_field(image, pixel_size_A, frame_px, target_A, rng)
            reason = "good"
        else:
            n_layers = int(rng.integers(spec.layers[0], spec.layers[1] + 1))
            picks = rng.integers(0, len(sources), n_layers)
            # One frame and pixel for every layer: the smallest source decides whether it fits.
            layers = []
            for j in picks:
                image, pixel_size_A = sources[int(j)]
                layer, pixel_A = sub_field(image, pixel_size_A, frame_px, target_A, rng)
                frame_px, target_A = layer.shape[0], pixel_A
                layers.append(layer)
            side = min(layer.shape[0] for layer in layers)
            field = stacked_layers([layer[:side, :side] for layer in layers], rng)
            reason = "crowded"
        if spec.domain is not None:
            field, pixel_A, _ = randomise(field, pixel_A, spec.domain, rng)
        yield field, pixel_A, reason


def real_labelled_set(sources: Sequence[RealSource], spec: RealFieldSpec):
    """The fields of :func:`real_field_images`, preprocessed as MicAssess reads them.

    Returns a :class:`screen.models.micassess.LabelledSet` (structure names ``"real"``).
    """
    from screen.models import micassess as ma

    images, spectra, reasons, pixel_sizes = [], [], [], []
    for field, pixel_A, reason in real_field_images(sources, spec):
        squares, field_spectra = ma.preprocess(field, pixel_A)
        images.append(squares[0])
        spectra.append(field_spectra)
        reasons.append(reason)
        pixel_sizes.append(pixel_A)
    reason_index = np.array(
        [ma.MICROGRAPH_REASONS.index(r) if r != "good" else -1 for r in reasons], dtype=int
    )
    return ma.LabelledSet(
        ma.Features.from_crops(images, spectra),
        reason_index < 0,
        reason_index,
        np.asarray(pixel_sizes, dtype=float),
        tuple("real" for _ in reasons),
    )
