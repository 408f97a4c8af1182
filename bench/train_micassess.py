"""Regenerate the shipped MicAssess v0 weights and model card; print held-out metrics and speed.

    python bench/train_micassess.py [--jobs 2] [--epochs 12] [--name micassess_small_v0]
    python bench/train_micassess.py --speed-only      # time the shipped weights only

Simulates the training set (``screen.models.micassess.TRAIN_SET``) and a held-out set with other
structures, seeds and condition ranges (``HELD_OUT_SET``) in memory, trains, evaluates at the
pipeline's threshold (0.1) and at 0.5, times prediction on 512x512 and K3-sized frames, and writes
``models/<name>.keras`` and ``models/<name>.md``.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from screen.models import micassess as ma
from screen.models.registry import MODELS_DIR, sha256
from screen.stages.records import MICROGRAPH_REASONS


def _progress(label: str):
    def report(done: int, total: int) -> None:
        print(f"\r{label}: {done}/{total} sessions", end="", file=sys.stderr, flush=True)
        if done == total:
            print(file=sys.stderr)

    return report


def metrics_table(metrics: list[ma.HeldOutMetrics]) -> str:
    lines = [
        "| threshold | n (good) | accuracy | false-negative rate (good called bad) "
        "| false-positive rate (bad called good) | reason accuracy (bad) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for m in metrics:
        lines.append(
            f"| {m.threshold:g} | {m.n} ({m.n_good}) | {m.accuracy:.3f} | "
            f"{m.false_negative_rate:.3f} | {m.false_positive_rate:.3f} | {m.reason_accuracy:.3f} |"
        )
    return "\n".join(lines)


def recall_table(metrics: list[ma.HeldOutMetrics]) -> str:
    head = "| bad reason | " + " | ".join(f"called bad @ {m.threshold:g}" for m in metrics) + " |"
    lines = [head, "| --- |" + " --- |" * len(metrics)]
    for reason in MICROGRAPH_REASONS:
        values = [m.bad_recall_by_reason.get(reason, float("nan")) for m in metrics]
        lines.append(f"| {reason} | " + " | ".join(f"{v:.2f}" for v in values) + " |")
    return "\n".join(lines)


def speed_table(model) -> str:
    rng = np.random.default_rng(0)
    small = [rng.poisson(20.0, (512, 512)).astype(np.float32) for _ in range(64)]
    k3 = rng.poisson(1.0, (4092, 5760)).astype(np.float32)
    ma.predict_micrographs(model, small[:4], [2.0] * 4)  # warm-up (graph tracing)
    rows = []
    start = time.perf_counter()
    ma.predict_micrographs(model, small, [2.0] * len(small))
    seconds = time.perf_counter() - start
    rows.append(("512x512 (batch of 64)", len(small), seconds))
    start = time.perf_counter()
    for _ in range(2):
        ma.predict_micrographs(model, [k3], [0.83])
    seconds = time.perf_counter() - start
    rows.append(("K3 5760x4092 (2 crops each)", 2, seconds))
    lines = [
        "| frame | images | seconds | images/s |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {name} | {n} | {s:.2f} | {n / s:.1f} |" for name, n, s in rows]
    return "\n".join(lines)


MODEL_CARD = """# {name}

MicAssess v0: a small two-branch CNN (about {n_params:,} parameters) that gives P(good) of a
micrograph and, for bad ones, the likeliest reason among {reasons}.

- **Inputs**: the micrograph's central square crop Fourier-cropped to {image_px}x{image_px}, mean 0 /
  std 1, clipped at +-{clip:g} sigma, circular mask; non-square frames are scored on
  {crops_note} and P(good) averaged. Second input: the rotationally averaged log power spectrum at
  {n_bins} fixed physical frequencies (1/200 to 1/7.2 1/Å), normalised.
- **Outputs**: `p_good` (sigmoid), `reason` (softmax; trained on bad micrographs only).
- **Training data**: {n_train} simulated 512x512 micrographs (`screen.simulate`, in memory),
  {train_sessions} sessions, one random structure each (diameter {train_diam}, mass ~ diameter^2.5,
  C1/C2/C3/C4/D2/D3), uniform or preferred views, coverage {train_cov}, pixel size {train_px} Å/px,
  defocus {train_def} µm, dose {train_dose} e/Å², particle SNR {train_snr}; half good, half bad split
  equally over the bad reasons. Simulation seed {train_seed}; spec `screen.models.micassess.TRAIN_SET`.
- **Training**: Adam lr {lr:g} (cosine decay to 5%), {epochs} epochs, batch {batch}, BCE on P(good) + {rw:g} x CE on the
  reason of bad micrographs, random 90° rotations/flips each epoch, `keras.utils.set_random_seed({seed})`.
  Simulation {sim_s:.0f} s, training {train_s:.0f} s on 2 CPU cores.
- **Command**: `python bench/train_micassess.py --jobs {jobs} --epochs {epochs}`
- **Date**: {date}
- **sha256** of `{name}.keras`: `{digest}`

## Held-out simulated set

