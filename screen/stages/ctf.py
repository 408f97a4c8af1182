"""Built-in CTF estimation: defocus, astigmatism and fit resolution from a micrograph's spectrum.

A CTFFIND4-like estimator, written for screening (one call per micrograph, well under a second):

1. **Spectrum.** Clip the darkest and brightest 0.05 % of the pixels (hot and dead detector
   pixels: a few dozen at 5-200x the mean swamp every Thon ring with white power), bin the
   micrograph by Fourier cropping to about ``working_pixel_size_A``, then average the power
   spectra of overlapping tapered tiles (Welch's method). Where the spectrum's power collapses
   a hundredfold (a hard low-pass or Fourier padding of an export: nothing recorded beyond), the
   fitting band and the fit resolution end there (`LIVE_POWER_DROP`).
2. **Mean defocus (1D).** On the rotational average, flattened by a smooth fit of its log, every
   defocus of a grid is scored by how much ``envelope(k) * CTF²(k)`` improves a weighted linear
   least-squares fit over a smooth background alone (background and envelope are low-order
   Chebyshev polynomials of k, refitted for each defocus). The best interior grid maximum (a
   maximum at the range's end is usually the near-focus degeneracy) is refined with Brent's
   method.
3. **Astigmatism (2D).** The 2D spectrum minus the fitted smooth mean level is correlated with
   ``envelope * (CTF² - 1/2)`` (a matched filter). Mean defocus and astigmatism are parametrised as
   ``(mean, a, b)`` with ``defocus(theta) = mean + a cos 2theta + b sin 2theta`` (no angle
   singularity at zero astigmatism); a coarse grid of astigmatism magnitudes and angles seeds
   Nelder-Mead searches; the best result is polished once more with the envelope refitted on
   the equiphase average (below), where astigmatic rings are sharp.
4. **Fit resolution.** The spectrum is averaged along the fitted CTF's iso-phase curves (CTFFIND's
   equiphase average), so astigmatic rings stay sharp. Each ring's modulation (relative to the
   mean over one ring period) is correlated with the model over a window of a few rings; in each
   of ``fit_sectors`` angular sectors the fit reaches the highest frequency up to which that
   local correlation stays above ``fit_threshold``, and the reported fit resolution is the one
   reached in all sectors but one (drift keeps rings only across its direction).

Defocus follows CTFFIND/RELION: Å, positive underfocus, ``defocus_u_A >= defocus_v_A`` with
``defocus_u_A`` along ``astigmatism_angle_deg`` (from the x axis, in [-90, 90)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np
from scipy import optimize

from screen.processing.ctf import electron_wavelength_A
from screen.processing.filters import bin_to_pixel_size, clip_outliers
from screen.processing.fourier import periodogram_average
from screen.processing.spectrum import (
    binned_mean,
    chebyshev_basis,
    first_drop,
    half_plane_polar,
    local_correlation,
    window_bounds,
    window_mean,
)
from screen.stages.base import Backend
from screen.stages.records import CtfFit, Optics

MIN_IMAGE_PX = 64
"""Smallest image side the estimator accepts."""

_LOG_BACKGROUND_DEGREE = 3
_BACKGROUND_DEGREE = 4
_ENVELOPE_DEGREE = 2
_GRID_PHASE_STEP_RAD = np.pi / 8  # defocus grid step: this phase change at the band's high end
_SUBSAMPLES = 4  # per radial bin, so that the 1D model is a bin average (no aliasing)
_ASTIGMATISM_ANGLES_DEG = np.arange(0.0, 180.0, 15.0)
_N_STARTS = 3  # Nelder-Mead searches from the best coarse 2D grid points
# Mean defoci from the 1D search (best first; then the best one's neighbours half a ring and a
# ring away, `_mean_defocus_seeds`). The 2D search starts from the first; the 2D
# correlations of seeds with different smooth fits are not comparable (a near-focus seed can win
# by fitting background), so another seed replaces it only where the first fitted no Thon ring
# at all and the other's rings are followed to a finer resolution (`_estimate`).
_N_SEEDS = 3
_ALTERNATIVE_MIN_ZEROS = 3
"""Thon-ring zeros another seed's fit must follow (between the band's low end and its fit
resolution) to replace a first fit that followed none: a fixed pattern of an export (the 12
denoised 8-bit EMPIAR-10017 JPEGs: a second seed at 1.54-1.64 µm on all of them, local
correlation barely over the threshold, two zeros) is not a CTF; three zeros of the right spacing
are (the simulated good micrographs it rescues follow four)."""
LIVE_POWER_DROP = 1e-2
"""The spectrum is dead (nothing recorded) from the first frequency ``k`` past the band's low end
where its average along the axes (`_AXIAL_WEDGE_DEG`) over ``k``-``1.05 k`` falls under this
fraction of its lowest value over ``0.85 k``-``0.95 k`` (`_live_limit_k`); neither the fitting
band nor the fit resolution reaches past it. A recorded micrograph carries shot noise at every
frequency, and what lowers it (detector MTF, envelopes, binning's or a Gaussian filter's taper)
falls smoothly; Thon-ring zeros only remove the signal above that noise. A hundredfold fall within
a few per cent of k is a hard low-pass or a Fourier padding of an export, beyond which a "fit"
follows the taper's leakage and the cut's edge (the EMPIAR-10017 exports low-passed at 8 Å were
"fitted" to 3.8-6 Å on 7 of 12, `bench/real_examples_transformed.py`). Measured 2026-12-06
(session 22): the limit is found at the cut (7.9-8.0 Å) of the 13 real examples finer than
4 Å/px low-passed at 8 Å; it is at Nyquist on the 14 real examples as given and under the 21
other transformations (Gaussian blur, median, NL-means, JPEG included) and on all 1,600
micrographs of `bench/micassess_generators.py --per-session`'s ten sets (Gaussian, Wiener, TV and
NL-means denoising, binning, JPEG included). Read along the axes since session 23: the examples
Fourier-padded 2x end at 12.7 Å (Magellon; its data end at 12.6 Å) and 3.6 Å (the EMPIAR-10017
exports, 3.54 Å), were 9.1 and 2.8 Å; every other limit above is unchanged, as is every fit of
the 1,168 simulated micrographs that have a band (up to 7.9 Å/px) but 3 NL-means ones, whose power
along the axes falls a hundredfold in the last tenth before Nyquist (fits 0.06-0.5 Å coarser)."""


@dataclass(frozen=True)
class CtfSearch:
    """Parameters of the built-in CTF estimator.

    Attributes
    ----------
    min_defocus_um, max_defocus_um
        Range of the mean-defocus search (underfocus).
    low_res_A
        Low-resolution end of the fitting band (Å); the fit resolution is never reported worse.
    high_res_A
        High-resolution end of the fitting band (Å) ...
    high_res_pixel_factor
        ... but never finer than this many working pixels (and never past Nyquist).
    working_pixel_size_A
        Micrographs with a smaller pixel are binned (Fourier cropping) to about this size first:
        defocus rings for screening do not need sub-Å pixels.
    tile_px
        Tile size of the averaged periodogram; clamped to half the shorter image side (so that
        several tiles are averaged) but at least 64 px and at most the image.
    astigmatism
        Fit astigmatism (2D refinement); if False only the mean defocus is fitted.
    max_astigmatism_A
        Largest defocus difference ``defocus_u - defocus_v`` tried by the coarse 2D search.
    fit_threshold
        Local correlation below which the Thon rings are no longer considered fitted.
    fit_window_rings
        Width, in Thon rings, of the window of the local correlation.
    fit_sectors
        Angular sectors in which the fit resolution is measured separately; the reported one is
        reached in all sectors but one.
    check_halves
        When the fit measured an astigmatism (`astigmatism_is_measured`), fit the two halves of
        the micrograph as well and record how far their astigmatisms differ from it
        (``CtfFit.astigmatism_spread``, `half_field_astigmatism_spread`).
    """

    min_defocus_um: float = 0.2
    max_defocus_um: float = 6.0
    low_res_A: float = 30.0
    high_res_A: float = 4.0
    high_res_pixel_factor: float = 2.5
    working_pixel_size_A: float = 1.4
    tile_px: int = 512
    astigmatism: bool = True
    max_astigmatism_A: float = 12000.0
    fit_threshold: float = 0.4
    fit_window_rings: float = 3.0
    fit_sectors: int = 4
    check_halves: bool = True


@dataclass(frozen=True)
class _Optics:
    """Constants of the phase aberration chi(k) = pi*lambda*df*k^2 - pi/2*Cs*lambda^3*k^4 + offset."""

    defocus_coef: float  # pi * lambda, per Å of defocus and 1/Å^2 of k^2
    cs_coef: float  # pi/2 * Cs * lambda^3
    offset_rad: float  # amplitude contrast phase

    @classmethod
    def of(cls, optics: Optics) -> _Optics:
        wavelength_A = electron_wavelength_A(optics.voltage_kV)
        return cls(
            float(np.pi * wavelength_A),
            float(0.5 * np.pi * optics.cs_mm * 1e7 * wavelength_A**3),
            float(np.arcsin(np.clip(optics.amplitude_contrast, 0.0, 1.0))),
        )

    def chi(self, k2: np.ndarray, k4: np.ndarray, defocus_A) -> np.ndarray:
        return self.defocus_coef * defocus_A * k2 - self.cs_coef * k4 + self.offset_rad

    def max_k_resolved(self, defocus_A: float, n_px: int, pixel_size_A: float) -> float:
        """Frequency where a Thon ring (period pi in chi) spans 3 spectrum pixels."""
        wavelength_A = self.defocus_coef / np.pi
        return float(n_px * pixel_size_A / (2.0 * wavelength_A * max(defocus_A, 1.0) * 3.0))


_AXIAL_WEDGE_DEG = 10.0
"""`_live_limit_k` reads the spectrum within this angle of the kx and ky axes. Fourier cropping
and padding (how binning and up-sampling software change the pixel) cut the spectrum at a
*square*: a ring just past the cut still holds the square's corners, so the rotational average
falls to ~0.35 there, not a hundredfold (the same on all 12 EMPIAR-10017 exports Fourier-padded
2x, one of which was then fitted to 2.8 Å, past the 3.54 Å recorded; 2026-12-06, session 23).
Along the axes the cut is complete at ``1 / cos(10°)`` = 1.015 times it; a round low-pass falls
there as everywhere."""


@dataclass(frozen=True)
class _Spectrum:
    """The kx >= 0 half of the averaged power spectrum, with pixel coordinates."""

    power: np.ndarray
    k_A: np.ndarray
    angle_rad: np.ndarray
    radius_px: np.ndarray
    n_px: int
    pixel_size_A: float

    @cached_property
    def rotational(self) -> tuple[np.ndarray, np.ndarray]:
        """Rotational average (mean power, pixel count) in one-pixel rings, 0 to Nyquist."""
        ring = np.floor(self.radius_px).astype(int)
        return binned_mean(ring, self.power, self.n_px // 2)

    @cached_property
    def axial(self) -> tuple[np.ndarray, np.ndarray]:
        """As `rotational`, over the pixels within `_AXIAL_WEDGE_DEG` of the kx or ky axis."""
        near_axis = np.abs(np.sin(2.0 * self.angle_rad)) < np.sin(np.radians(2 * _AXIAL_WEDGE_DEG))
        ring = np.floor(self.radius_px[near_axis]).astype(int)
        return binned_mean(ring, self.power[near_axis], self.n_px // 2)


@dataclass(frozen=True)
class _Smooth:
    """Smooth functions of k fitted in 1D: log background, mean level and envelope."""

    log_background: np.ndarray  # Chebyshev coefficients
    background: np.ndarray
    envelope: np.ndarray
    domain: tuple[float, float]

    def evaluate(self, k_A: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Crude background, mean level (relative to it) and envelope at ``k_A``."""
        degree = max(len(self.log_background), len(self.background), len(self.envelope)) - 1
        basis = chebyshev_basis(k_A, degree, self.domain)
        crude = np.exp(basis[..., : len(self.log_background)] @ self.log_background)
        envelope = basis[..., : len(self.envelope)] @ self.envelope
        mean_level = basis[..., : len(self.background)] @ self.background + 0.5 * envelope
        return crude, mean_level, envelope


