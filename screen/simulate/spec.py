"""Typed description of a synthetic screening: structures, species, sessions, the whole screen.

Everything the simulator draws at random is drawn from these specs with a seeded generator, so a
spec plus its seed fully determines the output.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from screen.stages import records

BAD_REASONS: tuple[str, ...] = records.MICROGRAPH_REASONS
"""Why a micrograph is bad: the same labels the micrograph-assessment stage predicts."""

MICROGRAPH_REASONS: tuple[str, ...] = ("good", *BAD_REASONS)
"""Ground-truth labels of a micrograph: ``good`` or the reason it is bad."""


@dataclass(frozen=True)
class StructureSpec:
    """A procedural 3D object: a cloud of Gaussian pseudo-atoms with point-group symmetry.

    Parameters
    ----------
    name
        Label used in ground truth (e.g. ``"prex1"``).
    diameter_A
        Diameter of the sphere (centred on the centre of mass) that encloses every pseudo-atom.
    mass_kDa
        Total mass; sets the projected potential and so the contrast.
    symmetry
        ``"C1"``, ``"Cn"`` or ``"Dn"`` (n >= 1), or ``"T"``, ``"O"``, ``"I"``: a hollow cage
        (apoferritin is ``"O"``), whose projections are rings.
    n_domains
        Globular domains per asymmetric unit.
    elongation
        Aspect ratio (>= 1) of the domain layout along z: elongated particles give distinct views.
    partner
        An optional second structure attached to the surface (a bound partner).
    layout
        ``"domains"``: ``n_domains`` compact domains per asymmetric unit, spread out (their
        projections show a dense core about a quarter to a half of ``diameter_A`` across);
        ``"globular"``: residues uniform in one ellipsoid (long axis ``diameter_A``, the others
        that over ``elongation``), mass filling the envelope as most proteins' does (half-peak
        size of its class averages 0.70-0.76 of the diameter, β-galactosidase's 0.57;
        bench/README.md). Not in any training set of the shipped models: a held-out kind.
    seed
        Seed of the shape itself, so the same structure appears in every session that names it.
    """

    name: str
    diameter_A: float
    mass_kDa: float
    symmetry: str = "C1"
    n_domains: int = 3
    elongation: float = 1.3
    partner: StructureSpec | None = None
    seed: int = 0
    layout: str = "domains"


@dataclass(frozen=True)
class OrientationSpec:
    """Distribution of particle orientations.

    ``preferred_fraction`` of the particles take a view within ``spread_deg`` of one of the
    ``preferred_views`` (tilt, rot in degrees); the rest are uniform on the sphere. In-plane
    rotation is always uniform.
    """

    preferred_fraction: float = 0.0
    preferred_views: tuple[tuple[float, float], ...] = ((0.0, 0.0),)
    spread_deg: float = 10.0

    @property
    def kind(self) -> str:
        """``"uniform"`` or ``"preferred"``."""
        return "preferred" if self.preferred_fraction > 0 else "uniform"


@dataclass(frozen=True)
class SpeciesSpec:
    """One kind of particle in a session and its share of the particles."""

    structure: StructureSpec
    fraction: float = 1.0
    orientation: OrientationSpec = field(default_factory=OrientationSpec)


@dataclass(frozen=True)
class SessionSpec:
    """One grid condition: its sample, its grid and the micrograph population it yields.

    ``bad_mix`` gives the share of micrographs of each bad reason; the rest are good.
    ``particle_snr`` is the range from which each micrograph's particle SNR is drawn (variance of
    the particle signal inside the particle discs over the noise variance, at the micrograph's
    pixel size, under good conditions); bad conditions then lower it physically.
    """

    name: str
    species: tuple[SpeciesSpec, ...]
    n_micrographs: int = 10
    bad_mix: dict[str, float] = field(default_factory=dict)
    particles_per_um2: float = 1200.0
    aggregate_fraction: float = 0.03
    ice_thickness_A: tuple[float, float] = (250.0, 550.0)
    defocus_um: tuple[float, float] = (0.8, 2.8)
    astigmatism_A: tuple[float, float] = (50.0, 600.0)
    dose_e_per_A2: tuple[float, float] = (40.0, 55.0)
    dose_jitter: float | None = None
    """None: each micrograph draws its own dose from ``dose_e_per_A2`` (sets that mix exposures,
    as micrograph-assessment training does); a number: the session draws one dose from the range
    (one exposure setting) and each micrograph lies within this fraction of it (beam current)."""
    b_factor_A2: tuple[float, float] = (40.0, 110.0)
    particle_snr: tuple[float, float] = (0.02, 0.08)
    good_contamination_prob: float = 0.15
    good_carbon_edge_prob: float = 0.08
    background_clutter: tuple[float, float] = (0.0, 0.0)
    """Range of each micrograph's background clutter (:attr:`MicrographPlan.clutter`): a random
    phase texture at 15-200 Å (ice roughness, protein debris, dissociated subunits), as strong
    as this fraction of the particles' own phase (RMS over their discs); 0 is clean ice."""
    contamination_shapes: str = "round"
    """``"round"``: every contaminant is one sphere (an ethane or ice ball); ``"irregular"``: most
    are clusters of 2-6 lumps along a random axis, up to 3x longer than wide (frost and ice
    chunks), their shapes drawn from their own stream (`screen.simulate.plan.
    irregular_contaminants`): the micrograph's CTF, ice and contaminant sites are as with
    ``"round"``; the draws after the particles' placement shift where the lumps hide a different
    number of particles. The shipped weights were trained on round ones only; the irregular ones
    are a held-out kind of contamination."""
    aggregate_shapes: str = "beads"
    """``"beads"``: an aggregated micrograph holds loose 2D scatters of particles (`placement.
    clumps`) and amorphous aggregates drawn as clouds of point-like beads; ``"grown"``: its
    aggregates are particles stuck together in 3D (`placement.grown_clumps`), 1-4 compact clumps
    several particles deep, without bead clouds, as aggregates look on real micrographs and in an
    independent simulator (`bench/independent_sim.py`). Micrographs without a clump draw the same
    either way (a good one's rare small clump takes the style too). The shipped weights up to
    micassess_small_v5 saw beads only; grown aggregates were added on 2026-12-08."""
    particle_spacing: float = 0.85
    """Closest centre-to-centre distance of two free particles (not in a clump, not on a crowded
    micrograph), in the session's largest particle diameter (the enclosing one: ~99 % of a
    particle's mass projects within 0.68-0.78 of it). 0.85 keeps neighbours apart by about a
    fifth of their projected extent; from ~0.6 their projected extents meet side by side, as
    particles of a real dense monolayer can (beside three EMPIAR-10017 exports of
    `shared/real_examples`, 3-5 % of the given particle centres have their nearest neighbour under
    113 Å, 0.63 of the particle's 180 Å). The domain structures' contrast sits in compact cores
    smaller than that extent, so their dark blobs still show gaps at 0.55."""
    metadata: dict[str, str] = field(default_factory=dict)


CONTAMINATION_SHAPES = ("round", "irregular")
"""The contaminant shapes a session can have (`SessionSpec.contamination_shapes`)."""

AGGREGATE_SHAPES = ("beads", "grown")
"""The aggregate shapes a session can have (`SessionSpec.aggregate_shapes`)."""


@dataclass(frozen=True)
class ScreenSpec:
    """A whole synthetic screening: sessions plus the detector and microscope they share."""

    sessions: tuple[SessionSpec, ...]
    frame_px: tuple[int, int] = (512, 512)  # (ny, nx)
    pixel_size_A: float = 2.0
    voltage_kV: float = 300.0
    cs_mm: float = 2.7
    amplitude_contrast: float = 0.1
    movies: bool = False
    n_frames: int = 20
    seed: int = 0
