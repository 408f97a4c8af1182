"""Class averages made by the built-in picker + 2D classification, labelled from ground truth.

2DAssess v0 learnt from drawn class averages only (``class_assess.synthetic_class_average``): one
clean projection plus a little noise. The averages ``screen run`` shows it are different: a few
dozen particles of several nearby views, some false picks mixed in, the residual noise of a small
class. Trained on the drawings alone, it called many classes of real particles "noise" or "clip"
(p_good 0.2-0.6 on classes with 70-90% true particles) and the ranking of conditions followed
those coin flips.

This module makes training examples the way the pipeline makes class averages: pick a simulated
micrograph set at a (slightly wrong) diameter, extract, classify at several mask diameters, and
label every class by what its members are, from the simulator's ground truth:

- *purity* = fraction of members within ``match_diameters`` of a true particle centre;
- ``good`` when purity >= ``purity_good`` and the mask is ``min_good_mask_ratio`` to
  ``max_good_mask_ratio`` true diameters (beyond it neighbours fill the mask and the label is
  ambiguous: not used);
- ``noise`` when purity <= ``purity_noise``, or when the mask is under ``min_good_mask_ratio``
  true diameters whatever the members: the mask cuts the particle, so the average shows texture
  without the particle's boundary, which 2DAssess does not call good (Li et al.: good classes show
  a clear boundary). Without this, the smallest mask, where junk and particles look alike, held
  the most "good" particles in every condition;
- other classes are not used.

The sizes above are in true (enclosing) diameters for ``ExampleParams()`` (how class_assess_v1
and v2 were labelled); ``VISIBLE_LABELS`` judges the mask against the particle's visible extent
instead (``labelled(..., label_diameter_A=...)``; class_assess_v3). ``pipeline_classes`` keeps
every class with its purity, so labels can be chosen after the slow part.

``clip`` and ``edge`` examples still come from the drawn generator (their truth is a property of
the image, not of the members).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from screen.models.class_assess import SyntheticAverage
from screen.simulate.structures import CUBIC_ORDERS
from screen.stages.classify2d import Classify2DParams, classify_2d
from screen.stages.extraction import ExtractParams, binned_stack, picked_stack
from screen.stages.picking import PickParams
from screen.stages.records import ClassAverages, CtfFit, Optics


@dataclass(frozen=True)
class ExampleParams:
    """How pipeline class averages are made and labelled.

    Attributes
    ----------
    mask_factors
        Mask diameters of the classifications, in estimated diameters.
    diameter_error
        The diameter used for picking is the true one times a factor drawn from this range
        (the pipeline's estimate is not exact).
    match_diameters
        A pick is a true particle when a true centre lies within this many true diameters.
    purity_good, purity_noise
        Purity thresholds of the ``good`` and ``noise`` labels.
    min_good_mask_ratio, max_good_mask_ratio
        Masks (in true diameters) at which a pure class is labelled ``good``; under the minimum
        every class is ``noise`` (the mask cuts the particle).
    max_box_px
        Boxes are Fourier-binned to at most this size, as the pipeline does for 2D.
    """

    mask_factors: tuple[float, ...] = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)
    diameter_error: tuple[float, float] = (0.8, 1.25)
    match_diameters: float = 0.25
    purity_good: float = 0.7
    purity_noise: float = 0.35
    min_good_mask_ratio: float = 0.65
    max_good_mask_ratio: float = 1.3
    max_box_px: int = 96


# Labels with masks judged against the particle's visible extent (``projected_extent_A``, the
# 99 %-mass long axis; 0.68-0.78 of the simulator's enclosing diameter). A pure class is good
# from a mask of 0.85 visible extents, where the boundary of most views is inside the mask (the
# extent is the longest axis; a view's own extent is mostly shorter), to 1.8 (about the old
# 1.3 enclosing diameters, beyond which neighbours fill the mask). Chosen from the geometry
# before any model was trained on these labels; it holds for any particle whose visible extent is
# known, which is why real class averages (masked at the visible size by the gap estimate) get
# the same rule.
VISIBLE_LABELS = ExampleParams(min_good_mask_ratio=0.85, max_good_mask_ratio=1.8)


def true_pick_flags(
    x_px: np.ndarray,
    y_px: np.ndarray,
    micrograph_index: np.ndarray,
    truth_xy_px: list[np.ndarray],
    radius_px: float,
) -> np.ndarray:
    """Whether each pick lies within ``radius_px`` of a true particle centre of its micrograph.

    ``truth_xy_px[m]`` is an ``(n_m, 2)`` array of true (x, y) centres on micrograph ``m``.
    """
    flags = np.zeros(len(x_px), bool)
    for m, truth in enumerate(truth_xy_px):
        here = np.flatnonzero(micrograph_index == m)
        if here.size == 0 or len(truth) == 0:
            continue
        dx = x_px[here, None] - truth[None, :, 0]
        dy = y_px[here, None] - truth[None, :, 1]
        flags[here] = np.hypot(dx, dy).min(axis=1) <= radius_px
    return flags


def class_label(purity: float, mask_ratio: float, params: ExampleParams) -> str | None:
    """Training label of a class from its purity and mask / true diameter (None: not used)."""
    if purity <= params.purity_noise or mask_ratio < params.min_good_mask_ratio:
        return "noise"
    if purity >= params.purity_good and mask_ratio <= params.max_good_mask_ratio:
        return "good"
    return None


def member_label(
    distance_d: np.ndarray,
    centred_d: float = 0.25,
    off_d: float = 0.75,
    good_share: float = 0.7,
    clip_share: float = 0.5,
    noise_share: float = 0.65,
) -> tuple[str | None, tuple[float, float, float]]:
    """Label of a class from its members' distances to the nearest true centre (in diameters).

    Members within ``centred_d`` are centred particles, ``centred_d``-``off_d`` off-centre ones
    (the average shows a cut or shifted particle), further ones junk. Returns the label (``good``,
    ``clip``, ``noise`` or None when no share reaches its threshold) and the three shares.
    """
    distance_d = np.asarray(distance_d, float)
    n = max(len(distance_d), 1)
    centred = float(np.sum(distance_d <= centred_d)) / n
    off = float(np.sum((distance_d > centred_d) & (distance_d <= off_d))) / n
    far = float(np.sum(distance_d > off_d)) / n
    label = None
    if centred >= good_share:
        label = "good"
    elif off >= clip_share:
        label = "clip"
    elif far >= noise_share:
        label = "noise"
    return label, (centred, off, far)


@dataclass(frozen=True)
class PipelineClass:
    """One class average of the pipeline's 2D with what its members are (from ground truth)."""

    image: np.ndarray  # (box, box) float32, as classify_2d made it
    purity: float  # fraction of members within match_diameters of a true centre
    n_members: int
    mask_diameter_A: float
    pixel_size_A: float


def member_classes(classes: ClassAverages, is_true: np.ndarray) -> list[PipelineClass]:
    """Every class of one classification with two or more members, with its purity."""
    out = []
    for k, average in enumerate(classes.averages):
        members = classes.assignments == k
        if members.sum() < 2:
            continue
        out.append(
            PipelineClass(
                np.asarray(average, np.float32),
                float(is_true[members].mean()),
                int(members.sum()),
                classes.mask_diameter_A,
                classes.pixel_size_A,
            )
        )
    return out


def labelled(
    found: list[PipelineClass],
    true_diameter_A: float,
    params: ExampleParams,
    label_diameter_A: float | None = None,
) -> list[SyntheticAverage]:
    """Training examples from classes: label by purity and mask / ``label_diameter_A``.

    ``label_diameter_A`` is the size masks are judged against (default: the true diameter); the
    particle's visible extent (``structures.projected_extent_A``) labels as a person would.
    """
    reference_A = label_diameter_A or true_diameter_A
    out = []
    for c in found:
        label = class_label(c.purity, c.mask_diameter_A / reference_A, params)
        if label is not None:
            out.append(
                SyntheticAverage(c.image, label, c.mask_diameter_A, c.pixel_size_A, true_diameter_A)
            )
    return out


def labelled_classes(
    classes: ClassAverages, is_true: np.ndarray, true_diameter_A: float, params: ExampleParams
) -> list[SyntheticAverage]:
    """Every usable class average of one classification, labelled from its members."""
    return labelled(member_classes(classes, is_true), true_diameter_A, params)


def pipeline_classes(
    micrographs: list[np.ndarray],
    ctfs: list[CtfFit],
    truth_xy_px: list[np.ndarray],
    optics: Optics,
    true_diameter_A: float,
    rng: np.random.Generator,
    params: ExampleParams = ExampleParams(),
    picking_diameter_A: float | None = None,
) -> list[PipelineClass]:
    """Every class average of one simulated session, made as ``screen run`` makes them.

    Parameters
    ----------
    micrographs
        The session's micrographs (particles dark), all at ``optics.pixel_size_A``.
    ctfs
        Their CTFs (true or estimated).
    truth_xy_px
        True particle centres (x, y) per micrograph, in its pixels.
    optics
        Pixel size and microscope.
    true_diameter_A
        The particle's true diameter (the largest species' in a mixture).
    rng
        Draws the diameter error and the classification seed.
    params
        Masks, matching radius.
    picking_diameter_A
        The diameter to pick at and to scale the masks by (e.g. the pipeline's own estimate);
        default: the true one times a factor drawn from ``params.diameter_error``.
    """
    if picking_diameter_A is None:
        diameter_A = true_diameter_A * float(rng.uniform(*params.diameter_error))
    else:
        diameter_A = float(picking_diameter_A)
    stack = picked_stack(micrographs, ctfs, optics, diameter_A, PickParams(), ExtractParams())
    if stack is None:
        return []
    stack = binned_stack(stack, params.max_box_px)
    if len(stack.images) < 10:
        return []
    is_true = true_pick_flags(
        stack.x_px,
        stack.y_px,
        stack.micrograph_index,
        truth_xy_px,
        params.match_diameters * true_diameter_A / optics.pixel_size_A,
    )
    out = []
    seed = int(rng.integers(0, 2**31))
    for factor in params.mask_factors:
        classes = classify_2d(stack, factor * diameter_A, Classify2DParams(seed=seed))
        out.extend(member_classes(classes, is_true))
    return out


SESSION_SYMMETRIES: tuple[str, ...] = ("C1", "C1", "C1", "C2", "C3", "C4", "D2", "D3")
"""Symmetries drawn by ``random_session_spec`` (the sessions of class_assess_v1-v3)."""
CAGE_SYMMETRIES: tuple[str, ...] = ("T", "O", "O", "I")
"""Hollow cages, whose averages are rings (apoferritin is O): ``symmetries=CAGE_SYMMETRIES``."""


PROTEIN_A3_PER_DA = 1.21
"""Å^3 per dalton of protein (density 1.37 g/cm^3)."""


def solid_sphere_kDa(diameter_A: float) -> float:
    """Mass of a solid sphere of protein of this diameter: a particle's mass over it is its fill."""
    return float(np.pi * diameter_A**3 / 6 / PROTEIN_A3_PER_DA / 1e3)


def random_session_spec(
    seed: int, n_micrographs: int = 10, symmetries: tuple[str, ...] = SESSION_SYMMETRIES
):
    """A simulated screening session of a random procedural particle, for training examples.

    Diameter 80-260 Å, one or two species, uniform to strongly preferred views, 500-2500
    particles per µm², and some micrographs with aggregates, contamination or carbon (their
    junk is picked too, as it is when micrograph assessment lets a bad one through). The
    symmetry of each species is drawn from ``symmetries``.
    """
    from screen.simulate.spec import OrientationSpec, SessionSpec, SpeciesSpec, StructureSpec

    rng = np.random.default_rng(seed)

    def structure(index: int, diameter_A: float) -> StructureSpec:
        solid_kDa = solid_sphere_kDa(diameter_A)
        filled = rng.uniform(0.15, 0.4)
        symmetry = str(rng.choice(symmetries))
        if symmetry in CUBIC_ORDERS:  # a cage's shell is dense (apoferritin: 480 kDa, 0.64)
            filled = 0.4 + filled
        return StructureSpec(
            name=f"train-{seed}-{index}",
            diameter_A=diameter_A,
            mass_kDa=float(solid_kDa * filled),
            symmetry=symmetry,
            n_domains=int(rng.integers(1, 6)),
            elongation=float(rng.uniform(1.0, 2.2)),
            seed=10_000 + seed * 10 + index,
        )

    def orientation() -> OrientationSpec:
        views = tuple(
            (float(rng.uniform(0, 90)), float(rng.uniform(0, 360)))
            for _ in range(int(rng.integers(1, 3)))
        )
        return OrientationSpec(float(rng.choice((0.0, 0.3, 0.6, 0.85))), views, 15.0)

    diameter_A = float(rng.uniform(80.0, 260.0))
    species = [SpeciesSpec(structure(0, diameter_A), 1.0, orientation())]
    if rng.random() < 0.3:
        small = diameter_A * float(rng.uniform(0.4, 0.8))
        share = float(rng.uniform(0.2, 0.6))
        species = [
            SpeciesSpec(species[0].structure, 1.0 - share, species[0].orientation),
            SpeciesSpec(structure(1, small), share, orientation()),
        ]
    bad = float(rng.uniform(0.0, 0.3))
    return SessionSpec(
        name=f"train{seed}",
        species=tuple(species),
        n_micrographs=n_micrographs,
        particles_per_um2=float(rng.uniform(500.0, 2500.0)) * (140.0 / diameter_A) ** 2,
        bad_mix={"aggregated": bad / 3, "contaminated": bad / 3, "carbon": bad / 3},
        good_contamination_prob=0.2,
        good_carbon_edge_prob=0.15,
    )