@dataclass(frozen=True)
class _Seed:
    """A mean defocus from the 1D search and the smooth fit that goes with it."""

    defocus_A: float
    smooth: _Smooth


def estimate_ctf(image: np.ndarray, optics: Optics, params: CtfSearch) -> CtfFit:
    """Estimate defocus, astigmatism and fit resolution of one micrograph.

    Parameters
    ----------
    image
        The (motion-corrected) micrograph, 2D, at least 64 px on each side.
    optics
        Pixel size, voltage, Cs and amplitude contrast.
    params
        Search ranges and band, see :class:`CtfSearch`.

    Returns
    -------
    CtfFit
        ``score`` is the correlation of the 2D spectrum with the fitted model over the fitting
        band (0 for a featureless image); ``fit_resolution_A`` is ``params.low_res_A`` when no
        Thon ring is fitted; ``astigmatism_spread`` is set when the fit measured an astigmatism
        and ``params.check_halves`` is on (`half_field_astigmatism_spread`), else NaN.

    Raises
    ------
    ValueError
        If the image is not 2D, smaller than 64 px, not finite, or constant.

    Notes
    -----
    Rings finer than about 3 spectrum pixels cannot be resolved with the chosen tile size, so at
    large defocus the fitting band (and the fit resolution) is limited accordingly.
    """
    # Measured 2026-12-05 (`bench/micassess_generators.py --alone --per-session`, hot pixels
    # forced): unclipped, all 160 fits failed (30 Å); clipped, good micrographs' median 10 Å.
    image = clip_outliers(_validated(image))
    fit, tile_px = _estimate(image, optics, params)
    if params.check_halves and astigmatism_is_measured(fit, optics.voltage_kV):
        spread = half_field_astigmatism_spread(image, optics, params, fit, tile_px)
        fit = replace(fit, astigmatism_spread=spread)
    return fit


