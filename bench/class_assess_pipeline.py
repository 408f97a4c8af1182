"""Class assessment on our own 2D's averages as `screen run` judges them (issue 12's bar).

    python bench/make_class_examples.py --sessions 15 --seed 100015 --diameter estimated \
        --out /tmp/ce_est.npz
    python bench/class_assess_pipeline.py /tmp/ce_est_all.npz

Every class of an all-classes archive of ``make_class_examples.py`` is labelled as a person
would (purity and mask against the particle's visible extent, ``VISIBLE_LABELS``) and judged by
each model, alone and with `screen run`'s mask rule (``assess_classes.cut_by_mask`` against the
diameter the session was picked at: the pipeline's estimate with ``--diameter estimated``).
Prints good precision / recall by class and by particle, the same for the averages of sessions
whose picking diameter was within ±15 % of the particle's and of the others, and the errors per
mask factor.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np

from screen.models.class_examples import VISIBLE_LABELS, class_label
from screen.stages.assess_classes import (
    ClassAssessParams,
    assess_classes,
    cut_by_mask,
    load_class_model,
)


def precision_recall(predicted: np.ndarray, truth: np.ndarray, weight: np.ndarray) -> tuple:
    """Good precision and recall, each class weighted by ``weight``."""
    hit = float(np.sum(weight * (predicted & truth)))
    return hit / max(float(np.sum(weight * predicted)), 1e-9), hit / max(
        float(np.sum(weight * truth)), 1e-9
    )


def scores(predicted: np.ndarray, truth: np.ndarray, members: np.ndarray, rows: np.ndarray) -> str:
    """``P / R | P / R``: good precision and recall of ``rows``, by class and by particles."""
    by_class = precision_recall(predicted[rows], truth[rows], np.ones(int(rows.sum())))
    by_particle = precision_recall(predicted[rows], truth[rows], members[rows])
    return " | ".join(f"{p:.3f} / {r:.3f}" for p, r in (by_class, by_particle))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archive", type=Path, help="OUT_all.npz of make_class_examples.py")
    parser.add_argument(
        "--models", nargs="+", default=["class_assess_v7", "class_assess_v8"], help="models"
    )
    parser.add_argument(
        "--min-good-mask",
        type=float,
        default=VISIBLE_LABELS.min_good_mask_ratio,
        help="the labels' cut line: a pure class is good from a mask of this many visible "
        f"extents (default {VISIBLE_LABELS.min_good_mask_ratio}; a sensitivity check, not the bar)",
    )
    args = parser.parse_args(argv)
    label_params = replace(VISIBLE_LABELS, min_good_mask_ratio=args.min_good_mask)
    data = np.load(args.archive, allow_pickle=True)
    if "picked_at_A" not in data.files:
        parser.error(f"{args.archive} has no picked_at_A: make it again with make_class_examples")
    mask_A = data["mask_diameter_A"]
    picked_at_A = data["picked_at_A"]
    labels = [
        class_label(float(p), float(m / v), label_params)
        for p, m, v in zip(data["purity"], mask_A, data["visible_diameter_A"], strict=True)
    ]
    used = np.array([label is not None for label in labels])
    truth = np.array([label == "good" for label in labels])[used]
    members = data["n_members"][used].astype(float)
    factor = (mask_A / picked_at_A)[used]
    # Where the picking diameter met the diameter bar (issue 12: within ±15 % of the particle's
    # diameter, the simulator's enclosing one) and where it did not.
    within = (np.abs(picked_at_A / data["true_diameter_A"] - 1.0) <= 0.15)[used]
    print(
        f"{args.archive}: {used.sum()} labelled averages ({truth.sum()} good) of "
        f"{len(labels)}; diameter picked at / visible extent "
        f"{np.median(picked_at_A / data['visible_diameter_A']):.2f} (median)"
    )
    print("| model | rule | good P / R | by particles |")
    print("| --- | --- | --- | --- |")
    for name in args.models:
        params = ClassAssessParams(model=name)
        model = load_class_model(params)
        plain, ruled = [], []
        for i in np.flatnonzero(used):
            verdicts = assess_classes(
                np.asarray(data["averages"][i], np.float32)[None],
                float(mask_A[i]),
                float(data["pixel_size_A"][i]),
                params,
                model,
            )
            plain.append(verdicts.labels[0] == "good")
            cut = cut_by_mask(
                verdicts, float(mask_A[i]), float(picked_at_A[i]), params.min_mask_diameters
            )
            ruled.append(cut.labels[0] == "good")
        for rule, predicted in (("none", np.array(plain)), ("cut_by_mask", np.array(ruled))):
            everything = np.ones(len(truth), bool)
            print(f"| {name} | {rule} | {scores(predicted, truth, members, everything)} |")
            for where, near in (
                ("diameter within ±15 %", within),
                ("diameter off by more", ~within),
            ):
                print(
                    f"|  | {where} ({int(near.sum())} averages, {int(truth[near].sum())} good) "
                    f"| {scores(predicted, truth, members, near)} |"
                )
            errors = ", ".join(
                f"{f:g}x: {int(np.sum(predicted & ~truth & near))} false good, "
                f"{int(np.sum(~predicted & truth & near))} missed"
                for f in np.unique(np.round(factor, 2))
                for near in [np.isclose(factor, f, atol=0.01)]
            )
            print(f"|  | per mask factor | {errors} | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
