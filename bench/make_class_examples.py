"""Make 2DAssess training examples with the pipeline's own picker and 2D classification.

    python bench/make_class_examples.py --sessions 40 --seed 0 --out /tmp/class_examples.npz

Each session is a random procedural particle (``class_examples.random_session_spec``) simulated on
512² frames at 2-3 Å/px; picked, extracted and classified at six mask diameters as ``screen run``
does; every class labelled good/noise from the ground truth of its members (see
``screen.models.class_examples``). Writes preprocessed network inputs (v1's crop to the mask),
labels, metadata and the raw averages with their mask diameter and pixel size (for other
preprocessing).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from screen.io.images import read_image
from screen.models.class_assess import preprocess_average
from screen.models.class_examples import pipeline_examples, random_session_spec
from screen.simulate.session import simulate_screen
from screen.simulate.spec import ScreenSpec
from screen.stages.records import CLASS_LABELS, CtfFit, Optics


def session_examples(task: tuple[int, int]) -> list[tuple]:
    seed, size_px = task
    rng = np.random.default_rng(seed + 777)
    session = random_session_spec(seed, n_micrographs=int(rng.integers(6, 16)))
    pixel_size_A = float(rng.uniform(2.0, 3.0))
    spec = ScreenSpec((session,), frame_px=(512, 512), pixel_size_A=pixel_size_A, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        simulate_screen(spec, Path(tmp))
        truth_dir = Path(tmp) / "sessions" / session.name / "ground_truth"
        mics = pd.read_csv(truth_dir / "micrographs.csv")
        particles = pd.read_csv(truth_dir / "particles.csv")
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
    diameter_A = max(s.structure.diameter_A for s in session.species)
    examples = pipeline_examples(images, ctfs, truth, Optics(pixel_size_A), diameter_A, rng)
    return [
        (
            preprocess_average(e.image, e.mask_diameter_A, e.pixel_size_A, size_px),
            CLASS_LABELS.index(e.label),
            e.mask_diameter_A / diameter_A,
            float(seed),
            e,
        )
        for e in examples
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0, help="first session seed")
    parser.add_argument("--size-px", type=int, default=64)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    tasks = [(args.seed + i, args.size_px) for i in range(args.sessions)]
    rows = []
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for done, found in enumerate(pool.map(session_examples, tasks), 1):
            rows.extend(found)
            print(f"{done}/{len(tasks)} sessions, {len(rows)} examples", flush=True)
    x = np.stack([r[0] for r in rows]).astype(np.float32)
    y = np.array([r[1] for r in rows])
    np.savez_compressed(
        args.out,
        x=x,
        y=y,
        mask_ratio=np.array([r[2] for r in rows]),
        session_seed=np.array([r[3] for r in rows]),
        # The averages as 2D made them (boxes differ: an object array, np.load(allow_pickle=True)).
        averages=np.array([r[4].image for r in rows] + [None], dtype=object)[:-1],
        mask_diameter_A=np.array([r[4].mask_diameter_A for r in rows]),
        pixel_size_A=np.array([r[4].pixel_size_A for r in rows]),
        true_diameter_A=np.array([r[4].particle_diameter_A for r in rows]),
    )
    counts = {label: int((y == i).sum()) for i, label in enumerate(CLASS_LABELS)}
    print(f"wrote {args.out}: {len(y)} examples {counts} in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