def _estimate(
    image: np.ndarray, optics: Optics, params: CtfSearch, tile_px: int | None = None
) -> tuple[CtfFit, int]:
    """The fit of a validated image and the periodogram's tile size (working pixels) it used."""
    working, pixel_size_A = bin_to_pixel_size(
        image, optics.pixel_size_A, params.working_pixel_size_A
    )
    if tile_px is None:
        tile_px = _tile_size(working.shape, params.tile_px)
    spectrum = _half_plane(periodogram_average(working, tile_px), pixel_size_A)
    physics = _Optics.of(optics)
    k_lo = 1.0 / params.low_res_A
    k_hi = 1.0 / max(params.high_res_A, params.high_res_pixel_factor * pixel_size_A)
    if k_hi <= 1.5 * k_lo:
        raise CtfNotMeasurable(
            f"fitting band {params.low_res_A:g}-{1.0 / k_hi:.3g} Å is empty at a pixel size of "
            f"{pixel_size_A:.3g} Å"
        )
    # Past a hard low-pass (or a Fourier padding) nothing was recorded: fit only the live band.
    k_live = _live_limit_k(spectrum, k_lo)
    if k_live < k_hi and k_live > 1.5 * k_lo:
        k_hi = k_live
    seeds = _mean_defocus_seeds(spectrum, physics, (k_lo, k_hi), params)

    # The first seed's fit, unless it followed no ring past the band's low end: then the seed
    # whose fit the spectrum follows furthest (measured 2026-12-06 on `bench/
    # micassess_generators.py --per-session` sets: good micrographs at 5.1 Å/px and 1.8 µm whose
    # best 1D score sat half a ring off, anti-correlated from 12 Å on, fitted to 30 Å; their
    # second seed's rings reach Nyquist). A local correlation over three rings in three of four
    # sectors is a like-for-like measure between seeds, whatever their smooth fits; the other
    # seed must follow `_ALTERNATIVE_MIN_ZEROS` zeros.
    def fitted(seed: _Seed) -> tuple[float, tuple[float, float, float, float]]:
        found = _fit_astigmatism(spectrum, physics, [seed], (k_lo, k_hi), params)
        return _fit_resolution_k(spectrum, physics, found[:3], k_lo, params), found

    fit_k, (mean_A, a_A, b_A, score) = fitted(seeds[0])
    for seed in seeds[1:] if fit_k <= k_lo else []:
        other_k, other = fitted(seed)
        zeros = np.floor(physics.chi(other_k**2, other_k**4, other[0]) / np.pi) - np.floor(
            physics.chi(k_lo**2, k_lo**4, other[0]) / np.pi
        )
        if other_k > fit_k and zeros >= _ALTERNATIVE_MIN_ZEROS:
            fit_k, (mean_A, a_A, b_A, score) = other_k, other
            break
    fit_k = max(min(fit_k, k_live), k_lo)
    half_diff_A = float(np.hypot(a_A, b_A))
    angle_deg = 0.5 * float(np.degrees(np.arctan2(b_A, a_A))) if half_diff_A > 0 else 0.0
    angle_deg = (angle_deg + 90.0) % 180.0 - 90.0
    fit = CtfFit(
        defocus_u_A=mean_A + half_diff_A,
        defocus_v_A=mean_A - half_diff_A,
        astigmatism_angle_deg=angle_deg,
        fit_resolution_A=float(1.0 / fit_k),
        score=float(np.clip(score, 0.0, 1.0)),
    )
    return fit, tile_px


ASTIGMATISM_MAX_SPREAD = 0.5
"""Astigmatism counts as confirmed when each half field's astigmatism (as a vector ``A (cos 2θ,
sin 2θ)``) lies within this fraction of the whole fit's length from it: within about 29° at the
same size, or half to one and a half times the size. Astigmatism is a property of the objective
lens, the same over the field, so two halves of a micrograph measure it again with half the
data; a fit that follows the image's texture (a denoiser's, a detector's) rather than its Thon
rings does not repeat. Checked 2026-12-04 on `bench/micassess_generators.py`'s sets: a session
script (halves with their own, smaller tiles) found the astigmatism of all 3 flagged micrographs
of the clean simulated set repeated by both halves, and that of 12 of the 13 good NL-means-denoised
ones with a fooled fit (3,500-20,000 Å fitted, at most 600 Å true) not repeated (often the
opposite direction); with this function, the clean set's bad-CTF micrographs are all still
called bad and the NL-means set's good ones called bad fell from 19 to 10 of 80. The tolerance
is loose on purpose: fitting noise on half the data, not the data's statistics, sets it."""


def astigmatism_is_measured(fit: CtfFit, voltage_kV: float) -> bool:
    """Whether the fit resolved its Thon rings far enough to have measured its astigmatism.

    Along the two principal directions the CTF phases differ by ``pi * lambda * A * k**2`` for an
    astigmatism ``A`` (``defocus_u - defocus_v``) at spatial frequency ``k``. Below a quarter
    period (pi / 2) the two directions' rings cannot be told apart, so a fit whose rings match
    only to ``d = fit_resolution_A`` measured ``A`` only when ``d <= sqrt(2 * lambda * A)``:
    3,000 Å needs rings fitted to 10.9 Å at 300 kV, 12.3 Å at 200 kV. A fit that found no rings
    (its resolution at the band's low end, 30 Å) reports an astigmatism that is noise (measured
    2026-12-04, ``bench/micassess_generators.py``: 11 of 80 good simulated micrographs with
    failed fits were called bad_ctf on fitted astigmatisms of 3,300-39,900 Å). Optics, not a
    calibration: it holds for any detector or data.
    """
    astigmatism_A = abs(fit.defocus_u_A - fit.defocus_v_A)
    if not (math.isfinite(fit.fit_resolution_A) and math.isfinite(astigmatism_A)):
        return False
    wavelength_A = electron_wavelength_A(voltage_kV)
    return fit.fit_resolution_A <= math.sqrt(2.0 * wavelength_A * astigmatism_A)


