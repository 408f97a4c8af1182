"""Write a synthetic screening to disk: micrographs (and movies), a manifest, ground truth.

Layout under the output folder::

    manifest.csv                      one row per session, accepted by ``screen run``
    ground_truth.csv                  one row per session: true fractions, diameters, counts
    scenario.json                     the resolved spec, seed and version
    sessions/<name>/micrographs/*.mrc motion-corrected micrographs (counts, pixel size in header)
    sessions/<name>/movies/*.tif      raw movies (electron counts per frame), with ``movies``
    sessions/<name>/ground_truth/     micrographs.csv, particles.csv, particles.star, session.json,
                                      species_<name>.mrc (3D maps of each species)
"""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

import screen
from screen.errors import ScreenError
from screen.io.mrc import write_mrc
from screen.io.star import OpticsGroup, write_particles_star
from screen.io.tiff import write_tiff
from screen.simulate import placement
from screen.simulate.fields import ball_thickness_A, pixel_coordinates_A
from screen.simulate.orientations import view_bins, view_entropy_bits
from screen.simulate.plan import MicrographPlan, assign_reasons, plan_micrograph
from screen.simulate.render import render_micrograph
from screen.simulate.spec import MICROGRAPH_REASONS, ScreenSpec, SessionSpec
from screen.simulate.structures import PseudoAtomModel, build_structure, render_volume

OUTPUT_NAMES = ("sessions", "manifest.csv", "ground_truth.csv", "scenario.json")
"""What ``simulate_screen`` writes at the top of its output folder."""

ProgressCallback = Callable[[str, int, int], None]
"""Called as ``(session_name, micrographs_done, micrographs_total)``."""


def session_models(session: SessionSpec) -> list[PseudoAtomModel]:
    """Pseudo-atom models of a session's species, in species order."""
    return [build_structure(species.structure) for species in session.species]


def micrograph_rng(screen_spec: ScreenSpec, session_index: int, micrograph_index: int):
    """Independent generator of one micrograph: same draw whatever the order or parallelism."""
    return np.random.default_rng([screen_spec.seed, session_index, micrograph_index])


def session_plans(screen_spec: ScreenSpec, session_index: int) -> list[MicrographPlan]:
    """Plans (ground truth) of every micrograph of one session."""
    session = screen_spec.sessions[session_index]
    models = session_models(session)
    reasons = assign_reasons(session, np.random.default_rng([screen_spec.seed, session_index]))
    # One exposure setting per session (``dose_jitter``), from its own stream.
    dose_rng = np.random.default_rng([screen_spec.seed, session_index, 11])
    session_dose = float(dose_rng.uniform(*session.dose_e_per_A2))
    return [
        plan_micrograph(
            f"{session.name}_{i + 1:04d}",
            reason,
            session,
            screen_spec,
            models,
            micrograph_rng(screen_spec, session_index, i),
            session_dose if session.dose_jitter is not None else None,
        )
        for i, reason in enumerate(reasons)
    ]


def simulate_screen(
    spec: ScreenSpec,
    out_dir: Path,
    *,
    jobs: int = 1,
    progress: ProgressCallback | None = None,
    overwrite: bool = False,
) -> Path:
    """Simulate every session of ``spec`` into ``out_dir``; return the manifest's path.

    An ``out_dir`` that already holds a simulated screening is refused (stale micrographs would
    mix with new ones) unless ``overwrite``, which first removes that screening.
    """
    out_dir = Path(out_dir)
    previous = [out_dir / name for name in OUTPUT_NAMES if (out_dir / name).exists()]
    if previous and not overwrite:
        raise ScreenError(
            f"{out_dir} already holds a simulated screening ({previous[0].name}); "
            "choose another folder or pass --overwrite"
        )
    for path in previous:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)
    summaries = [
        _simulate_session(spec, index, out_dir, jobs, progress)
        for index in range(len(spec.sessions))
    ]
    manifest = out_dir / "manifest.csv"
    _write_manifest(manifest, spec, summaries)
    pd.DataFrame(
        [{k: v for k, v in s.items() if not isinstance(v, list | dict)} for s in summaries]
    ).to_csv(out_dir / "ground_truth.csv", index=False)
    (out_dir / "scenario.json").write_text(
        json.dumps(
            {"screen_version": screen.__version__, "spec": dataclasses.asdict(spec)}, indent=2
        )
    )
    return manifest