{n_held} micrographs, spec `HELD_OUT_SET`: seed {held_seed}, other structures (shape seeds
{held_struct}), diameters {held_diam}, pixel size {held_px} Å/px, defocus {held_def} µm, dose
{held_dose} e/Å², SNR {held_snr}. The pipeline calls a micrograph bad only when P(good) < 0.1 (Li et
al. 2020): throwing away good data is worse than keeping some bad.

{metrics}

Share of each bad reason called bad:

{recall}

## Prediction speed (2 CPU cores, preprocessing included)

{speed}

## Limitations

- Trained and measured on *simulated* micrographs only; accuracy on real data is unmeasured.
- Trained on 512x512 frames covering 770-1800 Å; a whole K3 frame (square crop ~3400 Å wide)
  is seen at a coarser scale than any training image, so its P(good) is less reliable.
- The reason head is a hint, not a measured classifier of real defects.
- P(good) is cautious on unseen structures: held-out good micrographs often score 0.2-0.5
  (hence the higher false-negative rate at 0.5); at the pipeline's 0.1 rule most are kept.
  Empty micrographs and bad CTF (strong astigmatism, near-focus, high B-factor) are the reasons
  it misses most often at 0.1.
- The spectrum input is averaged over 256-px tiles (half the frame below 512 px), so its
  frequency resolution differs a little with pixel size.
"""


def write_card(path: Path, **values) -> None:
    path.write_text(MODEL_CARD.format(**values))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=ma.TrainingConfig().epochs)
    parser.add_argument("--name", default="micassess_small_v0")
    parser.add_argument("--n-train", type=int, default=ma.TRAIN_SET.n_micrographs)
    parser.add_argument("--speed-only", action="store_true")
    args = parser.parse_args(argv)

    if args.speed_only:
        model = ma.load_micassess(args.name)
        print(speed_table(model))
        return 0

    train_spec = replace(ma.TRAIN_SET, n_micrographs=args.n_train)
    start = time.perf_counter()
    train = ma.simulate_labelled_set(train_spec, args.jobs, _progress("train set"))
    held = ma.simulate_labelled_set(ma.HELD_OUT_SET, args.jobs, _progress("held-out set"))
    sim_s = time.perf_counter() - start
    print(f"simulated {len(train.good)} + {len(held.good)} micrographs in {sim_s:.0f} s")

    config = replace(ma.TrainingConfig(), epochs=args.epochs)
    result = ma.train_micassess(train, config)
    print(f"trained {config.epochs} epochs in {result.seconds:.0f} s; loss per epoch:")
    print(" ".join(f"{x:.3f}" for x in result.loss_per_epoch))

    metrics = [ma.evaluate(result.model, held, t) for t in (0.1, 0.5)]
    train_metrics = ma.evaluate(result.model, train, 0.1)
    print("\nheld-out simulated set:\n" + metrics_table(metrics))
    print("\n" + recall_table(metrics))
    print("\ntraining set (for comparison):\n" + metrics_table([train_metrics]))

    weights = MODELS_DIR / f"{args.name}.keras"
    result.model.save(weights)
    speed = speed_table(ma.load_micassess(weights))
    print("\n" + speed)

    def span(pair, fmt="{:g}"):
        return f"{fmt.format(pair[0])}-{fmt.format(pair[1])}"

    held_spec = ma.HELD_OUT_SET
    write_card(
        MODELS_DIR / f"{args.name}.md",
        name=args.name,
        n_params=result.model.count_params(),
        reasons=", ".join(MICROGRAPH_REASONS),
        image_px=ma.IMAGE_PX,
        clip=ma.CLIP_SIGMA,
        crops_note="evenly spaced square crops (2 for a K3 frame)",
        n_bins=ma.N_SPECTRUM_BINS,
        n_train=len(train.good),
        train_sessions=len(ma.session_specs(train_spec)),
        train_diam=span(train_spec.diameter_A) + " Å",
        train_cov=span(train_spec.coverage),
        train_px=span(train_spec.pixel_size_A),
        train_def=span(train_spec.defocus_um),
        train_dose=span(train_spec.dose_e_per_A2),
        train_snr=span(train_spec.particle_snr),
        train_seed=train_spec.seed,
        lr=config.learning_rate,
        epochs=config.epochs,
        batch=config.batch_size,
        rw=config.reason_loss_weight,
        seed=config.seed,
        sim_s=sim_s,
        train_s=result.seconds,
        jobs=args.jobs,
        date=datetime.date.today().isoformat(),
        digest=sha256(weights),
        n_held=len(held.good),
        held_seed=held_spec.seed,
        held_struct=span(held_spec.structure_seeds, "{}"),
        held_diam=span(held_spec.diameter_A) + " Å",
        held_px=span(held_spec.pixel_size_A),
        held_def=span(held_spec.defocus_um),
        held_dose=span(held_spec.dose_e_per_A2),
        held_snr=span(held_spec.particle_snr),
        metrics=metrics_table(metrics),
        recall=recall_table(metrics),
        speed=speed,
    )
    print(f"\nwrote {weights} and its model card")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