GRID_ANGLE_TOLERANCE_DEG = 2.0
"""An astigmatism whose axis lies within this many degrees of the pixel grid's rows, columns or
diagonals (0°, ±45°, 90°) is not believed. The lens's astigmatism has no preferred direction
relative to the camera, but processing does: on `bench/micassess_generators.py`'s NL-means
set (square patches and search windows on a 2x resampled copy), every fooled fit of a good
micrograph that the astigmatism check believed (3 of 80, 4,200-8,600 Å fitted, at most 600 Å
true, repeated by both halves) had its axis within 1° of ±45°, and of the set's 28 fits of more
than 3,000 Å on good micrographs (pixel sizes up to 8 Å), 22 lay within 2° of 0°, ±45° or 90°
and 26 within 5° (2026-12-05, session script `/tmp/s13/dirnorm.py`). The price: a true astigmatism whose axis happens to fall in
these four 4° windows (9 % of directions) is kept, the side of the error the paper prefers."""


def astigmatism_on_pixel_grid(angle_deg: float) -> bool:
    """Whether an axis at ``angle_deg`` lies within `GRID_ANGLE_TOLERANCE_DEG` of a multiple of 45°."""
    offset = float(angle_deg) % 45.0
    return min(offset, 45.0 - offset) <= GRID_ANGLE_TOLERANCE_DEG


def astigmatism_is_confirmed(fit: CtfFit, voltage_kV: float) -> bool:
    """Measured (`astigmatism_is_measured`), off the pixel grid and repeated by both halves.

    The axis must not lie on the pixel grid's rows, columns or diagonals
    (`astigmatism_on_pixel_grid`), where processed data fake astigmatism. A fit whose halves were
    not fitted (``astigmatism_spread`` NaN: a fit from elsewhere, or ``check_halves`` off) is
    judged on the first two conditions alone.
    """
    if not astigmatism_is_measured(fit, voltage_kV):
        return False
    if astigmatism_on_pixel_grid(fit.astigmatism_angle_deg):
        return False
    return not fit.astigmatism_spread > ASTIGMATISM_MAX_SPREAD


def _astigmatism_vector(fit: CtfFit, voltage_kV: float, measured_only: bool = True) -> np.ndarray:
    """``A (cos 2θ, sin 2θ)`` of a fit, as fitted.

    With ``measured_only``, zero where the fit did not measure its astigmatism
    (`astigmatism_is_measured`).
    """
    if measured_only and not astigmatism_is_measured(fit, voltage_kV):
        return np.zeros(2)
    size_A = abs(fit.defocus_u_A - fit.defocus_v_A)
    angle = np.radians(2.0 * fit.astigmatism_angle_deg)
    return size_A * np.array([np.cos(angle), np.sin(angle)])


def half_field_astigmatism_spread(
    image: np.ndarray, optics: Optics, params: CtfSearch, fit: CtfFit, tile_px: int
) -> float:
    """How far the two halves' astigmatisms differ from ``fit``'s, relative to its size.

    The micrograph is cut in two along its longer side and each half is fitted on its own,
    with the whole fit's periodogram tile (``tile_px`` working pixels: the same sampling of the
    rings, fewer tiles; a smaller tile loses fine rings at high defocus). A half whose rings
    reach the resolution at which the whole fit's astigmatism ``A`` shows
    (`astigmatism_is_measured`: ``sqrt(2 lambda A)``) could have seen it, and its fitted
    astigmatism vector ``A (cos 2θ, sin 2θ)`` is compared with the whole fit's as it is (a
    smaller one than it could itself resolve included); a half whose rings stop before is left
    out. The larger distance, over the whole fit's length, is returned: 0 the same, 1 a half
    found none, 2 the opposite direction; 1 (not repeated) when both halves are left out. NaN
    when the whole fit measured none or a half is too small to fit.

    Measured 2026-12-07 (session 30, `bench/micassess_generators.py --per-session`): a half
    has half the tiles and fits less far, and had been counted as "found none" wherever it did
    not resolve its own astigmatism: on the clean set an astigmatism of 5,800 Å, fitted 5,718 Å
    at the right angle to 9.0 Å, and on the hot-pixel set one of 4,451 Å fitted 5,029 Å to
    12.8 Å (both halves 4,000-4,500 Å at the right angle, to 12.8 Å, where 4,000 Å needs 12.5
    Å) were kept for that.
    """
    whole = _astigmatism_vector(fit, optics.voltage_kV)
    size = float(np.hypot(*whole))
    if size == 0.0:
        return float("nan")
    image = np.asarray(image)
    if image.shape[1] >= image.shape[0]:
        half = image.shape[1] // 2
        halves = (image[:, :half], image[:, half:])
    else:
        half = image.shape[0] // 2
        halves = (image[:half], image[half:])
    visible_A = math.sqrt(2.0 * electron_wavelength_A(optics.voltage_kV) * size)
    spreads = []
    for part in halves:
        try:
            part_fit, _ = _estimate(np.ascontiguousarray(part), optics, params, tile_px)
        except ValueError:
            return float("nan")
        if not part_fit.fit_resolution_A <= visible_A:
            continue  # its rings stop before the astigmatism shows: no evidence either way
        # Its rings reach where the whole fit's astigmatism shows: what it fitted is evidence,
        # a smaller astigmatism than it could itself resolve included.
        vector = _astigmatism_vector(part_fit, optics.voltage_kV, measured_only=False)
        spreads.append(float(np.hypot(*(vector - whole))) / size)
    return max(spreads) if spreads else 1.0


