"""MicAssess v3: domain-randomised training without the blob statistics, started from v2's weights.

    python bench/train_micassess_v3.py [--jobs 2] [--epochs 10] [--cache /tmp/micassess_v3]
        [--name micassess_small_v3]

Simulates ``TRAIN_SET_V3`` and ``VALIDATION_SET_V3`` (every micrograph through a random chain
of the variation generators of ``screen.simulate.domain.TRAINING_DOMAIN``; pixel sizes 1.2-6.5 Å
with the particle SNR of a 1 Å pixel growing with the pixel's area; good coverage up to 0.45; ice
80-700 Å), builds the network without the blob input, copies every layer of the shipped v2 whose
weights fit (the image, power-spectrum and spectrum branches), trains, calibrates the good logit
on the validation set (at most 0.5 % of good micrographs under the 0.1 rule), then prints the
verdicts on the real examples of ``shared/real_examples`` beside a person's, and the metrics on
held-out sets that each force one generator never used in training (``HELD_OUT_GENERATORS``).
Writes ``models/<name>.keras`` only with ``--write``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from train_micassess import _progress  # bench/ is on sys.path when run as a script

from screen.models import micassess as ma
from screen.models.registry import MODELS_DIR
from screen.simulate.domain import HELD_OUT_GENERATORS, TRAINING_DOMAIN, DomainSpec

TRAIN_SET_V3 = ma.SimulatedSetSpec(
    n_micrographs=2000,
    seed=446,
    micrographs_per_session=20,
    frame_px=(512, 640, 768),
    pixel_size_A=(2.5, 7.0),
    diameter_A=(70.0, 350.0),
    coverage=(0.03, 0.45),
    defocus_um=(0.4, 3.5),
    dose_e_per_A2=(10.0, 80.0),
    particle_snr=(0.004, 0.08),
    ice_low_A=(80.0, 700.0),
    snr_per_square_A=True,
    domain=TRAINING_DOMAIN,
    clutter=(0.3, 1.2),
    clean_share=0.3,
)
"""Training set of v3 (every micrograph domain-randomised)."""

VALIDATION_SET_V3 = replace(TRAIN_SET_V3, n_micrographs=400, seed=557, micrographs_per_session=16)
"""Validation set of v3 (its distribution, another seed): the good-logit shift is chosen on it."""

HELD_OUT_V3 = replace(
    TRAIN_SET_V3,
    n_micrographs=160,
    micrographs_per_session=16,
    frame_px=(576, 704),
    structure_seeds=(5000, 6000),
    diameter_A=(90.0, 300.0),
)
"""Held-out base: other structures and frame sizes; each measurement forces one held-out
generator (and keeps the trained ones at their usual rate)."""

CLEAN_TRAIN_SET = replace(ma.TRAIN_SET, n_micrographs=800, seed=112)
"""With ``--with-clean``: micrographs of v2's training distribution (no variation generators,
1.6-4 Å/px, the simulator's per-pixel SNR), another seed than v2's, so that faint particles on
clean ice are not learnt as "empty"."""

CLEAN_VALIDATION_SET = replace(ma.VALIDATION_SET, n_micrographs=256, seed=334)
"""With ``--with-clean``: added to the validation set on which the good logit is calibrated."""

TOUCHING_TRAIN_SET = replace(
    TRAIN_SET_V3, n_micrographs=600, seed=661, coverage=(0.35, 0.75), particle_spacing=(0.55, 0.7)
)
"""With ``--with-touching``: v3's distribution on dense fields whose particles may touch side by
side (`SessionSpec.particle_spacing` 0.55-0.7; every set before saw 0.85, where they never do),
so that a dense monolayer is not learnt as "crowded" (3-5 overlapping layers)."""

TOUCHING_VALIDATION_SET = replace(TOUCHING_TRAIN_SET, n_micrographs=160, seed=662)
"""With ``--with-touching``: added to the validation set on which the good logit is calibrated."""


GROWN_TRAIN_SET = replace(
    TRAIN_SET_V3,
    n_micrographs=600,
    seed=771,
    aggregate_shapes="grown",
    bad_reasons=("aggregated", "crowded"),
)
"""With ``--with-grown``: v3's distribution whose aggregates are particles stuck together in 3D
(`SessionSpec.aggregate_shapes` "grown"; every set before had loose scatters and bead clouds,
and v5 misses the independent simulator's grown clumps, bench/README.md session 38), half good,
the rest aggregated or crowded (overlapping layers everywhere, which a clump is locally)."""

GROWN_VALIDATION_SET = replace(GROWN_TRAIN_SET, n_micrographs=160, seed=772)
"""With ``--with-grown``: added to the validation set on which the good logit is calibrated."""


def labelled_set(spec: ma.SimulatedSetSpec, label: str, args) -> ma.LabelledSet:
    cached = Path(args.cache) / f"{label}_{spec.seed}.npz" if args.cache else None
    if cached is not None and cached.exists():
        return ma.load_labelled_set(cached)
    start = time.perf_counter()
    data = ma.simulate_labelled_set(spec, jobs=args.jobs, progress=_progress(label))
    print(
        f"{label}: {len(data.good)} micrographs in {time.perf_counter() - start:.0f} s", flush=True
    )
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        ma.save_labelled_set(data, cached)
    return data


def real_field_sets(args) -> tuple[ma.LabelledSet, ma.LabelledSet]:
    """Fields cut from the real exports a person kept (``--real-fields``): training, held out.

    Training fields come from the exports of ``MICASSESS_TRAINING_EXPORTS`` only; the held-out
    ones (other seed) from the other EMPIAR-10017 exports, which never reach training.
    """
    from screen.io.real_examples import MICASSESS_TRAINING_EXPORTS, real_examples
    from screen.models.real_fields import RealFieldSpec, real_labelled_set

    examples = [e for e in real_examples() if e.path.name.startswith("empiar10017_")]
    trained = [e for e in examples if e.path.name in MICASSESS_TRAINING_EXPORTS]
    held = [e for e in examples if e.path.name not in MICASSESS_TRAINING_EXPORTS]
    if len(trained) != len(MICASSESS_TRAINING_EXPORTS) or not held:
        raise SystemExit("--real-fields needs the EMPIAR-10017 exports of shared/real_examples")
    out = []
    for label, chosen, n, seed in (
        ("real_train", trained, args.real_fields, 71),
        ("real_held_out", held, max(args.real_fields // 5, 30), 72),
    ):
        n_crowded = int(round(n * args.real_crowded_share))
        cached = Path(args.cache) / f"{label}_{n}_{n_crowded}_{seed}.npz" if args.cache else None
        if cached is not None and cached.exists():
            out.append(ma.load_labelled_set(cached))
            continue
        start = time.perf_counter()
        spec = RealFieldSpec(n, n_crowded, seed, domain=TRAINING_DOMAIN)
        data = real_labelled_set([(e.read(), e.pixel_size_A) for e in chosen], spec)
        print(
            f"{label}: {len(data.good)} fields in {time.perf_counter() - start:.0f} s", flush=True
        )
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            ma.save_labelled_set(data, cached)
        out.append(data)
    return out[0], out[1]


def transfer_weights(source, target) -> int:
    """Copy, in order, the weights of ``source``'s layers into ``target``'s where shapes fit.

    Layers are paired in creation order among those with weights; a source layer that does not
    fit the next target layer (the blob branch, the first dense layer after the concatenation)
    is skipped. Returns the number of layers copied.
    """
    sources = [layer for layer in source.layers if layer.get_weights()]
    targets = [layer for layer in target.layers if layer.get_weights()]
    copied, i = 0, 0
    for layer in targets:
        shapes = [w.shape for w in layer.get_weights()]
        while i < len(sources) and [w.shape for w in sources[i].get_weights()] != shapes:
            i += 1
        if i == len(sources):
            break
        layer.set_weights(sources[i].get_weights())
        copied += 1
        i += 1
    return copied


def real_example_rows(model) -> list[str]:
    from screen.io.real_examples import MICASSESS_TRAINING_EXPORTS, real_examples

    rows = []
    for example in real_examples():
        image = example.read()
        scores = ma.predict_micrographs(model, [image], [example.pixel_size_A])
        p_good = float(scores["p_good"][0])
        called = "good" if p_good >= 0.1 else "bad"
        reason = ma.MICROGRAPH_REASONS[int(np.argmax(scores["reason"][0]))]
        mark = "ok" if called == example.verdict else "WRONG"
        if example.path.name in MICASSESS_TRAINING_EXPORTS:
            mark += " (its fields in --real-fields training)"
        rows.append(
            f"| {example.path.name} | {example.verdict} | {p_good:.3f} | {called} ({reason}) | {mark} |"
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--cache", default=None)
    parser.add_argument(
        "--image-ranks",
        action="store_true",
        help="the image input is its grey-level ranks (invariant to monotonic remapping)",
    )
    parser.add_argument("--crop-px", type=int, default=256, help="training crop side (px)")
    parser.add_argument("--name", default="micassess_small_v3")
    parser.add_argument(
        "--init", default="micassess_small_v2", help="weights to start from (name or path)"
    )
    parser.add_argument(
        "--with-clean",
        action="store_true",
        help="also train and calibrate on micrographs of v2's (clean) distribution",
    )
    parser.add_argument(
        "--real-fields",
        type=int,
        default=0,
        help="also train on N good fields and N x --real-crowded-share crowded stacks cut from "
        "the real exports of MICASSESS_TRAINING_EXPORTS (screen.models.real_fields)",
    )
    parser.add_argument(
        "--with-touching",
        action="store_true",
        help="also train and calibrate on dense fields whose particles may touch "
        "(TOUCHING_TRAIN_SET, TOUCHING_VALIDATION_SET)",
    )
    parser.add_argument(
        "--with-grown",
        action="store_true",
        help="also train and calibrate on grown aggregates (GROWN_TRAIN_SET, GROWN_VALIDATION_SET)",
    )
    parser.add_argument(
        "--base-micrographs",
        type=int,
        default=TRAIN_SET_V3.n_micrographs,
        help="micrographs of v3's randomised training set (its first sessions)",
    )
    parser.add_argument("--real-crowded-share", type=float, default=0.5)
    parser.add_argument(
        "--real-repeat", type=int, default=1, help="times the real fields enter each epoch"
    )
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)

    base_set = replace(TRAIN_SET_V3, n_micrographs=args.base_micrographs)
    train = labelled_set(base_set, f"train_v3b{args.base_micrographs}", args)
    valid = labelled_set(VALIDATION_SET_V3, "valid_v3b", args)
    if args.with_clean:
        train = ma.LabelledSet.concatenate([train, labelled_set(CLEAN_TRAIN_SET, "clean", args)])
        valid = ma.LabelledSet.concatenate(
            [valid, labelled_set(CLEAN_VALIDATION_SET, "clean_valid", args)]
        )
    if args.with_touching:
        train = ma.LabelledSet.concatenate(
            [train, labelled_set(TOUCHING_TRAIN_SET, "touching", args)]
        )
        valid = ma.LabelledSet.concatenate(
            [valid, labelled_set(TOUCHING_VALIDATION_SET, "touching_valid", args)]
        )
    if args.with_grown:
        train = ma.LabelledSet.concatenate([train, labelled_set(GROWN_TRAIN_SET, "grown", args)])
        valid = ma.LabelledSet.concatenate(
            [valid, labelled_set(GROWN_VALIDATION_SET, "grown_valid", args)]
        )
    real_held = None
    if args.real_fields:
        real_train, real_held = real_field_sets(args)
        train = ma.LabelledSet.concatenate([train] + [real_train] * args.real_repeat)
    model = ma.build_model(
        with_blobs=False, image_input="image_ranks" if args.image_ranks else "image"
    )
    base = ma.load_micassess(args.init)
    print(f"weights copied from {args.init}: {transfer_weights(base, model)} layers", flush=True)
    config = ma.TrainingConfig(
        epochs=args.epochs, learning_rate=args.learning_rate, seed=3, crop_px=args.crop_px
    )

    def report(epoch: int, epochs: int, loss: float) -> None:
        print(f"epoch {epoch}/{epochs}: loss {loss:.3f}", flush=True)

    result = ma.train_micassess(train, config, model=model, progress=report)
    print(f"training {result.seconds:.0f} s", flush=True)
    p_good = ma.predict_features(result.model, valid.features)["p_good"]
    shift = ma.good_logit_shift(p_good, valid.good)
    print(f"validation before calibration: {ma.evaluate(result.model, valid)}", flush=True)
    ma.shift_good_logit(result.model, shift)
    print(f"good logit + {shift:.3f}; validation: {ma.evaluate(result.model, valid)}", flush=True)
    if args.write:
        result.model.save(MODELS_DIR / f"{args.name}.keras")
    elif args.cache:
        result.model.save(Path(args.cache) / f"{args.name}.keras")
    if real_held is not None:
        p_real = ma.predict_features(result.model, real_held.features)["p_good"]
        for name, rows in (("good", real_held.good), ("crowded stacks", ~real_held.good)):
            part = p_real[rows]
            print(
                f"held-out real fields, {name}: {rows.sum()}, called good {np.mean(part >= 0.1):.3f}"
            )
    print("| real example | a person | P(good) | called | |\n| --- | --- | --- | --- | --- |")
    print("\n".join(real_example_rows(result.model)), flush=True)
    print("| held-out generator | n (good) | accuracy | good called bad | reason right (bad) |")
    print("| --- | --- | --- | --- | --- |")
    for name in HELD_OUT_GENERATORS:
        domain = DomainSpec(TRAINING_DOMAIN.allowed, TRAINING_DOMAIN.probability, forced=(name,))
        data = labelled_set(replace(HELD_OUT_V3, domain=domain), f"held_out_v3b_{name}", args)
        m = ma.evaluate(result.model, data)
        print(
            f"| {name} | {m.n} ({m.n_good}) | {m.accuracy:.3f} | {m.false_negative_rate:.3f} | "
            f"{m.reason_accuracy:.3f} |",
            flush=True,
        )
    plain = labelled_set(replace(ma.HELD_OUT_SET, n_micrographs=256), "plain_held_out", args)
    m = ma.evaluate(result.model, plain)
    print(
        f"| none (v2's HELD_OUT_SET) | {m.n} ({m.n_good}) | {m.accuracy:.3f} | "
        f"{m.false_negative_rate:.3f} | {m.reason_accuracy:.3f} |",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
