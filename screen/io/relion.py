"""RELION 2D classification files: the particle stack it reads and the class averages it writes.

``write_particle_stack`` writes ``particles.mrcs`` + ``particles.star`` (RELION 3.1: optics block
with the image pixel size and box, one row per particle with its image name, micrograph, picked
coordinates and CTF values). ``read_relion_classes`` reads back what ``relion_refine`` left after
its last (or a given) iteration: ``<root>_itNNN_classes.mrcs`` (the averages),
``<root>_itNNN_data.star`` (``rlnClassNumber`` and the origin offsets of every particle) and
``<root>_itNNN_model.star`` (the mask diameter and the pixel size).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pandas as pd

from screen.errors import StarError
from screen.io.images import read_image
from screen.io.mrc import write_mrc
from screen.io.star import OpticsGroup, read_star, write_particles_star
from screen.stages.records import ClassAverages

CTF_COLUMNS: tuple[str, ...] = ("rlnDefocusU", "rlnDefocusV", "rlnDefocusAngle")


def write_particle_stack(
    folder: str | Path, images: np.ndarray, optics: OpticsGroup, particles: pd.DataFrame
) -> Path:
    """Write a particle stack and its STAR file for ``relion_refine``; return the STAR path.

    Parameters
    ----------
    folder : str or Path
        Output folder (created); gets ``particles.mrcs`` and ``particles.star``.
    images : np.ndarray
        ``(n, box, box)`` particle images (protein white, normalised as RELION expects: zero mean
        and unit variance in the background).
    optics : OpticsGroup
        Optics of the particles; ``pixel_size_A`` is the images' pixel size.
    particles : pd.DataFrame
        One row per image with ``rlnCoordinateX``, ``rlnCoordinateY``, ``rlnMicrographName`` and,
        for CTF correction, ``rlnDefocusU``, ``rlnDefocusV`` (Å) and ``rlnDefocusAngle`` (deg).
    """
    folder = Path(folder)
    images = np.asarray(images, np.float32)
    if images.ndim != 3 or len(images) != len(particles):
        raise ValueError(f"need (n, box, box) images, one per particle row; got {images.shape}")
    write_mrc(folder / "particles.mrcs", images, optics.pixel_size_A, stack=True)
    table = particles.reset_index(drop=True).copy()
    table.insert(0, "rlnImageName", [f"{i + 1:06d}@particles.mrcs" for i in range(len(table))])
    optics = dataclasses.replace(optics, image_size_px=images.shape[-1])
    return write_particles_star(folder / "particles.star", optics, table)


def last_iteration(root: str | Path) -> int:
    """Number of the last iteration ``relion_refine --o root`` wrote a model for (-1: none)."""
    root = Path(root)
    pattern = re.compile(re.escape(root.name) + r"_it(\d{3})_model\.star$")
    found = [
        int(m.group(1))
        for p in root.parent.glob(f"{root.name}_it*_model.star")
        if (m := pattern.search(p.name))
    ]
    return max(found, default=-1)


def read_relion_classes(root: str | Path, iteration: int | None = None) -> ClassAverages:
    """The class averages and particle assignments of one ``relion_refine`` 2D iteration.

    Parameters
    ----------
    root : str or Path
        The ``--o`` root name given to ``relion_refine`` (e.g. ``out/run``).
    iteration : int, optional
        Iteration to read; default the last one written.

    Returns
    -------
    ClassAverages
        ``averages`` (k, box, box) as RELION wrote them; ``assignments`` 0-based class of each
        particle in the order of the image names (stack file, then position in it: the order
        ``write_particle_stack`` wrote them; RELION writes them grouped by micrograph); ``shift_px`` RELION's origin offsets (the
        particle's centre sits at pick - offset); ``mask_diameter_A`` RELION's
        ``--particle_diameter``.
    """
    root = Path(root)
    iteration = last_iteration(root) if iteration is None else iteration
    if iteration < 0:
        raise StarError(f"{root}: no relion_refine iteration found ({root.name}_itNNN_model.star)")
    stem = f"{root}_it{iteration:03d}"
    model = read_star(f"{stem}_model.star")
    general = model.get("model_general")
    if general is None:
        raise StarError(f"{stem}_model.star: no data_model_general block")
    pixel_size_A = float(general["rlnPixelSize"].iloc[0])
    averages = read_image(f"{stem}_classes.mrcs").data
    if averages.ndim == 2:
        averages = averages[None]
    data = read_star(f"{stem}_data.star")
    particles = _in_image_order(data.get("particles", next(iter(data.values()))))
    k = len(averages)
    classes = particles["rlnClassNumber"].to_numpy(int) - 1
    if "rlnOriginXAngst" in particles:
        shift = particles[["rlnOriginXAngst", "rlnOriginYAngst"]].to_numpy(float) / pixel_size_A
    else:
        shift = particles[["rlnOriginX", "rlnOriginY"]].to_numpy(float)
    psi = (
        particles["rlnAnglePsi"].to_numpy(float)
        if "rlnAnglePsi" in particles
        else np.zeros(len(particles))
    )
    return ClassAverages(
        averages=np.asarray(averages, np.float32),
        assignments=classes,
        counts=np.bincount(classes[classes >= 0], minlength=k),
        mask_diameter_A=_mask_diameter_A(f"{stem}_optimiser.star", pixel_size_A, averages),
        pixel_size_A=pixel_size_A,
        psi_deg=psi,
        shift_px=shift,
    )


def _in_image_order(particles: pd.DataFrame) -> pd.DataFrame:
    """Rows sorted by ``rlnImageName`` (``NNNNNN@stack``): stack file, then position."""
    parts = particles["rlnImageName"].astype(str).str.split("@", n=1, expand=True)
    order = pd.DataFrame({"file": parts[1], "position": parts[0].astype(int)})
    return particles.iloc[order.sort_values(["file", "position"], kind="stable").index]


def _mask_diameter_A(optimiser_star: str, pixel_size_A: float, averages: np.ndarray) -> float:
    """RELION's ``--particle_diameter`` from the optimiser file (the whole box if it is unset)."""
    path = Path(optimiser_star)
    if path.is_file():
        block = read_star(path).get("optimiser_general")
        if block is not None and "rlnParticleDiameter" in block:
            value = float(block["rlnParticleDiameter"].iloc[0])
            if value > 0:
                return value
    return float(averages.shape[-1] * pixel_size_A)