FIXED_PATTERN_MAX_SPREAD_A = 300.0
"""A session whose ring-fitted CTF fits agree on their mean defocus within this robust standard
deviation (1.4826 MAD, Å) follows a pattern of its images' processing, not Thon rings. Real
micrographs of one session scatter by more: autofocus repeats to 50-100 nm, ice thickness and
specimen height vary by tens of nm, and most sessions step through a defocus range. Measured
2026-12-06 (session 24) on `bench/micassess_generators.py --per-session`'s ten sets: the seven
sessions fitted at a defocus 20-85 % off their truth (NL-means and JPEG after the trained kinds'
denoisers: 0.46, 0.78-0.80, 1.14-1.15, 1.48 µm for 2.1-3.0 µm) agree within 137-274 Å, and an
NL-means session fitted 5 % off its truth within 102 Å; every session fitted within 5 % of its truth
scatters by 478 Å or more (narrow simulated ranges, 2.9-3.1 µm); the EMPIAR-10017 exports binned
2x (`shared/real_examples`) put 6 of 12 fits at 1.44-1.45 µm "to 11 Å" (their profile shows one
dip, at 33 Å, identical in every export)."""

FIXED_PATTERN_MIN_FITS = 5
"""Ring-fitted fits a session needs before their agreement is judged."""

FIXED_PATTERN_WINDOW = 0.05
"""Fits within this fraction of the pattern's defocus are the pattern's."""


@dataclass(frozen=True)
class FixedPattern:
    """Ring-fitted CTF fits of one session that agree too well to be measurements.

    Attributes
    ----------
    defocus_A
        Their median mean defocus.
    spread_A
        Their robust standard deviation (1.4826 MAD).
    n_fits
        How many fits of the session lie within `FIXED_PATTERN_WINDOW` of ``defocus_A``.
    """

    defocus_A: float
    spread_A: float
    n_fits: int

    def warning(self) -> str:
        """What the run says about the session's CTF fits."""
        return (
            f"CTF: {self.n_fits} fits agree on {self.defocus_A / 1e4:.2f} µm within "
            f"{self.spread_A:.0f} Å, closer than the micrographs of a session can be focused: "
            "a pattern of the images' processing (a denoiser, an 8-bit or JPEG export), not Thon "
            "rings. Their defocus is not a measurement (rings not fitted); fit the raw sums if "
            "you have them."
        )


def without_fixed_pattern(
    fits: list[CtfFit | None], params: CtfSearch
) -> tuple[list[CtfFit | None], FixedPattern | None]:
    """A session's fits with those of a processing pattern marked as following no ring.

    When at least `FIXED_PATTERN_MIN_FITS` fits reach past ``params.low_res_A`` and their mean
    defoci agree within `FIXED_PATTERN_MAX_SPREAD_A`, every fit within `FIXED_PATTERN_WINDOW` of
    their median gets ``fit_resolution_A = params.low_res_A`` (rings not fitted: no check and no
    report reads its defocus as measured); its defocus values stay as fitted. Returns the fits
    (the same list, copied, when nothing is found) and the pattern or None.
    """
    fits = list(fits)
    ringed = [f for f in fits if f is not None and f.fit_resolution_A < params.low_res_A]
    if len(ringed) < FIXED_PATTERN_MIN_FITS:
        return fits, None
    defoci = np.array([f.mean_defocus_A for f in ringed])
    median = float(np.median(defoci))
    spread = 1.4826 * float(np.median(np.abs(defoci - median)))
    if spread > FIXED_PATTERN_MAX_SPREAD_A:
        return fits, None
    marked = [
        replace(f, fit_resolution_A=params.low_res_A)
        if f is not None
        and f.fit_resolution_A < params.low_res_A
        and abs(f.mean_defocus_A - median) <= FIXED_PATTERN_WINDOW * median
        else f
        for f in fits
    ]
    n_fits = sum(a is not b for a, b in zip(fits, marked, strict=True))
    return marked, FixedPattern(median, spread, n_fits)


# 4: other 1D seeds where the first fitted no ring (`_ALTERNATIVE_MIN_ZEROS`)
# 5: band and fit resolution end where the spectrum is dead (`LIVE_POWER_DROP`)
# 6: ... read along the axes, where a Fourier pad's square band limit is complete
# 7: a half whose rings stop before the astigmatism shows is left out of `astigmatism_spread`
BACKEND = Backend(
    stage="ctf", name="builtin", version="7", params_type=CtfSearch, compute=estimate_ctf
)


class CtfNotMeasurable(ValueError):
    """No band of the micrograph where Thon rings could be fitted: no fit, nothing wrong with it.

    Raised for a pixel too coarse for ``CtfSearch.low_res_A`` (a micrograph binned to 13 Å/px
    has no frequency finer than 30 Å to fit) or too few spectrum rings in the band. `screen run`
    goes on without a CTF for such a micrograph.
    """


def _validated(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"CTF estimation needs a 2D micrograph, got shape {image.shape}")
    if min(image.shape) < MIN_IMAGE_PX:
        raise ValueError(
            f"micrograph of {image.shape[1]}x{image.shape[0]} px is too small for CTF "
            f"estimation (at least {MIN_IMAGE_PX} px per side)"
        )
    if not np.all(np.isfinite(image)):
        raise ValueError("micrograph has non-finite pixels (NaN or inf): cannot estimate the CTF")
    if float(np.ptp(image)) == 0.0:
        raise ValueError("micrograph is constant: it has no power spectrum to fit a CTF to")
    return image