def _simulate_session(spec, index, out_dir, jobs, progress) -> dict:
    session = spec.sessions[index]
    folder = out_dir / "sessions" / session.name
    truth_dir = folder / "ground_truth"
    truth_dir.mkdir(parents=True, exist_ok=True)
    models = session_models(session)
    plans = session_plans(spec, index)
    tasks = [(spec, models, plan, folder) for plan in plans]
    rows: list[tuple[dict, pd.DataFrame]] = []
    if jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            for done, row in enumerate(pool.map(_render_and_write, tasks), 1):
                rows.append(row)
                if progress:
                    progress(session.name, done, len(plans))
    else:
        for done, task in enumerate(tasks, 1):
            rows.append(_render_and_write(task))
            if progress:
                progress(session.name, done, len(plans))
    micrographs = pd.DataFrame([r[0] for r in rows])
    particles = pd.concat([r[1] for r in rows], ignore_index=True)
    micrographs.to_csv(truth_dir / "micrographs.csv", index=False)
    particles.to_csv(truth_dir / "particles.csv", index=False)
    _write_truth_star(truth_dir / "particles.star", spec, particles, micrographs)
    for model in models:
        volume_px = max(spec.pixel_size_A, model.diameter_A / 60)
        write_mrc(
            truth_dir / f"species_{_safe(model.name)}.mrc",
            render_volume(model, volume_px),
            volume_px,
        )
    summary = _session_summary(spec, session, models, micrographs, particles)
    (truth_dir / "session.json").write_text(json.dumps(summary, indent=2))
    return summary


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _render_and_write(task) -> tuple[dict, pd.DataFrame]:
    spec, models, plan, folder = task
    n_frames = spec.n_frames if spec.movies else 0
    rendered = render_micrograph(plan, models, spec.frame_px, spec.pixel_size_A, n_frames)
    mic_path = folder / "micrographs" / f"{plan.name}.mrc"
    write_mrc(mic_path, rendered.counts, spec.pixel_size_A)
    if rendered.frames is not None:
        dtype = np.uint8 if rendered.frames.max() < 256 else np.uint16
        write_tiff(folder / "movies" / f"{plan.name}.tif", rendered.frames.astype(dtype))
    flags = _particle_flags(plan, models, spec)
    row = _micrograph_row(plan, rendered, spec, flags, mic_path.relative_to(folder))
    return row, _particle_rows(plan, models, spec, flags)


def _micrograph_row(plan: MicrographPlan, rendered, spec: ScreenSpec, flags, rel_path) -> dict:
    ny, nx = spec.frame_px
    x_A, y_A = pixel_coordinates_A(spec.frame_px, spec.pixel_size_A)
    carbon_fraction = 0.0
    if plan.carbon is not None:
        centre = (nx * spec.pixel_size_A / 2, ny * spec.pixel_size_A / 2)
        carbon_fraction = float((plan.carbon.signed_distance_A(x_A, y_A, centre) > 0).mean())
    ball_fraction = 0.0
    if len(plan.balls):
        ball_fraction = float(
            (ball_thickness_A(spec.frame_px, spec.pixel_size_A, plan.balls) > 0).mean()
        )
    return {
        "micrograph": rel_path.name,
        "path": str(rel_path),
        "verdict": plan.verdict,
        "reason": plan.reason,
        "defocus_u_um": plan.ctf.defocus_u_A / 1e4,
        "defocus_v_um": plan.ctf.defocus_v_A / 1e4,
        "defocus_angle_deg": plan.ctf.astigmatism_angle_deg,
        "astigmatism_um": (plan.ctf.defocus_u_A - plan.ctf.defocus_v_A) / 1e4,
        "b_factor_A2": plan.b_factor_A2,
        "dose_e_per_A2": plan.dose_e_per_A2,
        "ice_thickness_A": plan.ice_thickness_A,
        "n_particles": plan.n_particles,
        "n_in_aggregate": int(plan.particle_in_aggregate.sum()),
        "n_near_carbon_edge": int(flags["near_carbon_edge"].sum()),
        "n_aggregate_blobs": len(plan.aggregate_blobs),
        "carbon_fraction": carbon_fraction,
        "contamination_ball_fraction": ball_fraction,
        "crystalline_ice_fraction": plan.crystalline_coverage,
        "motion_blur_A": float(np.linalg.norm(np.ptp(plan.blur_path_A, axis=0))),
        "stage_drift_A": float(np.linalg.norm(plan.trajectory_A[-1] - plan.trajectory_A[0])),
        "target_snr": plan.target_snr,
        "particle_snr": rendered.particle_snr,
        "contrast_scale": rendered.contrast_scale,
    }


def _particle_flags(plan: MicrographPlan, models, spec: ScreenSpec) -> dict[str, np.ndarray]:
    ny, nx = spec.frame_px
    diameters = np.array([models[s].diameter_A for s in plan.particle_species]).reshape(-1)
    near_edge = np.zeros(plan.n_particles, dtype=bool)
    if plan.carbon is not None and plan.n_particles:
        centre = (nx * spec.pixel_size_A / 2, ny * spec.pixel_size_A / 2)
        distance = plan.carbon.signed_distance_A(plan.particle_x_A, plan.particle_y_A, centre)
        near_edge = np.abs(distance) < diameters
    nn = placement.nearest_neighbour_distance_A(plan.particle_x_A, plan.particle_y_A)
    return {"near_carbon_edge": near_edge, "nearest_neighbour_A": nn, "diameter_A": diameters}


