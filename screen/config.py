"""Typed, frozen parameters of a whole `screen run`: one dataclass per stage, defaults are ours."""

from __future__ import annotations

from dataclasses import dataclass, field

from screen.stages.assess_classes import ClassAssessParams
from screen.stages.assess_micrographs import MicrographAssessParams
from screen.stages.classify2d import Classify2DParams
from screen.stages.ctf import CtfSearch
from screen.stages.diameter import DiameterParams
from screen.stages.extraction import ExtractParams
from screen.stages.motion import MotionParams
from screen.stages.picking import PickParams


@dataclass(frozen=True)
class RunConfig:
    """Every parameter of a run (recorded in run.json and in each stage's cache key).

    ``mask_factors`` are the mask diameters of the 2D classifications, as multiples of the
    estimated particle diameter (the paper: 0.5x to 2x). ``diameter_micrographs`` good micrographs
    are used for the diameter estimate. ``max_particles_2d`` caps the particles classified per
    session (a random subset, seeded), which bounds the 2D cost of huge sessions; particle boxes
    larger than ``max_box_2d_px`` are Fourier-binned for 2D (the output stack keeps full size).
    ``keep_all_micrographs`` sends every readable micrograph on to picking whatever its verdict
    (the verdicts are still recorded and reported): the escape when micrograph assessment is
    outside its trained domain. ``domain_fallback``: when the micrograph model rejects almost a
    whole session (the domain warning of ``assess_micrographs.session_domain_check``), the
    session is assessed again with the domain-randomised model
    (``assess_micrographs.DOMAIN_RANDOMISED_MODEL``) and its verdicts are used, loudly; so are
    they when it rejects a large share and that model, asked for a second opinion, keeps much
    more of the session (``assess_micrographs.second_opinion_warning``).
    ``common_diameter``: when the run has a common particle diameter (``diameter.common_diameter``:
    two or more conditions' factor-free estimates within ``diameter.COMMON_DIAMETER_RANGE`` of one
    another, their median), every condition is picked and classified at it, except those whose
    ``diameter_A`` the manifest gives and those whose own factor-free estimate lies more than that
    factor from it (another particle); False picks each at its own estimate.
    """

    motion: MotionParams = field(default_factory=MotionParams)
    assess: MicrographAssessParams = field(default_factory=MicrographAssessParams)
    ctf: CtfSearch = field(default_factory=CtfSearch)
    diameter: DiameterParams = field(default_factory=DiameterParams)
    picking: PickParams = field(default_factory=PickParams)
    extraction: ExtractParams = field(default_factory=ExtractParams)
    classify: Classify2DParams = field(default_factory=Classify2DParams)
    class_assess: ClassAssessParams = field(default_factory=ClassAssessParams)
    mask_factors: tuple[float, ...] = (0.5, 0.75, 1.0, 1.5, 2.0)
    diameter_micrographs: int = 10
    max_particles_2d: int = 20000
    max_box_2d_px: int = 96
    seed: int = 0
    keep_all_micrographs: bool = False
    domain_fallback: bool = True
    common_diameter: bool = True


def config_problems(config: RunConfig) -> list[str]:
    """What is wrong with the user-settable parameters of ``config`` (empty when nothing).

    Checked before a run does any work, so that a value out of range stops it at once.
    """
    from screen.stages.assess_micrographs import params_problems

    problems = params_problems(config.assess)
    if not config.mask_factors or any(not 0.0 < f < 10.0 for f in config.mask_factors):
        problems.append(f"mask_factors {config.mask_factors} must be positive multiples (< 10)")
    for name in ("diameter_micrographs", "max_particles_2d", "max_box_2d_px"):
        if getattr(config, name) < 1:
            problems.append(f"{name} is {getattr(config, name)} but must be at least 1")
    return problems
