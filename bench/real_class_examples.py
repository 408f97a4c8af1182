"""Class averages of real particles (EMPIAR-10017), made by our picker and 2D, labelled from the
particle centres beside the exports.

    python bench/real_class_examples.py --out /tmp/real_classes.npz [--draws 3] \
        [--fixture tests/data/empiar10017_class_averages.npz]

The EMPIAR-10017 exports of ``shared/real_examples`` with particle centres are split as
``micassess_small_v5`` split them: the six of ``MICASSESS_TRAINING_EXPORTS`` make training
averages (``OUT_train.npz``), the other five with centres held-out ones (``OUT_held.npz``); 2D
never mixes the two. Each export is Fourier-binned to ``--pixel-size`` (3.54 Å/px, the binning
``screen run`` works at here), its CTF fitted by the built-in stage, then picked, extracted and
classified at six masks as ``class_examples.pipeline_classes`` does for simulated sessions (the
picking diameter is 180 Å times 0.8-1.25, a new draw per ``--draws``). A class's purity is the
share of its members within 0.25 x 180 Å of a centre; labels judge the mask against 180 Å,
which is the visible extent of β-galactosidase (``VISIBLE_LABELS``). The centres were recovered
from the repository's particle masks and may miss particles, so purity can only be too low.
Writes the labelled files in ``make_class_examples.py``'s format and ``OUT_all_*.npz`` with every
class (real sessions have seeds -1000 - draw for training and 1,000,000 + draw held out, so
``train_class_assess_v2.py --pipeline-split 100015`` trains on one and holds out the other).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from make_class_examples import _objects, label_rows

from screen.io.real_examples import (
    EMPIAR10017_DIAMETER_A,
    MICASSESS_TRAINING_EXPORTS,
    REAL_EXAMPLES_DIR,
    real_examples,
)
from screen.models.class_examples import pipeline_classes
from screen.processing.filters import bin_to_pixel_size
from screen.stages.ctf import CtfSearch, estimate_ctf
from screen.stages.records import Optics


def split_classes(examples, pixel_size_A: float, draws: int, seed_base: int) -> dict:
    """Every class of ``draws`` classifications of one set of exports, as an archive dict."""
    images, truth = [], []
    for example in examples:
        binned, binned_A = bin_to_pixel_size(example.read(), example.pixel_size_A, pixel_size_A)
        images.append(binned)
        truth.append(example.picks_xy_px() * example.pixel_size_A / binned_A)
    optics = Optics(binned_A)
    ctfs = [estimate_ctf(image, optics, CtfSearch()) for image in images]
    found = []
    for draw in range(draws):
        rng = np.random.default_rng(abs(seed_base) + draw)
        classes = pipeline_classes(images, ctfs, truth, optics, EMPIAR10017_DIAMETER_A, rng)
        found.extend((c, float(seed_base + np.sign(seed_base) * draw)) for c in classes)
        print(f"  draw {draw + 1}/{draws}: {len(found)} classes", flush=True)
    return {
        "averages": _objects([c.image for c, _ in found]),
        "purity": np.array([c.purity for c, _ in found]),
        "n_members": np.array([c.n_members for c, _ in found]),
        "mask_diameter_A": np.array([c.mask_diameter_A for c, _ in found]),
        "pixel_size_A": np.array([c.pixel_size_A for c, _ in found]),
        "session_seed": np.array([s for _, s in found]),
        "true_diameter_A": np.full(len(found), EMPIAR10017_DIAMETER_A),
        "visible_diameter_A": np.full(len(found), EMPIAR10017_DIAMETER_A),
    }


def write_fixture(labelled: dict, path: Path, per_label: int = 24, seed: int = 7) -> None:
    """The test fixture: ``per_label`` good and noise held-out averages (float16, no pickle)."""
    rng = np.random.default_rng(seed)
    good = rng.choice(np.flatnonzero(labelled["y"] == 0), per_label, replace=False)
    noise = rng.choice(np.flatnonzero(labelled["y"] == 3), per_label, replace=False)
    chosen = np.concatenate([good, noise])
    arrays = {
        f"average_{k:02d}": np.asarray(labelled["averages"][i], np.float16)
        for k, i in enumerate(chosen)
    }
    np.savez_compressed(
        path,
        **arrays,
        label=np.array(["good"] * per_label + ["noise"] * per_label),
        mask_diameter_A=labelled["mask_diameter_A"][chosen],
        pixel_size_A=labelled["pixel_size_A"][chosen],
        purity=labelled["purity"][chosen],
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=REAL_EXAMPLES_DIR)
    parser.add_argument("--pixel-size", type=float, default=3.54, help="Å/px to pick at")
    parser.add_argument("--draws", type=int, default=3, help="classifications per split")
    parser.add_argument("--size-px", type=int, default=64)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--fixture",
        type=Path,
        help="also write 24 good + 24 noise held-out averages here "
        "(tests/data/empiar10017_class_averages.npz)",
    )
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    with_centres = [e for e in real_examples(args.folder) if e.picks_path is not None]
    train = [e for e in with_centres if e.path.name in MICASSESS_TRAINING_EXPORTS]
    held = [e for e in with_centres if e.path.name not in MICASSESS_TRAINING_EXPORTS]
    for split, examples, seed_base in (("train", train, -1000), ("held", held, 1_000_000)):
        print(f"{split}: {len(examples)} exports", flush=True)
        classes = split_classes(examples, args.pixel_size, args.draws, seed_base)
        stem = args.out.with_suffix("")
        np.savez_compressed(f"{stem}_all_{split}.npz", **classes)
        labelled = label_rows(classes, "visible", args.size_px)
        np.savez_compressed(f"{stem}_{split}.npz", **labelled)
        if split == "held" and args.fixture:
            write_fixture(labelled, args.fixture)
        y = labelled["y"]
        print(
            f"wrote {stem}_{split}.npz: {len(y)} labelled of {len(classes['purity'])} classes "
            f"(good {int((y == 0).sum())}, noise {int((y == 3).sum())}), "
            f"{time.perf_counter() - t0:.0f} s",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