def _particle_rows(plan: MicrographPlan, models, spec: ScreenSpec, flags) -> pd.DataFrame:
    isolated = flags["nearest_neighbour_A"] >= flags["diameter_A"]
    return pd.DataFrame(
        {
            "micrograph": f"{plan.name}.mrc",
            "x_px": plan.particle_x_A / spec.pixel_size_A,
            "y_px": plan.particle_y_A / spec.pixel_size_A,
            "species": [models[s].name for s in plan.particle_species],
            "species_index": plan.particle_species,
            "rot_deg": plan.particle_euler_deg[:, 0],
            "tilt_deg": plan.particle_euler_deg[:, 1],
            "psi_deg": plan.particle_euler_deg[:, 2],
            "view_bin": view_bins(plan.particle_euler_deg)
            if plan.n_particles
            else np.zeros(0, int),
            "in_aggregate": plan.particle_in_aggregate,
            "near_carbon_edge": flags["near_carbon_edge"],
            "nearest_neighbour_A": flags["nearest_neighbour_A"],
            "isolated": isolated,
            "micrograph_good": plan.verdict == "good",
            "clean": isolated
            & ~plan.particle_in_aggregate
            & ~flags["near_carbon_edge"]
            & (plan.verdict == "good"),
        }
    )


def _write_truth_star(path: Path, spec: ScreenSpec, particles: pd.DataFrame, micrographs) -> None:
    defocus = micrographs.set_index("micrograph")
    names = particles["micrograph"]
    table = pd.DataFrame(
        {
            "rlnMicrographName": "micrographs/" + names,
            "rlnCoordinateX": particles["x_px"].to_numpy(),
            "rlnCoordinateY": particles["y_px"].to_numpy(),
            "rlnAngleRot": particles["rot_deg"].to_numpy(),
            "rlnAngleTilt": particles["tilt_deg"].to_numpy(),
            "rlnAnglePsi": particles["psi_deg"].to_numpy(),
            "rlnDefocusU": defocus.loc[names, "defocus_u_um"].to_numpy() * 1e4,
            "rlnDefocusV": defocus.loc[names, "defocus_v_um"].to_numpy() * 1e4,
            "rlnDefocusAngle": defocus.loc[names, "defocus_angle_deg"].to_numpy(),
            "rlnClassNumber": particles["species_index"].to_numpy() + 1,
        }
    )
    optics = OpticsGroup(
        pixel_size_A=spec.pixel_size_A,
        voltage_kV=spec.voltage_kV,
        cs_mm=spec.cs_mm,
        amplitude_contrast=spec.amplitude_contrast,
    )
    write_particles_star(path, optics, table)


def _session_summary(
    spec, session, models, micrographs: pd.DataFrame, particles: pd.DataFrame
) -> dict:
    good = micrographs["verdict"] == "good"
    on_good = particles[particles["micrograph_good"]]
    species = []
    for index, (s, model) in enumerate(zip(session.species, models, strict=True)):
        mine = particles[particles["species_index"] == index]
        species.append(
            {
                "name": model.name,
                "diameter_A": model.diameter_A,
                "mass_kDa": round(model.mass_kDa, 3),
                "symmetry": model.symmetry,
                "fraction": s.fraction,
                "orientation": {
                    "kind": s.orientation.kind,
                    "preferred_fraction": s.orientation.preferred_fraction,
                    "preferred_views_tilt_rot_deg": [
                        list(v) for v in s.orientation.preferred_views
                    ],
                    "spread_deg": s.orientation.spread_deg,
                },
                "view_entropy_bits": view_entropy_bits(mine["view_bin"].to_numpy().astype(int)),
                "n_particles": len(mine),
            }
        )
    reason_counts = {r: int((micrographs["reason"] == r).sum()) for r in MICROGRAPH_REASONS}
    n_good = int(good.sum())
    return {
        "session": session.name,
        "n_micrographs": len(micrographs),
        "n_good_micrographs": n_good,
        "good_fraction": n_good / max(len(micrographs), 1),
        "diameter_A": models[0].diameter_A,
        "n_particles": len(particles),
        "n_particles_on_good": len(on_good),
        "particles_per_good_micrograph": len(on_good) / max(n_good, 1),
        "n_clean_particles": int(particles["clean"].sum()),
        "pixel_size_A": spec.pixel_size_A,
        "frame_px": list(spec.frame_px),
        "reason_counts": reason_counts,
        "species": species,
        "metadata": dict(session.metadata),
    }


def _write_manifest(path: Path, spec: ScreenSpec, summaries: list[dict]) -> None:
    meta_keys: list[str] = []
    for session in spec.sessions:
        meta_keys += [k for k in session.metadata if k not in meta_keys]
    column = "movies" if spec.movies else "micrographs"
    pattern = "movies/*.tif" if spec.movies else "micrographs/*.mrc"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "session",
                column,
                "pixel_size_A",
                "voltage_kV",
                "cs_mm",
                "amplitude_contrast",
                "dose_e_per_A2",
                *meta_keys,
            ]
        )
        for session in spec.sessions:
            writer.writerow(
                [
                    session.name,
                    f"sessions/{session.name}/{pattern}",
                    spec.pixel_size_A,
                    spec.voltage_kV,
                    spec.cs_mm,
                    spec.amplitude_contrast,
                    round(float(np.mean(session.dose_e_per_A2)), 1),
                    *[session.metadata.get(k, "") for k in meta_keys],
                ]
            )
