"""Do our 2D's good classes separate views, and does `view_distance` see it? (simulated truth)

    python bench/view_flags.py [--micrographs 30] [--sessions ddm gbg_6uM] [--out DIR]
                               [--noise-corrected-2d] [--frame-px 512]

Simulates the named conditions of the ``prex1_small`` preset (ddm: 80 % of particles in two
views; gbg_6uM: near-uniform views), runs ``screen run`` on them, and matches every good particle
of the best mask diameter (``particles.star``) to the simulator's particle within 0.3 diameters
on its micrograph, whose projection direction is known. Prints, per good class, its particles and
how pure its view is (share within 25 degrees of the class's mean direction, a direction and its
opposite counted alike, as projections are mirror images), and for every pair of good classes
the angle between their mean directions beside ``view_distance`` of their averages: the numbers
a view threshold (`screen.report.verdicts.VIEW_DISTANCE`) has to separate.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from screen.io.mrc import read_mrc
from screen.io.star import read_particles_star
from screen.report import verdicts as V
from screen.simulate.presets import prex1_small
from screen.simulate.session import simulate_screen

PURE_DEG = 25.0


def directions(rot_deg: np.ndarray, tilt_deg: np.ndarray) -> np.ndarray:
    """Unit projection directions (n, 3) from RELION-style rot and tilt."""
    rot, tilt = np.radians(rot_deg), np.radians(tilt_deg)
    return np.column_stack([np.sin(tilt) * np.cos(rot), np.sin(tilt) * np.sin(rot), np.cos(tilt)])


def axial_mean(vectors: np.ndarray) -> np.ndarray:
    """Principal axis of a set of directions (a direction and its opposite alike)."""
    _, _, vt = np.linalg.svd(vectors, full_matrices=False)
    return vt[0]


def axial_angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.degrees(np.arccos(np.clip(np.abs(a @ b), 0.0, 1.0)))


def session_table(sim: Path, results: Path, session: str, diameter_A: float) -> None:
    summary = json.loads((results / "sessions" / session / "summary.json").read_text())
    best = summary.get("best_mask_diameter_A")
    if best is None:
        print(f"{session}: no good class")
        return
    _, particles = read_particles_star(
        results / "sessions" / session / "particles" / "particles.star"
    )
    truth = pd.read_csv(sim / "sessions" / session / "ground_truth" / "particles.csv")
    pixel_A = float(json.loads((sim / "scenario.json").read_text())["spec"]["pixel_size_A"])
    radius_px = 0.3 * diameter_A / pixel_A
    views = np.full((len(particles), 3), np.nan)
    for micrograph, rows in particles.groupby(
        particles["rlnMicrographName"].map(lambda p: Path(p).name)
    ):
        mine = truth[truth["micrograph"] == micrograph]
        if mine.empty:
            continue
        tree = cKDTree(mine[["x_px", "y_px"]].to_numpy())
        distance, index = tree.query(rows[["rlnCoordinateX", "rlnCoordinateY"]].to_numpy())
        hit = distance <= radius_px
        found = mine.iloc[index[hit]]
        views[rows.index[hit]] = directions(
            found["rot_deg"].to_numpy(), found["tilt_deg"].to_numpy()
        )
    classes = pd.read_csv(
        results / "sessions" / session / "classes" / f"d{int(round(best))}A" / "classes.csv"
    )
    stack = read_mrc(
        results / "sessions" / session / "classes" / f"d{int(round(best))}A" / "averages.mrcs"
    ).data
    good = classes[classes["label"] == "good"]["class_index"].to_numpy()
    matched = np.isfinite(views[:, 0])
    print(
        f"\n{session}: best mask {best:.0f} Å, {len(particles)} good particles, {matched.mean():.0%} matched to truth"
    )
    print(
        "| class | particles | matched | view purity (within 25 deg of its axis) |\n| --- | --- | --- | --- |"
    )
    axes = {}
    for c in good:
        members = (particles["rlnClassNumber"].to_numpy() == c + 1) & matched
        if members.sum() < 3:
            continue
        axis = axial_mean(views[members])
        axes[c] = axis
        purity = float(np.mean(axial_angle_deg(views[members], axis) <= PURE_DEG))
        print(
            f"| {c} | {int((particles['rlnClassNumber'] == c + 1).sum())} | {int(members.sum())} | {purity:.2f} |"
        )
    keys = sorted(axes)
    if len(keys) >= 2:
        distance = V.view_distance([stack[k] for k in keys])
        print(
            "| classes | angle between their view axes (deg) | view_distance |\n| --- | --- | --- |"
        )
        for i, a in enumerate(keys):
            for j in range(i + 1, len(keys)):
                b = keys[j]
                print(
                    f"| {a}-{b} | {axial_angle_deg(axes[a], axes[b]):.0f} | {distance[i, j]:.2f} |"
                )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--micrographs", type=int, default=30)
    parser.add_argument("--sessions", nargs="+", default=["ddm", "gbg_6uM"])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--noise-corrected-2d", action="store_true", help="passed to screen run")
    parser.add_argument(
        "--frame-px", type=int, default=512, help="frame side (the preset's 512 px is 0.1 µm²)"
    )
    args = parser.parse_args(argv)
    from typer.testing import CliRunner

    from screen.cli import app

    root = args.out or Path(tempfile.mkdtemp(prefix="view_flags_"))
    spec = prex1_small(args.micrographs)
    spec = dataclasses.replace(
        spec,
        sessions=tuple(s for s in spec.sessions if s.name in args.sessions),
        frame_px=(args.frame_px, args.frame_px),
    )
    manifest = root / "sim" / "manifest.csv"
    if not manifest.exists():
        simulate_screen(spec, root / "sim")
    command = ["run", str(manifest), "--out", str(root / "results"), "-q", "--no-report"]
    if args.noise_corrected_2d:
        command.append("--noise-corrected-2d")
    result = CliRunner().invoke(app, command)
    if result.exit_code != 0:
        print(result.output)
        return 1
    truth = pd.read_csv(root / "sim" / "ground_truth.csv").set_index("session")
    for session in args.sessions:
        session_table(
            root / "sim", root / "results", session, float(truth.loc[session, "diameter_A"])
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
