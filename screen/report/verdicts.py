"""Plain-language verdicts on a screening condition, from its measured numbers and good classes.

Every rule is a small pure function that returns one sentence (or None when it does not fire); its
threshold is a named module constant. Each sentence starts with a fixed title (``TITLE_*``) followed
by a colon, so a verdict can be recognised whatever numbers it quotes.

The image-based rules look at the good class averages of the best mask diameter:

- *views*: averages are compared by rotation- and mirror-invariant correlation (polar resampling,
  circular cross-correlation over the angle), grouped by average-linkage clustering, and the groups
  weighted by particles. Few effective groups, or one group holding most particles, means the good
  classes show few distinct views: preferred orientation.
- *sizes*: the object in each average is segmented (low-pass, threshold at a fraction of its peak,
  central connected component); its length and width are its second-moment axes. Two groups of
  lengths (ratio of their means above ``HETEROGENEITY_SIZE_RATIO``) whose long objects are also
  wider than the short ones are long mean two species (the views of one elongated particle never
  satisfy the second condition).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

MOSTLY_BAD_GOOD_FRACTION = 0.4
"""Fewer good micrographs than this fraction: "mostly bad micrographs"."""

FEW_PARTICLES_PER_MICROGRAPH = 30.0
"""Fewer picks per micrograph than this is "few particles", whatever the other conditions do
(used when the micrograph area is unknown)."""

FEW_PARTICLES_PER_UM2 = 200.0
"""Fewer picks per µm² than this is "few particles" (about 30 on a K3 frame at 0.83 Å/px); used
when the summary gives ``micrograph_area_um2``, so small and large frames are judged alike."""

FEW_PARTICLES_RELATIVE = 0.5
"""Fewer picks per micrograph than this fraction of the median of the other conditions is "few"."""

LOW_GOOD_PARTICLE_FRACTION = 0.35
"""Fewer picked particles in good classes than this fraction: many false picks or aggregates."""

VIEW_DISTANCE = 0.1
"""Rotation-invariant distance (beyond noise, see `view_distance`) below which two good averages
show the same view."""

MAX_NOISE_SHARE = 0.5
"""Views are not judged when noise makes up more than this share of the median average's features."""

MIN_AVERAGES_FOR_VIEWS = 4
"""The diversity of views (`FEW_VIEWS_EFFECTIVE`, `LARGEST_VIEW_SHARE`) is judged only with at
least this many good averages. With fewer at the best mask diameter, the good averages of the
other mask diameters are pooled in (the same particles, classified with other masks)."""

MIN_AVERAGES_ONE_VIEW = 2
"""Below `MIN_AVERAGES_FOR_VIEWS` (even pooled), at least this many good averages that all show
one view still flag preferred orientation: a strongly preferred sample gives few good classes,
and they are copies of its one view."""

ROUND_VIEWS_SHARE = 0.7
"""No flag when the dominant view group's averages hold this share or more of their (band-passed)
energy in their rotational average (`rotational_share`, weighted by particles): a sphere, a
shell or a ring looks the same from every side, so many particles in that look say nothing about
orientation. The real Magellon micrograph's apoferritin-like ring classes score 0.80-0.82; the
test structure's one-view averages 0.30-0.38 and the real EMPIAR-10017 β-galactosidase averages
at their best mask (325 Å) 0.02-0.44: a geometric share, not a score of any simulated set."""

FEW_VIEWS_EFFECTIVE = 2.5
"""Fewer effective view groups (exp of the particle-weighted entropy) than this: few views."""

LARGEST_VIEW_SHARE = 0.6
"""One view group holding more than this share of the good particles: preferred orientation."""

OBJECT_THRESHOLD = 0.12
"""Object mask of an average: pixels above this fraction of its (low-passed) peak."""

SIZE_LOWPASS_A = 20.0
"""FWHM (Å) of the Gaussian low-pass before an average's object is segmented for its size."""

OBJECT_MIN_SHARE = 0.2
"""An average's object is one of the thresholded parts holding at least this share of the largest
one's pixels: a speck of noise inside a ring's hole (a hollow shell's average) lies nearer the
centre than the ring. Measured 2026-12-06 (session 25): the independent simulator's
apoferritin-like shell, one of five good averages read as a 21-Å object (its parts 595, 16, 15 and
10 pixels), and the condition was flagged "two particle sizes"."""

HETEROGENEITY_SIZE_RATIO = 1.3
"""Two size groups whose mean diameters differ by more than this ratio: heterogeneity."""

SIZE_GAP_RATIO = 1.1
"""Smallest size of the large group over the largest of the small group must exceed this."""

MIN_SIZE_GROUP_SHARE = 0.15
"""Each of the two size groups must hold at least this share of the good particles."""

AGGREGATED_SHARE_OF_BAD = 0.3
"""Aggregated micrographs above this share of the bad ones..."""

AGGREGATED_SHARE_OF_ALL = 0.1
"""...and above this share of all micrographs: "aggregation"."""

BEST_MIN_GOOD_FRACTION = 0.5
"""A condition is a candidate for collection only with at least this good-micrograph fraction."""

