"""Make 2DAssess training examples with the pipeline's own picker and 2D classification.

    python bench/make_class_examples.py --sessions 40 --seed 0 --out /tmp/class_examples.npz
    python bench/make_class_examples.py --sessions 16 --seed 400000 --cages --out /tmp/cages.npz
    python bench/make_class_examples.py --from-classes /tmp/class_examples_all.npz \
        --label-by simulated --out /tmp/class_examples_v1_labels.npz

Each session is a random procedural particle (``class_examples.random_session_spec``) simulated on
512² frames (``--frame-px``) at 2-3 Å/px; picked, extracted and classified at six mask diameters as
``screen run`` does. Every class is kept in ``OUT_all.npz`` with its purity (share of members on a true
particle), member count, mask, pixel size, the particle's enclosing (simulator) diameter and its
visible extent (``structures.projected_extent_A``). ``OUT`` holds the labelled ones (see
``screen.models.class_examples``): preprocessed network inputs (v1's crop to the mask), labels,
metadata and the raw averages. ``--label-by visible`` (default) judges masks against the visible
extent (``VISIBLE_LABELS``), ``simulated`` against the enclosing diameter (class_assess_v1/v2's
labels); ``--from-classes`` relabels an archive without simulating again. ``--spacing``
and ``--fill`` draw per session how close particles lie and how dense they are (held-out
variations of the training sessions).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from screen.config import RunConfig
from screen.io.images import read_image
from screen.models.class_assess import preprocess_average
from screen.models.class_examples import (
    CAGE_SYMMETRIES,
    SESSION_SYMMETRIES,
    VISIBLE_LABELS,
    ExampleParams,
    class_label,
    pipeline_classes,
    random_session_spec,
    solid_sphere_kDa,
)
from screen.simulate.session import session_models, simulate_screen
from screen.simulate.spec import ScreenSpec
from screen.simulate.structures import projected_extent_A
from screen.stages.diameter import estimate_diameter
from screen.stages.records import CLASS_LABELS, CtfFit, Optics


def session_classes(
    seed: int,
    symmetries: tuple[str, ...] = SESSION_SYMMETRIES,
    estimated: bool = False,
    spacing: tuple[float, float] | None = None,
    fill: tuple[float, float] | None = None,
    frame_px: int = 512,
) -> list[tuple]:
    """Every class of one random session: (class, seed, true diameter, visible extent, picked at).

    ``estimated``: as ``screen run`` does, on the session's good micrographs only (the ground
    truth's verdicts standing in for micrograph assessment), pick and mask at the pipeline's own
    diameter estimate, at ``screen run``'s mask factors (``RunConfig``), instead of the true
    diameter times a drawn error on every micrograph. ``spacing``: the range the session's
    ``SessionSpec.particle_spacing`` is drawn from (on its own stream; ``None``: the simulator's
    0.85). ``fill``: the range each species' mass is drawn from, as a share of a solid sphere of
    its diameter (`class_examples.solid_sphere_kDa`; on its own stream; ``None``: the training
    sets' 0.15-0.4, or 0.55-0.8 for cages). ``frame_px``: the side of the square micrographs
    (512: 1,000-1,500 Å fields, where ten micrographs hold under 100 picks of a 200-Å particle).
    """
    rng = np.random.default_rng(seed + 777)
    session = random_session_spec(seed, int(rng.integers(6, 16)), symmetries)
    if spacing is not None:
        drawn = float(np.random.default_rng([seed, 6]).uniform(*spacing))
        session = replace(session, particle_spacing=drawn)
    if fill is not None:
        draws = np.random.default_rng([seed, 7]).uniform(*fill, size=len(session.species))
        species = tuple(
            replace(
                s,
                structure=replace(
                    s.structure, mass_kDa=float(solid_sphere_kDa(s.structure.diameter_A) * f)
                ),
            )
            for s, f in zip(session.species, draws, strict=True)
        )
        session = replace(session, species=species)
    pixel_size_A = float(rng.uniform(2.0, 3.0))
    spec = ScreenSpec(
        (session,), frame_px=(frame_px, frame_px), pixel_size_A=pixel_size_A, seed=seed
    )
    with tempfile.TemporaryDirectory() as tmp:
        simulate_screen(spec, Path(tmp))
        truth_dir = Path(tmp) / "sessions" / session.name / "ground_truth"
        mics = pd.read_csv(truth_dir / "micrographs.csv")
        particles = pd.read_csv(truth_dir / "particles.csv")
        if estimated:  # screen run estimates, picks and classifies on its good micrographs only
            mics = mics[mics.reason == "good"]
        images, ctfs, truth = [], [], []
        for row in mics.itertuples():
            images.append(read_image(Path(tmp) / "sessions" / session.name / row.path).data)
            ctfs.append(
                CtfFit(
                    row.defocus_u_um * 1e4, row.defocus_v_um * 1e4, row.defocus_angle_deg, 8.0, 1.0
                )
            )
            here = particles[particles.micrograph == Path(row.path).name]
            truth.append(here[["x_px", "y_px"]].to_numpy())
    if not images:
        return []
    largest = max(
        range(len(session.species)), key=lambda i: session.species[i].structure.diameter_A
    )
    diameter_A = session.species[largest].structure.diameter_A
    visible_A = projected_extent_A(session_models(session)[largest])
    optics = Optics(pixel_size_A)
    if estimated:
        config = RunConfig()
        picked_at_A = estimate_diameter(
            images[: config.diameter_micrographs],
            pixel_size_A,
            config.diameter,
            ctfs=ctfs[: config.diameter_micrographs],
            optics=optics,
        ).diameter_A
        params = ExampleParams(mask_factors=config.mask_factors)
        found = pipeline_classes(images, ctfs, truth, optics, diameter_A, rng, params, picked_at_A)
    else:
        # pipeline_classes' own draw, made here to be stored (the same generator, same order)
        picked_at_A = diameter_A * float(rng.uniform(*ExampleParams().diameter_error))
        found = pipeline_classes(
            images, ctfs, truth, optics, diameter_A, rng, picking_diameter_A=picked_at_A
        )
    return [(c, float(seed), diameter_A, visible_A, picked_at_A) for c in found]


def label_rows(classes: dict, label_by: str, size_px: int) -> dict:
    """Labelled training rows (v1's crop as ``x``) from an all-classes archive's arrays."""
    params = VISIBLE_LABELS if label_by == "visible" else ExampleParams()
    reference = classes["visible_diameter_A" if label_by == "visible" else "true_diameter_A"]
    labels = [
        class_label(float(purity), float(mask_A / reference_A), params)
        for purity, mask_A, reference_A in zip(
            classes["purity"], classes["mask_diameter_A"], reference, strict=True
        )
    ]
    rows = np.array([i for i, label in enumerate(labels) if label is not None], int)
    y = np.array([CLASS_LABELS.index(labels[i]) for i in rows])
    x = np.stack(
        [
            preprocess_average(
                np.asarray(classes["averages"][i], np.float32),
                float(classes["mask_diameter_A"][i]),
                float(classes["pixel_size_A"][i]),
                size_px,
            )
            for i in rows
        ]
    ).astype(np.float32)
    out = {key: np.asarray(value)[rows] for key, value in classes.items() if key != "averages"}
    # The averages as 2D made them (boxes differ: an object array, np.load(allow_pickle=True)).
    out["averages"] = _objects([classes["averages"][i] for i in rows])
    out["mask_ratio"] = classes["mask_diameter_A"][rows] / classes["true_diameter_A"][rows]
    return {"x": x, "y": y, **out}


def _objects(items: list) -> np.ndarray:
    return np.array(list(items) + [None], dtype=object)[:-1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0, help="first session seed")
    parser.add_argument("--size-px", type=int, default=64)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--label-by",
        choices=("visible", "simulated"),
        default="visible",
        help="judge masks against the particle's visible extent (projected_extent_A, default) "
        "or the simulator's enclosing diameter (how class_assess_v1/v2 were labelled)",
    )
    parser.add_argument(
        "--from-classes",
        type=Path,
        help="relabel an existing all-classes archive (OUT_all.npz) instead of simulating",
    )
    parser.add_argument(
        "--cages",
        action="store_true",
        help="hollow cage particles (T, O, I symmetry: ring-shaped averages, like apoferritin) "
        "instead of the Cn/Dn ones",
    )
    parser.add_argument(
        "--diameter",
        choices=("drawn", "estimated"),
        default="drawn",
        help="pick and mask at the true diameter times a drawn 0.8-1.25 (default, the training "
        "sets') or, on the good micrographs only, at the pipeline's own estimate with screen "
        "run's mask factors (what screen run's class assessment sees)",
    )
    parser.add_argument(
        "--spacing",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        help="draw each session's closest particle spacing (enclosing diameters) from this "
        "range (default: the simulator's 0.85, where neighbours never touch; 0.55 0.85 lets them)",
    )
    parser.add_argument(
        "--fill",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        help="draw each species' mass as this share of a solid sphere of its diameter (default: "
        "the training sets' 0.15-0.4; compact globular proteins and ribosomes reach 0.4-0.9)",
    )
    parser.add_argument(
        "--frame-px",
        type=int,
        default=512,
        help="side of the square micrographs (default 512, the training sets'; 1024 gives four "
        "times the field, nearer a real session's ten micrographs for the diameter estimate)",
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    if args.from_classes:
        loaded = np.load(args.from_classes, allow_pickle=True)
        classes = {key: loaded[key] for key in loaded.files}
    else:
        tasks = [args.seed + i for i in range(args.sessions)]
        found = []
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            symmetries = CAGE_SYMMETRIES if args.cages else SESSION_SYMMETRIES
            make = partial(
                session_classes,
                symmetries=symmetries,
                estimated=args.diameter == "estimated",
                spacing=None if args.spacing is None else tuple(args.spacing),
                fill=None if args.fill is None else tuple(args.fill),
                frame_px=args.frame_px,
            )
            for done, rows in enumerate(pool.map(make, tasks), 1):
                found.extend(rows)
                print(f"{done}/{len(tasks)} sessions, {len(found)} classes", flush=True)
        classes = {
            "averages": _objects([c.image for c, *_ in found]),
            "purity": np.array([c.purity for c, *_ in found]),
            "n_members": np.array([c.n_members for c, *_ in found]),
            "mask_diameter_A": np.array([c.mask_diameter_A for c, *_ in found]),
            "pixel_size_A": np.array([c.pixel_size_A for c, *_ in found]),
            "session_seed": np.array([r[1] for r in found]),
            "true_diameter_A": np.array([r[2] for r in found]),
            "visible_diameter_A": np.array([r[3] for r in found]),
            "picked_at_A": np.array([r[4] for r in found]),
        }
        all_path = args.out.with_name(args.out.stem + "_all.npz")
        np.savez_compressed(all_path, **classes)
        print(f"wrote {all_path}: every class with its purity ({len(found)})")
    labelled = label_rows(classes, args.label_by, args.size_px)
    np.savez_compressed(args.out, **labelled)
    y = labelled["y"]
    counts = {label: int((y == i).sum()) for i, label in enumerate(CLASS_LABELS)}
    print(
        f"wrote {args.out}: {len(y)} examples {counts}, masks judged against the "
        f"{args.label_by} size, in {time.perf_counter() - t0:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
