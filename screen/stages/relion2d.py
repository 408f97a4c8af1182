"""2D classification by RELION's ``relion_refine`` (an external backend; not used by ``screen run``).

``relion_2d_command`` builds the command line of a RELION 3.1 2D classification;
``run_relion_2d`` runs it on a particle STAR file (``screen.io.relion.write_particle_stack``) and
returns the last iteration's class averages and assignments. Debian packages RELION 3.1.3
(``apt-get install relion``); ``relion_available`` says whether it is on ``PATH``.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from screen.errors import ScreenError
from screen.stages.records import ClassAverages

RELION_REFINE = "relion_refine"


@dataclass(frozen=True)
class Relion2DParams:
    """Parameters of a RELION 2D classification (names follow ``relion_refine``'s options).

    Attributes
    ----------
    n_classes
        ``--K``.
    iterations
        ``--iter``.
    tau2_fudge
        ``--tau2_fudge`` (2 is RELION's default for 2D).
    psi_step_deg, offset_range_px, offset_step_px
        In-plane angular and translational sampling.
    ctf
        ``--ctf``: CTF correction from the STAR file's defocus values.
    ctf_phase_flipped
        The particles were phase-flipped at extraction.
    zero_mask
        ``--zero_mask``: the background outside the mask is zero in the particles (else noise).
    threads
        ``--j``.
    seed
        ``--random_seed``.
    """

    n_classes: int = 12
    iterations: int = 12
    tau2_fudge: float = 2.0
    psi_step_deg: float = 12.0
    offset_range_px: int = 5
    offset_step_px: int = 2
    ctf: bool = True
    ctf_phase_flipped: bool = False
    zero_mask: bool = True
    threads: int = 2
    seed: int = 0


def relion_available() -> bool:
    """Whether ``relion_refine`` is on ``PATH``."""
    return shutil.which(RELION_REFINE) is not None


def relion_2d_command(
    particles_star: Path, out_root: Path, mask_diameter_A: float, params: Relion2DParams
) -> list[str]:
    """The ``relion_refine`` command line of a 2D classification."""
    command = [
        RELION_REFINE,
        "--i", str(particles_star),
        "--o", str(out_root),
        "--iter", str(params.iterations),
        "--tau2_fudge", f"{params.tau2_fudge:g}",
        "--K", str(params.n_classes),
        "--particle_diameter", f"{mask_diameter_A:.1f}",
        "--flatten_solvent",
        "--oversampling", "1",
        "--psi_step", f"{params.psi_step_deg:g}",
        "--offset_range", str(params.offset_range_px),
        "--offset_step", str(params.offset_step_px),
        "--norm", "--scale",
        "--dont_combine_weights_via_disc",
        "--pool", "30",
        "--j", str(params.threads),
        "--random_seed", str(params.seed),
    ]  # fmt: skip
    if params.zero_mask:
        command.append("--zero_mask")
    if params.ctf:
        command.append("--ctf")
        if params.ctf_phase_flipped:
            command.append("--ctf_phase_flipped")
    return command


def run_relion_2d(
    particles_star: str | Path,
    out_dir: str | Path,
    mask_diameter_A: float,
    params: Relion2DParams = Relion2DParams(),
    timeout_s: float | None = None,
) -> ClassAverages:
    """Run a RELION 2D classification; return the last iteration's averages and assignments.

    It runs in the STAR file's folder (image names are relative to it) and writes
    ``out_dir/run_it*`` (and ``out_dir/relion.log``, its terminal output). A
    missing ``relion_refine``, a failed run or one past ``timeout_s`` raises ``ScreenError`` with
    the log's last lines.
    """
    from screen.io.relion import read_relion_classes

    if not relion_available():
        raise ScreenError(f"{RELION_REFINE} not found on PATH (Debian: apt-get install relion)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    particles_star = Path(particles_star).resolve()
    command = relion_2d_command(particles_star, out_dir.resolve() / "run", mask_diameter_A, params)
    log = out_dir / "relion.log"
    with open(log, "w") as stream:
        try:
            done = subprocess.run(
                command,
                cwd=particles_star.parent,
                stdout=stream,
                stderr=subprocess.STDOUT,
                timeout=timeout_s,
            )
        except subprocess.TimeoutExpired as err:
            raise ScreenError(f"{RELION_REFINE} ran past {timeout_s} s (log: {log})") from err
    if done.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-5:]
        raise ScreenError(
            f"{RELION_REFINE} failed with status {done.returncode} (log: {log}): "
            + " | ".join(tail)
        )
    return read_relion_classes(out_dir / "run")
