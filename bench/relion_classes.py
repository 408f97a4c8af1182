"""Class averages made by RELION's relion_refine from simulated particles, labelled from truth.

    python bench/relion_classes.py --sessions 8 --seed 300000 --out /tmp/relion_held     # held-out
    python bench/relion_classes.py --sessions 12 --seed 400000 --out /tmp/relion_train   # training
    screen evaluate classes /tmp/relion_held --labels /tmp/relion_held/labels.csv

Each session is a random procedural particle (``class_examples.random_session_spec``; the seeds
are far from the pipeline sets' 0.. and 100000..) simulated on 1024² frames at 1.5-3 Å/px. The
particles are "picked" from the ground truth: every true centre, some picks 0.3-0.6 diameters off
a centre (so clipped classes exist) and random junk picks at least 0.8 diameters from any particle
(background, contamination, carbon, aggregates: so noise classes exist); at most 450 of them
(a random subset) per session. They are extracted as
RELION does (contrast inverted, normalised outside the particle, no phase flip: relion_refine
corrects the CTF from the STAR file's defoci) into a box of two diameters at a pixel size that
makes the box about 64 px, and classified by ``relion_refine`` (2D, K = particles / 60 within
8-16, 10 iterations, in-plane step 15 degrees, mask = 1.1-1.5 diameters, ``--j 2``).

Every class is labelled from where its members' centres are after RELION's alignment (pick minus
RELION's origin offset) relative to the true centres, in true diameters: ``good`` when >= 70 % lie
within 0.25, ``clip`` when >= 50 % lie 0.25-0.75 off (a particle cut by the box or the mask, or
between two), ``noise`` when >= 65 % lie further, otherwise not used.

Writes OUT/<session>/averages.mrcs (RELION's last iteration), OUT/<session>/run_* (RELION's
files), OUT/<session>/members.csv (each particle's class, pick kind: 0 true centre, 1 off-centre,
2 junk, and aligned distance to the nearest true centre in diameters) and OUT/labels.csv (file, index, label, pixel_size_A, mask_diameter_A, true_diameter_A,
particles, shares), the input of ``screen evaluate classes``; sessions of an earlier run into OUT
with other seeds are kept in it.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from screen.io.images import read_image
from screen.io.mrc import write_mrc
from screen.io.relion import write_particle_stack
from screen.io.star import OpticsGroup
from screen.models.class_examples import member_label, random_session_spec
from screen.simulate.session import simulate_screen
from screen.simulate.spec import ScreenSpec
from screen.stages.extraction import ExtractParams, extract_particles
from screen.stages.records import CtfFit, Optics, Picks
from screen.stages.relion2d import Relion2DParams, run_relion_2d


def _picks(truth: np.ndarray, shape, diameter_px: float, rng: np.random.Generator):
    """True centres, off-centre picks and junk picks on one micrograph: (x, y, kind) arrays."""
    height, width = shape
    margin = 0.5 * diameter_px
    xs, ys, kinds = [truth[:, 0]], [truth[:, 1]], [np.zeros(len(truth), int)]
    n_off = rng.binomial(len(truth), 0.2)
    if n_off and len(truth):
        chosen = truth[rng.choice(len(truth), n_off)]
        angle = rng.uniform(0, 2 * np.pi, n_off)
        radius = rng.uniform(0.3, 0.6, n_off) * diameter_px
        xs.append(chosen[:, 0] + radius * np.cos(angle))
        ys.append(chosen[:, 1] + radius * np.sin(angle))
        kinds.append(np.ones(n_off, int))
    n_junk = int(rng.integers(max(len(truth) // 4, 3), max(len(truth) // 2, 4) + 1))
    candidates = rng.uniform([margin, margin], [width - margin, height - margin], (n_junk * 4, 2))
    if len(truth):
        far = np.hypot(*(candidates[:, None, :] - truth[None]).transpose(2, 0, 1)).min(axis=1)
        candidates = candidates[far >= 0.8 * diameter_px]
    candidates = candidates[:n_junk]
    xs.append(candidates[:, 0])
    ys.append(candidates[:, 1])
    kinds.append(np.full(len(candidates), 2))
    x, y, kind = np.concatenate(xs), np.concatenate(ys), np.concatenate(kinds)
    inside = (x > margin) & (x < width - margin) & (y > margin) & (y < height - margin)
    return x[inside], y[inside], kind[inside]


def relion_session(seed: int, out: Path, iterations: int, max_particles: int = 450) -> pd.DataFrame:
    """Simulate one session, classify its particles with relion_refine, label the classes."""
    rng = np.random.default_rng(seed + 555)
    session = random_session_spec(seed, n_micrographs=int(rng.integers(10, 15)))
    mic_px = float(rng.uniform(1.5, 3.0))
    diameter_A = max(s.structure.diameter_A for s in session.species)
    particle_px = max(mic_px, 2.0 * diameter_A / 64)
    spec = ScreenSpec((session,), frame_px=(1024, 1024), pixel_size_A=mic_px, seed=seed)
    optics = Optics(mic_px)
    params = ExtractParams(target_pixel_size_A=particle_px, phase_flip=False)
    stacks, rows, truth_all = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        simulate_screen(spec, Path(tmp))
        truth_dir = Path(tmp) / "sessions" / session.name / "ground_truth"
        mics = pd.read_csv(truth_dir / "micrographs.csv")
        particles = pd.read_csv(truth_dir / "particles.csv")
        for m, row in enumerate(mics.itertuples()):
            image = read_image(Path(tmp) / "sessions" / session.name / row.path).data
            truth = particles[particles.micrograph == row.micrograph][["x_px", "y_px"]].to_numpy()
            truth_all.append(truth)
            x, y, kind = _picks(truth, image.shape, diameter_A / mic_px, rng)
            if len(x) == 0:
                continue
            ctf = CtfFit(
                row.defocus_u_um * 1e4, row.defocus_v_um * 1e4, row.defocus_angle_deg, 8, 1
            )
            stack = extract_particles(
                image, Picks(x, y, np.ones(len(x))), mic_px, diameter_A, ctf, optics, params
            )
            stacks.append(stack.images)
            rows.append(
                pd.DataFrame(
                    {
                        "rlnCoordinateX": x,
                        "rlnCoordinateY": y,
                        "rlnMicrographName": row.path,
                        "rlnDefocusU": ctf.defocus_u_A,
                        "rlnDefocusV": ctf.defocus_v_A,
                        "rlnDefocusAngle": ctf.astigmatism_angle_deg,
                        "micrograph_index": m,
                        "kind": kind,
                    }
                )
            )
    images = np.concatenate(stacks)
    table = pd.concat(rows, ignore_index=True)
    if len(table) > max_particles:  # relion_refine's time grows with the particles
        keep = np.sort(rng.choice(len(table), max_particles, replace=False))
        images, table = images[keep], table.iloc[keep].reset_index(drop=True)
    binned_px = stack.pixel_size_A
    folder = out / session.name
    star = write_particle_stack(
        folder,
        images,
        OpticsGroup(pixel_size_A=binned_px),
        table.drop(columns=["micrograph_index", "kind"]),
    )
    mask_diameter_A = min(
        diameter_A * float(rng.uniform(1.1, 1.5)), 0.95 * images.shape[-1] * binned_px
    )
    k = int(np.clip(len(images) // 60, 8, 16))
    classes = run_relion_2d(
        star,
        folder,
        mask_diameter_A,
        Relion2DParams(n_classes=k, iterations=iterations, psi_step_deg=15.0, seed=seed),
    )
    write_mrc(folder / "averages.mrcs", classes.averages, classes.pixel_size_A, stack=True)
    # Aligned centre = pick - RELION's origin offset (particle pixels -> micrograph pixels).
    scale = classes.pixel_size_A / mic_px
    aligned_x = table.rlnCoordinateX.to_numpy() - classes.shift_px[:, 0] * scale
    aligned_y = table.rlnCoordinateY.to_numpy() - classes.shift_px[:, 1] * scale
    distance_d = np.full(len(table), np.inf)
    for m, truth in enumerate(truth_all):
        here = np.flatnonzero(table.micrograph_index.to_numpy() == m)
        if here.size and len(truth):
            d = np.hypot(
                aligned_x[here, None] - truth[None, :, 0], aligned_y[here, None] - truth[None, :, 1]
            )
            distance_d[here] = d.min(axis=1) * mic_px / diameter_A
    pd.DataFrame(
        {"class": classes.assignments, "kind": table.kind, "distance_d": distance_d}
    ).to_csv(folder / "members.csv", index=False)
    return class_label_rows(
        classes, distance_d, f"{session.name}/averages.mrcs", diameter_A, {"seed": seed}
    )


def write_labels(tables: list[pd.DataFrame], out: Path) -> None:
    """OUT/labels.csv (the labelled classes, `screen evaluate classes`' input) and all_classes.csv."""
    rows = pd.concat(tables, ignore_index=True)
    rows[rows.label != ""].to_csv(out / "labels.csv", index=False)
    rows.to_csv(out / "all_classes.csv", index=False)


def class_label_rows(
    classes, distance_d: np.ndarray, file: str, diameter_A: float, extra: dict
) -> pd.DataFrame:
    """One labels.csv row per class of >= 3 members, labelled by ``member_label``."""
    out_rows = []
    for c in range(len(classes.averages)):
        members = classes.assignments == c
        if members.sum() < 3:
            continue
        label, shares = member_label(distance_d[members])
        out_rows.append(
            {
                "file": file,
                "index": c,
                "label": label or "",
                "pixel_size_A": classes.pixel_size_A,
                "mask_diameter_A": classes.mask_diameter_A,
                "true_diameter_A": diameter_A,
                "particles": int(members.sum()),
                "centred": shares[0],
                "off": shares[1],
                "far": shares[2],
                **extra,
            }
        )
    return pd.DataFrame(out_rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--seed", type=int, default=300_000, help="first session seed")
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--max-particles", type=int, default=450, help="per session")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    seeds = range(args.seed, args.seed + args.sessions)
    tables = []
    if (args.out / "all_classes.csv").exists():  # keep the other sessions of an earlier run
        earlier = pd.read_csv(args.out / "all_classes.csv", keep_default_na=False)
        tables.append(earlier[~earlier.seed.isin(seeds)])
    for i, seed in enumerate(seeds):
        t0 = time.perf_counter()
        table = relion_session(seed, args.out, args.iterations, args.max_particles)
        tables.append(table)
        labels = table.label.replace("", "unused").value_counts().to_dict()
        print(
            f"session {i + 1}/{args.sessions}: {len(table)} classes {labels} "
            f"in {time.perf_counter() - t0:.0f} s",
            flush=True,
        )
        write_labels(tables, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
