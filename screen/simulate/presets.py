"""Ready-made synthetic screenings, by name.

``prex1`` mirrors the six-condition P-Rex1 screen of Li et al. (2020), Table 3: apo on Quantifoil,
apo on lacey carbon (mostly bad micrographs), two detergent additives (strong preferred
orientation), and two Gbg concentrations (60 uM: Gbg oligomers, i.e. heterogeneity; 6 uM: the good
condition). Densities follow the paper's picks per micrograph on K3 frames, except that the
6 uM condition is made the best by construction (most particles per micrograph, near-uniform
views, the complex formed), so a screen of this preset has a known winner.
"""

from __future__ import annotations

import dataclasses

from screen.simulate.spec import (
    BAD_REASONS,
    OrientationSpec,
    ScreenSpec,
    SessionSpec,
    SpeciesSpec,
    StructureSpec,
)

PREX1 = StructureSpec("P-Rex1", 140.0, 186.0, "C1", n_domains=5, elongation=1.8, seed=11)
GBG = StructureSpec("Gbg", 70.0, 45.0, "C1", n_domains=2, elongation=1.2, seed=12)
PREX1_GBG = StructureSpec(
    "P-Rex1:Gbg", 150.0, 186.0, "C1", n_domains=5, elongation=1.8, partner=GBG, seed=11
)
GBG_OLIGOMER = StructureSpec("Gbg-trimer", 110.0, 135.0, "C3", n_domains=2, elongation=1.0, seed=13)

STRONG_PREFERENCE = OrientationSpec(0.85, ((90.0, 0.0), (90.0, 90.0)), 12.0)


def _prex1_sessions(n: int) -> tuple[SessionSpec, ...]:
    def prex1(fraction: float, preference: float) -> SpeciesSpec:
        return SpeciesSpec(
            PREX1, fraction, dataclasses.replace(STRONG_PREFERENCE, preferred_fraction=preference)
        )

    return (
        SessionSpec(
            "apo_quantifoil",
            (prex1(1.0, 0.85),),
            n,
            particles_per_um2=1100,
            bad_mix={
                "empty": 0.08,
                "crowded": 0.03,
                "aggregated": 0.10,
                "contaminated": 0.08,
                "carbon": 0.04,
                "thick_ice": 0.06,
                "drift": 0.02,
                "bad_ctf": 0.02,
            },
            metadata={"grid": "Quantifoil R1.2/1.3", "additive": "none", "partner": "none"},
        ),
        SessionSpec(
            "apo_lacey",
            (prex1(1.0, 0.85),),
            n,
            particles_per_um2=500,
            bad_mix={
                "carbon": 0.30,
                "empty": 0.15,
                "thick_ice": 0.12,
                "contaminated": 0.08,
                "aggregated": 0.03,
                "drift": 0.02,
            },
            good_carbon_edge_prob=0.4,
            metadata={"grid": "lacey carbon", "additive": "none", "partner": "none"},
        ),
        SessionSpec(
            "ddm",
            (prex1(1.0, 0.8),),
            n,
            particles_per_um2=1200,
            bad_mix={
                "empty": 0.06,
                "aggregated": 0.06,
                "contaminated": 0.06,
                "thick_ice": 0.06,
                "carbon": 0.02,
                "drift": 0.02,
                "bad_ctf": 0.02,
            },
            metadata={"grid": "Quantifoil R1.2/1.3", "additive": "DDM 0.005%", "partner": "none"},
        ),
        SessionSpec(
            "lubrol",
            (prex1(1.0, 0.75),),
            n,
            particles_per_um2=1400,
            bad_mix={
                "empty": 0.06,
                "aggregated": 0.05,
                "contaminated": 0.06,
                "thick_ice": 0.06,
                "crowded": 0.02,
                "drift": 0.02,
                "bad_ctf": 0.02,
            },
            metadata={
                "grid": "Quantifoil R1.2/1.3",
                "additive": "Lubrol 0.005%",
                "partner": "none",
            },
        ),
        SessionSpec(
            "gbg_60uM",
            (
                SpeciesSpec(
                    PREX1_GBG, 0.4, OrientationSpec(0.4, STRONG_PREFERENCE.preferred_views, 15.0)
                ),
                SpeciesSpec(GBG_OLIGOMER, 0.6),
            ),
            n,
            particles_per_um2=1600,
            bad_mix={
                "crowded": 0.03,
                "aggregated": 0.03,
                "contaminated": 0.02,
                "thick_ice": 0.01,
                "drift": 0.01,
            },
            metadata={"grid": "Quantifoil R1.2/1.3", "additive": "none", "partner": "Gbg 60 uM"},
        ),
        SessionSpec(
            "gbg_6uM",
            (
                SpeciesSpec(
                    PREX1_GBG, 0.85, OrientationSpec(0.1, STRONG_PREFERENCE.preferred_views, 20.0)
                ),
                SpeciesSpec(GBG, 0.15),
            ),
            n,
            particles_per_um2=2000,
            bad_mix={
                "empty": 0.04,
                "contaminated": 0.04,
                "thick_ice": 0.04,
                "aggregated": 0.02,
                "drift": 0.02,
                "bad_ctf": 0.01,
            },
            metadata={"grid": "Quantifoil R1.2/1.3", "additive": "none", "partner": "Gbg 6 uM"},
        ),
    )