BEST_TIE_SHARE = 0.9
"""Candidates with at least this share of the best one's good particles per micrograph are named
in its verdict as about as good: the measure's own spread. Measured 2026-12-06
(`bench/screen_run_transformed.py`): the same six real EMPIAR-10017 micrographs under six exports,
as six conditions of one run, got 642-684 good particles per micrograph (the smallest 0.94 of the
largest) from identical data; a tenth leaves room for sessions of fewer micrographs. A measure of
the pipeline on real pixels, not of a simulator."""

TITLE_MOSTLY_BAD = "Mostly bad micrographs"
TITLE_FEW_PARTICLES = "Few particles per micrograph"
TITLE_LOW_GOOD_PARTICLES = "Low good-particle fraction"
TITLE_FEW_VIEWS = "Few distinct views among good classes"
TITLE_TWO_SIZES = "Two particle sizes among good classes"
TITLE_AGGREGATION = "Aggregation"
TITLE_BEST = "Best candidate for high-resolution collection"

TITLES: tuple[str, ...] = (
    TITLE_MOSTLY_BAD,
    TITLE_FEW_PARTICLES,
    TITLE_LOW_GOOD_PARTICLES,
    TITLE_FEW_VIEWS,
    TITLE_TWO_SIZES,
    TITLE_AGGREGATION,
    TITLE_BEST,
)
"""Titles of every rule, in the order `session_verdicts` reports them."""

DISQUALIFYING_TITLES: tuple[str, ...] = (TITLE_FEW_VIEWS, TITLE_TWO_SIZES)
"""Flags that make a condition a worse candidate for collection than an unflagged one."""


def has_title(verdict: str, title: str) -> bool:
    """True when ``verdict`` is a sentence of the rule named ``title``."""
    return verdict.startswith(title + ":")


def _ok(summary: Mapping) -> bool:
    return summary.get("status", "ok") == "ok"


# --------------------------------------------------------------------------- number-based rules


def mostly_bad_micrographs(summary: Mapping) -> str | None:
    """Fires when the good-micrograph fraction is below `MOSTLY_BAD_GOOD_FRACTION`."""
    fraction = float(summary.get("good_micrograph_fraction") or 0.0)
    if int(summary.get("n_micrographs") or 0) == 0 or fraction >= MOSTLY_BAD_GOOD_FRACTION:
        return None
    return (
        f"{TITLE_MOSTLY_BAD}: only {fraction:.0%} of {summary['n_micrographs']} micrographs are "
        "usable; check ice thickness, blotting and the grid type."
    )


def few_particles(summary: Mapping, all_summaries: Sequence[Mapping]) -> str | None:
    """Fires when picks per micrograph are few, absolutely or against the other conditions.

    Few means below `FEW_PARTICLES_PER_MICROGRAPH`, or below `FEW_PARTICLES_RELATIVE` times the
    median of the other successful conditions of the run.
    """
    per_mic = float(summary.get("particles_per_micrograph") or 0.0)
    if int(summary.get("n_micrographs") or 0) == 0:
        return None
    others = [
        float(s.get("particles_per_micrograph") or 0.0)
        for s in all_summaries
        if _ok(s) and s.get("session") != summary.get("session")
    ]
    median = float(np.median(others)) if others else None
    relative = median is not None and per_mic < FEW_PARTICLES_RELATIVE * median
    area_um2 = float(summary.get("micrograph_area_um2") or 0.0)
    absolute = (
        per_mic / area_um2 < FEW_PARTICLES_PER_UM2
        if area_um2 > 0
        else per_mic < FEW_PARTICLES_PER_MICROGRAPH
    )
    if not absolute and not relative:
        return None
    against = f" (median of the other conditions: {median:.0f})" if median is not None else ""
    return (
        f"{TITLE_FEW_PARTICLES}: {per_mic:.0f} picks per micrograph{against}; "
        "consider a higher protein concentration or a different grid."
    )


def low_good_particle_fraction(summary: Mapping) -> str | None:
    """Fires when the good-particle fraction is below `LOW_GOOD_PARTICLE_FRACTION`."""
    fraction = float(summary.get("good_particle_fraction") or 0.0)
    if int(summary.get("picked_particles") or 0) == 0 or fraction >= LOW_GOOD_PARTICLE_FRACTION:
        return None
    return (
        f"{TITLE_LOW_GOOD_PARTICLES}: only {fraction:.0%} of the picked particles are in good "
        "classes; many false picks or aggregates."
    )