def _tile_size(shape: tuple[int, int], tile_px: int) -> int:
    side = min(shape)
    tile = min(tile_px, max(MIN_IMAGE_PX, side // 2), side)
    return int(tile - tile % 2)


def _live_limit_k(spectrum: _Spectrum, k_lo: float) -> float:
    """The frequency (1/Å) from which the spectrum is dead, Nyquist if nowhere (`LIVE_POWER_DROP`).

    The first ``k >= k_lo`` where the median of the average along the axes (`_Spectrum.axial`)
    over ``k``-``1.05 k`` is under ``LIVE_POWER_DROP`` times its minimum over ``0.85 k``-``0.95 k``.
    """
    profile, counts = spectrum.axial
    k_bins = (np.arange(len(profile)) + 0.5) / (spectrum.n_px * spectrum.pixel_size_A)
    live = counts > 0
    k_bins, profile = k_bins[live], profile[live]
    for index in np.nonzero(k_bins >= k_lo)[0]:
        k = k_bins[index]
        after = profile[(k_bins >= k) & (k_bins <= 1.05 * k)]
        before = profile[(k_bins >= 0.85 * k) & (k_bins <= 0.95 * k)]
        if len(before) and np.median(after) < LIVE_POWER_DROP * before.min():
            return float(k)
    return 0.5 / spectrum.pixel_size_A


def _half_plane(power: np.ndarray, pixel_size_A: float) -> _Spectrum:
    n = power.shape[0]
    k_A, angle_rad, radius_px = half_plane_polar(n, pixel_size_A)
    return _Spectrum(power[:, n // 2 :], k_A, angle_rad, radius_px, n, pixel_size_A)


# --- 1D: mean defocus -------------------------------------------------------------------------


def _mean_defocus_seeds(
    spectrum: _Spectrum, physics: _Optics, band: tuple[float, float], params: CtfSearch
) -> list[_Seed]:
    """Candidate mean defoci from the rotational average (best first), each with its smooth fit.

    Candidates are interior local maxima of the 1D score (``_N_SEEDS`` of them are kept), then
    the best one's neighbours half a ring and a ring away at the band's high end.
    """
    k_lo, k_hi = band
    profile, counts = spectrum.rotational
    first = int(np.ceil(k_lo * spectrum.n_px * spectrum.pixel_size_A))
    last = int(np.floor(k_hi * spectrum.n_px * spectrum.pixel_size_A))
    bins = np.arange(first, last)
    bins = bins[(counts[bins] > 0) & (profile[bins] > 0)]
    if len(bins) < _BACKGROUND_DEGREE + _ENVELOPE_DEGREE + 4:
        raise CtfNotMeasurable(
            "too few spectrum rings in the fitting band: use a larger tile or image"
        )
    k_bins = (bins + 0.5) / (spectrum.n_px * spectrum.pixel_size_A)
    domain = (float(k_bins[0]), float(k_bins[-1]))
    weights = counts[bins].astype(np.float64)

    basis = chebyshev_basis(k_bins, _BACKGROUND_DEGREE, domain)
    log_coef = _weighted_lstsq(
        basis[:, : _LOG_BACKGROUND_DEGREE + 1], np.log(profile[bins]), weights
    )
    flat = profile[bins] / np.exp(basis[:, : _LOG_BACKGROUND_DEGREE + 1] @ log_coef)

    # Sub-samples of each bin's radii, weighted by the ring length, give a bin-averaged CTF².
    sub = (bins[:, None] + (np.arange(_SUBSAMPLES) + 0.5) / _SUBSAMPLES) / (
        spectrum.n_px * spectrum.pixel_size_A
    )
    sub_weights = sub / sub.sum(axis=1, keepdims=True)
    sub2, sub4 = sub**2, sub**4

    def ctf2(defocus_A: np.ndarray) -> np.ndarray:
        chi = physics.chi(sub2, sub4, np.asarray(defocus_A, dtype=np.float64)[..., None, None])
        return np.sum(np.sin(chi) ** 2 * sub_weights, axis=-1)

    scorer = _RingScorer(basis, basis[:, : _ENVELOPE_DEGREE + 1], flat, weights)
    step_A = _GRID_PHASE_STEP_RAD / (physics.defocus_coef * k_hi**2)
    grid_A = np.arange(params.min_defocus_um * 1e4, params.max_defocus_um * 1e4 + step_A, step_A)
    scores = scorer.scores(ctf2(grid_A))
    seeds = []
    for index in _local_maxima(scores)[:_N_SEEDS]:
        if scores[index] <= 0 and seeds:
            break
        result = optimize.minimize_scalar(
            lambda d: -scorer.scores(ctf2(np.array([d])))[0],
            bounds=(grid_A[max(index - 1, 0)], grid_A[min(index + 1, len(grid_A) - 1)]),
            method="bounded",
            options={"xatol": 1.0},
        )
        defocus_A = float(result.x) if -result.fun >= scores[index] else float(grid_A[index])
        background, envelope = scorer.coefficients(ctf2(np.array([defocus_A]))[0])
        seeds.append(_Seed(defocus_A, _Smooth(log_coef, background, envelope, domain)))
    if seeds:
        # The best one's neighbours half a ring and a ring away at the band's high end: where the
        # rotational average's score is flat over the ring-count ambiguity, the true defocus need
        # not be a local maximum of it.
        ring_A = np.pi / (physics.defocus_coef * k_hi**2)
        for shift in (0.5, -0.5, 1.0, -1.0):
            defocus_A = seeds[0].defocus_A + shift * ring_A
            if not params.min_defocus_um * 1e4 <= defocus_A <= params.max_defocus_um * 1e4:
                continue
            background, envelope = scorer.coefficients(ctf2(np.array([defocus_A]))[0])
            seeds.append(_Seed(defocus_A, _Smooth(log_coef, background, envelope, domain)))
    return seeds


def _local_maxima(scores: np.ndarray) -> np.ndarray:
    """Indices of the interior local maxima of ``scores``, best first.

    A maximum at the low end of the search range is usually the near-focus degeneracy (one broad
    ring mimics background curvature), so the range ends count only when nothing inside peaks.
    """
    padded = np.concatenate([[-np.inf], scores, [-np.inf]])
    peaks = np.nonzero((scores >= padded[:-2]) & (scores >= padded[2:]))[0]
    interior = peaks[(peaks > 0) & (peaks < len(scores) - 1)]
    peaks = interior if len(interior) else peaks
    return peaks[np.argsort(-scores[peaks], kind="stable")]


def _weighted_lstsq(design: np.ndarray, target: np.ndarray, weights: np.ndarray) -> np.ndarray:
    root = np.sqrt(weights)
    return np.linalg.lstsq(design * root[:, None], target * root, rcond=None)[0]


class _RingScorer:
    """Scores CTF² curves by the weighted least-squares gain of ``envelope * CTF²`` over a background.

    The data is modelled as ``B(k) + E(k) * CTF²(k)`` with B and E smooth bases. The score is the
    fraction of the background-only residual that the CTF term explains, negated when the fitted
    envelope is negative (rings in anti-phase).
    """

    def __init__(self, background_basis, envelope_basis, data, weights):
        self.root = np.sqrt(weights / weights.sum())
        self.background = background_basis * self.root[:, None]
        self.envelope = envelope_basis * self.root[:, None]
        self.data = data * self.root
        q, _ = np.linalg.qr(self.background)
        self.q = q
        residual = self.data - q @ (q.T @ self.data)
        self.rss_background = float(residual @ residual)

    def _solve(self, curves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        curves = np.atleast_2d(curves)
        design = np.concatenate(
            [
                np.broadcast_to(self.background, curves.shape[:1] + self.background.shape),
                self.envelope[None] * curves[:, :, None],
            ],
            axis=2,
        )
        normal = np.einsum("cnp,cnq->cpq", design, design)
        normal += (
            1e-10 * np.trace(normal, axis1=1, axis2=2)[:, None, None] * np.eye(normal.shape[1])
        )
        rhs = np.einsum("cnp,n->cp", design, self.data)
        coef = np.linalg.solve(normal, rhs[..., None])[..., 0]
        return design, coef

    def scores(self, curves: np.ndarray) -> np.ndarray:
        design, coef = self._solve(curves)
        residual = self.data[None] - np.einsum("cnp,cp->cn", design, coef)
        rss = np.einsum("cn,cn->c", residual, residual)
        gain = 1.0 - rss / max(self.rss_background, 1e-300)
        envelope = np.einsum("np,cp->cn", self.envelope, coef[:, self.background.shape[1] :])
        sign = np.where(np.sum(envelope * self.root[None], axis=1) >= 0, 1.0, -1.0)
        return gain * sign

    def coefficients(self, curve: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Background and envelope coefficients for one CTF² curve."""
        _, coef = self._solve(curve)
        n_background = self.background.shape[1]
        return coef[0, :n_background], coef[0, n_background:]


# --- 2D: astigmatism --------------------------------------------------------------------------


def _fit_astigmatism(
    spectrum: _Spectrum,
    physics: _Optics,
    seeds: list[_Seed],
    band: tuple[float, float],
    params: CtfSearch,
) -> tuple[float, float, float, float]:
    """Refine ``(mean, a, b)`` on the 2D spectrum; returns them and the correlation.

    A coarse grid of astigmatisms around each 1D seed starts Nelder-Mead searches; the best
    result is then polished once more with the envelope refitted on the equiphase average (the
    rotational average underestimates it where astigmatism blurs the rings).
    """
    candidates = []  # (score, x, objective)
    for seed in seeds:
        objective = _Correlation(spectrum, physics, seed.smooth, band, seed.defocus_A, params)
        starts = [np.array([seed.defocus_A, 0.0, 0.0])]
        if params.astigmatism:
            for half_diff in _astigmatism_grid(params.max_astigmatism_A / 2.0, seed.defocus_A):
                for angle in np.radians(_ASTIGMATISM_ANGLES_DEG):
                    starts.append(
                        np.array(
                            [
                                seed.defocus_A,
                                half_diff * np.cos(2 * angle),
                                half_diff * np.sin(2 * angle),
                            ]
                        )
                    )
        candidates += [(objective(x), x, objective) for x in starts]
    candidates.sort(key=lambda c: -c[0])
    best_score, best_x, _ = candidates[0]
    for _, x0, objective in candidates[:_N_STARTS]:
        x, score = objective.maximise(x0, params.astigmatism)
        if score > best_score:
            best_x, best_score = x, score
    smooth = _equiphase_smooth(spectrum, physics, seeds[0].smooth, best_x, band)
    if smooth is not None:
        objective = _Correlation(
            spectrum, physics, smooth, band, best_x[0] + np.hypot(*best_x[1:]), params
        )
        best_x, best_score = objective.maximise(best_x, params.astigmatism)
    return float(best_x[0]), float(best_x[1]), float(best_x[2]), float(best_score)


class _Correlation:
    """Normalised correlation of the 2D spectrum with ``envelope * (CTF² - 1/2)``, of ``(mean, a, b)``.

    The band stops where rings of the largest expected defocus would be finer than the spectrum
    can resolve.
    """

    def __init__(self, spectrum, physics, smooth, band, max_defocus_A, params):
        k_hi = physics.max_k_resolved(1.2 * max_defocus_A, spectrum.n_px, spectrum.pixel_size_A)
        k_hi = max(min(band[1], k_hi), min(band[1], 2.0 * band[0]))
        mask = (spectrum.k_A >= band[0]) & (spectrum.k_A <= k_hi)
        k = spectrum.k_A[mask]
        crude, mean_level, envelope = smooth.evaluate(k)
        data = spectrum.power[mask] / crude - mean_level
        # float32 throughout: sin() is several times faster, and chi stays exact to ~1e-4 rad.
        self.data = (data - data.mean()).astype(np.float32)
        self.data_norm = float(np.sqrt(self.data @ self.data))
        self.weight = np.clip(envelope, 0.0, None).astype(np.float32)
        self.k2, self.k4 = (k**2).astype(np.float32), (k**4).astype(np.float32)
        self.cos2 = np.cos(2.0 * spectrum.angle_rad[mask]).astype(np.float32)
        self.sin2 = np.sin(2.0 * spectrum.angle_rad[mask]).astype(np.float32)
        self.physics = physics
        self.range_A = (params.min_defocus_um * 1e4, params.max_defocus_um * 1e4)

    def __call__(self, x: np.ndarray) -> float:
        mean_A, a_A, b_A = (float(v) for v in x)
        if not self.range_A[0] <= mean_A <= self.range_A[1] or np.hypot(a_A, b_A) >= mean_A:
            return -1.0
        if self.data_norm == 0.0:
            return 0.0
        defocus = mean_A + a_A * self.cos2 + b_A * self.sin2
        model = self.weight * (np.sin(self.physics.chi(self.k2, self.k4, defocus)) ** 2 - 0.5)
        model -= model.mean()
        norm = float(np.sqrt(model @ model))
        return float(model @ self.data) / (norm * self.data_norm) if norm > 0 else 0.0

    def maximise(self, x0: np.ndarray, astigmatism: bool) -> tuple[np.ndarray, float]:
        """Local maximum from ``x0``: Nelder-Mead over (mean, a, b), or Brent over the mean."""
        step_A = max(100.0, 0.02 * float(x0[0]))
        if not astigmatism:
            result = optimize.minimize_scalar(
                lambda m: -self(np.array([m, 0.0, 0.0])),
                bounds=(x0[0] - 2 * step_A, x0[0] + 2 * step_A),
                method="bounded",
                options={"xatol": 1.0},
            )
            return np.array([float(result.x), 0.0, 0.0]), float(-result.fun)
        simplex = np.array([x0, x0 + [step_A, 0, 0], x0 + [0, step_A, 0], x0 + [0, 0, step_A]])
        result = optimize.minimize(
            lambda x: -self(x),
            x0,
            method="Nelder-Mead",
            options={"initial_simplex": simplex, "xatol": 2.0, "fatol": 1e-6, "maxiter": 400},
        )
        return np.asarray(result.x, dtype=np.float64), float(-result.fun)


def _equiphase_smooth(
    spectrum: _Spectrum,
    physics: _Optics,
    smooth: _Smooth,
    x: np.ndarray,
    band: tuple[float, float],
) -> _Smooth | None:
    """Background and envelope refitted on the equiphase average of the fit ``x`` (None: too few bins)."""
    mean_A, a_A, b_A = (float(v) for v in x)
    mask = (spectrum.k_A >= band[0]) & (spectrum.k_A <= band[1])
    angle = spectrum.angle_rad[mask]
    defocus = mean_A + a_A * np.cos(2.0 * angle) + b_A * np.sin(2.0 * angle)
    k_eff = _equiphase_frequency(physics, spectrum.k_A[mask], defocus, mean_A)
    bin_width = 1.0 / (spectrum.n_px * spectrum.pixel_size_A)
    index = np.floor(k_eff / bin_width).astype(int)
    n_bins = int(np.ceil(band[1] / bin_width)) + 1
    crude, _, _ = smooth.evaluate(spectrum.k_A[mask])
    profile, counts = binned_mean(index, spectrum.power[mask] / crude, n_bins)
    model, _ = binned_mean(index, np.sin(physics.chi(k_eff**2, k_eff**4, mean_A)) ** 2, n_bins)
    keep = counts > 0
    if keep.sum() < _BACKGROUND_DEGREE + _ENVELOPE_DEGREE + 4:
        return None
    k_bins = (np.arange(n_bins)[keep] + 0.5) * bin_width
    basis = chebyshev_basis(k_bins, _BACKGROUND_DEGREE, smooth.domain)
    scorer = _RingScorer(
        basis, basis[:, : _ENVELOPE_DEGREE + 1], profile[keep], counts[keep].astype(np.float64)
    )
    background, envelope = scorer.coefficients(model[keep])
    return _Smooth(smooth.log_background, background, envelope, smooth.domain)


def _astigmatism_grid(max_half_diff_A: float, defocus_A: float) -> np.ndarray:
    """Half-differences of the coarse search: 250 Å doubling up to the limit (and < mean)."""
    values = 250.0 * 2.0 ** np.arange(12)
    return values[(values <= max_half_diff_A) & (values < 0.8 * defocus_A)]


# --- fit resolution ---------------------------------------------------------------------------


def _fit_resolution_k(
    spectrum: _Spectrum,
    physics: _Optics,
    fit: tuple[float, float, float],
    k_lo: float,
    params: CtfSearch,
) -> float:
    """Highest frequency (1/Å) up to which the spectrum follows the fitted CTF in most directions.

    The half plane is cut into ``params.fit_sectors`` angular sectors; in each, the equiphase
    average is compared with the model. The result is the frequency reached by all but one
    sector, so that rings surviving only across a drift direction do not count as a good fit.
    """
    mean_A, a_A, b_A = fit
    k_nyquist = 0.5 / spectrum.pixel_size_A
    mask = (spectrum.k_A >= 0.5 * k_lo) & (spectrum.k_A <= k_nyquist)
    k = spectrum.k_A[mask]
    angle = spectrum.angle_rad[mask]
    defocus = mean_A + a_A * np.cos(2.0 * angle) + b_A * np.sin(2.0 * angle)
    k_eff = _equiphase_frequency(physics, k, defocus, mean_A)
    bin_width = 1.0 / (spectrum.n_px * spectrum.pixel_size_A)
    n_bins = int(np.ceil(k_nyquist / bin_width))
    index = np.floor(k_eff / bin_width).astype(int)
    model = np.sin(physics.chi(k_eff**2, k_eff**4, mean_A)) ** 2
    power = spectrum.power[mask]
    n_sectors = max(1, params.fit_sectors)
    sector = np.minimum(((angle + 0.5 * np.pi) / np.pi * n_sectors).astype(int), n_sectors - 1)
    reached = []
    for s in range(n_sectors):
        members = sector == s
        profile, counts = binned_mean(index[members], power[members], n_bins)
        model_profile, _ = binned_mean(index[members], model[members], n_bins)
        keep = counts > 0
        k_bins = (np.arange(n_bins)[keep] + 0.5) * bin_width
        reached.append(
            _profile_fit_k(
                profile[keep], model_profile[keep], k_bins, physics, mean_A, k_lo, params
            )
        )
    reached = np.sort(reached)
    return float(min(reached[1] if n_sectors > 1 else reached[0], k_nyquist))


def _profile_fit_k(
    profile: np.ndarray,
    model: np.ndarray,
    k_bins: np.ndarray,
    physics: _Optics,
    mean_A: float,
    k_lo: float,
    params: CtfSearch,
) -> float:
    """Highest frequency up to which a ring profile locally correlates with its model."""
    chi_bins = physics.chi(k_bins**2, k_bins**4, mean_A)
    phase = np.concatenate([[0.0], np.cumsum(np.abs(np.diff(chi_bins)))])
    lo, hi = window_bounds(phase, 0.5 * np.pi)  # one ring: the mean level of the spectrum
    level = window_mean(profile, lo, hi)
    modulation = profile / np.where(level > 0, level, 1.0) - 1.0
    model_modulation = model - window_mean(model, lo, hi)
    lo, hi = window_bounds(phase, 0.5 * params.fit_window_rings * np.pi)
    correlation = local_correlation(modulation, model_modulation, lo, hi)

    # The lowest rings are often poorly modelled (steep background, few pixels): the fitted
    # stretch may start anywhere within the first window of rings above the band's low end.
    first = int(np.searchsorted(k_bins, k_lo))
    if first >= len(k_bins):
        return k_lo
    last = int(np.searchsorted(phase, phase[first] + params.fit_window_rings * np.pi, "right"))
    above = np.nonzero(correlation[first:last] >= params.fit_threshold)[0]
    if len(above) == 0:
        return k_lo
    start = first + int(above[0])
    n_good = first_drop(correlation[start:], params.fit_threshold)
    return float(max(k_bins[start + n_good - 1], k_lo))


def _equiphase_frequency(
    physics: _Optics, k: np.ndarray, defocus_A: np.ndarray, mean_A: float
) -> np.ndarray:
    """Frequency at which the mean-defocus CTF has the phase that the astigmatic CTF has at ``k``.

    Solves ``pi*lambda*mean*u - pi/2*Cs*lambda^3*u^2 = chi(k)`` for ``u = k_eff^2``; beyond the
    phase extremum (very low defocus, very high k) it falls back to scaling by the defocus ratio.
    """
    target = physics.defocus_coef * defocus_A * k**2 - physics.cs_coef * k**4
    b = physics.defocus_coef * mean_A
    discriminant = b**2 - 4.0 * physics.cs_coef * target
    scaled = k**2 * defocus_A / mean_A
    with np.errstate(invalid="ignore"):
        exact = (b - np.sqrt(discriminant)) / (2.0 * physics.cs_coef)
    u = np.where(discriminant > 0, exact, scaled)
    return np.sqrt(np.clip(u, 0.0, None))