def prex1(n_micrographs: int = 50) -> ScreenSpec:
    """The six P-Rex1 conditions on K3-sized frames (5760 x 4092 at 0.83 Å/px): for benchmarks."""
    return ScreenSpec(
        _prex1_sessions(n_micrographs), frame_px=(4092, 5760), pixel_size_A=0.83, seed=2020
    )


def prex1_small(n_micrographs: int = 16) -> ScreenSpec:
    """The six P-Rex1 conditions on tiny frames (512 x 512 at 2.5 Å/px): demo and tests."""
    return ScreenSpec(
        _prex1_sessions(n_micrographs), frame_px=(512, 512), pixel_size_A=2.5, seed=2020
    )


def gallery(n_per_reason: int = 2) -> ScreenSpec:
    """One session with ``n_per_reason`` micrographs of every reason (good and each bad type)."""
    share = 1.0 / (len(BAD_REASONS) + 1)
    session = SessionSpec(
        "gallery",
        (SpeciesSpec(PREX1, 1.0, dataclasses.replace(STRONG_PREFERENCE, preferred_fraction=0.5)),),
        n_per_reason * (len(BAD_REASONS) + 1),
        bad_mix={reason: share for reason in BAD_REASONS},
        particles_per_um2=1200,
        good_contamination_prob=0.0,
        good_carbon_edge_prob=0.0,
        metadata={"grid": "Quantifoil R1.2/1.3"},
    )
    return ScreenSpec((session,), frame_px=(1024, 1024), pixel_size_A=1.5, seed=7)


def realism() -> ScreenSpec:
    """Look-alikes of the real examples in shared/real_examples, at their pixel sizes.

    A beta-galactosidase-like D2 tetramer (465 kDa, ~180 Å) at 1.77 Å/px as in EMPIAR-10017.
    """
    betagal = StructureSpec(
        "beta-gal-like", 180.0, 465.0, "D2", n_domains=3, elongation=1.2, seed=21
    )
    session = SessionSpec(
        "betagal_like",
        (SpeciesSpec(betagal),),
        2,
        particles_per_um2=1200,
        defocus_um=(1.5, 2.5),
        good_contamination_prob=0.0,
        good_carbon_edge_prob=0.0,
    )
    return ScreenSpec((session,), frame_px=(2048, 2048), pixel_size_A=1.77, seed=17)


PRESETS = {
    "prex1": prex1,
    "prex1-small": prex1_small,
    "gallery": gallery,
    "realism": realism,
}
"""Preset name -> function returning its ``ScreenSpec``."""