def aggregation(summary: Mapping, reason_counts: Mapping[str, int] | None = None) -> str | None:
    """Fires when many micrographs show aggregated protein.

    Parameters
    ----------
    summary : Mapping
        The session's summary (``n_micrographs``, ``n_good_micrographs``).
    reason_counts : Mapping[str, int], optional
        How many bad micrographs carry each reason (``"aggregated"``, ``"empty"``, ...).

    Returns
    -------
    str or None
        The sentence, when aggregated micrographs exceed `AGGREGATED_SHARE_OF_BAD` of the bad and
        `AGGREGATED_SHARE_OF_ALL` of all micrographs.

    Notes
    -----
    Noise classes holding most of the classified particles are not taken as aggregation (until
    2026-12-03 they were, above 60 % of the particles): junk picks on ice, carbon or a
    low-contrast particle average to the same strong blobs as aggregates do. Measured on the
    six-condition demo's stored classes: its noise classes' objects are 115-215 Å against
    60-114 Å for the good ones and their noise shares 0.04-0.4 in every condition, aggregated or
    not, and with the noise-corrected 2D the clean ddm condition reached 62 % noise particles
    (an issue-12 report saw the same on a clean session). Many particles outside good classes
    is what `low_good_particle_fraction` says, without naming a cause.
    """
    n_mics = int(summary.get("n_micrographs") or 0)
    n_bad = n_mics - int(summary.get("n_good_micrographs") or 0)
    aggregated = int((reason_counts or {}).get("aggregated", 0))
    if n_bad <= 0 or n_mics <= 0:
        return None
    if (
        aggregated / n_bad > AGGREGATED_SHARE_OF_BAD
        and aggregated / n_mics > AGGREGATED_SHARE_OF_ALL
    ):
        return (
            f"{TITLE_AGGREGATION}: {aggregated} of {n_bad} bad micrographs "
            f"({aggregated / n_mics:.0%} of all) show aggregated protein; "
            "try a detergent or additive, or a lower concentration."
        )
    return None


def _best_search_row(summary: Mapping) -> Mapping | None:
    rows = summary.get("diameter_search") or []
    if not rows:
        return None
    best = summary.get("best_mask_diameter_A")
    if best is not None:
        for row in rows:
            if abs(float(row["mask_diameter_A"]) - float(best)) < 0.5:
                return row
    return max(rows, key=lambda r: int(r.get("good_particles") or 0))


def best_candidate(
    summary: Mapping,
    all_summaries: Sequence[Mapping],
    flags: Mapping[str, Sequence[str]] | None = None,
) -> str | None:
    """Fires for the condition to collect on: most good particles per micrograph.

    Candidates are the successful conditions with a good-micrograph fraction of at least
    `BEST_MIN_GOOD_FRACTION`. Those flagged with preferred orientation or two sizes
    (`DISQUALIFYING_TITLES`) are passed over while an unflagged candidate exists.

    Parameters
    ----------
    summary : Mapping
        The condition judged.
    all_summaries : Sequence[Mapping]
        Every condition of the run (``summary`` included).
    flags : Mapping[str, Sequence[str]], optional
        Verdicts per session name; when absent, each summary's stored ``"verdicts"`` are used.
    """
    candidates = [
        s
        for s in all_summaries
        if _ok(s)
        and int(s.get("n_micrographs") or 0) > 0
        and float(s.get("good_micrograph_fraction") or 0.0) >= BEST_MIN_GOOD_FRACTION
        and float(s.get("good_particles_per_micrograph") or 0.0) > 0
    ]
    if not candidates:
        return None

    def flagged(s: Mapping) -> bool:
        verdicts = (flags or {}).get(s["session"], s.get("verdicts") or [])
        return any(has_title(v, t) for v in verdicts for t in DISQUALIFYING_TITLES)

    clean = [s for s in candidates if not flagged(s)]
    pool = clean or candidates
    best = max(pool, key=lambda s: (float(s["good_particles_per_micrograph"]), s["session"]))
    if best["session"] != summary.get("session"):
        return None
    caveat = "" if clean else " (every candidate has flags: check its class averages)"
    best_value = float(best["good_particles_per_micrograph"])
    close = [
        f"{s['session']} ({float(s['good_particles_per_micrograph']):.0f})"
        for s in sorted(pool, key=lambda s: -float(s["good_particles_per_micrograph"]))
        if s is not best
        and float(s["good_particles_per_micrograph"]) >= BEST_TIE_SHARE * best_value
    ]
    tie = (
        f" About as good (within {1 - BEST_TIE_SHARE:.0%}, the measure's own spread): "
        f"{', '.join(close)}."
        if close
        else ""
    )
    return (
        f"{TITLE_BEST}: most good particles per micrograph "
        f"({best_value:.0f}) among conditions with at least "
        f"{BEST_MIN_GOOD_FRACTION:.0%} good micrographs{caveat}.{tie}"
    )


NO_GO_TITLES: tuple[str, ...] = tuple(t for t in TITLES if t != TITLE_BEST)
"""Any of these flags makes a condition a no-go for high-resolution collection (`decision`)."""


def decision(summary: Mapping) -> tuple[str, str]:
    """Go or no-go for high-resolution collection, and why, from a summary and its verdicts.

    No-go when the session failed, found no good particles, or has any flag of
    `NO_GO_TITLES` (the reason names them); go otherwise, quoting the numbers users know
    (good micrographs, good particles per micrograph, good-particle fraction, and picks per µm²
    when the micrograph area is known).

    Examples
    --------
    >>> decision({"status": "ok", "good_particles": 0, "verdicts": []})
    ('no-go', 'no good particles')
    >>> decision({"status": "ok", "good_particles": 900, "good_micrograph_fraction": 0.8,
    ...           "good_particles_per_micrograph": 90.0, "good_particle_fraction": 0.6,
    ...           "verdicts": []})
    ('go', 'no flag: 80% good micrographs, 90 good particles per micrograph, 60% of picks good')
    """
    if not _ok(summary):
        return "no-go", f"the session failed: {summary.get('error') or 'see its summary'}"
    if not int(summary.get("good_particles") or 0):
        if summary.get("class_domain_warning"):
            return "no-go", (
                "no good particles, but class assessment may be outside its trained domain: "
                "look at the class averages before discarding this grid"
            )
        return "no-go", "no good particles"
    verdicts = [str(v) for v in summary.get("verdicts") or []]
    flags = [t for t in NO_GO_TITLES if any(has_title(v, t) for v in verdicts)]
    if flags:
        return "no-go", "; ".join(flags)
    best = " (best candidate)" if any(has_title(v, TITLE_BEST) for v in verdicts) else ""
    area_um2 = float(summary.get("micrograph_area_um2") or 0.0)
    density = (
        f", {float(summary.get('particles_per_micrograph') or 0) / area_um2:.0f} picks per µm²"
        if area_um2 > 0
        else ""
    )
    return "go", (
        f"no flag{best}: {float(summary.get('good_micrograph_fraction') or 0):.0%} good "
        f"micrographs, {float(summary.get('good_particles_per_micrograph') or 0):.0f} good "
        f"particles per micrograph, {float(summary.get('good_particle_fraction') or 0):.0%} of "
        f"picks good{density}"
    )


