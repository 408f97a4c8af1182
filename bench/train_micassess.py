"""Regenerate the shipped MicAssess weights and model card; print held-out metrics and speed.

    python bench/train_micassess.py [--jobs 2] [--epochs 24] [--name micassess_small_v2]
        [--cache /tmp/micassess_sets]
    python bench/train_micassess.py --speed-only      # time the shipped weights only
    python bench/train_micassess.py --calibrate-only  # calibrate the shipped weights only

Simulates the training sets (``screen.models.micassess.TRAIN_SETS``) and a held-out set with other
structures, seeds, frame sizes and condition ranges (``HELD_OUT_SET``) in memory (kept as
``.npz`` in ``--cache`` when given, so a second run trains without simulating), trains,
evaluates at the pipeline's threshold (0.1) and at 0.5, times prediction on 512x512 and
K3-sized frames, and writes ``models/<name>.keras`` and ``models/<name>.md``. The end-to-end
held-out evaluation from MRC files with the CTF baseline is ``bench/micassess_heldout.py``.
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

MicAssess v2: a small four-branch CNN (about {n_params:,} parameters) that gives P(good) of a
micrograph and, for bad ones, the likeliest reason among {reasons}.

- **Image input**: the whole frame Fourier-cropped to about {target_px:g} Å/px (short side rounded
  to a multiple of {step} px, {min_px}-{max_px} px: a 512-px frame at 2 Å/px gives 128 px, a K3
  frame at 0.83 Å/px 432 px), so a particle, an ice gradient or a carbon edge has the same size
  in pixels on any detector. Square crops (one for a square frame, two for K2/K3 shapes), each
  mean 0 / std 1 in its inscribed circle, clipped at +-{clip:g} sigma, zero outside the circle;
  the network is fully convolutional (global average + max pooling), so any side is accepted.
  A micrograph's P(good) is the mean over its crops.
- **Spectrum inputs**: at {n_bins} fixed physical frequencies (1/200 to 1/7.2 1/Å) from the averaged
  periodogram (256-px tiles of the central 2048-px square at full resolution): the rotationally
  averaged log power (normalised; Thon rings, ice, damping) and the amplitude of its 2-fold
  angular harmonic (directional damping of drift, elliptical rings of strong astigmatism),
  and the 2D log power spectrum resampled to 65x65 fixed physical frequencies out to 7.2 Å
  (smoothed when finer; a small CNN reads it and keeps its layout, flattened rather than pooled:
  ring ellipses, ring extent, directional fading).
- **Blob input**: each crop band-passed at {n_scales} particle-like scales (sigma {sigmas} px, about
  {sigma_A} Å); per scale the share of values beyond -3/-5/+3/+5 robust standard deviations, the
  ratio of standard deviation to robust one and the kurtosis. Empty ice is Gaussian noise;
  particles, aggregates and contamination make tails.
- **Output**: one softmax over good + the 8 reasons: P(good) is its first entry, the reason of a
  bad micrograph the likeliest of the others (renormalised).
- **Training data**: {n_train} simulated square micrographs (`screen.simulate`, in memory), frames
  {train_frames} px, {train_sessions} sessions, one random structure each (diameter {train_diam},
  mass ~ diameter^2.5, C1/C2/C3/C4/D2/D3), uniform or preferred views, coverage {train_cov}, pixel
  size {train_px} Å/px, defocus {train_def} µm, dose {train_dose} e/Å², particle SNR {train_snr},
  ice {train_ice} Å at the thin end; half good, half bad split equally over the bad reasons.
  Simulation seeds {train_seed}; specs `screen.models.micassess.TRAIN_SETS`. The variety of
  defocus, dose, pixel size, frame size and structure comes from the simulator (a new
  micrograph each time, not copies); rotations/flips are redrawn each epoch.
- **Training**: Adam lr {lr:g} (cosine decay to 5%), {epochs} epochs, batch {batch} (crops of one
  side per batch), cross-entropy of one softmax over good + the 8 reasons,
  `keras.utils.set_random_seed({seed})`. Simulation (or loading from `--cache`) {sim_s:.0f} s,
  training {train_s:.0f} s on 2 CPU cores.
- **Calibration**: the logit of good in the final softmax is raised by {shift:.3f} (odds of good
  x {odds:.2f}), the smallest shift with at most 0.5 % of the good micrographs of the validation
  set (`VALIDATION_SET`: the training distribution, seed {valid_seed}, 1,024 micrographs) at
  P(good) < 0.1; the pipeline keeps the paper's rule. The held-out set is never used for it.
- **Command**: `python bench/train_micassess.py --jobs {jobs} --epochs {epochs}`
- **Date**: {date}
- **sha256** of `{name}.keras`: `{digest}`

## Held-out simulated set

{n_held} micrographs, spec `HELD_OUT_SET`: seed {held_seed}, other structures (shape seeds
{held_struct}), other frame sizes ({held_frames} px), diameters {held_diam}, pixel size {held_px} Å/px,
defocus {held_def} µm, dose {held_dose} e/Å², SNR {held_snr}, ice {held_ice} Å at the thin end.
The pipeline calls a micrograph bad only when P(good) < 0.1 (Li et al. 2020): throwing away good
data is worse than keeping some bad.

{metrics}

Share of each bad reason called bad:

{recall}

The same set written as MRC files and run through `screen evaluate micrographs` (with the
CTF-fit-resolution cutoff baseline) is `bench/micassess_heldout.py`; its numbers are in the
README and `bench/README.md`.

## Prediction speed (2 CPU cores, preprocessing included)

{speed}

## Limitations

- Trained and measured on *simulated* micrographs only; accuracy on real data is unmeasured
  (`bench/micassess_real_examples.py` runs it on four real images as a smoke check).
- The reason head is a hint, not a measured classifier of real defects.
- Frames coarser than {target_px:g} Å/px are seen at their own sampling (no up-sampling).
"""


