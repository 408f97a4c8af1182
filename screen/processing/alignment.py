"""In-plane alignment of particle images: masks, polar resampling, rotational and translational search.

Conventions (used throughout ``screen``'s 2D classification):

- Images are ``(..., box, box)`` arrays indexed ``[row, column]``; ``x`` is the column, ``y`` the row.
  The centre of rotation is pixel ``(box // 2, box // 2)``, as in RELION and the FFT convention.
- ``shift_images(image, (dx, dy))`` moves the content by ``+dx`` columns and ``+dy`` rows.
- ``rotate(image, psi)`` turns the content by ``psi`` degrees from the +x axis towards the +y axis
  (counter-clockwise in (x, y); clockwise on a screen that draws row 0 at the top).
- ``transform_images(images, psi_deg, shift_px)`` applies the shift first, then the rotation. This is
  the transform that *aligns* a particle to its reference: ``align_to_references`` models the
  particle as ``shift_images(rotate(reference, -psi_deg), -shift_px)`` and returns that transform.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import fft as sfft
from scipy import ndimage, sparse


def soft_circular_mask(box_px: int, diameter_px: float, edge_px: float = 3.0) -> np.ndarray:
    """Circular mask with a raised-cosine edge, centred on pixel ``(box // 2, box // 2)``.

    The mask is 1 inside ``diameter_px / 2``, falls to 0 over ``edge_px`` outside it, and is 0 beyond.
    A mask larger than the box is cut by the box.
    """
    radius = _radius_grid(box_px)
    r_in = diameter_px / 2.0
    ramp = np.clip((radius - r_in) / max(edge_px, 1e-6), 0.0, 1.0)
    return (0.5 * (1.0 + np.cos(np.pi * ramp))).astype(np.float32, copy=False)


def rotational_average_2d(images: np.ndarray) -> np.ndarray:
    """Rotationally symmetric version of each image (its radial profile, spread back over the box).

    Profiles are averaged over one-pixel rings about ``(box // 2, box // 2)`` and interpolated
    linearly at each pixel's radius.
    """
    images = np.asarray(images, dtype=np.float32)
    box = images.shape[-1]
    radius = _radius_grid(box).ravel()
    ring = np.rint(radius).astype(np.intp)
    counts = np.bincount(ring)
    mean_radius = np.bincount(ring, weights=radius) / counts
    flat = images.reshape(-1, box * box)
    out = np.empty_like(flat)
    for i, row in enumerate(flat):
        profile = np.bincount(ring, weights=row) / counts
        out[i] = np.interp(radius, mean_radius, profile)
    return out.reshape(images.shape)


def shift_images(images: np.ndarray, shift_px: np.ndarray) -> np.ndarray:
    """Shift each image by ``(dx, dy)`` pixels with a Fourier phase ramp (periodic boundary).

    ``shift_px`` has shape ``(2,)`` or ``(n, 2)`` for a stack of ``n`` images.
    """
    images = np.asarray(images, dtype=np.float32)
    box = images.shape[-1]
    spectra = sfft.rfft2(images, workers=-1)
    spectra = spectra * phase_ramp(box, np.asarray(shift_px, dtype=np.float64))
    return sfft.irfft2(spectra, s=(box, box), workers=-1).astype(np.float32, copy=False)


def phase_ramp(box_px: int, shift_px: np.ndarray) -> np.ndarray:
    """The rfft2-grid factor that shifts an image by ``(dx, dy)``; shape ``(..., box, box // 2 + 1)``."""
    shift_px = np.asarray(shift_px, dtype=np.float64)
    kx = np.fft.rfftfreq(box_px)
    ky = np.fft.fftfreq(box_px)
    ramp_x = np.exp(-2j * np.pi * kx * shift_px[..., 0, None]).astype(np.complex64, copy=False)
    ramp_y = np.exp(-2j * np.pi * ky * shift_px[..., 1, None]).astype(np.complex64, copy=False)
    return ramp_y[..., :, None] * ramp_x[..., None, :]


def transform_images(images: np.ndarray, psi_deg: np.ndarray, shift_px: np.ndarray) -> np.ndarray:
    """Shift each image by ``shift_px`` then rotate it by ``psi_deg`` (bilinear, zero outside).

    Parameters
    ----------
    images
        ``(n, box, box)`` or ``(box, box)``.
    psi_deg
        ``(n,)`` or scalar in-plane angles.
    shift_px
        ``(n, 2)`` or ``(2,)`` shifts ``(dx, dy)``.

    Returns
    -------
    ndarray
        The transformed images, float32, same shape as ``images``.
    """
    images = np.asarray(images, dtype=np.float32)
    single = images.ndim == 2
    stack = images[None] if single else images
    n, box, _ = stack.shape
    psi = np.broadcast_to(np.radians(np.asarray(psi_deg, dtype=np.float64)), (n,))
    shift = np.broadcast_to(np.asarray(shift_px, dtype=np.float64), (n, 2))
    centre = np.array([box // 2, box // 2], dtype=np.float64)
    out = np.empty_like(stack)
    for i in range(n):
        cos, sin = np.cos(psi[i]), np.sin(psi[i])
        # In (row, col): output pixel p samples the input at R(-psi) (p - c) + c - (dy, dx).
        matrix = np.array([[cos, -sin], [sin, cos]])
        offset = centre - shift[i, ::-1] - matrix @ centre
        ndimage.affine_transform(
            stack[i],
            matrix,
            offset=offset,
            output=out[i],
            order=1,
            mode="grid-constant",
            prefilter=False,
        )
    return out[0] if single else out


def rotation_matrix(box_px: int, angles_deg: np.ndarray) -> sparse.csr_matrix:
    """Sparse bilinear operator rotating a flattened ``box x box`` image by every angle.

    Multiplying flattened images ``(box * box, k)`` gives ``(n_angles * box * box, k)``: block ``a``
    holds the images rotated by ``angles_deg[a]`` (see the module conventions), zero outside.
    """
    centre = box_px // 2
    y, x = np.mgrid[0:box_px, 0:box_px].astype(np.float64) - centre
    psi = np.radians(np.asarray(angles_deg, dtype=np.float64))[:, None, None]
    src_x = np.cos(psi) * x + np.sin(psi) * y + centre
    src_y = -np.sin(psi) * x + np.cos(psi) * y + centre
    return _bilinear_matrix(box_px, src_x.ravel(), src_y.ravel())


def rotate_images(images: np.ndarray, matrix: sparse.csr_matrix) -> np.ndarray:
    """Apply ``rotation_matrix`` to ``(k, box, box)`` images: returns ``(k, n_angles, box, box)``."""
    images = np.asarray(images, dtype=np.float32)
    k, box = images.shape[0], images.shape[-1]
    rotated = np.asarray(matrix @ images.reshape(k, -1).T, dtype=np.float32)  # (A * box^2, k)
    return np.ascontiguousarray(rotated.T).reshape(k, -1, box, box)


def polar_matrix(box_px: int, radii_px: np.ndarray, n_angles: int) -> sparse.csr_matrix:
    """Sparse bilinear resampling from a ``box x box`` image to polar samples.

    Row ``i * n_angles + j`` samples radius ``radii_px[i]`` at angle ``360 * j / n_angles`` degrees
    (from +x towards +y) about ``(box // 2, box // 2)``; multiply flattened images by it.
    """
    radii = np.asarray(radii_px, dtype=np.float64)
    theta = 2.0 * np.pi * np.arange(n_angles) / n_angles
    centre = box_px // 2
    x = (centre + radii[:, None] * np.cos(theta)[None, :]).ravel()
    y = (centre + radii[:, None] * np.sin(theta)[None, :]).ravel()
    return _bilinear_matrix(box_px, x, y)


def _bilinear_matrix(box_px: int, x: np.ndarray, y: np.ndarray) -> sparse.csr_matrix:
    """Sparse matrix sampling a flattened image at points ``(x, y)`` (bilinear, zero outside)."""
    x0, y0 = np.floor(x).astype(np.intp), np.floor(y).astype(np.intp)
    fx, fy = x - x0, y - y0
    rows, cols, vals = [], [], []
    for ox, oy, w in (
        (0, 0, (1 - fx) * (1 - fy)),
        (1, 0, fx * (1 - fy)),
        (0, 1, (1 - fx) * fy),
        (1, 1, fx * fy),
    ):
        xi, yi = x0 + ox, y0 + oy
        inside = (xi >= 0) & (xi < box_px) & (yi >= 0) & (yi < box_px)
        rows.append(np.nonzero(inside)[0])
        cols.append(yi[inside] * box_px + xi[inside])
        vals.append(w[inside])
    return sparse.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(len(x), box_px * box_px),
        dtype=np.float32,
    )


def polar_transform(images: np.ndarray, matrix: sparse.csr_matrix, n_radii: int) -> np.ndarray:
    """Resample a stack ``(n, box, box)`` to polar coordinates ``(n, n_radii, n_angles)``."""
    images = np.asarray(images, dtype=np.float32)
    n = images.shape[0]
    flat = images.reshape(n, -1)
    polar = np.asarray((matrix @ flat.T).T, dtype=np.float32)
    return polar.reshape(n, n_radii, -1)


def rotational_correlation(
    particles_polar_ft: np.ndarray, references_polar_ft: np.ndarray, n_angles: int
) -> np.ndarray:
    """Correlation over in-plane angle of every particle with every reference, by FFT over angle.

    Parameters
    ----------
    particles_polar_ft
        ``(n, n_radii, n_angles // 2 + 1)``: rfft over angle of the particles' polar transforms
        (ring weights already applied to one of the two inputs).
    references_polar_ft
        ``(k, n_radii, n_angles // 2 + 1)``: the same for the references.
    n_angles
        Number of angular samples.

    Returns
    -------
    ndarray
        ``(n, k, n_angles)``: entry ``[i, j, a]`` is the correlation of particle ``i`` with reference
        ``j`` rotated by ``360 * a / n_angles`` degrees.
    """
    # A plain einsum, not BLAS: many small complex GEMMs are slow when BLAS threads are oversubscribed.
    product = np.einsum("nrm,krm->nkm", particles_polar_ft, references_polar_ft.conj())
    return sfft.irfft(product, n=n_angles, axis=-1, workers=-1).astype(np.float32, copy=False)


def lowpass_filter(box_px: int, cutoff_px: float) -> np.ndarray:
    """Gaussian low-pass on the rfft2 grid, 0.5 at a period of ``cutoff_px`` pixels, 0 at DC.

    The DC term is removed so filtered images have zero mean.
    """
    kx = np.fft.rfftfreq(box_px)
    ky = np.fft.fftfreq(box_px)
    k2 = kx[None, :] ** 2 + ky[:, None] ** 2
    k_half = 1.0 / max(cutoff_px, 2.0)
    filt = np.exp(-np.log(2.0) * k2 / k_half**2)
    filt[0, 0] = 0.0
    return filt.astype(np.float32, copy=False)


def centre_of_mass_px(images: np.ndarray) -> np.ndarray:
    """Centre of mass ``(x, y)`` of each non-negative image, relative to ``(box // 2, box // 2)``.

    An image with no positive mass gets ``(0, 0)``.
    """
    images = np.clip(np.asarray(images, dtype=np.float64), 0.0, None)
    box = images.shape[-1]
    coords = np.arange(box) - box // 2
    total = images.sum(axis=(-2, -1))
    safe = np.where(total > 0, total, 1.0)
    cx = (images.sum(axis=-2) * coords).sum(axis=-1) / safe
    cy = (images.sum(axis=-1) * coords).sum(axis=-1) / safe
    return np.stack([np.where(total > 0, cx, 0.0), np.where(total > 0, cy, 0.0)], axis=-1)


@dataclass(frozen=True)
class AlignmentGrid:
    """Everything that defines an alignment search; build it once with ``alignment_grid``."""

    box_px: int
    mask: np.ndarray  # (box, box) soft circular mask applied to the references
    lowpass: np.ndarray  # (box, box // 2 + 1) filter applied to particles and references
    radii_px: np.ndarray  # polar rings
    ring_weights: np.ndarray  # (n_radii,) area weight of each ring
    n_angles: int
    polar: sparse.csr_matrix
    rotation: sparse.csr_matrix  # rotates a reference by every angle of the grid
    max_shift_px: float
    n_candidates: int  # (reference, angle) pairs per particle refined by translational search


def alignment_grid(
    box_px: int,
    mask_diameter_px: float,
    angular_step_deg: float,
    max_shift_px: float,
    lowpass_px: float,
    n_candidates: int = 3,
) -> AlignmentGrid:
    """Build the search grid for ``align_to_references``.

    The angular sampling is at least as fine as ``angular_step_deg`` and fine enough that samples on
    the outermost ring are at most ~2 px apart.
    """
    edge_px = 3.0
    mask = soft_circular_mask(box_px, mask_diameter_px, edge_px)
    r_max = min(mask_diameter_px / 2.0 + edge_px, box_px / 2.0 - 1.0)
    radii = np.arange(1.0, max(r_max, 2.0) + 1e-6, 1.0)
    n_angles = max(int(np.ceil(360.0 / angular_step_deg)), int(np.ceil(np.pi * radii[-1])))
    n_angles = int(np.ceil(n_angles / 8.0) * 8)
    return AlignmentGrid(
        box_px=box_px,
        mask=mask,
        lowpass=lowpass_filter(box_px, lowpass_px),
        radii_px=radii,
        ring_weights=(radii * 2.0 * np.pi / n_angles).astype(np.float32),
        n_angles=n_angles,
        polar=polar_matrix(box_px, radii, n_angles),
        rotation=rotation_matrix(box_px, 360.0 * np.arange(n_angles) / n_angles),
        max_shift_px=float(max_shift_px),
        n_candidates=int(n_candidates),
    )


@dataclass(frozen=True)
class Alignment:
    """Best reference and aligning transform of each particle (arrays of length n)."""

    reference: np.ndarray  # (n,) index of the best reference
    psi_deg: np.ndarray  # (n,) rotation that aligns the particle to it (after the shift)
    shift_px: np.ndarray  # (n, 2) shift (dx, dy) that aligns the particle to it
    score: np.ndarray  # (n,) normalised cross-correlation at the optimum


@dataclass(frozen=True)
class PreparedReferences:
    """References filtered, masked and normalised, in the forms the search needs."""

    images: np.ndarray  # (k, box, box) filtered, masked, zero-mean, unit-norm
    polar_ft: np.ndarray  # (k, n_radii, n_angles // 2 + 1), ring-weighted
    rotated_ft: np.ndarray  # (k, n_angles, box, box // 2 + 1) rfft2 of each rotated reference


def prepare_references(
    references: np.ndarray, grid: AlignmentGrid, noise_power: np.ndarray | None = None
) -> PreparedReferences:
    """Low-pass, mask and normalise references, and precompute their polar and rotated transforms.

    ``noise_power`` (one per reference, optional) is the power that noise alone puts into each
    filtered, masked reference (the power of one image's noise after `filtered_masked`, over the
    number of images averaged).
    Each reference is then scaled by its signal's norm, ``sqrt(power - noise_power)``, instead of
    its whole norm, so that a well-populated (less noisy) average does not correlate better
    with every particle merely for being less noisy; the signal is never taken below the noise
    (``power - noise_power >= noise_power``), so a reference of pure noise is not amplified.
    """
    references = np.asarray(references, dtype=np.float32)
    masked = filtered_masked(references, grid)
    power = (masked**2).sum(axis=(-2, -1), keepdims=True)
    if noise_power is not None:
        noise = np.asarray(noise_power, dtype=np.float64).reshape(-1, 1, 1)
        power = np.maximum(power - noise, noise)
    norm = np.sqrt(power)
    masked = (masked / np.where(norm > 0, norm, 1.0)).astype(np.float32, copy=False)
    polar = polar_transform(masked, grid.polar, len(grid.radii_px))
    polar_ft = sfft.rfft(polar * grid.ring_weights[None, :, None], axis=-1, workers=-1)
    rotated = rotate_images(masked, grid.rotation)
    rotated_ft = sfft.rfft2(rotated, workers=-1).astype(np.complex64, copy=False)
    return PreparedReferences(masked, polar_ft.astype(np.complex64), rotated_ft)


def filtered_masked(images: np.ndarray, grid: AlignmentGrid) -> np.ndarray:
    """Images low-passed, their mean inside the mask removed, and masked."""
    box = grid.box_px
    filtered = sfft.irfft2(sfft.rfft2(images, workers=-1) * grid.lowpass, s=(box, box))
    weight = grid.mask / grid.mask.sum()
    mean = (filtered * weight).sum(axis=(-2, -1), keepdims=True)
    return (filtered - mean) * grid.mask


def align_to_references(
    images: np.ndarray,
    references: np.ndarray | PreparedReferences,
    grid: AlignmentGrid,
    start_shift_px: np.ndarray | None = None,
    allowed: np.ndarray | None = None,
    n_passes: int = 3,
    noise_power: np.ndarray | None = None,
) -> Alignment:
    """Align every image to its best reference (in-plane rotation and translation).

    The rotation is found for every reference by correlating polar transforms (FFT over angle) of
    the low-passed images, centred at ``start_shift_px``; the ``grid.n_candidates`` best
    (reference, angle) pairs of each image are then refined by FFT cross-correlation over all shifts
    within ``grid.max_shift_px`` of the box centre, and the best pair wins. The references are
    masked by ``grid.mask``; so only image content inside the mask (where it lies on the reference)
    takes part.

    Parameters
    ----------
    images
        ``(n, box, box)`` particle images.
    references
        ``(k, box, box)`` references, or the output of ``prepare_references``.
    grid
        The search grid (``alignment_grid``).
    start_shift_px
        ``(n, 2)`` current aligning shifts, where the polar transforms are centred; zero if omitted.
    allowed
        Optional ``(n, k)`` boolean: the references each image may be assigned to.
    noise_power
        Optional ``(k,)`` noise power of each reference (see `prepare_references`); only used
        when ``references`` are images.
    n_passes
        Rotational then translational searches; each pass centres the polar transforms at the
        shifts found by the previous one (the rotation found about a wrong centre is unreliable).

    Returns
    -------
    Alignment
        Reference index, aligning ``psi_deg`` and ``shift_px`` (see the module conventions), score.
    """
    prepared = (
        references
        if isinstance(references, PreparedReferences)
        else prepare_references(references, grid, noise_power)
    )
    images = np.asarray(images, dtype=np.float32)
    n, box = images.shape[0], grid.box_px
    start = np.zeros((n, 2)) if start_shift_px is None else np.asarray(start_shift_px, float)
    # Without a starting shift, the first rotational search also tries centres around the box's.
    centres = _search_centres(grid.max_shift_px) if start_shift_px is None else np.zeros((1, 2))
    chunk = max(16, int(2**21 // (box * box * max(grid.n_candidates, 1))))
    result = Alignment(np.zeros(0, int), np.zeros(0), np.zeros((0, 2)), np.zeros(0))
    for _ in range(max(n_passes, 1)):
        parts = [
            _align_chunk(
                images[i : i + chunk],
                prepared,
                grid,
                start[i : i + chunk],
                None if allowed is None else np.asarray(allowed, bool)[i : i + chunk],
                centres,
            )
            for i in range(0, n, chunk)
        ]
        if not parts:
            break
        result = Alignment(*(np.concatenate(values) for values in zip(*parts, strict=True)))
        start, centres = result.shift_px, np.zeros((1, 2))
    return result


def _search_centres(max_shift_px: float) -> np.ndarray:
    """The box centre and a hexagon of offsets at half the maximum shift (at least 2 px)."""
    radius = max(2.0, 0.5 * max_shift_px)
    if max_shift_px < 2.0:
        return np.zeros((1, 2))
    theta = np.radians(np.arange(0, 360, 60))
    ring = radius * np.stack([np.cos(theta), np.sin(theta)], axis=-1)
    return np.concatenate([np.zeros((1, 2)), ring])


def _align_chunk(
    images, prepared: PreparedReferences, grid: AlignmentGrid, start, allowed, centres
):
    box, n_angles = grid.box_px, grid.n_angles
    n, k = images.shape[0], prepared.images.shape[0]
    spectra = sfft.rfft2(images, workers=-1) * grid.lowpass
    # Rotational search by polar correlation about each trial centre (current shift + offset);
    # keep, per (image, reference), the centre whose best angle correlates most.
    rot_cc = None
    for offset in centres:
        shifted = sfft.irfft2(spectra * phase_ramp(box, start + offset), s=(box, box), workers=-1)
        polar = polar_transform(shifted, grid.polar, len(grid.radii_px))
        polar_ft = sfft.rfft(polar, axis=-1, workers=-1).astype(np.complex64, copy=False)
        trial = rotational_correlation(polar_ft, prepared.polar_ft, n_angles)  # (n, k, A)
        if rot_cc is None:
            rot_cc = trial
        else:
            better = trial.max(axis=-1) > rot_cc.max(axis=-1)
            rot_cc[better] = trial[better]
    best_angle = rot_cc.argmax(axis=-1)  # (n, k)
    best_rot = np.take_along_axis(rot_cc, best_angle[..., None], axis=-1)[..., 0]
    if allowed is not None:
        best_rot = np.where(allowed, best_rot, -np.inf)
    n_cand = min(grid.n_candidates, k)
    cand_ref = np.argsort(-best_rot, axis=1, kind="stable")[:, :n_cand]  # (n, c)
    cand_angle = np.take_along_axis(best_angle, cand_ref, axis=1)
    # Translational search: particle = shift(rotate(ref, phi), d); CC peaks at s = d.
    ref_ft = prepared.rotated_ft[cand_ref, cand_angle]  # (n, c, box, box//2+1)
    cc = sfft.irfft2(spectra[:, None] * ref_ft.conj(), s=(box, box), workers=-1)
    offsets = np.fft.fftfreq(box, 1.0 / box).astype(int)  # map index -> signed shift
    oy, ox = np.meshgrid(offsets, offsets, indexing="ij")
    outside = np.hypot(ox, oy) > grid.max_shift_px
    cc = np.where(outside, -np.inf, cc)
    flat = cc.reshape(n, n_cand, -1)
    peak_idx = flat.argmax(axis=-1)
    peak = np.take_along_axis(flat, peak_idx[..., None], axis=-1)[..., 0]
    if allowed is not None:
        cand_ok = np.take_along_axis(allowed, cand_ref, axis=1)
        peak = np.where(cand_ok, peak, -np.inf)
    winner = peak.argmax(axis=1)
    rows = np.arange(n)
    ref = cand_ref[rows, winner]
    angle_idx = cand_angle[rows, winner]
    win_map = cc[rows, winner]  # (n, box, box)
    py, px = np.unravel_index(peak_idx[rows, winner], (box, box))
    dx = offsets[px] + _parabolic_offset(win_map, py, px, axis=1)
    dy = offsets[py] + _parabolic_offset(win_map, py, px, axis=0)
    curve = rot_cc[rows, ref]  # (n, A)
    left = curve[rows, (angle_idx - 1) % n_angles]
    mid = curve[rows, angle_idx]
    right = curve[rows, (angle_idx + 1) % n_angles]
    phi_deg = (angle_idx + _parabola_vertex(left, mid, right)) * 360.0 / n_angles
    # Aligning transform: shift by -d, then rotate by -phi (see module conventions).
    psi_deg = np.mod(-phi_deg, 360.0)
    shift = -np.stack([dx, dy], axis=-1)
    # Normalised score: the reference has unit norm; divide by the masked particle's norm.
    aligned = sfft.irfft2(spectra * phase_ramp(box, shift), s=(box, box), workers=-1)
    pnorm = np.sqrt(((aligned * grid.mask) ** 2).sum(axis=(-2, -1)))
    score = peak[rows, winner] / np.where(pnorm > 0, pnorm, 1.0)
    return ref.astype(int), psi_deg, shift, score.astype(np.float64)


def _parabola_vertex(left, mid, right):
    denom = left - 2.0 * mid + right
    safe = np.where(np.abs(denom) > 1e-12, denom, -1.0)
    return np.where(np.abs(denom) > 1e-12, np.clip(0.5 * (left - right) / safe, -0.5, 0.5), 0.0)


def _parabolic_offset(maps, py, px, axis):
    box = maps.shape[-1]
    rows = np.arange(maps.shape[0])
    if axis == 1:
        left, right = maps[rows, py, (px - 1) % box], maps[rows, py, (px + 1) % box]
    else:
        left, right = maps[rows, (py - 1) % box, px], maps[rows, (py + 1) % box, px]
    mid = maps[rows, py, px]
    finite = np.isfinite(left) & np.isfinite(right)
    return np.where(
        finite,
        _parabola_vertex(np.where(finite, left, 0), mid, np.where(finite, right, 0)),
        0.0,
    )


def _radius_grid(box_px: int) -> np.ndarray:
    y, x = np.mgrid[0:box_px, 0:box_px] - box_px // 2
    return np.hypot(x, y)