# --------------------------------------------------------------------------- image-based rules


def _prepared(average: np.ndarray) -> np.ndarray:
    """Average with protein bright, background 0, low-passed, centred on its object, masked."""
    from scipy.ndimage import center_of_mass, shift

    image = np.asarray(average, dtype=np.float64)
    n = min(image.shape)
    image = image[:n, :n]
    yy, xx = np.indices(image.shape) - (n - 1) / 2
    radius = np.hypot(yy, xx)
    image = image - np.median(image[radius > 0.42 * n]) if (radius > 0.42 * n).any() else image
    if image[radius < 0.2 * n].mean() < 0:
        image = -image
    image = _smoothed(image)
    weights = np.clip(image, 0, None) * (radius < 0.45 * n)
    if weights.sum() > 0:
        cy, cx = center_of_mass(weights)
        image = shift(image, ((n - 1) / 2 - cy, (n - 1) / 2 - cx), order=1, mode="constant")
    return image * _soft_mask(n)


def _polar(image: np.ndarray, n_angles: int = 128) -> np.ndarray:
    """(radius, angle) resampling about the centre, rings weighted by sqrt(radius)."""
    from scipy.ndimage import map_coordinates

    n = image.shape[0]
    radii = np.arange(1, n // 2)
    angles = np.linspace(0, 2 * np.pi, n_angles, endpoint=False)
    c = (n - 1) / 2
    y = c + radii[:, None] * np.sin(angles)[None, :]
    x = c + radii[:, None] * np.cos(angles)[None, :]
    polar = map_coordinates(image, [y, x], order=1, mode="constant")
    return polar * np.sqrt(radii)[:, None]


def _band_pass(image: np.ndarray) -> np.ndarray:
    """Remove the round blob (Gaussian of sigma box/16) so that internal structure dominates."""
    from scipy.ndimage import gaussian_filter

    return image - gaussian_filter(image, image.shape[0] / 16)


def _smoothed(image: np.ndarray) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(image, max(image.shape[0] / 64, 1.0))


def _soft_mask(n: int) -> np.ndarray:
    yy, xx = np.indices((n, n)) - (n - 1) / 2
    return np.clip((0.48 * n - np.hypot(yy, xx)) / (0.06 * n), 0, 1)


def _corner_sigma(filtered: np.ndarray) -> float:
    n = filtered.shape[0]
    yy, xx = np.indices(filtered.shape) - (n - 1) / 2
    outside = np.hypot(yy, xx) > 0.5 * n
    return float(filtered[outside].std()) if outside.sum() > 8 else 0.0


def _noise_energy(average: np.ndarray) -> float:
    """Energy that pixel noise alone puts into an average's polar features.

    The noise level is measured in the corners (outside the inscribed circle, where no object
    is) after the same filters as the features; the energy per unit of that level comes from
    passing a seeded white-noise field through the same filters and polar resampling. Averages
    masked to a circle (our own 2D's) have constant corners: their pixel noise is then taken
    from the finest-scale diagonal differences inside the mask (`_masked_pixel_sigma`).
    """
    image = np.asarray(average, dtype=np.float64)
    n = min(image.shape)
    image = image[:n, :n]
    white = np.random.default_rng(0).normal(size=(n, n))
    filtered = _band_pass(_smoothed(white))
    unit = float((_polar(filtered * _soft_mask(n)) ** 2).sum())
    if _corner_sigma(image) > 0:
        sigma = _corner_sigma(_band_pass(_smoothed(image)))
        return sigma**2 * unit / max(_corner_sigma(filtered), 1e-12) ** 2
    return _masked_pixel_sigma(image) ** 2 * unit


def _masked_pixel_sigma(image: np.ndarray) -> float:
    """Pixel noise of an average whose outside is masked to a constant.

    The robust (MAD) level of its Haar diagonal detail, ``(a - b - c + d) / 2`` over 2x2
    blocks, within 0.9 of the unmasked disc: white noise of std s gives std s there, and a
    smooth object almost nothing. Noise correlated by a low-pass is underestimated.
    """
    n = image.shape[0] // 2 * 2
    x = image[:n, :n] - image[0, 0]
    a, b, c, d = x[0::2, 0::2], x[0::2, 1::2], x[1::2, 0::2], x[1::2, 1::2]
    detail = (a - b - c + d) / 2
    unmasked = (a != 0) & (b != 0) & (c != 0) & (d != 0)
    if not unmasked.any():
        return 0.0
    yy, xx = np.indices(detail.shape) - (detail.shape[0] - 1) / 2
    radius = np.hypot(yy, xx)
    inside = unmasked & (radius < 0.9 * radius[unmasked].max())
    return float(np.median(np.abs(detail[inside])) / 0.6745) if inside.any() else 0.0


def _features(averages: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[float]]:
    """Unit-norm polar features of the averages and the share of each that is noise."""
    polars, shares = [], []
    for average in averages:
        p = _polar(_band_pass(_prepared(average)) * _soft_mask(min(np.shape(average))))
        energy = max(float((p**2).sum()), 1e-12)
        shares.append(min(_noise_energy(average) / energy, 1.0))
        polars.append(p / np.sqrt(energy))
    n_rings = min(p.shape[0] for p in polars)  # averages of different boxes: common rings
    return [p[:n_rings] for p in polars], shares


def noise_shares(averages: Sequence[np.ndarray]) -> np.ndarray:
    """Share (0..1) of each average's view features that pixel noise accounts for."""
    return np.asarray(_features(averages)[1])


def rotational_share(average: np.ndarray) -> float:
    """Share (0..1) of an average's energy that its rotational average (about its object) holds.

    The average is prepared and band-passed as for the view features (protein bright,
    low-passed, centred on its object, masked, its round blob removed); near 1 for a disc or a
    ring, small for an elongated or lobed object.
    """
    image = _band_pass(_prepared(average))
    n = image.shape[0]
    yy, xx = np.indices(image.shape) - (n - 1) / 2
    radius = np.hypot(yy, xx)
    inside = radius < 0.45 * n
    image = image - image[inside].mean()
    rings = np.rint(radius).astype(int)
    size = int(rings.max()) + 1
    profile = np.bincount(rings[inside], image[inside], minlength=size) / np.maximum(
        np.bincount(rings[inside], minlength=size), 1
    )
    total = float((image[inside] ** 2).sum())
    return float((profile[rings[inside]] ** 2).sum() / total) if total > 0 else 1.0


def view_distance(averages: Sequence[np.ndarray]) -> np.ndarray:
    """Rotation- and mirror-invariant distance (n, n) between class averages, beyond noise.

    Each average is prepared (protein bright, low-passed, centred on its object), band-passed
    (its round low-resolution blob removed, which all views share) and resampled
    on a polar grid (rings weighted by sqrt(radius), so every sample stands for its area) and
    scaled to unit norm. For every pair the squared distance ``2 - 2 c`` is taken at the best
    in-plane rotation, with or without a mirror (``c``: correlation, FFT over the angle). The
    part expected from noise alone (each average's noise energy share, from its corners) is
    subtracted, so two noisy copies of one view are at distance about 0 whatever their SNR.
    """
    polars, noise_share = _features(averages)
    spectra = np.fft.fft(np.stack(polars), axis=2)
    mirrored = np.fft.fft(np.stack([p[:, ::-1] for p in polars]), axis=2)
    n = len(polars)
    distance = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            direct = np.fft.ifft((np.conj(spectra[i]) * spectra[j]).sum(axis=0)).real.max()
            mirror = np.fft.ifft((np.conj(spectra[i]) * mirrored[j]).sum(axis=0)).real.max()
            excess = 2 - 2 * max(direct, mirror) - noise_share[i] - noise_share[j]
            distance[i, j] = distance[j, i] = max(excess, 0.0)
    return distance


def view_groups(averages: Sequence[np.ndarray]) -> np.ndarray:
    """Group label (0, 1, ...) per average: averages closer than `VIEW_DISTANCE` share a view."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    if len(averages) < 2:
        return np.zeros(len(averages), dtype=int)
    tree = linkage(squareform(view_distance(averages), checks=False), method="average")
    return fcluster(tree, t=VIEW_DISTANCE, criterion="distance") - 1


def view_diversity(
    averages: Sequence[np.ndarray], weights: Sequence[float] | None = None
) -> tuple[float, float]:
    """Effective number of distinct views and the largest view group's share of particles.

    Returns
    -------
    effective_views : float
        exp of the entropy of the particle shares of the view groups (1 = one view).
    largest_share : float
        Share of the particles in the most populated view group.
    """
    return _diversity(view_groups(averages), weights)


def _diversity(groups: np.ndarray, weights: Sequence[float] | None) -> tuple[float, float]:
    """Effective number of view groups and the largest one's share, weighted by particles."""
    w = np.ones(len(groups)) if weights is None else np.asarray(weights, dtype=float)
    shares = np.bincount(groups, weights=w) / max(float(w.sum()), 1e-12)
    shares = shares[shares > 0]
    return float(np.exp(-(shares * np.log(shares)).sum())), float(shares.max())


def few_views(
    averages: Sequence[np.ndarray],
    weights: Sequence[float] | None = None,
    *,
    other_averages: Sequence[np.ndarray] = (),
    other_weights: Sequence[float] | None = None,
) -> str | None:
    """Fires when the good averages show few distinct views (preferred orientation).

    The sentence states its evidence: how many good classes were compared (and whether those of
    other mask diameters were pooled in), how many view groups they form and the largest group's
    share of the good particles.

    Parameters
    ----------
    averages, weights
        Good averages at the best mask diameter and their particles (equal weights when absent).
    other_averages, other_weights
        Good averages at the other mask diameters; pooled in when ``averages`` are fewer than
        `MIN_AVERAGES_FOR_VIEWS`.

    Notes
    -----
    Nothing is judged when the median noise share of the compared averages exceeds
    `MAX_NOISE_SHARE` (noisy averages all look alike) or fewer than `MIN_AVERAGES_ONE_VIEW` are
    available, and no flag is raised when the dominant view group is round
    (`ROUND_VIEWS_SHARE`: a ring looks the same from every side). With at least
    `MIN_AVERAGES_FOR_VIEWS` it fires when the effective number of view groups is below
    `FEW_VIEWS_EFFECTIVE` or one group holds more than `LARGEST_VIEW_SHARE`; with fewer, only
    when they all show one view.
    """
    pooled = list(averages)
    w = [1.0] * len(pooled) if weights is None else [float(x) for x in weights]
    where = "at the best mask diameter"
    if len(pooled) < MIN_AVERAGES_FOR_VIEWS and len(other_averages):
        pooled += list(other_averages)
        w += (
            [1.0] * len(other_averages)
            if other_weights is None
            else [float(x) for x in other_weights]
        )
        where = "over all mask diameters"
    if len(pooled) < MIN_AVERAGES_ONE_VIEW or np.median(noise_shares(pooled)) > MAX_NOISE_SHARE:
        return None
    groups = view_groups(pooled)
    effective, largest = _diversity(groups, w)
    weights = np.maximum(np.asarray(w, dtype=float), 1e-12)
    dominant = groups == np.argmax(np.bincount(groups, weights=weights))
    roundness = [rotational_share(a) for a, member in zip(pooled, dominant, strict=True) if member]
    if np.average(roundness, weights=weights[dominant]) >= ROUND_VIEWS_SHARE:
        return None  # the dominant look is round (a shell, a ring): any side looks like it
    n_groups = len(np.unique(groups))
    if len(pooled) < MIN_AVERAGES_FOR_VIEWS:
        if n_groups > 1:
            return None
        evidence = f"{len(pooled)} good classes {where}, all one view"
    else:
        if effective >= FEW_VIEWS_EFFECTIVE and largest <= LARGEST_VIEW_SHARE:
            return None
        evidence = (
            f"{len(pooled)} good classes {where} in {n_groups} view group"
            f"{'s' if n_groups != 1 else ''}, about {effective:.1f} distinct views; "
            f"{largest:.0%} of good particles share one view"
        )
    return f"{TITLE_FEW_VIEWS}: preferred orientation likely ({evidence})."


def object_axes_A(average: np.ndarray, pixel_size_A: float) -> tuple[float, float]:
    """Width and length (Å) of the central object of a class average: its minor and major axes.

    The prepared average (protein bright, centred) is low-passed to `SIZE_LOWPASS_A` (so that a
    particle's domains merge into one object) and thresholded at `OBJECT_THRESHOLD` of its peak;
    the connected component nearest the centre, holes filled, among those of at least
    `OBJECT_MIN_SHARE` of the largest one's size, is the object. Its axes are those of
    the ellipse with the same second moments (both equal a disc's diameter). ``(0, 0)`` when no
    object is found.
    """
    from scipy.ndimage import binary_fill_holes, gaussian_filter, label
    from skimage.measure import regionprops

    image = _prepared(average)
    image = gaussian_filter(image, SIZE_LOWPASS_A / 2.355 / max(pixel_size_A, 1e-6))
    peak = float(image.max())
    if peak <= 0:
        return 0.0, 0.0
    mask, n_parts = label(image > OBJECT_THRESHOLD * peak)
    if n_parts == 0:
        return 0.0, 0.0
    n = image.shape[0]
    yy, xx = np.indices(image.shape) - (n - 1) / 2
    distance = np.hypot(yy, xx)
    sizes = np.bincount(mask.ravel(), minlength=n_parts + 1)[1:]
    parts = [k for k in range(1, n_parts + 1) if sizes[k - 1] >= OBJECT_MIN_SHARE * sizes.max()]
    nearest = min(parts, key=lambda k: distance[mask == k].min())
    region = regionprops(binary_fill_holes(mask == nearest).astype(np.uint8))[0]
    return (
        float(region.axis_minor_length * pixel_size_A),
        float(region.axis_major_length * pixel_size_A),
    )


LONG_AXIS_QUANTILE = 0.8
"""`particle_long_axis_A` takes the length this share of the good particles' averages reach (by
particles, longest last): a rod's side views are the longest of its projections and, at random
orientations, about 44 % of its particles lie within 25 degrees of side-on; a single long junk
class (two particles merged) holding a few particles does not set it."""


LONG_AXIS_MAX_MASK = 2.0
"""... over the averages of masks up to this many diameters (`screen run`'s own 2D masks at 0.5-2
diameters; a user's 2D with wider masks): a wider mask holds more neighbours, which in a dense
field merge with the particle above the object's threshold. Measured 2026-12-06 (session 26): the
12 real EMPIAR-10017 exports (~180 Å, diameter 163 Å) have good averages 220-311 Å long at masks of
244 and 325 Å, and the 80 % length reads 173 Å up to 1.5 diameters, 189 Å up to 2; but a rod
reads whole only where a mask holds its side views, and the independent simulator's rods
(200-206 Å, diameters 134-148 Å, three seeds) read 0.67-0.92 of their length up to 1.5 diameters,
0.89-0.92 up to 2."""


@dataclass(frozen=True)
class LongAxis:
    """A particle's long axis from its good 2D class averages (`particle_long_axis_A`)."""

    long_axis_A: float
    classes_length_A: float  # the good averages' object length at `LONG_AXIS_QUANTILE`
    aspect_ratio: float  # that length over the good averages' median object width
    n_averages: int


def particle_long_axis_A(
    averages: Sequence[np.ndarray],
    counts: Sequence[float],
    masks_A: Sequence[float],
    pixel_size_A: float,
    diameter_A: float | None,
) -> LongAxis | None:
    """The particle's long axis: the larger of its diameter and its good averages' length.

    Both are lower bounds of the longest dimension. The diameter estimate (the spread edge)
    averages the extent over the particles' in-plane and out-of-plane angles, so it reads an
    elongated particle short (the independent simulator's 200 x 70 Å rod: 140 Å); an average's
    object (`object_axes_A`, thresholded at `OBJECT_THRESHOLD` of its peak) is one projection
    seen above a fraction of its peak, so it reads a globular or lumpy one short (a 228-Å
    ribosome: 151 Å) but a side view of a rod nearly whole (179-187 Å). The lengths of the good
    averages of masks up to `LONG_AXIS_MAX_MASK` diameters (``masks_A``: each average's), weighted
    by their particles, are taken at `LONG_AXIS_QUANTILE`. ``None`` without a good average with
    an object there.
    """
    if not len(averages) == len(counts) == len(masks_A):
        raise ValueError(
            f"{len(averages)} averages but {len(counts)} particle counts and {len(masks_A)} masks"
        )
    if not pixel_size_A > 0:
        return None
    largest_A = LONG_AXIS_MAX_MASK * diameter_A + 0.5 if diameter_A else float("inf")
    axes = [
        object_axes_A(a, pixel_size_A) if mask_A <= largest_A else (0.0, 0.0)
        for a, mask_A in zip(averages, masks_A, strict=True)
    ]
    kept = [(w, length, float(n)) for (w, length), n in zip(axes, counts, strict=True)]
    kept = [k for k in kept if k[1] > 0 and k[2] > 0]
    if not kept:
        return None
    widths, lengths, weights = (np.array(v) for v in zip(*kept, strict=True))
    length_A = _weighted_quantile(lengths, weights, LONG_AXIS_QUANTILE)
    width_A = _weighted_quantile(widths, weights, 0.5)
    long_axis_A = max(length_A, float(diameter_A or 0.0))
    aspect = length_A / width_A if width_A > 0 else float("nan")
    return LongAxis(long_axis_A, length_A, aspect, len(kept))


def _weighted_quantile(values: np.ndarray, weights: np.ndarray, share: float) -> float:
    """The smallest value whose own and smaller values hold ``share`` of the weight."""
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(weights[order]) / weights.sum()
    return float(values[order][np.searchsorted(cumulative, share - 1e-9)])


def object_diameter_A(average: np.ndarray, pixel_size_A: float) -> float:
    """Length (Å) of the central object of a class average (its major axis, `object_axes_A`)."""
    return object_axes_A(average, pixel_size_A)[1]


def size_groups(
    diameters_A: Sequence[float], weights: Sequence[float] | None = None
) -> tuple[float, float, float] | None:
    """Best split of sizes into a small and a large group (Otsu on the sorted sizes).

    Returns
    -------
    tuple of (small_mean_A, large_mean_A, large_share) or None
        Weighted mean diameter of each group and the large group's share, for the split that
        maximises the between-group variance while each group holds at least
        `MIN_SIZE_GROUP_SHARE` of the weight and the groups are separated by `SIZE_GAP_RATIO`;
        None if no split qualifies.
    """
    d = np.asarray(diameters_A, dtype=float)
    w = np.ones(len(d)) if weights is None else np.asarray(weights, dtype=float)
    keep = d > 0
    d, w = d[keep], w[keep]
    if len(d) < 2:
        return None
    order = np.argsort(d)
    d, w = d[order], w[order] / w.sum()
    best: tuple[float, tuple[float, float, float]] | None = None
    for k in range(1, len(d)):
        w_small, w_large = w[:k].sum(), w[k:].sum()
        if min(w_small, w_large) < MIN_SIZE_GROUP_SHARE or d[k] / d[k - 1] <= SIZE_GAP_RATIO:
            continue
        m_small = float((d[:k] * w[:k]).sum() / w_small)
        m_large = float((d[k:] * w[k:]).sum() / w_large)
        between = w_small * w_large * (m_large - m_small) ** 2
        if best is None or between > best[0]:
            best = (between, (m_small, m_large, float(w_large)))
    return None if best is None else best[1]


def two_sizes(
    averages: Sequence[np.ndarray],
    pixel_size_A: float,
    weights: Sequence[float] | None = None,
    *,
    other_masks: Sequence[tuple[float, Sequence[np.ndarray], Sequence[float]]] | None = None,
) -> str | None:
    """Fires when the good averages show two particles of different sizes.

    The averages are split into a short and a long group by their objects' lengths (`size_groups`);
    the rule fires when the lengths differ by more than `HETEROGENEITY_SIZE_RATIO` *and* the long
    objects are at least as wide as the short ones are long. The second condition keeps the views
    of one elongated particle together: every projection of a convex particle is at most as wide
    as any other projection of it is long (for an ellipsoid, the axes of its projections interlace
    with its own), so end views (short) and side views (long) of a rod never fire.

    ``other_masks`` (``(mask_A, averages, weights)`` of the same particles' other
    classifications): when given, the split must appear again at one of them. Two species are
    two species at any mask that holds them; an average of a hundred noisy particles can show
    only its densest domain (a 55-Å object of a 150-Å complex, the demo's gbg_6uM at one mask
    of four), and the flag disqualifies a condition, so one classification is not enough.
    """
    split = _two_size_split(averages, pixel_size_A, weights)
    if split is None:
        return None
    small, large, share = split
    where = ""
    if other_masks is not None:
        again = [
            mask_A
            for mask_A, more, more_weights in other_masks
            if _two_size_split(more, pixel_size_A, more_weights) is not None
        ]
        if not again:
            return None
        where = f", again at the {', '.join(f'{m:.0f}' for m in sorted(again))} Å mask"
    return (
        f"{TITLE_TWO_SIZES}: heterogeneity (objects about {small:.0f} Å and {large:.0f} Å long; "
        f"{share:.0%} of good particles in the larger{where}); check for complexes, oligomers or "
        "dissociation."
    )


def _two_size_split(
    averages: Sequence[np.ndarray], pixel_size_A: float, weights: Sequence[float] | None
) -> tuple[float, float, float] | None:
    """`two_sizes`' split of one classification's good averages (None when it does not fire)."""
    if len(averages) < 2:
        return None
    axes = np.array([object_axes_A(a, pixel_size_A) for a in averages])
    lengths = axes[:, 1]
    split = size_groups(lengths, weights)
    if split is None or split[1] / split[0] <= HETEROGENEITY_SIZE_RATIO:
        return None
    small, large, _ = split
    threshold = 0.5 * (small + large)
    w = np.ones(len(axes)) if weights is None else np.asarray(weights, dtype=float)
    long_ = (lengths > threshold) & (lengths > 0)
    short = (lengths <= threshold) & (lengths > 0)
    long_width = float(np.average(axes[long_, 0], weights=w[long_]))
    short_length = float(np.average(axes[short, 1], weights=w[short]))
    if long_width < short_length:
        return None
    return split


# --------------------------------------------------------------------------- all rules


def session_verdicts(
    summary: dict,
    good_averages: list[np.ndarray],
    pixel_size_A: float,
    all_summaries: list[dict],
    *,
    good_counts: Sequence[float] | None = None,
    other_good_averages: Sequence[np.ndarray] = (),
    other_good_counts: Sequence[float] | None = None,
    other_masks_good: Sequence[tuple[float, Sequence[np.ndarray], Sequence[float]]] | None = None,
    reason_counts: Mapping[str, int] | None = None,
    flags: Mapping[str, Sequence[str]] | None = None,
) -> list[str]:
    """Every verdict that applies to one condition, in the order of `TITLES`.

    Parameters
    ----------
    summary : dict
        The condition's summary.json content.
    good_averages : list of np.ndarray
        Good class averages at the best mask diameter.
    pixel_size_A : float
        Å per pixel of the averages (the 2D pixel size).
    all_summaries : list of dict
        Every condition of the run (for the relative rules and the best candidate).
    good_counts : Sequence[float], optional
        Particles in each good average (weights); equal weights when absent.
    other_good_averages, other_good_counts : optional
        Good averages at the other mask diameters and their particles (views are judged on
        them too when the best mask has few good averages, `few_views`).
    other_masks_good : optional
        ``(mask_A, good averages, their particles)`` per other mask diameter: when given, two
        particle sizes must show at one of them too (`two_sizes`).
    reason_counts : Mapping[str, int], optional
        Bad micrographs per reason (for the aggregation rule).
    flags : Mapping[str, Sequence[str]], optional
        Verdicts of the other conditions, for choosing the best candidate; their stored
        ``"verdicts"`` when absent.

    Returns
    -------
    list of str
        Plain-language sentences; empty for a failed session.
    """
    if not _ok(summary):
        return []
    own = [
        mostly_bad_micrographs(summary),
        few_particles(summary, all_summaries),
        low_good_particle_fraction(summary),
        few_views(
            good_averages,
            good_counts,
            other_averages=other_good_averages,
            other_weights=other_good_counts,
        ),
        two_sizes(good_averages, pixel_size_A, good_counts, other_masks=other_masks_good)
        if pixel_size_A
        else None,
        aggregation(summary, reason_counts),
    ]
    verdicts = [v for v in own if v]
    merged = dict(flags or {})
    merged.setdefault(summary["session"], verdicts)
    best = best_candidate(summary, all_summaries, merged)
    return verdicts + ([best] if best else [])