def labelled_set(spec: ma.SimulatedSetSpec, label: str, args) -> ma.LabelledSet:
    """Simulate a set, or load it from ``args.cache`` when it was simulated with this spec."""
    cached = None
    if args.cache is not None:
        args.cache.mkdir(parents=True, exist_ok=True)
        cached = args.cache / f"{label}_{spec.seed}_{spec.n_micrographs}.npz"
        if cached.exists():
            print(f"{label} set: {cached}", file=sys.stderr)
            return ma.load_labelled_set(cached)
    data = ma.simulate_labelled_set(spec, args.jobs, _progress(f"{label} set"))
    if cached is not None:
        ma.save_labelled_set(data, cached)
    return data


def calibrate(model, args) -> float:
    """Shift the good logit so the 0.1 rule keeps >= 99.5 % of good validation micrographs."""
    valid = labelled_set(ma.VALIDATION_SET, "valid", args)
    p_good = ma.predict_features(model, valid.features, 64)["p_good"]
    shift = ma.good_logit_shift(p_good, valid.good)
    ma.shift_good_logit(model, shift)
    after = ma.evaluate(model, valid, 0.1)
    print(
        f"calibration on the validation set (seed {ma.VALIDATION_SET.seed}): good logit + "
        f"{shift:.3f}; there at 0.1: accuracy {after.accuracy:.3f}, good called bad "
        f"{after.false_negative_rate:.4f}"
    )
    return shift


