"""Spectral-residual saliency (Hou & Zhang 2007) and the 2DAssess object check.

A "good" class average should hold one object near its centre. The saliency check finds the salient
objects of an average (spectral residual -> threshold, restricted to bright pixels -> connected
components) and reports how many
there are and how far the main object's centroid lies from the centre, relative to the mask radius
(Li et al. 2020: a good class with two or more objects, or an off-centre object, becomes *clip*).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class SaliencyParams:
    """Parameters of the saliency object check.

    Parameters
    ----------
    smoothing_sigma_px
        Gaussian smoothing of the saliency map, in pixels of the (square) image it is computed on.
    threshold_factor
        A pixel is salient when its saliency exceeds this multiple of the mean saliency inside
        the analysed disc (Hou & Zhang use 3), or ``max_threshold_fraction`` if lower.
    max_threshold_fraction
        The threshold never exceeds this fraction of the peak saliency (the map is scaled to a
        peak of 1), so a broad single object is still found.
    bright_std
        An object pixel must also be brighter than the disc mean by this many standard deviations
        of the image smoothed by half ``smoothing_sigma_px`` (protein is white in averages).
    min_area_fraction
        Components smaller than this fraction of the disc area are ignored.
    min_relative_area
        A second object counts only if its area is at least this fraction of the largest one.
    max_offset_fraction
        The largest object's centroid may lie at most this fraction of the mask radius from the
        centre.
    disc_fraction
        Only the disc of this fraction of the image radius is analysed (the mask edge itself is
        salient and is left out).
    """

    smoothing_sigma_px: float = 5.5
    threshold_factor: float = 3.0
    max_threshold_fraction: float = 0.5
    bright_std: float = 0.5
    min_area_fraction: float = 0.02
    min_relative_area: float = 0.6
    max_offset_fraction: float = 0.4
    disc_fraction: float = 0.92


@dataclass(frozen=True)
class SaliencyObjects:
    """Objects found in one image by the saliency check."""

    n_objects: int
    areas_px: tuple[int, ...]  # largest first
    offset_fraction: float  # main object's centroid distance from the centre / image radius
    passes: bool  # exactly one object, near the centre


def spectral_residual_saliency(image: np.ndarray, smoothing_sigma_px: float = 2.5) -> np.ndarray:
    """Spectral-residual saliency map of a 2D image, scaled to [0, 1].

    Parameters
    ----------
    image
        2D array (any real values).
    smoothing_sigma_px
        Gaussian smoothing of the squared reconstruction, in pixels.

    Returns
    -------
    numpy.ndarray
        Saliency map of the image's shape; all zeros for a constant image.

    Notes
    -----
    Hou & Zhang (CVPR 2007): the log-amplitude spectrum minus its 3x3 local mean (the "spectral
    residual"), recombined with the original phase and transformed back, highlights the parts of
    the image that do not follow the image's average spectrum.
    """
    image = np.asarray(image, dtype=np.float64)
    image = image - image.mean()
    if not np.any(np.abs(image) > 1e-12 * (1.0 + np.abs(image).max())):
        return np.zeros(image.shape)
    spectrum = np.fft.fft2(image)
    amplitude = np.abs(spectrum)
    log_amplitude = np.log(amplitude + 1e-12 * amplitude.max() + 1e-300)
    residual = log_amplitude - ndimage.uniform_filter(log_amplitude, size=3, mode="wrap")
    phase = np.angle(spectrum)
    saliency = np.abs(np.fft.ifft2(np.exp(residual + 1j * phase))) ** 2
    saliency = ndimage.gaussian_filter(saliency, smoothing_sigma_px, mode="constant")
    peak = saliency.max()
    return saliency / peak if peak > 0 else saliency


def _disc(shape: tuple[int, int], radius_fraction: float) -> tuple[np.ndarray, float]:
    ny, nx = shape
    y, x = np.mgrid[:ny, :nx]
    radius = 0.5 * min(ny, nx)
    r = np.hypot(y - (ny - 1) / 2, x - (nx - 1) / 2)
    return r <= radius_fraction * radius, radius


def find_salient_objects(
    image: np.ndarray, params: SaliencyParams | None = None
) -> SaliencyObjects:
    """Count the salient objects of a class average and measure the main one's offset.

    Parameters
    ----------
    image
        Square class average cropped to the mask diameter (the mask circle touches the borders).
    params
        Thresholds; defaults when ``None``.

    Returns
    -------
    SaliencyObjects
        ``passes`` is true when exactly one object is found and its saliency-weighted centroid
        lies within ``max_offset_fraction`` of the mask radius from the centre. An image with no
        salient object (flat) passes: it has nothing that could be a clipped neighbour.
    """
    params = params or SaliencyParams()
    image = np.asarray(image, dtype=np.float64)
    disc, radius = _disc(image.shape, params.disc_fraction)
    # Taper the image to the analysed disc so the mask edge is not the most salient feature.
    taper = ndimage.gaussian_filter(disc.astype(float), params.smoothing_sigma_px)
    masked = (image - image[disc].mean()) * taper
    saliency = spectral_residual_saliency(masked, params.smoothing_sigma_px) * disc
    if not saliency.any():
        return SaliencyObjects(0, (), 0.0, True)
    threshold = min(params.threshold_factor * saliency[disc].mean(), params.max_threshold_fraction)
    # Salient AND bright (protein is white): the spectral residual of two similar objects also
    # lights up the gap between them (their spectra interfere), the intensity does not.
    smooth = ndimage.gaussian_filter(masked, 0.5 * params.smoothing_sigma_px)
    bright = smooth > smooth[disc].mean() + params.bright_std * smooth[disc].std()
    salient = (saliency > threshold) & bright
    labels, n = ndimage.label(salient)
    if n == 0:
        return SaliencyObjects(0, (), 0.0, True)
    areas = ndimage.sum_labels(np.ones_like(saliency), labels, index=np.arange(1, n + 1))
    keep = np.flatnonzero(areas >= params.min_area_fraction * disc.sum())
    if keep.size == 0:
        return SaliencyObjects(0, (), 0.0, True)
    order = keep[np.argsort(areas[keep])[::-1]]
    largest = areas[order[0]]
    counted = [i for i in order if areas[i] >= params.min_relative_area * largest]
    cy, cx = ndimage.center_of_mass(saliency, labels, int(order[0]) + 1)
    ny, nx = image.shape
    offset = float(np.hypot(cy - (ny - 1) / 2, cx - (nx - 1) / 2) / radius)
    passes = len(counted) == 1 and offset <= params.max_offset_fraction
    return SaliencyObjects(
        len(counted), tuple(int(areas[i]) for i in counted), offset, bool(passes)
    )
