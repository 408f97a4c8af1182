"""Reference-free 2D classification (built-in backend): multi-reference alignment with hard k-means.

The references start from a k-means clustering of rotation-invariant features (the amplitude of the
angular Fourier transform of every polar ring), each cluster's most typical particle being the seed
its members are aligned to. Then, every iteration, each particle is aligned to every reference
(rotation by polar FFT correlation, translation by FFT cross-correlation, all within a soft circular
mask of ``mask_diameter_A``), assigned to the best one, and the references are re-averaged from the
aligned particles. Empty classes are re-seeded with the worst-fitting particles, and references are
re-centred on their centre of mass each iteration (as RELION does) so that classes do not drift.

The mask matters: only density inside it takes part in the alignment, and the averages are masked
by it. A mask much larger than the particle lets neighbouring particles in (the paper's "clip"
classes); one much smaller cuts the particle.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import fft as sfft
from scipy import sparse
from scipy.cluster.vq import kmeans2

from screen.processing.alignment import (
    AlignmentGrid,
    align_to_references,
    alignment_grid,
    centre_of_mass_px,
    filtered_masked,
    polar_transform,
    rotational_average_2d,
    shift_images,
    transform_images,
)
from screen.stages.base import Backend
from screen.stages.records import ClassAverages, ParticleStack


@dataclass(frozen=True)
class Classify2DParams:
    """Parameters of the built-in 2D classification.

    Parameters
    ----------
    n_classes
        Number of classes; ``None`` picks ``max(5, min(50, n_particles // 40))``. Never more than
        the number of particles.
    n_iterations
        Maximum number of align-assign-average iterations.
    angular_step_deg
        Coarsest in-plane angular sampling (finer sampling is used where the mask is large).
    max_shift_fraction
        Largest translation searched, as a fraction of the box size.
    lowpass_A
        Resolution (Å) the images are low-passed to for alignment; ``None`` uses
        ``max(4, box / 16)`` pixels. The averages themselves are not filtered.
    n_candidates
        Best (reference, angle) pairs of each particle refined by the translational search.
    min_changed_fraction
        Stop early (after three iterations) once fewer particles than this change class.
    noise_corrected
        Score particles against each class average's signal, not its signal plus noise
        (`screen.processing.alignment.prepare_references`): with plain normalised correlation a
        class with many particles has the least noise and so correlates best with every
        particle, and grows (one class took 731 of 1,051 particles of a near-uniform simulated
        condition, bench/view_flags.py). One particle's noise is measured as the median power of
        the particles' residuals to their class averages (no noise model); an average of n
        particles holds 1/n of it. Off by default (``screen run --noise-corrected-2d``): with it
        the demo's best condition (gbg_6uM, 10 micrographs per condition) gets a "two particle
        sizes" verdict and so a no-go; the verdict rules have not been re-checked on its
        classes yet (bench/README.md).
    seed
        Seed of the random number generator (k-means seeding).
    """

    n_classes: int | None = None
    n_iterations: int = 12
    angular_step_deg: float = 6.0
    max_shift_fraction: float = 0.1
    lowpass_A: float | None = None
    n_candidates: int = 3
    min_changed_fraction: float = 0.005
    noise_corrected: bool = False
    seed: int = 0


def default_n_classes(n_particles: int) -> int:
    """Adaptive class count: about 80 particles per class, between 5 and 50 classes."""
    return max(5, min(50, n_particles // 80))


def classify_2d(
    stack: ParticleStack, mask_diameter_A: float, params: Classify2DParams
) -> ClassAverages:
    """Reference-free 2D classification of a particle stack at one mask diameter.

    Parameters
    ----------
    stack
        Extracted particles ``(n, box, box)``, roughly centred.
    mask_diameter_A
        Diameter of the soft circular mask, in Å.
    params
        Classification parameters.

    Returns
    -------
    ClassAverages
        Masked class averages sorted by particle count (largest first), each particle's class and
        the in-plane transform (``psi_deg``, ``shift_px``) that aligns it to its class average, as
        defined in ``screen.processing.alignment``.
    """
    images = np.asarray(stack.images, dtype=np.float32)
    n, box = images.shape[0], images.shape[-1]
    pixel_size_A = float(stack.pixel_size_A)
    if n == 0:
        return _result(
            np.zeros((0, box, box), np.float32),
            np.zeros(0, int),
            np.zeros(0),
            np.zeros((0, 2)),
            mask_diameter_A,
            pixel_size_A,
        )
    images = images - images.mean(axis=(-2, -1), keepdims=True)
    k = max(1, min(params.n_classes or default_n_classes(n), n))
    lowpass_px = (
        max(4.0, box / 16.0) if params.lowpass_A is None else params.lowpass_A / pixel_size_A
    )
    grid = alignment_grid(
        box,
        mask_diameter_A / pixel_size_A,
        params.angular_step_deg,
        params.max_shift_fraction * box,
        lowpass_px,
        params.n_candidates,
    )
    rng = np.random.default_rng(params.seed)
    contrast = _contrast_sign(images, grid)

    # The first iteration's polar search is centred on the box: picks are roughly centred, and
    # the shifts that aligned particles to their (uncentred) seeds proved a worse start.
    references, counts, first = _initial_references(images, k, grid, rng)
    noise = None
    if params.noise_corrected:
        noise = _reference_noise_power(images, *first, references, counts, grid)
    shift = np.zeros((n, 2))
    labels = np.full(n, -1)
    n_iterations = max(1, params.n_iterations)
    for iteration in range(n_iterations):
        alignment = align_to_references(
            images, references, grid, start_shift_px=shift, n_passes=1, noise_power=noise
        )
        new_labels = _reseed_empty(alignment.reference, alignment.score, k)
        changed = float(np.mean(new_labels != labels))
        labels, psi, shift = new_labels, alignment.psi_deg, alignment.shift_px
        averages, counts = _class_averages(images, labels, psi, shift, k)
        last = iteration == n_iterations - 1
        if last or (iteration >= 2 and changed < params.min_changed_fraction):
            break
        if params.noise_corrected:
            noise = _reference_noise_power(images, labels, psi, shift, averages, counts, grid)
        references = _centred(averages, contrast, grid)

    keep = np.flatnonzero(counts > 0)
    order = keep[np.argsort(-counts[keep], kind="stable")]
    relabel = np.full(k, -1)
    relabel[order] = np.arange(len(order))
    return ClassAverages(
        averages=(averages[order] * grid.mask).astype(np.float32),
        assignments=relabel[labels],
        counts=counts[order].astype(int),
        mask_diameter_A=float(mask_diameter_A),
        pixel_size_A=pixel_size_A,
        psi_deg=np.asarray(psi, dtype=np.float64),
        shift_px=np.asarray(shift, dtype=np.float64),
    )


BACKEND = Backend(
    stage="classify2d",
    name="builtin",
    version="3",
    params_type=Classify2DParams,
    compute=classify_2d,
)


def _result(averages, assignments, psi, shift, mask_diameter_A, pixel_size_A) -> ClassAverages:
    return ClassAverages(
        averages=averages,
        assignments=assignments,
        counts=np.zeros(len(averages), int),
        mask_diameter_A=float(mask_diameter_A),
        pixel_size_A=pixel_size_A,
        psi_deg=psi,
        shift_px=shift,
    )


def _lowpassed(images: np.ndarray, grid: AlignmentGrid) -> np.ndarray:
    box = grid.box_px
    return sfft.irfft2(sfft.rfft2(images, workers=-1) * grid.lowpass, s=(box, box), workers=-1)


def _contrast_sign(images: np.ndarray, grid: AlignmentGrid) -> float:
    """+1 if particles are brighter than their surroundings on average, -1 if darker."""
    profile = rotational_average_2d(_lowpassed(images.mean(axis=0, keepdims=True), grid))[0]
    radius = np.hypot(*(np.mgrid[0 : grid.box_px, 0 : grid.box_px] - grid.box_px // 2))
    r_mask = grid.radii_px[-1]
    inner = profile[radius <= 0.4 * r_mask].mean()
    outer = profile[(radius > 0.8 * r_mask) & (radius <= r_mask)]
    outer_mean = outer.mean() if outer.size else 0.0
    return 1.0 if inner >= outer_mean else -1.0


def _invariant_features(images: np.ndarray, grid: AlignmentGrid, n_harmonics: int = 12):
    """Rotation-invariant features: |angular FFT| of every other polar ring of the low-passed images."""
    polar = polar_transform(_lowpassed(images, grid), grid.polar, len(grid.radii_px))
    amplitude = np.abs(sfft.rfft(polar[:, ::2], axis=-1, workers=-1))[:, :, :n_harmonics]
    radii = grid.radii_px[::2]
    centre = grid.box_px // 2
    ring_mask = np.interp(radii, np.arange(centre), grid.mask[centre, centre:])
    weight = np.sqrt(radii) * ring_mask
    return (amplitude * weight[None, :, None]).reshape(len(images), -1)


def _initial_references(images, k, grid: AlignmentGrid, rng: np.random.Generator):
    """Cluster rotation-invariant features, then average each cluster aligned to its medoid."""
    n = len(images)
    if k == 1:
        seeds = np.array([0])
        labels = np.zeros(n, int)
    else:
        features = _invariant_features(images, grid)
        with warnings.catch_warnings():  # empty clusters are handled below
            warnings.simplefilter("ignore", UserWarning)
            centroids, labels = kmeans2(features.astype(np.float64), k, minit="++", seed=rng)
        seeds = np.empty(k, int)
        taken = np.zeros(n, bool)
        for c in range(k):
            members = np.flatnonzero(labels == c)
            if members.size == 0:
                members = np.flatnonzero(~taken)
                labels[members[0]] = c
            dist = ((features[members] - centroids[c]) ** 2).sum(axis=1)
            seeds[c] = members[np.argmin(dist)]
            taken[seeds[c]] = True
    psi, shift = np.zeros(n), np.zeros((n, 2))
    for c in range(k):
        members = np.flatnonzero(labels == c)
        alignment = align_to_references(images[members], images[seeds[c]][None], grid)
        psi[members], shift[members] = alignment.psi_deg, alignment.shift_px
    averages, counts = _class_averages(images, labels, psi, shift, k)
    return averages, counts, (labels, psi, shift)


def _reference_noise_power(images, labels, psi, shift, averages, counts, grid, chunk=1024):
    """Noise power in each class average after the references' filter and mask.

    One particle's noise is the median power of its residual to its class average (aligned,
    filtered, masked; times n / (n - 1), as the average contains the particle), measured on
    the particles themselves so that no noise model is assumed; an average of n particles
    holds 1/n of it. Classes of one particle get the residual's level unchanged.
    """
    residuals = np.empty(len(images))
    filtered_averages = filtered_masked(averages, grid)
    for start in range(0, len(images), chunk):
        stop = min(start + chunk, len(images))
        aligned = transform_images(images[start:stop], psi[start:stop], shift[start:stop])
        diff = filtered_masked(aligned, grid) - filtered_averages[labels[start:stop]]
        residuals[start:stop] = (diff**2).sum(axis=(-2, -1))
    n = np.maximum(counts[labels], 2)
    one_particle = float(np.median(residuals * n / (n - 1)))
    return one_particle / np.maximum(counts, 1)


def _reseed_empty(labels: np.ndarray, score: np.ndarray, k: int) -> np.ndarray:
    """Give each empty class the worst-fitting particle of a class that has more than one."""
    labels = labels.copy()
    counts = np.bincount(labels, minlength=k)
    for empty in np.flatnonzero(counts == 0):
        donors = counts[labels] > 1
        if not donors.any():
            break
        candidate = np.flatnonzero(donors)[np.argmin(score[donors])]
        counts[labels[candidate]] -= 1
        labels[candidate] = empty
        counts[empty] = 1
    return labels


def _class_averages(images, labels, psi, shift, k, chunk: int = 2048):
    """Average the aligned images of each class; returns ``(averages, counts)``."""
    n, box = images.shape[0], images.shape[-1]
    sums = np.zeros((k, box * box), np.float64)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        aligned = transform_images(images[start:stop], psi[start:stop], shift[start:stop])
        onehot = sparse.csr_matrix(
            (np.ones(stop - start), (labels[start:stop], np.arange(stop - start))),
            shape=(k, stop - start),
        )
        sums += onehot @ aligned.reshape(stop - start, -1).astype(np.float64)
    counts = np.bincount(labels, minlength=k)
    averages = sums / np.maximum(counts, 1)[:, None]
    return averages.reshape(k, box, box).astype(np.float32), counts


def _centred(averages: np.ndarray, contrast: float, grid: AlignmentGrid) -> np.ndarray:
    """Shift each average so that its (contrast-corrected, masked) centre of mass is at the centre."""
    density = contrast * _lowpassed(averages, grid) * grid.mask
    com = centre_of_mass_px(density)
    length = np.hypot(com[:, 0], com[:, 1])
    limit = np.where(length > grid.max_shift_px, grid.max_shift_px / np.maximum(length, 1e-9), 1.0)
    return shift_images(averages, -com * limit[:, None])