def write_card(path: Path, **values) -> None:
    path.write_text(MODEL_CARD.format(**values))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=ma.TrainingConfig().epochs)
    parser.add_argument("--name", default="micassess_small_v2")
    parser.add_argument("--cache", type=Path, default=None, help="Folder for simulated sets.")
    parser.add_argument(
        "--check-every", type=int, default=4, help="Print held-out metrics every N epochs."
    )
    parser.add_argument("--speed-only", action="store_true")
    parser.add_argument(
        "--calibrate-only",
        action="store_true",
        help="Calibrate models/NAME.keras on the validation set and save it (no training).",
    )
    args = parser.parse_args(argv)

    if args.speed_only:
        model = ma.load_micassess(args.name)
        print(speed_table(model))
        return 0
    if args.calibrate_only:
        weights = MODELS_DIR / f"{args.name}.keras"
        model = ma.load_micassess(weights)
        calibrate(model, args)
        model.save(weights)
        print(f"wrote {weights} (sha256 {sha256(weights)})")
        return 0

    start = time.perf_counter()
    train = ma.LabelledSet.concatenate([labelled_set(s, "train", args) for s in ma.TRAIN_SETS])
    held = labelled_set(ma.HELD_OUT_SET, "held", args)
    sim_s = time.perf_counter() - start
    print(f"simulated {len(train.good)} + {len(held.good)} micrographs in {sim_s:.0f} s")

    config = replace(ma.TrainingConfig(), epochs=args.epochs)
    model = ma.build_model()

    def progress(epoch: int, epochs: int, loss: float) -> None:
        line = f"epoch {epoch}/{epochs} loss {loss:.4f}"
        if args.check_every and epoch % args.check_every == 0 and epoch < epochs:
            m = ma.evaluate(model, held, 0.1)
            line += (
                f" | held-out @0.1: accuracy {m.accuracy:.3f}, good called bad "
                f"{m.false_negative_rate:.3f}, reason {m.reason_accuracy:.3f}"
            )
        print(line, file=sys.stderr, flush=True)

    result = ma.train_micassess(train, config, model, progress)
    print(f"trained {config.epochs} epochs in {result.seconds:.0f} s; loss per epoch:")
    print(" ".join(f"{x:.3f}" for x in result.loss_per_epoch))
    shift = calibrate(result.model, args)

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
    train_spec = ma.TRAIN_SET  # the condition ranges; the sets differ in seed and frame size
    write_card(
        MODELS_DIR / f"{args.name}.md",
        name=args.name,
        n_params=result.model.count_params(),
        reasons=", ".join(MICROGRAPH_REASONS),
        target_px=ma.TARGET_PIXEL_A,
        step=ma.SIZE_STEP_PX,
        min_px=ma.MIN_IMAGE_PX,
        max_px=ma.MAX_IMAGE_PX,
        clip=ma.CLIP_SIGMA,
        n_scales=len(ma.BLOB_SIGMAS_PX),
        sigmas="/".join(f"{x:g}" for x in ma.BLOB_SIGMAS_PX),
        sigma_A=f"{ma.BLOB_SIGMAS_PX[0] * ma.TARGET_PIXEL_A:g}-"
        f"{ma.BLOB_SIGMAS_PX[-1] * ma.TARGET_PIXEL_A:g}",
        train_frames="/".join(str(f) for spec in ma.TRAIN_SETS for f in spec.frame_px),
        train_ice=span(train_spec.ice_low_A),
        held_frames="/".join(str(f) for f in held_spec.frame_px),
        held_ice=span(held_spec.ice_low_A),
        n_bins=ma.N_SPECTRUM_BINS,
        n_train=len(train.good),
        train_sessions=sum(len(ma.session_specs(spec)) for spec in ma.TRAIN_SETS),
        train_diam=span(train_spec.diameter_A) + " Å",
        train_cov=span(train_spec.coverage),
        train_px=span(train_spec.pixel_size_A),
        train_def=span(train_spec.defocus_um),
        train_dose=span(train_spec.dose_e_per_A2),
        train_snr=span(train_spec.particle_snr),
        train_seed=" and ".join(str(spec.seed) for spec in ma.TRAIN_SETS),
        lr=config.learning_rate,
        epochs=config.epochs,
        batch=config.batch_size,
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
        shift=shift,
        odds=float(np.exp(shift)),
        valid_seed=ma.VALIDATION_SET.seed,
    )
    print(f"\nwrote {weights} and its model card")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
